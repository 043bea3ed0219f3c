/**
 * HW page tables (drivers/iommu/iommufd/hw_pagetable.c): HWPT_PAGING objects wrap one IOMMU
 * domain that mirrors an IOAS, created automatically when a device attaches to an IOAS or by
 * IOMMU_HWPT_ALLOC; plus dirty tracking and cache invalidation (semantics.md 7.11-7.13).
 *
 * The VT-d model is paging-only: it has second-stage tables with optional dirty tracking and no
 * nesting (ECAP.NEST clear) and no first-stage tables. So, as intel-iommu answers on such
 * hardware: NEST_PARENT is EOPNOTSUPP (as on the reference guest, custom-iommufd-vtd.txt), no
 * HWPT_NESTED can ever be built, and DIRTY_TRACKING depends on the topology's `dirtyTracking`.
 */
import { type ErrnoCode, fail, SyscallError } from '../../uapi/errno.js';
import { PAGE_SIZE } from '../../hw/memory.js';
import type { VtdIommu } from '../../hw/iommu/vtd.js';
import {
  IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
  IOMMU_HWPT_ALLOC_NEST_PARENT,
  IOMMU_HWPT_ALLOC_PASID,
  IOMMU_HWPT_DATA_NONE,
  IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
  IOMMU_HWPT_FAULT_ID_VALID,
  IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
  type IommuHwptAlloc,
  type IommuHwptGetDirtyBitmap,
  type IommuHwptInvalidate,
  type IommuHwptSetDirtyTracking,
} from '../../uapi/iommufd.js';
import { PROT_WRITE } from '../vfs/mm.js';
import { type Task, userAddress } from '../vfs/task.js';
import { getDevice, hwPagetableAttach, hwPagetableDetach, type IommufdDevice } from './device.js';
import type { IommufdFault } from './eventq.js';
import { ULONG_MAX, type PagingDomain } from './io-pagetable.js';
import type { Ioas } from './ioas.js';
import { IommufdObject, type IommufdCtx, type Ucmd } from './object.js';

const PAGING_FLAGS =
  IOMMU_HWPT_ALLOC_NEST_PARENT | IOMMU_HWPT_ALLOC_DIRTY_TRACKING | IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID;
/** ECAP_REG.NEST (bit 26): nested translation. */
const ECAP_NEST = 1n << 26n;
const MAX_DOMAIN_IDS = 0xffff;
/** Bitmap bytes handled per pass, like the kernel's iova_bitmap window over pinned user pages. */
const WINDOW_BYTES = 256 * 1024;

export class HwptPaging extends IommufdObject {
  readonly type = 'HWPT_PAGING' as const;
  /** Created by attaching to an IOAS; goes away with its last device (7.2). */
  autoDomain = false;
  readonly nestParent: boolean;
  /** The domain has dirty ops (allocated with DIRTY_TRACKING). */
  readonly dirtyOps: boolean;
  /** Allocated with IOMMU_HWPT_ALLOC_PASID: may be attached to a PASID. */
  readonly pasidCompat: boolean;
  /** The domain enforces cache coherency (VT-d ECAP.SC, not in our model). */
  enforceCacheCoherency = false;
  fault: IommufdFault | null = null;
  readonly domain: PagingDomain;
  /** On ioas.hwptList with the domain in the io_pagetable. */
  private listed = false;

  constructor(
    ctx: IommufdCtx,
    readonly ioas: Ioas,
    readonly iommu: VtdIommu,
    flags: number,
  ) {
    super(ctx);
    this.nestParent = (flags & IOMMU_HWPT_ALLOC_NEST_PARENT) !== 0;
    this.dirtyOps = (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING) !== 0;
    this.pasidCompat = (flags & IOMMU_HWPT_ALLOC_PASID) !== 0;
    const hw = iommu.allocDomain();
    this.domain = {
      hw,
      pgsizeBitmap: iommu.pageSizes,
      apertureStart: iommu.aperture.start,
      apertureLast: iommu.aperture.last,
    };
    // Pairs with the decrement in destroy().
    ioas.users++;
  }

  /** Adds the domain to the IOAS (iopt_table_add_domain) and lists it. */
  link(): void {
    this.ioas.iopt.addDomain(this.domain);
    this.ioas.hwptList.push(this);
    this.listed = true;
  }

  /** iommufd_hwpt_paging_destroy() (abort is the same here). */
  destroy(): void {
    if (this.listed) {
      this.listed = false;
      this.ioas.hwptList.splice(this.ioas.hwptList.indexOf(this), 1);
      this.ioas.iopt.removeDomain(this.domain);
    }
    if (this.fault) this.fault.users--;
    this.iommu.freeDomain(this.domain.hw);
    this.ioas.users--;
  }
}

/** iommufd_get_hwpt_paging(). */
export function getHwptPaging(ctx: IommufdCtx, id: number): HwptPaging {
  return ctx.getObject(id, 'HWPT_PAGING') as HwptPaging;
}

