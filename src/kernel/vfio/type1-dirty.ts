/**
 * Type1 dirty-page reporting (drivers/vfio/vfio_iommu_type1.c: vfio_iommu_type1_dirty_pages,
 * vfio_iova_dirty_bitmap, update_user_bitmap; semantics.md §5.3 GET_DIRTY_BITMAP and §5.4).
 *
 * Type1 does not read the IOMMU's dirty bits. While tracking is on, a page counts as dirty when
 * an mdev pinned it, or - as long as any IOMMU-backed group is attached that cannot report its
 * own writes, which is every vfio-pci device - every page of every IOMMU-mapped mapping is
 * reported dirty on every query. No device here pins pages, so the per-mapping bitmaps would
 * always be all-ones or all-zeros: we keep only whether one is allocated, and write the user's
 * bitmap straight from that rule, in bounded chunks whatever the mapping's size.
 */
import { fail } from '../../uapi/errno.js';
import {
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
} from '../../uapi/vfio.js';
import { TASK_SIZE } from '../vfs/mm.js';
import type { Task } from '../vfs/task.js';
import { copyArgszIn } from './argsz.js';
import type { VfioIommu } from './type1.js';
import type { VfioDma } from './type1-dma.js';

/** INT_MAX pages: bitmap_set() takes an int bit count. */
export const DIRTY_BITMAP_PAGES_MAX = 0x7fff_ffff;
/** DIRTY_BITMAP_BYTES(DIRTY_BITMAP_PAGES_MAX): 256 MiB, reported as max_dirty_bitmap_size. */
export const DIRTY_BITMAP_SIZE_MAX = 2 ** 28;

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const TASK_SIZE_BIG = BigInt(TASK_SIZE);
/** User bitmaps are written in pieces of at most this many bytes. */
const CHUNK_BYTES = 64 * 1024;

/** DIRTY_BITMAP_BYTES(n): n bits rounded up to whole u64 words, in bytes. */
function dirtyBitmapBytes(npages: bigint): bigint {
  return ((npages + 63n) / 64n) * 8n;
}

/** __ffs(): index of the lowest set bit (0 for 0, as x86's masked shift count makes it behave). */
export function pgshiftOf(pgsize: bigint): bigint {
  if (pgsize === 0n) return 0n;
  let shift = 0n;
  while (!((pgsize >> shift) & 1n)) shift++;
  return shift;
}

/** access_ok(): the whole range lies in user space (no wrap). */
export function accessOk(addr: bigint, size: bigint): boolean {
  return addr + size <= TASK_SIZE_BIG;
}

/** verify_bitmap_size(): EINVAL unless the bitmap is non-empty, at most 256 MiB, and big enough. */
export function verifyBitmapSize(npages: bigint, bitmapSize: bigint): void {
  if (!npages || !bitmapSize || bitmapSize > BigInt(DIRTY_BITMAP_SIZE_MAX) || bitmapSize < dirtyBitmapBytes(npages)) {
    fail('EINVAL');
  }
}

/** vfio_dma_bitmap_alloc(): false when the mapping has too many pages for a bitmap. */
export function bitmapAlloc(iommu: VfioIommu, dma: VfioDma): boolean {
  if (dma.size >> pgshiftOf(iommu.pgsize) > BigInt(DIRTY_BITMAP_PAGES_MAX)) return false;
  dma.bitmap = true;
  return true;
}

/**
 * update_user_bitmap(): ORs `dma`'s pages into the user bitmap at `data`, one bit per IOMMU page
 * counted from `baseIova`. The kernel copies whole u64 words: bits of the first word below the
 * mapping are kept (read back from the user), bits of the last word above it are cleared.
 */
export function updateUserBitmap(iommu: VfioIommu, task: Task, data: bigint, dma: VfioDma, baseIova: bigint): void {
  const pgshift = pgshiftOf(iommu.pgsize);
  const nbits = Number(dma.size >> pgshift);
  const bitOffset = (dma.iova - baseIova) >> pgshift;
  const base = data + (bitOffset / 64n) * 8n;
  const shift = Number(bitOffset % 64n);
  const dirty = iommu.nonPinnedGroups > 0 && dma.iommuMapped;
  const leftover = shift ? task.copyFromUser(base, 8) : null;
  const totalBits = nbits + shift;
  const bytes = Math.ceil(totalBits / 64) * 8;
  for (let at = 0; at < bytes; at += CHUNK_BYTES) {
    const chunk = new Uint8Array(Math.min(CHUNK_BYTES, bytes - at));
    if (dirty) setBits(chunk, at * 8, shift, totalBits);
    if (leftover && at === 0) keepLowBits(chunk, leftover, shift);
    task.copyToUser(base + BigInt(at), chunk);
  }
}

