/**
 * The IOAS object and its ioctls (drivers/iommu/iommufd/ioas.c): an IO address space that
 * userspace fills with MAP / MAP_FILE / COPY and empties with UNMAP, and that HWPTs mirror into
 * IOMMU page tables. Rules: semantics.md 7.3-7.9 and 7.17.
 */
import { fail } from '../../uapi/errno.js';
import {
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  iommu_iova_range,
  type IommuIoasAlloc,
  type IommuIoasAllowIovas,
  type IommuIoasChangeProcess,
  type IommuIoasCopy,
  type IommuIoasIovaRanges,
  type IommuIoasMap,
  type IommuIoasMapFile,
  type IommuIoasUnmap,
  type IommuOption,
} from '../../uapi/iommufd.js';
import { IntervalMap } from '../../hw/iommu/interval-map.js';
import type { Task } from '../vfs/task.js';
import type { Span } from './double-span.js';
import type { HwptPaging } from './hw-pagetable.js';
import { IoPagetable, type IoProt, type PagesSlice, ULONG_MAX, unmappedOrThrow } from './io-pagetable.js';
import { IommufdCtx, IommufdObject, type Ucmd } from './object.js';
import { chargePages, IOPT_PAGES_ACCOUNT_MM, IOPT_PAGES_ACCOUNT_USER, IoptPages } from './pages.js';

const U64_MAX = ULONG_MAX;
const MAP_FLAGS = IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
const RANGE_SIZE = iommu_iova_range.size;

export class Ioas extends IommufdObject {
  readonly type = 'IOAS' as const;
  readonly iopt = new IoPagetable();
  /** HWPT_PAGING objects built on this IOAS (ioas->hwpt_list), oldest first. */
  readonly hwptList: HwptPaging[] = [];

  /** iommufd_ioas_destroy(): every area goes (HWPTs hold references, so none is left). */
  destroy(): void {
    this.iopt.unmapAll();
  }
}

/** iommufd_ioas_alloc(): a new IOAS with a reserved id (finalize or abort it). */
export function allocIoas(ctx: IommufdCtx): Ioas {
  return ctx.allocObject(new Ioas(ctx));
}

/** iommufd_get_ioas(). */
export function getIoas(ctx: IommufdCtx, id: number): Ioas {
  return ctx.getObject(id, 'IOAS') as Ioas;
}

/** IOMMU_IOAS_ALLOC (7.3). */
export function iommufdIoasAlloc(ucmd: Ucmd<IommuIoasAlloc>): number {
  const { ctx, cmd } = ucmd;
  if (cmd.flags) return fail('EOPNOTSUPP');
  const ioas = allocIoas(ctx);
  cmd.out_ioas_id = ioas.id;
  try {
    ucmd.respond();
  } catch (err) {
    ctx.abortAndDestroy(ioas);
    throw err;
  }
  ctx.finalize(ioas);
  return 0;
}

/** IOMMU_IOAS_IOVA_RANGES (7.4): the EMSGSIZE protocol. */
export function iommufdIoasIovaRanges(ucmd: Ucmd<IommuIoasIovaRanges>): number {
  const { ctx, task, cmd } = ucmd;
  if (cmd.__reserved) return fail('EOPNOTSUPP');
  const ioas = getIoas(ctx, cmd.ioas_id);
  const capacity = cmd.num_iovas;
  const ranges = ioas.iopt.iovaRanges();
  cmd.num_iovas = 0;
  cmd.out_iova_alignment = ioas.iopt.iovaAlignment;
  for (const range of ranges) {
    if (cmd.num_iovas < capacity) {
      const at = cmd.allowed_iovas + BigInt(cmd.num_iovas * RANGE_SIZE);
      task.copyToUser(at, iommu_iova_range.encode({ start: range.start, last: range.last }));
    }
    cmd.num_iovas++;
  }
  ucmd.respond();
  if (cmd.num_iovas > capacity) return fail('EMSGSIZE');
  return 0;
}

/** IOMMU_IOAS_ALLOW_IOVAS (7.5). */
export function iommufdIoasAllowIovas(ucmd: Ucmd<IommuIoasAllowIovas>): number {
  const { ctx, task, cmd } = ucmd;
  if (cmd.__reserved) return fail('EOPNOTSUPP');
  const ioas = getIoas(ctx, cmd.ioas_id);
  // iommufd_ioas_load_iovas(): one range at a time, so the first bad one decides the errno.
  const loaded = new IntervalMap<true>();
  for (let i = 0; i < cmd.num_iovas; i++) {
    const range = iommu_iova_range.decode(task.copyFromUser(cmd.allowed_iovas + BigInt(i * RANGE_SIZE), RANGE_SIZE));
    if (range.start >= range.last) return fail('EINVAL');
    if (loaded.firstOverlapping(range.start, range.last)) return fail('EINVAL');
    loaded.insert(range.start, range.last, true);
  }
  const spans: Span[] = [...loaded].map((e) => ({ start: e.start, last: e.last }));
  ioas.iopt.setAllowedIovas(spans);
  return 0;
}

