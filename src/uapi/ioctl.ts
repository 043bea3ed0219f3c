/**
 * ioctl request numbers (asm-generic/ioctl.h encoding). VFIO and iommufd use `_IO(';', nr)`:
 * no size and no direction bits, the struct size travels in `argsz`/`size` instead.
 */

const NRBITS = 8;
const TYPEBITS = 8;
const SIZEBITS = 14;
const NRSHIFT = 0;
const TYPESHIFT = NRSHIFT + NRBITS;
const SIZESHIFT = TYPESHIFT + TYPEBITS;
const DIRSHIFT = SIZESHIFT + SIZEBITS;

export const IOC_NONE = 0;
export const IOC_WRITE = 1;
export const IOC_READ = 2;

export function IOC(dir: number, type: number, nr: number, size: number): number {
  return ((dir << DIRSHIFT) | (type << TYPESHIFT) | (nr << NRSHIFT) | (size << SIZESHIFT)) >>> 0;
}

export function IO(type: number | string, nr: number): number {
  return IOC(IOC_NONE, typeof type === 'string' ? type.charCodeAt(0) : type, nr, 0);
}

export const iocNr = (request: number): number => (request >>> NRSHIFT) & 0xff;
export const iocType = (request: number): number => (request >>> TYPESHIFT) & 0xff;
