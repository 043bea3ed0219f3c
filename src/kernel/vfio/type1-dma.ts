/**
 * Type1 DMA mappings (drivers/vfio/vfio_iommu_type1.c: vfio_dma_do_map, vfio_dma_do_unmap and
 * their helpers; semantics.md §5.2, §5.3): every MAP_DMA becomes one `VfioDma` in the
 * container's IOVA-ordered dma list, its user pages are pinned and charged to the caller's
 * mm->locked_vm, and the pinned memory is programmed into every IOMMU domain of the container.
 * UNMAP_DMA undoes exactly that, mapping by mapping.
 *
 * Version note: the checks follow the 6.18+ code ("vfio/type1: handle DMA map/unmap up to the
 * addressable limit"): wrap-around of iova/vaddr + size is EOVERFLOW (EINVAL before 6.18) and is
 * tested before the flag combination, and a mapping may end at the very top of the IOVA space
 * when the IOVA list allows it.
 */
import { fail } from '../../uapi/errno.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  vfio_bitmap,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  type VfioBitmap,
} from '../../uapi/vfio.js';
import type { DmaProt, IommuDomain } from '../../hw/iommu/domain.js';
import type { IntervalEntry } from '../../hw/iommu/interval-map.js';
import { PAGE_SIZE, type MemoryObject } from '../../hw/memory.js';
import { accountLockedVm, pinnableVma, pinUserPages } from '../vfs/gup.js';
import { TASK_SIZE } from '../vfs/mm.js';
import type { Task } from '../vfs/task.js';
import type { VfioIommu } from './type1.js';
import { accessOk, bitmapAlloc, pgshiftOf, updateUserBitmap, verifyBitmapSize } from './type1-dirty.js';

const U64_MAX = 0xffff_ffff_ffff_ffffn;
const TASK_SIZE_BIG = BigInt(TASK_SIZE);

/** struct vfio_dma: one user mapping. */
export class VfioDma {
  vaddrInvalid = false;
  /** Pages this mapping charged to `task.mm.locked_vm` (MMIO pages are never charged). */
  lockedVm = 0;
  /** Programmed into the IOMMU domains. */
  iommuMapped = false;
  /** A dirty bitmap is allocated (dirty tracking started). */
  bitmap = false;

  constructor(
    readonly iova: bigint,
    readonly size: bigint,
    /** Inclusive end: iova + size - 1. */
    readonly last: bigint,
    /** Process virtual address of the first byte (any u64; only pinning needs it to be user memory). */
    public vaddr: bigint,
    /** VFIO_DMA_MAP_FLAG_READ / _WRITE, i.e. what the device may do. */
    readonly prot: number,
    /** dma->task / dma->mm: whose locked_vm carries the charge. */
    public task: Task,
    /** capable(CAP_IPC_LOCK) at map time: RLIMIT_MEMLOCK does not apply. */
    public lockCap: boolean,
  ) {}
}

type DmaEntry = IntervalEntry<VfioDma>;

const PROT_R: DmaProt = Object.freeze({ read: true, write: false });
const PROT_W: DmaProt = Object.freeze({ read: false, write: true });
const PROT_RW: DmaProt = Object.freeze({ read: true, write: true });

function domainProt(prot: number): DmaProt {
  const read = (prot & VFIO_DMA_MAP_FLAG_READ) !== 0;
  const write = (prot & VFIO_DMA_MAP_FLAG_WRITE) !== 0;
  return read && write ? PROT_RW : write ? PROT_W : PROT_R;
}

const MAP_MINSZ = vfio_iommu_type1_dma_map.offsetofend('size');
const MAP_FLAGS = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE | VFIO_DMA_MAP_FLAG_VADDR;
/**
 * MAP_DMA and UNMAP_DMA run once per mapping change, so their structs are read and written
 * through the layouts' field offsets directly rather than the generic codec: same bytes, no
 * per-field dispatch and no intermediate object.
 */
const MAP_AT = {
  argsz: vfio_iommu_type1_dma_map.offsetof('argsz'),
  flags: vfio_iommu_type1_dma_map.offsetof('flags'),
  vaddr: vfio_iommu_type1_dma_map.offsetof('vaddr'),
  iova: vfio_iommu_type1_dma_map.offsetof('iova'),
  size: vfio_iommu_type1_dma_map.offsetof('size'),
};