function convProt(flags: number): IoProt {
  return { read: (flags & IOMMU_IOAS_MAP_READABLE) !== 0, write: (flags & IOMMU_IOAS_MAP_WRITEABLE) !== 0 };
}

/**
 * iopt_map_common(): maps a fresh pages object into `ioas`, upgrading per-user accounting to
 * per-mm when the context asks for it. The pages are dropped if mapping fails.
 */
export function mapCommon(
  ctx: IommufdCtx,
  ioas: Ioas,
  alloc: { pages: IoptPages; startByte: bigint },
  length: bigint,
  iova: bigint,
  prot: IoProt,
  allocate: boolean,
): bigint {
  const { pages, startByte } = alloc;
  if (ctx.accountMode === IOPT_PAGES_ACCOUNT_MM && pages.accountMode === IOPT_PAGES_ACCOUNT_USER) {
    pages.accountMode = IOPT_PAGES_ACCOUNT_MM;
  }
  try {
    return ioas.iopt.mapPages([{ pages, startByte, length }], length, iova, prot, allocate);
  } catch (err) {
    pages.put();
    throw err;
  }
}

/** iopt_map_user_pages(). */
export function mapUserPages(
  ctx: IommufdCtx,
  task: Task,
  ioas: Ioas,
  iova: bigint,
  uptr: bigint,
  length: bigint,
  prot: IoProt,
  allocate: boolean,
): bigint {
  const alloc = IoptPages.allocUser(task, uptr, length, prot.write);
  return mapCommon(ctx, ioas, alloc, length, iova, prot, allocate);
}

