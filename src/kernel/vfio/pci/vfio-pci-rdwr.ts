/**
 * read()/write() on a vfio-pci device fd and VFIO_DEVICE_IOEVENTFD
 * (drivers/vfio/pci/vfio_pci_core.c vfio_pci_rw, vfio_pci_rdwr.c; semantics.md §6.4, §6.12).
 *
 * The file offset selects the region (index << 40) and the offset inside it. Config space goes
 * through the virtualization (vfio-pci-config.ts); BARs are register accesses of the widest
 * naturally aligned width (8/4/2/1), refused with EIO while memory decode is off.
 * Lengths are bounded by the region before any buffer is allocated.
 */
import type { PciBar } from '../../../hw/pci/function.js';
import { fail } from '../../../uapi/errno.js';
import {
  VFIO_DEVICE_IOEVENTFD_SIZE_MASK,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_OFFSET_MASK,
  VFIO_PCI_OFFSET_SHIFT,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_PCI_VGA_REGION_INDEX,
  vfio_device_ioeventfd,
  vfioMinsz,
} from '../../../uapi/vfio.js';
import type { Task } from '../../vfs/task.js';
import { copyArgszIn } from '../argsz.js';
import { memoryEnabled, vfioPciConfigRw } from './vfio-pci-config.js';
import type { VfioPciCoreDevice } from './vfio-pci-core.js';
import { Virqfd } from './vfio-pci-intrs.js';

/** VFIO_PCI_IOEVENTFD_MAX. */
export const VFIO_PCI_IOEVENTFD_MAX = 1000;

const OFFSET_SHIFT = BigInt(VFIO_PCI_OFFSET_SHIFT);

/** One registered ioeventfd (struct vfio_pci_ioeventfd). */
export interface VfioPciIoeventfd {
  readonly bar: number;
  readonly pos: number;
  readonly data: bigint;
  readonly count: number;
  virqfd: Virqfd | null;
}

const regionIndex = (pos: bigint): bigint => pos >> OFFSET_SHIFT;

/** A read of `length` bytes at device-fd offset `pos` (vfio_pci_core_read). */
export function vfioPciRead(vdev: VfioPciCoreDevice, length: number, pos: bigint): Uint8Array {
  if (length === 0) return new Uint8Array(0);
  const index = regionIndex(pos);
  // An unknown region is refused before the device is resumed (vfio_pci_rw).
  if (index >= BigInt(VFIO_PCI_NUM_REGIONS)) return fail('EINVAL');
  return vdev.withRuntimePm(() => {
    const offset = pos & VFIO_PCI_OFFSET_MASK;
    switch (Number(index)) {
      case VFIO_PCI_CONFIG_REGION_INDEX: {
        const size = vdev.fn.config.size;
        // Bounds first (vfioPciConfigRw repeats them): a huge length must fail, not allocate.
        if (offset >= BigInt(size) || offset + BigInt(length) > BigInt(size)) return fail('EFAULT');
        const buf = new Uint8Array(length);
        vfioPciConfigRw(vdev, buf, offset, false);
        return buf;
      }
      case VFIO_PCI_VGA_REGION_INDEX:
        return vgaRw();
      default: {
        const { bar, start, count } = barWindow(vdev, Number(index), offset, length);
        const buf = new Uint8Array(count);
        barRw(vdev, bar, start, buf, false);
        return buf;
      }
    }
  });
}

/** A write of `data` at device-fd offset `pos` (vfio_pci_core_write); returns bytes written. */
export function vfioPciWrite(vdev: VfioPciCoreDevice, data: Uint8Array, pos: bigint): number {
  if (data.length === 0) return 0;
  const index = regionIndex(pos);
  if (index >= BigInt(VFIO_PCI_NUM_REGIONS)) return fail('EINVAL');
  return vdev.withRuntimePm(() => {
    const offset = pos & VFIO_PCI_OFFSET_MASK;
    switch (Number(index)) {
      case VFIO_PCI_CONFIG_REGION_INDEX:
        return vfioPciConfigRw(vdev, data, offset, true);
      case VFIO_PCI_ROM_REGION_INDEX:
        return fail('EINVAL');
      case VFIO_PCI_VGA_REGION_INDEX:
        return vgaRw();
      default: {
        const { bar, start, count } = barWindow(vdev, Number(index), offset, data.length);
        barRw(vdev, bar, start, data.subarray(0, count), true);
        return count;
      }
    }
  });
}

/** vfio_pci_vga_rw(): no model is a VGA device, so the region does not exist. */
function vgaRw(): never {
  return fail('EINVAL');
}

/**
 * The part of vfio_pci_bar_rw() before any access: EINVAL for a BAR the host did not assign
 * (and for the ROM, which no model has) or an offset past its end; the count is cut at the end
 * of the BAR (a short read/write).
 */