/** vfio_iommu_type1_map_dma(): copy in minsz bytes (EFAULT), argsz and flags (EINVAL), then map. */
export function mapDma(iommu: VfioIommu, task: Task, arg: bigint): number {
  const bytes = task.copyFromUser(arg, MAP_MINSZ);
  const view = new DataView(bytes.buffer, bytes.byteOffset, MAP_MINSZ);
  const flags = view.getUint32(MAP_AT.flags, true);
  if (view.getUint32(MAP_AT.argsz, true) < MAP_MINSZ || flags & ~MAP_FLAGS) return fail('EINVAL');
  const vaddr = view.getBigUint64(MAP_AT.vaddr, true);
  const iova = view.getBigUint64(MAP_AT.iova, true);
  const size = view.getBigUint64(MAP_AT.size, true);
  doMap(iommu, task, flags, vaddr, iova, size);
  return 0;
}

/** vfio_dma_do_map(): every check of semantics.md §5.2 in the kernel's order. */
function doMap(iommu: VfioIommu, task: Task, flags: number, vaddr: bigint, iova: bigint, size: bigint): void {
  // The u64 fields always fit dma_addr_t, size_t and unsigned long on x86-64: the first
  // EOVERFLOW check of the kernel ("field does not fit") never fires.
  if (size === 0n) return fail('EINVAL');
  const last = iova + size - 1n;
  if (last > U64_MAX || vaddr + size - 1n > U64_MAX) return fail('EOVERFLOW');
  const prot = flags & (VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE);
  const setVaddr = (flags & VFIO_DMA_MAP_FLAG_VADDR) !== 0;
  if (prot ? setVaddr : !setVaddr) return fail('EINVAL');
  if ((size | iova | vaddr) & iommu.pgmask) return fail('EINVAL');

  const hit = iommu.dmaList.firstOverlapping(iova, last);
  if (setVaddr) return updateVaddr(iommu, task, hit?.value, iova, size, vaddr);
  if (hit) return fail('EEXIST');
  if (!iommu.dmaAvail) return fail('ENOSPC');
  if (!iommu.iovaDmaValid(iova, last)) return fail('EINVAL');

  const dma = new VfioDma(iova, size, last, vaddr, prot, task, task.capable('CAP_IPC_LOCK'));
  if (iommu.domains.length) pinMapDma(iommu, task, dma);
  iommu.dmaList.insert(iova, last, dma);
  iommu.dmaAvail--;
  if (iommu.dirtyPageTracking && !bitmapAlloc(iommu, dma)) {
    removeDma(iommu, dma);
    return fail('EINVAL');
  }
}

/**
 * The VADDR half of the UPDATE_VADDR protocol: gives an invalidated mapping its new process
 * address. Nothing is re-pinned: the IOMMU keeps translating to the pages pinned at map time,
 * the new vaddr only matters for later pinning (the user is expected to map the same memory
 * there, e.g. a memfd across exec).
 */
function updateVaddr(
  iommu: VfioIommu,
  task: Task,
  dma: VfioDma | undefined,
  iova: bigint,
  size: bigint,
  vaddr: bigint,
): void {
  if (!dma) return fail('ENOENT');
  if (!dma.vaddrInvalid || dma.iova !== iova || dma.size !== size) return fail('EINVAL');
  changeDmaOwner(dma, task);
  dma.vaddr = vaddr;
  dma.vaddrInvalid = false;
  iommu.vaddrInvalidCount--;
}

/** vfio_change_dma_owner(): a different process restores the vaddr; its mm takes over the charge. */
function changeDmaOwner(dma: VfioDma, task: Task): void {
  if (task.mm === dma.task.mm) return;
  const lockCap = task.capable('CAP_IPC_LOCK');
  accountLockedVm(task.mm, dma.lockedVm, task, lockCap);
  accountLockedVm(dma.task.mm, -dma.lockedVm, dma.task, dma.lockCap);
  dma.task = task;
  dma.lockCap = lockCap;
}

/** One pinned piece of a mapping, at `iova` in IOVA space. */
interface PinnedPiece {
  readonly iova: bigint;
  readonly length: bigint;
  readonly object: MemoryObject;
  readonly offset: number;
}

/**
 * vfio_pin_map_dma(): pins the user range and maps it into every domain. RLIMIT_MEMLOCK is
 * checked as pinning proceeds (ENOMEM), a page that cannot be pinned faults (EFAULT); either way
 * nothing stays pinned, charged or mapped. MMIO (VM_PFNMAP) pieces are mapped without a charge.
 */