/** IOMMU_IOAS_MAP (7.6). */
export function iommufdIoasMap(ucmd: Ucmd<IommuIoasMap>): number {
  const { ctx, task, cmd } = ucmd;
  if (cmd.flags & ~MAP_FLAGS || cmd.__reserved) return fail('EOPNOTSUPP');
  if (cmd.iova >= U64_MAX || cmd.length >= U64_MAX) return fail('EOVERFLOW');
  if (!(cmd.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return fail('EINVAL');
  const ioas = getIoas(ctx, cmd.ioas_id);
  const allocate = !(cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA);
  cmd.iova = mapUserPages(ctx, task, ioas, cmd.iova, cmd.user_va, cmd.length, convProt(cmd.flags), allocate);
  // A failed copy-back leaves the mapping in place, as in the kernel.
  ucmd.respond();
  return 0;
}

/** IOMMU_IOAS_MAP_FILE (7.6): a memfd range; the alignment hint is `start`. */
export function iommufdIoasMapFile(ucmd: Ucmd<IommuIoasMapFile>): number {
  const { ctx, task, cmd } = ucmd;
  if (cmd.flags & ~MAP_FLAGS) return fail('EOPNOTSUPP');
  if (cmd.iova >= U64_MAX || cmd.length >= U64_MAX) return fail('EOVERFLOW');
  if (!(cmd.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return fail('EINVAL');
  const ioas = getIoas(ctx, cmd.ioas_id);
  const allocate = !(cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA);
  // iopt_map_file_pages()
  if (cmd.length === 0n) return fail('EINVAL');
  if (cmd.start + cmd.length - 1n > U64_MAX) return fail('EOVERFLOW');
  const file = task.files.lookup(cmd.fd) ?? fail('EBADF');
  const prot = convProt(cmd.flags);
  const alloc = IoptPages.allocFile(task, file, cmd.start, cmd.length, prot.write);
  cmd.iova = mapCommon(ctx, ioas, alloc, cmd.length, cmd.iova, prot, allocate);
  ucmd.respond();
  return 0;
}

/** IOMMU_IOAS_COPY (7.7): any fully covered source range; the pages are shared, not copied. */
export function iommufdIoasCopy(ucmd: Ucmd<IommuIoasCopy>): number {
  const { ctx, cmd } = ucmd;
  if (cmd.flags & ~MAP_FLAGS) return fail('EOPNOTSUPP');
  if (cmd.length >= U64_MAX || cmd.src_iova >= U64_MAX || cmd.dst_iova >= U64_MAX) return fail('EOVERFLOW');
  if (!(cmd.flags & (IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE))) return fail('EINVAL');
  const src = getIoas(ctx, cmd.src_ioas_id);
  const slices: PagesSlice[] = src.iopt.getPages(cmd.src_iova, cmd.length);
  try {
    const dst = getIoas(ctx, cmd.dst_ioas_id);
    const allocate = !(cmd.flags & IOMMU_IOAS_MAP_FIXED_IOVA);
    cmd.dst_iova = dst.iopt.mapPages(slices, cmd.length, cmd.dst_iova, convProt(cmd.flags), allocate);
  } catch (err) {
    for (const slice of slices) slice.pages.put();
    throw err;
  }
  ucmd.respond();
  return 0;
}

/** IOMMU_IOAS_UNMAP (7.8): the IOAS is looked up before the range is checked. */
export function iommufdIoasUnmap(ucmd: Ucmd<IommuIoasUnmap>): number {
  const { ctx, cmd } = ucmd;
  const ioas = getIoas(ctx, cmd.ioas_id);
  let unmapped: bigint;
  if (cmd.iova === 0n && cmd.length === U64_MAX) {
    unmapped = unmappedOrThrow(ioas.iopt.unmapAll());
  } else {
    if (cmd.iova >= U64_MAX || cmd.length >= U64_MAX) return fail('EOVERFLOW');
    unmapped = unmappedOrThrow(ioas.iopt.unmapIova(cmd.iova, cmd.length));
    // Nothing mapped is ENOENT for the native ioctl only; VFIO compat reports 0 bytes.
    if (unmapped === 0n) return fail('ENOENT');
  }
  cmd.length = unmapped;
  ucmd.respond();
  return 0;
}

/**
 * IOMMU_OPTION_RLIMIT_MODE (7.9), context-wide: SET needs CAP_SYS_RESOURCE and an empty
 * context.
 */
export function iommufdOptionRlimitMode(ctx: IommufdCtx, task: Task, cmd: IommuOption): void {
  if (cmd.object_id) return fail('EOPNOTSUPP');
  if (cmd.op === IOMMU_OPTION_OP_GET) {
    cmd.val64 = ctx.accountMode === IOPT_PAGES_ACCOUNT_MM ? 1n : 0n;
    return;
  }
  if (cmd.op !== IOMMU_OPTION_OP_SET) return fail('EOPNOTSUPP');
  if (!task.capable('CAP_SYS_RESOURCE')) return fail('EPERM');
  if (ctx.size) return fail('EBUSY');
  if (cmd.val64 === 0n) ctx.accountMode = IOPT_PAGES_ACCOUNT_USER;
  else if (cmd.val64 === 1n) ctx.accountMode = IOPT_PAGES_ACCOUNT_MM;
  else return fail('EINVAL');
}

/** IOMMU_OPTION_HUGE_PAGES (7.9), per IOAS: object_id must name an IOAS (ENOENT, also for 0). */
export function iommufdIoasOption(ctx: IommufdCtx, cmd: IommuOption): void {
  if (cmd.__reserved) return fail('EOPNOTSUPP');
  const ioas = getIoas(ctx, cmd.object_id);
  if (cmd.op === IOMMU_OPTION_OP_GET) {
    cmd.val64 = ioas.iopt.disableLargePages ? 0n : 1n;
    return;
  }
  if (cmd.op !== IOMMU_OPTION_OP_SET) return fail('EOPNOTSUPP');
  if (cmd.val64 === 0n) return ioas.iopt.setLargePages(false);
  if (cmd.val64 === 1n) return ioas.iopt.setLargePages(true);
  return fail('EINVAL');
}

/**
 * IOMMU_IOAS_CHANGE_PROCESS (7.17): moves the charge of every MAP_FILE area of every IOAS to
 * the caller. Any area created from user memory makes it EINVAL; a failed charge changes nothing.
 */
export function iommufdIoasChangeProcess(ucmd: Ucmd<IommuIoasChangeProcess>): number {
  const { ctx, task, cmd } = ucmd;
  if (cmd.__reserved) return fail('EOPNOTSUPP');
  const all = new Set<IoptPages>();
  for (const obj of ctx.entries()) {
    if (obj.type !== 'IOAS') continue;
    for (const entry of (obj as Ioas).iopt.areas) {
      const pages = entry.value.pages;
      if (!pages) return fail('EBUSY');
      if (pages.kind !== 'file') return fail('EINVAL');
      all.add(pages);
    }
  }
  // Each pages object counts once, however many areas share it.
  const moving = [...all].filter((p) => p.needChargeUpdate(task));
  const byMode = [0, 0, 0];
  for (const pages of moving) byMode[pages.accountMode]! += pages.npinned;
  chargeCurrent(task, byMode);
  for (const pages of moving) pages.updatePinned(pages.npinned, false);
  for (const pages of all) pages.changeSource(task);
  return 0;
}

/** charge_current(): charges `task` per account mode; undoes earlier modes on failure. */
function chargeCurrent(task: Task, byMode: number[]): void {
  for (let mode = 0; mode < byMode.length; mode++) {
    if (!byMode[mode]) continue;
    try {
      chargePages(mode as 0 | 1 | 2, task, task.mm, task.user, byMode[mode]!, true);
    } catch (err) {
      for (let undo = 0; undo < mode; undo++) {
        if (byMode[undo]) chargePages(undo as 0 | 1 | 2, task, task.mm, task.user, byMode[undo]!, false);
      }
      throw err;
    }
  }
}
