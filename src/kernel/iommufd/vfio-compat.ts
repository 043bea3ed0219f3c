/**
 * VFIO container compatibility (drivers/iommu/iommufd/vfio_compat.c): the type1 ioctls answered
 * by an iommufd context on its "compat IOAS", IOMMU_VFIO_IOAS, and the iommufd side of a VFIO
 * group's SET_CONTAINER (semantics.md 7.10, 7.14).
 *
 * Where the compat layer differs from real type1 (custom-compat.txt): no MIGRATION capability
 * and DMA_AVAIL = U32_MAX in GET_INFO, argsz always rewritten to the full size; MAP_DMA without
 * a domain pins nothing; partial UNMAP_DMA is ENOENT (cut first in TYPE1 mode); an empty UNMAP
 * succeeds with size 0 (newest kernels; ENOENT before the late-2025 fix); SET_IOMMU may be
 * repeated; DIRTY_PAGES is ENOTTY; CHECK_EXTENSION(DMA_CC_IOMMU) is ENODEV with no compat IOAS.
 */
import { fail } from '../../uapi/errno.js';
import {
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  type IommuVfioIoas,
} from '../../uapi/iommufd.js';
import {
  VFIO_API_VERSION,
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_GET_API_VERSION,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
} from '../../uapi/vfio.js';
import { attachIoas, vfioIommufdPhysicalBind } from '../vfio/device-cdev.js';
import type { VfioGroup, VfioGroupIommufd } from '../vfio/group.js';
import type { VfioDevice } from '../vfio/vfio-main.js';
import type { Task } from '../vfs/task.js';
import { unmappedOrThrow } from './io-pagetable.js';
import { allocIoas, getIoas, type Ioas, mapUserPages } from './ioas.js';
import type { IommufdCtx, Ucmd } from './object.js';

const U32_MAX = 0xffffffff;
const INFO_MINSZ = vfio_iommu_type1_info.offsetofend('iova_pgsizes');
const MAP_MINSZ = vfio_iommu_type1_dma_map.offsetofend('size');
const UNMAP_MINSZ = vfio_iommu_type1_dma_unmap.offsetofend('size');

/** get_compat_ioas(): ENODEV when the context has none. */
export function getCompatIoas(ctx: IommufdCtx): Ioas {
  return ctx.vfioIoas ?? fail('ENODEV');
}

/**
 * iommufd_vfio_compat_ioas_create(): a group joining the context makes sure a compat IOAS
 * exists; one set earlier (even by IOMMU_VFIO_IOAS SET) is kept.
 */
export function compatIoasCreate(ctx: IommufdCtx): void {
  if (ctx.vfioIoas) return;
  const ioas = allocIoas(ctx);
  ctx.vfioIoas = ioas;
  ctx.finalize(ioas);
}

/** IOMMU_VFIO_IOAS (7.10). */
export function iommufdVfioIoas(ucmd: Ucmd<IommuVfioIoas>): number {
  const { ctx, cmd } = ucmd;
  if (cmd.__reserved) return fail('EOPNOTSUPP');
  switch (cmd.op) {
    case IOMMU_VFIO_IOAS_GET:
      cmd.ioas_id = getCompatIoas(ctx).id;
      ucmd.respond();
      return 0;
    case IOMMU_VFIO_IOAS_SET:
      ctx.vfioIoas = getIoas(ctx, cmd.ioas_id);
      return 0;
    case IOMMU_VFIO_IOAS_CLEAR:
      ctx.vfioIoas = null;
      return 0;
    default:
      return fail('EOPNOTSUPP');
  }
}

/** iommufd_vfio_ioctl(): the VFIO numbers below the iommufd command range. */
export function iommufdVfioIoctl(ctx: IommufdCtx, task: Task, request: number, arg: bigint): number {
  switch (request >>> 0) {
    case VFIO_GET_API_VERSION:
      return VFIO_API_VERSION;
    case VFIO_SET_IOMMU:
      return iommufdVfioSetIommu(ctx, arg);
    case VFIO_CHECK_EXTENSION:
      return iommufdVfioCheckExtension(ctx, arg);
    case VFIO_IOMMU_GET_INFO:
      return iommufdVfioIommuGetInfo(ctx, task, arg);
    case VFIO_IOMMU_MAP_DMA:
      return iommufdVfioMapDma(ctx, task, arg);
    case VFIO_IOMMU_UNMAP_DMA:
      return iommufdVfioUnmapDma(ctx, task, arg);
    default:
      // VFIO_IOMMU_DIRTY_PAGES included: the compat layer has no dirty tracking.
      return fail('ENOTTY');
  }
}