function pinMapDma(iommu: VfioIommu, task: Task, dma: VfioDma): void {
  const { vaddr, size } = dma;
  const write = (dma.prot & VFIO_DMA_MAP_FLAG_WRITE) !== 0;
  const prot = domainProt(dma.prot);
  if (vaddr + size <= TASK_SIZE_BIG) {
    // Fast path: one VMA covers the whole range.
    const addr = Number(vaddr);
    const length = Number(size);
    const vma = pinnableVma(task.mm, addr, length, write);
    if (vma) {
      const pfnmap = vma.object.kind === 'mmio';
      const charge = pfnmap ? 0 : length / PAGE_SIZE;
      if (charge) accountLockedVm(task.mm, charge, task, dma.lockCap);
      dma.lockedVm = charge;
      const target = { object: vma.object, offset: vma.offset + (addr - vma.start) };
      for (const vd of iommu.domains) vd.domain.map(dma.iova, size, target, prot);
      dma.iommuMapped = true;
      return;
    }
  }
  const pieces = pinPieces(task, dma);
  for (const vd of iommu.domains) {
    for (const piece of pieces) vd.domain.map(piece.iova, piece.length, piece, prot);
  }
  dma.iommuMapped = true;
}

/** The general pin: VMA by VMA, charging as it goes; returns the pieces to map. */
function pinPieces(task: Task, dma: VfioDma): PinnedPiece[] {
  const { vaddr, size } = dma;
  // GUP walks page by page: what lies below the end of user space is pinned (and may hit the
  // rlimit first), the first page beyond it faults.
  const reach = vaddr + size > TASK_SIZE_BIG ? TASK_SIZE_BIG - vaddr : size;
  if (reach <= 0n) return fail('EFAULT');
  const mm = task.mm;
  const limit = task.memlockLimitPages;
  const lockCap = dma.lockCap;
  const pieces: PinnedPiece[] = [];
  let charge = 0;
  let iova = dma.iova;
  pinUserPages(
    mm,
    Number(vaddr),
    Number(reach),
    (dma.prot & VFIO_DMA_MAP_FLAG_WRITE) !== 0,
    (object, offset, length, pfnmap) => {
      if (!pfnmap) {
        const pages = length / PAGE_SIZE;
        if (!lockCap && mm.lockedVm + charge + pages > limit) fail('ENOMEM');
        charge += pages;
      }
      const len = BigInt(length);
      pieces.push({ iova, length: len, object, offset });
      iova += len;
    },
  );
  if (reach !== size) return fail('EFAULT');
  accountLockedVm(mm, charge, task, lockCap);
  dma.lockedVm = charge;
  return pieces;
}

/** vfio_remove_dma(): unmaps from every domain, unpins and uncharges, frees the slot. */
export function removeDma(iommu: VfioIommu, dma: VfioDma): void {
  if (dma.iommuMapped) {
    for (const vd of iommu.domains) vd.domain.unmap(dma.iova, dma.size);
    dma.iommuMapped = false;
  }
  if (dma.lockedVm) {
    accountLockedVm(dma.task.mm, -dma.lockedVm, dma.task, dma.lockCap);
    dma.lockedVm = 0;
  }
  iommu.dmaList.remove(dma.iova);
  dma.bitmap = false;
  if (dma.vaddrInvalid) iommu.vaddrInvalidCount--;
  iommu.dmaAvail++;
}

/**
 * vfio_iommu_replay(): a new, incompatible domain gets every existing mapping, translated
 * through an existing domain (the kernel, too, finds the pinned pages through iova_to_phys on
 * the first domain).
 */
export function replayMappings(iommu: VfioIommu, from: IommuDomain, to: IommuDomain): void {
  for (const { value: dma } of iommu.dmaList) {
    if (!dma.iommuMapped) continue;
    for (const m of from.mappings(dma.iova, dma.last)) to.map(m.iova, m.length, m, m.prot);
  }
}

const UNMAP_MINSZ = vfio_iommu_type1_dma_unmap.offsetofend('size');
const UNMAP_FLAGS = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP | VFIO_DMA_UNMAP_FLAG_VADDR | VFIO_DMA_UNMAP_FLAG_ALL;
/** With GET_DIRTY_BITMAP a struct vfio_bitmap follows the minimal struct (data[]). */
const UNMAP_BITMAP_MINSZ = UNMAP_MINSZ + vfio_bitmap.size;

const UNMAP_AT = {
  argsz: vfio_iommu_type1_dma_unmap.offsetof('argsz'),
  flags: vfio_iommu_type1_dma_unmap.offsetof('flags'),
  iova: vfio_iommu_type1_dma_unmap.offsetof('iova'),
  size: vfio_iommu_type1_dma_unmap.offsetof('size'),
};

