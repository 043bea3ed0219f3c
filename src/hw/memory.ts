/**
 * The machine's memory as devices and the IOMMU see it: objects that hold bytes at offsets.
 *
 * - `RamObject`: sparse RAM (the pages behind an anonymous mapping or a memfd). Pages come into
 *   existence on first write; unwritten pages read as zero, so a 64 GiB object costs nothing
 *   until touched.
 * - `MmioObject`: a device window (a BAR). Every access is a register access of a given width.
 *
 * Offsets are plain numbers: objects are bounded far below 2^53 bytes.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE_SIZE - 1;

export interface MemoryObject {
  readonly kind: 'ram' | 'mmio';
  /** Size in bytes; accesses past it fail (SIGBUS for a CPU, a fault for DMA). */
  readonly size: number;
  /** Copies `dst.length` bytes starting at `offset` into `dst`. */
  read(offset: number, dst: Uint8Array): void;
  /** Copies `src` into the object at `offset`. */
  write(offset: number, src: Uint8Array): void;
}

const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

export class RamObject implements MemoryObject {
  readonly kind = 'ram';
  private readonly pages = new Map<number, Uint8Array>();

  constructor(public size: number) {}

  /** Number of pages that have been materialized (touched by a write). */
  get residentPages(): number {
    return this.pages.size;
  }

  /** The page holding `index`, created on demand, or the shared zero page for reads. */
  page(index: number, forWrite: boolean): Uint8Array {
    let page = this.pages.get(index);
    if (!page) {
      if (!forWrite) return ZERO_PAGE;
      page = new Uint8Array(PAGE_SIZE);
      this.pages.set(index, page);
    }
    return page;
  }

  read(offset: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const at = offset + done;
      const inPage = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - inPage, dst.length - done);
      const page = this.pages.get(Math.floor(at / PAGE_SIZE));
      if (page) dst.set(page.subarray(inPage, inPage + n), done);
      else dst.fill(0, done, done + n);
      done += n;
    }
  }

  write(offset: number, src: Uint8Array): void {
    let done = 0;
    while (done < src.length) {
      const at = offset + done;
      const inPage = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - inPage, src.length - done);
      this.page(Math.floor(at / PAGE_SIZE), true).set(src.subarray(done, done + n), inPage);
      done += n;
    }
  }

  /** Shrinks or grows the object (ftruncate); pages past the new end are dropped. */
  resize(size: number): void {
    if (size < this.size) {
      const firstGone = Math.ceil(size / PAGE_SIZE);
      for (const index of [...this.pages.keys()]) if (index >= firstGone) this.pages.delete(index);
      const tail = size & PAGE_MASK;
      if (tail) this.pages.get(Math.floor(size / PAGE_SIZE))?.fill(0, tail);
    }
    this.size = size;
  }
}

/** Register-level access to a device window; widths are 1, 2, 4 or 8 bytes. */
export interface MmioHandler {
  mmioRead(offset: number, width: number): bigint;
  mmioWrite(offset: number, width: number, value: bigint): void;
}

export class MmioObject implements MemoryObject {
  readonly kind = 'mmio';

  constructor(
    readonly size: number,
    readonly handler: MmioHandler,
  ) {}

  read(offset: number, dst: Uint8Array): void {
    forEachAccess(offset, dst.length, (at, width, i) => {
      const v = this.handler.mmioRead(at, width);
      for (let b = 0; b < width; b++) dst[i + b] = Number((v >> BigInt(8 * b)) & 0xffn);
    });
  }

  write(offset: number, src: Uint8Array): void {
    forEachAccess(offset, src.length, (at, width, i) => {
      let v = 0n;
      for (let b = width - 1; b >= 0; b--) v = (v << 8n) | BigInt(src[i + b]!);
      this.handler.mmioWrite(at, width, v);
    });
  }
}

/**
 * Splits [offset, offset+length) into the widest naturally aligned accesses (8/4/2/1), the way
 * a CPU copy loop or vfio-pci's rdwr path reaches a device: a 4-byte access stays one 4-byte
 * register access.
 */
export function forEachAccess(
  offset: number,
  length: number,
  visit: (at: number, width: number, index: number) => void,
): void {
  let i = 0;
  while (i < length) {
    const at = offset + i;
    const left = length - i;
    const width = left >= 8 && at % 8 === 0 ? 8 : left >= 4 && at % 4 === 0 ? 4 : left >= 2 && at % 2 === 0 ? 2 : 1;
    visit(at, width, i);
    i += width;
  }
}