/** iommufd_vfio_check_extension(); NOIOMMU is 0 (no CONFIG_VFIO_NOIOMMU). */
function iommufdVfioCheckExtension(ctx: IommufdCtx, type: bigint): number {
  switch (type) {
    case BigInt(VFIO_TYPE1_IOMMU):
    case BigInt(VFIO_TYPE1v2_IOMMU):
    case BigInt(VFIO_UNMAP_ALL):
      return 1;
    case BigInt(VFIO_DMA_CC_IOMMU):
      return iommufdVfioCcIommu(ctx);
    default:
      return 0;
  }
}

/** iommufd_vfio_cc_iommu(): 1 unless a HWPT of the compat IOAS is not cache coherent. */
function iommufdVfioCcIommu(ctx: IommufdCtx): number {
  const ioas = getCompatIoas(ctx);
  return ioas.hwptList.every((hwpt) => hwpt.enforceCacheCoherency) ? 1 : 0;
}

/**
 * iommufd_vfio_set_iommu(): TYPE1 or TYPE1v2 only (EINVAL), needs a compat IOAS (ENODEV), may
 * be repeated. TYPE1 disables huge pages so that v1 partial unmaps work.
 */
function iommufdVfioSetIommu(ctx: IommufdCtx, type: bigint): number {
  if (type !== BigInt(VFIO_TYPE1_IOMMU) && type !== BigInt(VFIO_TYPE1v2_IOMMU)) return fail('EINVAL');
  const ioas = getCompatIoas(ctx);
  if (type === BigInt(VFIO_TYPE1_IOMMU)) ioas.iopt.setLargePages(false);
  return 0;
}

/**
 * iommufd_vfio_iommu_get_info(): DMA_AVAIL then IOVA_RANGE, each padded to 8 bytes; caps are
 * written only as far as argsz allows, argsz always becomes the full size, cap_offset is set
 * only if everything fit, and min(argsz, 24) bytes of the header are copied back.
 */
function iommufdVfioIommuGetInfo(ctx: IommufdCtx, task: Task, arg: bigint): number {
  const info = vfio_iommu_type1_info.decode(task.copyFromUser(arg, INFO_MINSZ));
  if (info.argsz < INFO_MINSZ) return fail('EINVAL');
  const copyLen = Math.min(info.argsz, vfio_iommu_type1_info.size);
  const ioas = getCompatIoas(ctx);
  info.flags = VFIO_IOMMU_INFO_PGSIZES;
  info.iova_pgsizes = ioas.iopt.pageSizes();
  info.cap_offset = 0;
  const fills = [fillCapDmaAvail, fillCapIova];
  let total = vfio_iommu_type1_info.size;
  let lastCap: bigint | null = null;
  for (const fill of fills) {
    const avail = info.argsz > total ? info.argsz - total : 0;
    const capSize = align8(fill(ioas, task, arg + BigInt(total), avail));
    // The previous capability's `next` points here when it was written.
    if (lastCap !== null && info.argsz >= total) task.copyToUser(lastCap + 4n, u32(total));
    lastCap = arg + BigInt(total);
    total += capSize;
  }
  if (info.argsz >= total) info.cap_offset = vfio_iommu_type1_info.size;
  info.argsz = total;
  info.flags |= VFIO_IOMMU_INFO_CAPS;
  task.copyToUser(arg, vfio_iommu_type1_info.encode(info).subarray(0, copyLen));
  return 0;
}

/** iommufd_fill_cap_dma_avail(): the mapping limit follows cgroups, reported as U32_MAX. */
function fillCapDmaAvail(_ioas: Ioas, task: Task, at: bigint, avail: number): number {
  const cap = vfio_iommu_type1_info_dma_avail;
  if (avail >= cap.size) {
    task.copyToUser(
      at,
      cap.encode({ header: { id: VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, version: 1, next: 0 }, avail: U32_MAX }),
    );
  }
  return cap.size;
}