/** vfio_iommu_type1_unmap_dma(): the struct comes back with `size` = bytes unmapped; nothing on error. */
export function unmapDma(iommu: VfioIommu, task: Task, arg: bigint): number {
  const bytes = task.copyFromUser(arg, UNMAP_MINSZ);
  const view = new DataView(bytes.buffer, bytes.byteOffset, UNMAP_MINSZ);
  const argsz = view.getUint32(UNMAP_AT.argsz, true);
  const flags = view.getUint32(UNMAP_AT.flags, true);
  if (argsz < UNMAP_MINSZ || flags & ~UNMAP_FLAGS) return fail('EINVAL');
  const iova = view.getBigUint64(UNMAP_AT.iova, true);
  const size = view.getBigUint64(UNMAP_AT.size, true);
  let bitmap: VfioBitmap | null = null;
  if (flags & VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP) {
    if (flags & (VFIO_DMA_UNMAP_FLAG_ALL | VFIO_DMA_UNMAP_FLAG_VADDR)) return fail('EINVAL');
    if (argsz < UNMAP_BITMAP_MINSZ) return fail('EINVAL');
    bitmap = vfio_bitmap.decode(task.copyFromUser(arg + BigInt(UNMAP_MINSZ), vfio_bitmap.size));
    if (!accessOk(bitmap.data, bitmap.size)) return fail('EINVAL');
    verifyBitmapSize(size >> pgshiftOf(bitmap.pgsize), bitmap.size);
  }
  const unmapped = doUnmap(iommu, task, flags, iova, size, bitmap);
  // copy_to_user(arg, &unmap, minsz): the struct as read, with size replaced.
  view.setBigUint64(UNMAP_AT.size, unmapped, true);
  task.copyToUser(arg, bytes);
  return 0;
}

/** vfio_dma_do_unmap(): returns the bytes unmapped (or invalidated, for VADDR). */
function doUnmap(
  iommu: VfioIommu,
  task: Task,
  flags: number,
  iova: bigint,
  size: bigint,
  bitmap: VfioBitmap | null,
): bigint {
  const all = (flags & VFIO_DMA_UNMAP_FLAG_ALL) !== 0;
  // VADDR while an emulated (mdev) group is attached would be EBUSY; no such groups exist here.
  if (iova & iommu.pgmask) return fail('EINVAL');
  let last: bigint;
  if (all) {
    if (iova || size) return fail('EINVAL');
    last = U64_MAX;
  } else {
    if (!size || size & iommu.pgmask) return fail('EINVAL');
    last = iova + size - 1n;
    if (last > U64_MAX) return fail('EOVERFLOW');
  }
  if (bitmap && (!iommu.dirtyPageTracking || bitmap.pgsize !== iommu.pgsize)) return fail('EINVAL');

  const list = iommu.dmaList;
  const first = list.firstOverlapping(iova, last);
  if (iommu.v2 && !all) {
    // v2: the range may not bisect a mapping at either end.
    if (first && first.start < iova) return fail('EINVAL');
    const tail = first && first.last >= last ? first : list.find(last);
    if (tail && tail.last !== last) return fail('EINVAL');
  }
  if (flags & VFIO_DMA_UNMAP_FLAG_VADDR) return invalidateVaddrs(iommu, first, iova, last);

  let unmapped = 0n;
  let entry: DmaEntry | undefined = first;
  while (entry && entry.start <= last) {
    const dma = entry.value;
    // v1: a request starting inside a mapping unmaps nothing (and succeeds with size 0).
    if (!iommu.v2 && iova > dma.iova) break;
    if (bitmap) updateUserBitmap(iommu, task, bitmap.data, dma, iova);
    unmapped += dma.size;
    const next: DmaEntry | undefined = dma.last >= last ? undefined : list.next(entry);
    removeDma(iommu, dma);
    entry = next;
  }
  return unmapped;
}

/**
 * UNMAP with VADDR: every mapping in range keeps its IOMMU mapping but loses its vaddr until a
 * MAP_DMA with VADDR restores it. One already invalid -> EINVAL, and this call's invalidations
 * are rolled back.
 */
function invalidateVaddrs(iommu: VfioIommu, first: DmaEntry | undefined, iova: bigint, last: bigint): bigint {
  const done: VfioDma[] = [];
  let invalidated = 0n;
  for (let entry = first; entry && entry.start <= last; entry = iommu.dmaList.next(entry)) {
    const dma = entry.value;
    if (!iommu.v2 && iova > dma.iova) break;
    if (dma.vaddrInvalid) {
      for (const d of done) d.vaddrInvalid = false;
      iommu.vaddrInvalidCount -= done.length;
      return fail('EINVAL');
    }
    dma.vaddrInvalid = true;
    iommu.vaddrInvalidCount++;
    invalidated += dma.size;
    done.push(dma);
  }
  return invalidated;
}