/**
 * iommufd_hwpt_paging_alloc(): a new HWPT_PAGING for `idev` on `ioas`, with a reserved id that
 * the caller finalizes or aborts. With `immediateAttach` the device is attached first (the
 * automatic-domain path). The domain is filled with every area now, pinning if needed.
 */
export function hwptPagingAlloc(
  ctx: IommufdCtx,
  ioas: Ioas,
  idev: IommufdDevice,
  flags: number,
  immediateAttach: boolean,
  userData: boolean,
): HwptPaging {
  const iommu = idev.iommu;
  if (flags & ~PAGING_FLAGS) return fail('EOPNOTSUPP');
  if (flags & IOMMU_HWPT_ALLOC_DIRTY_TRACKING && !iommu.supportsDirtyTracking) return fail('EOPNOTSUPP');
  if (flags & IOMMU_HWPT_FAULT_ID_VALID && flags & IOMMU_HWPT_ALLOC_NEST_PARENT) return fail('EOPNOTSUPP');
  // intel_iommu_domain_alloc_paging_flags(): no driver data for paging domains, and a nesting
  // parent needs ECAP.NEST.
  if (userData) return fail('EOPNOTSUPP');
  if (flags & IOMMU_HWPT_ALLOC_NEST_PARENT && !(iommu.ecapReg & ECAP_NEST)) return fail('EOPNOTSUPP');

  // intel-iommu runs out of domain ids at 2^16 - 1 (CAP_REG.ND = 6, id 0 reserved): ENOSPC.
  if (iommu.domainCount >= MAX_DOMAIN_IDS) return fail('ENOSPC');
  const hwpt = ctx.allocObject(new HwptPaging(ctx, ioas, iommu, flags));
  try {
    if (immediateAttach) {
      hwPagetableAttach(hwpt, idev);
      try {
        hwpt.link();
      } catch (err) {
        hwPagetableDetach(idev);
        throw err;
      }
    } else {
      hwpt.link();
    }
  } catch (err) {
    ctx.abortAndDestroy(hwpt);
    throw err;
  }
  return hwpt;
}

/** IOMMU_HWPT_ALLOC (7.11). */
export function iommufdHwptAlloc(ucmd: Ucmd<IommuHwptAlloc>): number {
  const { ctx, cmd } = ucmd;
  if (cmd.__reserved) return fail('EOPNOTSUPP');
  if ((cmd.data_type === IOMMU_HWPT_DATA_NONE) !== (cmd.data_len === 0)) return fail('EINVAL');
  const idev = getDevice(ctx, cmd.dev_id);
  let pt;
  try {
    pt = ctx.getObject(cmd.pt_id);
  } catch {
    return fail('EINVAL');
  }
  let hwpt: HwptPaging;
  if (pt.type === 'IOAS') {
    hwpt = hwptPagingAlloc(ctx, pt as Ioas, idev, cmd.flags, false, cmd.data_len !== 0);
  } else if (pt.type === 'HWPT_PAGING') {
    // iommufd_hwpt_nested_alloc(): needs driver data and a NEST_PARENT parent, which this
    // IOMMU can never have allocated.
    if (cmd.flags & ~(IOMMU_HWPT_FAULT_ID_VALID | IOMMU_HWPT_ALLOC_PASID) || !cmd.data_len) return fail('EOPNOTSUPP');
    const parent = pt as HwptPaging;
    if (parent.autoDomain || !parent.nestParent) return fail('EINVAL');
    return fail('EOPNOTSUPP');
  } else {
    return fail('EINVAL');
  }
  try {
    if (cmd.flags & IOMMU_HWPT_FAULT_ID_VALID) {
      const fault = ctx.getObject(cmd.fault_id, 'FAULT') as IommufdFault;
      hwpt.fault = fault;
      fault.users++;
    }
    cmd.out_hwpt_id = hwpt.id;
    ucmd.respond();
  } catch (err) {
    ctx.abortAndDestroy(hwpt);
    throw err;
  }
  ctx.finalize(hwpt);
  return 0;
}

/** IOMMU_HWPT_SET_DIRTY_TRACKING (7.12). */
export function iommufdHwptSetDirtyTracking(ucmd: Ucmd<IommuHwptSetDirtyTracking>): number {
  const { ctx, cmd } = ucmd;
  if (cmd.flags & ~IOMMU_HWPT_DIRTY_TRACKING_ENABLE) return fail('EOPNOTSUPP');
  const hwpt = getHwptPaging(ctx, cmd.hwpt_id);
  if (!hwpt.dirtyOps) return fail('EOPNOTSUPP');
  hwpt.ioas.iopt.setDirtyTracking(hwpt.domain, (cmd.flags & IOMMU_HWPT_DIRTY_TRACKING_ENABLE) !== 0);
  return 0;
}

/**
 * IOMMU_HWPT_GET_DIRTY_BITMAP (7.12): ORs one bit per page_size page from `iova` into the user
 * bitmap (u64 words) for every page the IOMMU saw written; without NO_CLEAR the IOMMU's dirty
 * bits are cleared. After the checks it always succeeds: iommu_read_and_clear_dirty() ignores
 * what iova_bitmap_for_each() returns, so a bitmap that cannot be pinned (EFAULT), a hole in the
 * areas (__iommu_read_and_clear_dirty: EINVAL) or a domain whose tracking is off (intel's
 * read_and_clear_dirty: EINVAL) only end the walk - bits already set stay set.
 */