/** iommufd_fill_cap_iova(): the holes of the reserved ranges, each written if it fits. */
function fillCapIova(ioas: Ioas, task: Task, at: bigint, avail: number): number {
  const header = vfio_iommu_type1_info_cap_iova_range;
  const rangeSize = vfio_iova_range.size;
  let nr = 0;
  for (const range of ioas.iopt.iovaRanges()) {
    if (avail >= header.size + rangeSize * (nr + 1)) {
      task.copyToUser(
        at + BigInt(header.size + rangeSize * nr),
        vfio_iova_range.encode({ start: range.start, end: range.last }),
      );
    }
    nr++;
  }
  const size = header.size + rangeSize * nr;
  if (avail >= size) {
    task.copyToUser(
      at,
      header.encode({ header: { id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, version: 1, next: 0 }, nr_iovas: nr }),
    );
  }
  return size;
}

/**
 * iommufd_vfio_map_dma(): READ/WRITE only (VADDR is EINVAL); flags 0 is not refused here - the
 * VT-d driver refuses the mapping once a domain is attached. Then IOAS fixed-IOVA map rules.
 */
function iommufdVfioMapDma(ctx: IommufdCtx, task: Task, arg: bigint): number {
  const map = vfio_iommu_type1_dma_map.decode(task.copyFromUser(arg, MAP_MINSZ));
  if (map.argsz < MAP_MINSZ || map.flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) return fail('EINVAL');
  const prot = { read: (map.flags & VFIO_DMA_MAP_FLAG_READ) !== 0, write: (map.flags & VFIO_DMA_MAP_FLAG_WRITE) !== 0 };
  const ioas = getCompatIoas(ctx);
  mapUserPages(ctx, task, ioas, map.iova, map.vaddr, map.size, prot, false);
  return 0;
}

/**
 * iommufd_vfio_unmap_dma(): ALL (with iova = size = 0) or a range with the IOAS rules; in TYPE1
 * mode (huge pages off) the areas are cut at the range ends first. size := bytes unmapped is
 * copied back even when the unmap itself failed.
 */
function iommufdVfioUnmapDma(ctx: IommufdCtx, task: Task, arg: bigint): number {
  const unmap = vfio_iommu_type1_dma_unmap.decode(task.copyFromUser(arg, UNMAP_MINSZ));
  if (unmap.argsz < UNMAP_MINSZ || unmap.flags & ~VFIO_DMA_UNMAP_FLAG_ALL) return fail('EINVAL');
  const ioas = getCompatIoas(ctx);
  let result;
  if (unmap.flags & VFIO_DMA_UNMAP_FLAG_ALL) {
    if (unmap.iova !== 0n || unmap.size !== 0n) return fail('EINVAL');
    result = ioas.iopt.unmapAll();
  } else {
    if (ioas.iopt.disableLargePages) {
      const cuts = [BigInt.asUintN(64, unmap.iova + unmap.size - 1n)];
      if (unmap.iova !== 0n) cuts.push(unmap.iova - 1n);
      ioas.iopt.cutIova(cuts);
    }
    try {
      result = ioas.iopt.unmapIova(unmap.iova, unmap.size);
    } catch (err) {
      // EINVAL (size 0) / EOVERFLOW: nothing unmapped, still copied back.
      unmap.size = 0n;
      task.copyToUser(arg, vfio_iommu_type1_dma_unmap.encode(unmap));
      throw err;
    }
  }
  unmap.size = result.unmapped;
  task.copyToUser(arg, vfio_iommu_type1_dma_unmap.encode(unmap));
  unmappedOrThrow(result);
  return 0;
}

/**
 * The iommufd side of a VFIO group whose container is this context (VFIO_GROUP_SET_CONTAINER
 * with an iommufd fd): what group.ts calls through VfioGroupIommufd.
 */
export class IommufdVfioHandle implements VfioGroupIommufd {
  constructor(readonly ctx: IommufdCtx) {}

  /** iommufd_vfio_compat_ioas_create() and the group's context reference. */
  attachGroup(_group: VfioGroup): void {
    compatIoasCreate(this.ctx);
    this.ctx.file.get();
  }

  detachGroup(_group: VfioGroup): void {
    this.ctx.file.put();
  }

  /**
   * First open of a device through the group: vfio_iommufd_physical_bind(), then
   * vfio_iommufd_compat_attach_ioas() to the compat IOAS (ENODEV once it was cleared).
   */
  bindGroupDevice(_group: VfioGroup, device: VfioDevice): ReturnType<typeof vfioIommufdPhysicalBind> {
    const binding = vfioIommufdPhysicalBind(this.ctx, device, null);
    try {
      attachIoas(binding, getCompatIoas(this.ctx).id);
    } catch (err) {
      binding.release();
      throw err;
    }
    return binding;
  }
}

function align8(n: number): number {
  return (n + 7) & ~7;
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}