/** Sets bits [from, to) of the whole bitmap that fall in `chunk`, which starts at bit `chunkBit`. */
function setBits(chunk: Uint8Array, chunkBit: number, from: number, to: number): void {
  const lo = Math.max(from, chunkBit) - chunkBit;
  const hi = Math.min(to, chunkBit + chunk.length * 8) - chunkBit;
  let bit = lo;
  while (bit < hi && bit & 7) {
    chunk[bit >> 3] = chunk[bit >> 3]! | (1 << (bit & 7));
    bit++;
  }
  const fullEnd = hi & ~7;
  if (bit < fullEnd) {
    chunk.fill(0xff, bit >> 3, fullEnd >> 3);
    bit = fullEnd;
  }
  while (bit < hi) {
    chunk[bit >> 3] = chunk[bit >> 3]! | (1 << (bit & 7));
    bit++;
  }
}

/** ORs the low `shift` bits of the user's first word back into the chunk. */
function keepLowBits(chunk: Uint8Array, leftover: Uint8Array, shift: number): void {
  for (let i = 0; i < 8 && i * 8 < shift; i++) {
    const bits = Math.min(8, shift - i * 8);
    chunk[i] = chunk[i]! | (leftover[i]! & ((1 << bits) - 1));
  }
}

const DIRTY_MINSZ = vfio_iommu_type1_dirty_bitmap.offsetofend('flags');
const DIRTY_FLAGS =
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START | VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP | VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;

/** vfio_iommu_type1_dirty_pages(). */
export function dirtyPages(iommu: VfioIommu, task: Task, arg: bigint): number {
  if (!iommu.v2) return fail('EACCES');
  const dirty = copyArgszIn(task, arg, vfio_iommu_type1_dirty_bitmap, DIRTY_MINSZ);
  const flags = dirty.flags;
  // Known flags only, and exactly one of them.
  if (flags & ~DIRTY_FLAGS || !flags || flags & (flags - 1)) return fail('EINVAL');
  if (flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_START) {
    if (!iommu.dirtyPageTracking) {
      bitmapAllocAll(iommu);
      iommu.dirtyPageTracking = true;
    }
    return 0;
  }
  if (flags & VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP) {
    if (iommu.dirtyPageTracking) {
      iommu.dirtyPageTracking = false;
      for (const { value: dma } of iommu.dmaList) dma.bitmap = false;
    }
    return 0;
  }
  return getBitmap(iommu, task, arg, dirty.argsz);
}

/** vfio_dma_bitmap_alloc_all(): all or nothing. */
function bitmapAllocAll(iommu: VfioIommu): void {
  const done: VfioDma[] = [];
  for (const { value: dma } of iommu.dmaList) {
    if (!bitmapAlloc(iommu, dma)) {
      for (const d of done) d.bitmap = false;
      return fail('EINVAL');
    }
    done.push(dma);
  }
}

/** VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, checks in the kernel's order (6.18+ errnos). */
function getBitmap(iommu: VfioIommu, task: Task, arg: bigint, argsz: number): number {
  const dataSize = argsz - DIRTY_MINSZ;
  if (!dataSize || dataSize < vfio_iommu_type1_dirty_bitmap_get.size) return fail('EINVAL');
  const range = vfio_iommu_type1_dirty_bitmap_get.decode(
    task.copyFromUser(arg + BigInt(DIRTY_MINSZ), vfio_iommu_type1_dirty_bitmap_get.size),
  );
  const { iova, size, bitmap } = range;
  if (!size) return fail('EINVAL');
  const last = iova + size - 1n;
  if (last > U64_MAX) return fail('EOVERFLOW');
  if (!accessOk(bitmap.data, bitmap.size)) return fail('EINVAL');
  verifyBitmapSize(size >> pgshiftOf(bitmap.pgsize), bitmap.size);
  if (bitmap.pgsize !== iommu.pgsize) return fail('EINVAL');
  if (iova & iommu.pgmask || size & iommu.pgmask) return fail('EINVAL');
  if (!iommu.dirtyPageTracking) return fail('EINVAL');
  iovaDirtyBitmap(iommu, task, bitmap.data, iova, last);
  return 0;
}

/** vfio_iova_dirty_bitmap(): the range must not bisect a mapping; every mapping inside is reported. */
function iovaDirtyBitmap(iommu: VfioIommu, task: Task, data: bigint, iova: bigint, last: bigint): void {
  const list = iommu.dmaList;
  const head = list.find(iova);
  if (head && head.start !== iova) return fail('EINVAL');
  const tail = list.find(last);
  if (tail && tail.last !== last) return fail('EINVAL');
  for (const { value: dma } of list.overlapping(iova, last)) updateUserBitmap(iommu, task, data, dma, iova);
}