function barWindow(vdev: VfioPciCoreDevice, index: number, offset: bigint, length: number) {
  const bar = index <= VFIO_PCI_BAR5_REGION_INDEX ? vdev.fn.bar(index) : undefined;
  if (!bar || bar.address === 0n) return fail('EINVAL');
  if (offset >= BigInt(bar.size)) return fail('EINVAL');
  const start = Number(offset);
  return { bar, start, count: Math.min(length, bar.size - start) };
}

/**
 * vfio_pci_core_do_io_rw(): widest aligned accesses; memory BARs need memory decode (EIO);
 * the MSI-X table range reads 0xff and drops writes.
 */
function barRw(vdev: VfioPciCoreDevice, bar: PciBar, start: number, buf: Uint8Array, write: boolean): void {
  if (bar.kind !== 'io' && !memoryEnabled(vdev)) return fail('EIO');
  const excluded = bar.index === vdev.msixBar ? { start: vdev.msixOffset, end: vdev.msixOffset + vdev.msixSize } : null;
  let done = 0;
  while (done < buf.length) {
    const at = start + done;
    let n: number;
    if (excluded && at >= excluded.start && at < excluded.end) {
      n = Math.min(buf.length - done, excluded.end - at);
      if (!write) buf.fill(0xff, done, done + n);
    } else {
      n = excluded && at < excluded.start ? Math.min(buf.length - done, excluded.start - at) : buf.length - done;
      const piece = buf.subarray(done, done + n);
      if (write) bar.region.write(at, piece);
      else bar.region.read(at, piece);
    }
    done += n;
  }
}

// --- VFIO_DEVICE_IOEVENTFD ---

const hweight = (n: number): number => {
  let bits = 0;
  for (let v = n; v; v &= v - 1) bits++;
  return bits;
};

/** vfio_pci_ioctl_ioeventfd(): argument checks, then vfio_pci_ioeventfd(). */
export function vfioPciIoctlIoeventfd(vdev: VfioPciCoreDevice, task: Task, arg: bigint): number {
  // minsz ends at `fd` (28 bytes): the kernel does not require `reserved`; semantics.md §6.12
  // says 32, the sources say offsetofend(fd).
  const req = copyArgszIn(task, arg, vfio_device_ioeventfd, vfioMinsz.vfio_device_ioeventfd.minsz);
  if (req.flags & ~VFIO_DEVICE_IOEVENTFD_SIZE_MASK) return fail('EINVAL');
  const count = req.flags & VFIO_DEVICE_IOEVENTFD_SIZE_MASK;
  if (hweight(count) !== 1 || req.fd < -1) return fail('EINVAL');
  return vfioPciIoeventfd(vdev, task, req.offset, req.data, count, req.fd);
}

function vfioPciIoeventfd(
  vdev: VfioPciCoreDevice,
  task: Task,
  offset: bigint,
  data: bigint,
  count: number,
  fd: number,
): number {
  const pos = offset & VFIO_PCI_OFFSET_MASK;
  const index = regionIndex(offset);
  // Only BARs: writes to config space or the ROM cannot be accelerated this way.
  if (index > BigInt(VFIO_PCI_BAR5_REGION_INDEX)) return fail('EINVAL');
  const bar = vdev.fn.bar(Number(index));
  if (pos + BigInt(count) > BigInt(bar?.size ?? 0)) return fail('EINVAL');
  const p = Number(pos);
  // Writes behind the MSI-X table's back are not allowed.
  if (bar!.index === vdev.msixBar && !(p + count <= vdev.msixOffset || p >= vdev.msixOffset + vdev.msixSize)) {
    return fail('EINVAL');
  }
  // [ver] older kernels allowed 8 bytes where iowrite64 exists; the newest sources refuse it.
  if (count === 8) return fail('EINVAL');
  const barIndex = Number(index);
  const existing = vdev.ioeventfds.findIndex(
    (e) => e.pos === p && e.bar === barIndex && e.data === data && e.count === count,
  );
  if (existing >= 0) {
    if (fd !== -1) return fail('EEXIST');
    const [entry] = vdev.ioeventfds.splice(existing, 1);
    Virqfd.disable(entry!);
    return 0;
  }
  if (fd < 0) return fail('ENODEV');
  if (vdev.ioeventfds.length >= VFIO_PCI_IOEVENTFD_MAX) return fail('ENOSPC');
  const entry: VfioPciIoeventfd = { bar: barIndex, pos: p, data, count, virqfd: null };
  const testMem = bar!.kind !== 'io';
  const value = new Uint8Array(count);
  for (let i = 0; i < count; i++) value[i] = Number((data >> BigInt(8 * i)) & 0xffn);
  Virqfd.enable(
    task,
    fd,
    entry,
    () => {
      // Skipped, not queued, while memory decode is off (vfio_pci_ioeventfd_handler).
      if (!testMem || memoryEnabled(vdev)) bar!.region.write(p, value);
      return false;
    },
    null,
  );
  vdev.ioeventfds.push(entry);
  return 0;
}

/** Close path: every ioeventfd dropped. */
export function vfioPciIoeventfdsRelease(vdev: VfioPciCoreDevice): void {
  for (const entry of vdev.ioeventfds.splice(0)) Virqfd.disable(entry);
}