export function iommufdHwptGetDirtyBitmap(ucmd: Ucmd<IommuHwptGetDirtyBitmap>): number {
  const { ctx, task, cmd } = ucmd;
  if (cmd.flags & ~IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR || cmd.__reserved) return fail('EOPNOTSUPP');
  const hwpt = getHwptPaging(ctx, cmd.hwpt_id);
  const iopt = hwpt.ioas.iopt;
  // iommufd_check_iova_range(): u64 arithmetic, as the kernel does it.
  const last = cmd.iova + BigInt.asUintN(64, cmd.length - 1n);
  if (last > ULONG_MAX) return fail('EOVERFLOW');
  const end = BigInt.asUintN(64, last + 1n);
  const align = iopt.iovaAlignment;
  if (cmd.iova & (align - 1n) || end & (align - 1n)) return fail('EINVAL');
  if (cmd.page_size === 0n) return fail('EINVAL');
  const psMask = BigInt.asUintN(64, cmd.page_size - 1n);
  if (cmd.iova & psMask || end & psMask) return fail('EINVAL');
  if (!hwpt.dirtyOps) return fail('EOPNOTSUPP');

  const shift = ctz(cmd.page_size);
  const shiftBig = BigInt(shift);
  const clear = (cmd.flags & IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR) === 0;
  // iova_bitmap: one u64 word per 64 bits, processed window by window so that a huge range
  // never needs a huge buffer.
  const totalWords = (BigInt.asUintN(64, last - cmd.iova) >> shiftBig) / 64n + 1n;
  const windowWords = BigInt(WINDOW_BYTES / 8);
  for (let word = 0n; word < totalWords; word += windowWords) {
    const want = Number(totalWords - word < windowWords ? totalWords - word : windowWords);
    // The bitmap pages are pinned for writing before any dirty bit is read; the walk ends at
    // the first page that cannot be.
    const addr = cmd.data + word * 8n;
    const words = Math.floor(pinnableBytes(task, addr, want * 8) / 8);
    if (!words || !hwpt.domain.hw.dirtyTracking) return 0;
    const bitmap = task.copyFromUser(addr, words * 8);
    const winIova = cmd.iova + ((word * 64n) << shiftBig);
    const winEnd = winIova + ((BigInt(words) * 64n) << shiftBig) - 1n;
    let covered = true;
    try {
      iopt.readDirty(hwpt.domain, winIova, winEnd < last ? winEnd : last, clear, (page) => {
        // iova_bitmap_set(): every bit covering the dirty 4 KiB page.
        const offset = page * PAGE_SIZE;
        const lastBit = Math.floor((offset + PAGE_SIZE - 1) / 2 ** shift);
        for (let bit = Math.floor(offset / 2 ** shift); bit <= lastBit; bit++) {
          bitmap[bit >>> 3] = bitmap[bit >>> 3]! | (1 << (bit & 7));
        }
      });
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
      covered = false;
    }
    task.copyToUser(addr, bitmap);
    if (!covered || words < want) return 0;
  }
  return 0;
}

/** How many bytes from `addr` (at most `length`) lie in pages that can be pinned for writing. */
function pinnableBytes(task: Task, addr: bigint, length: number): number {
  if (writable(task, addr, length)) return length;
  const page = BigInt(PAGE_SIZE);
  let done = 0;
  while (done < length) {
    const at = addr + BigInt(done);
    const n = Math.min(length - done, Number(page - (at % page)));
    if (!writable(task, at, n)) break;
    done += n;
  }
  return done;
}

function writable(task: Task, addr: bigint, length: number): boolean {
  try {
    task.mm.resolve(userAddress(addr, length), length, PROT_WRITE);
    return true;
  } catch (err) {
    if (err instanceof SyscallError) return false;
    throw err;
  }
}

/**
 * IOMMU_HWPT_INVALIDATE (7.13): only nested HWPTs and vIOMMUs take invalidations, and this
 * IOMMU has neither; entry_num is written back (0) even on failure.
 */
export function iommufdHwptInvalidate(ucmd: Ucmd<IommuHwptInvalidate>): number {
  const { ctx, cmd } = ucmd;
  let code: ErrnoCode;
  if (cmd.__reserved) code = 'EOPNOTSUPP';
  else if (cmd.entry_num && (!cmd.data_uptr || !cmd.entry_len)) code = 'EINVAL';
  else code = ctx.hasObject(cmd.hwpt_id) ? 'EINVAL' : 'ENOENT';
  cmd.entry_num = 0;
  ucmd.respond();
  return fail(code);
}

function ctz(value: bigint): number {
  let n = 0;
  let v = value;
  while (!(v & 1n)) {
    v >>= 1n;
    n++;
  }
  return n;
}
