/**
 * The type1 IOMMU backend behind a legacy VFIO container (drivers/vfio/vfio_iommu_type1.c):
 * the `struct vfio_iommu` a container gets at VFIO_SET_IOMMU(TYPE1 / TYPE1v2), its groups and
 * IOMMU domains, the usable IOVA list, and the container ioctls it answers (semantics.md §5).
 *
 * DMA mappings (type1-dma.ts) and dirty-page reporting (type1-dirty.ts) live beside this file;
 * this one holds the object, the group attach/detach rules, VFIO_CHECK_EXTENSION and
 * VFIO_IOMMU_GET_INFO.
 *
 * Hardware: every IOMMU-backed group is attached to an IOMMU domain allocated from the
 * machine's IOMMU, and every pinned DMA mapping is programmed into every domain, so a device's
 * DMA reaches exactly what userspace mapped. As in the kernel, a newly attached group joins an
 * existing domain when the domain is compatible (same IOMMU, same cache-coherency enforcement);
 * with the one VT-d IOMMU of our machines all groups of a container share one domain.
 */
import { fail } from '../../uapi/errno.js';
import { CapChainBuilder, type CapChain } from '../../uapi/capability.js';
import { encodeArray } from '../../uapi/layout.js';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_CC_IOMMU,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_INFO_CAPS,
  VFIO_IOMMU_INFO_PGSIZES,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  VFIO_UNMAP_ALL,
  VFIO_UPDATE_VADDR,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
} from '../../uapi/vfio.js';
import type { IommuDomain } from '../../hw/iommu/domain.js';
import { IntervalMap } from '../../hw/iommu/interval-map.js';
import type { VtdIommu } from '../../hw/iommu/vtd.js';
import { PAGE_SIZE } from '../../hw/memory.js';
import type { IommuGroup } from '../iommu/group.js';
import type { Task } from '../vfs/task.js';
import { copyArgszIn, copyArgszOut, ioctlTable } from './argsz.js';
import type { VfioIommuBackend, VfioIommuDriver } from './container.js';
import { dirtyPages, DIRTY_BITMAP_SIZE_MAX } from './type1-dirty.js';
import { mapDma, removeDma, replayMappings, unmapDma, type VfioDma } from './type1-dma.js';

/** Module parameters of vfio_iommu_type1 (live: read when a backend opens, or at each attach). */
export interface Type1Params {
  /** dma_entry_limit: mappings per container (default U16_MAX). */
  dmaEntryLimit: number;
  /** allow_unsafe_interrupts: attach groups even without interrupt remapping (default false). */
  allowUnsafeInterrupts: boolean;
}

export const DEFAULT_TYPE1_PARAMS: Readonly<Type1Params> = Object.freeze({
  dmaEntryLimit: 0xffff,
  allowUnsafeInterrupts: false,
});

/** PAGE_MASK as an unsigned 64-bit value: every page size >= PAGE_SIZE. */
const PAGE_MASK = 0xffff_ffff_ffff_f000n;
const U64_MAX = 0xffff_ffff_ffff_ffffn;
/** VT-d ECAP_REG.IR (interrupt remapping) and ECAP_REG.SC (snoop control). */
const ECAP_IR = 1n << 3n;
const ECAP_SC = 1n << 7n;

/** One entry of the usable IOVA list (struct vfio_iova); `last` is inclusive. */
export interface IovaRange {
  start: bigint;
  last: bigint;
}

/** struct vfio_domain: one IOMMU domain and the groups attached to it. */
export interface VfioDomain {
  readonly domain: IommuDomain;
  readonly hw: VtdIommu;
  readonly groups: IommuGroup[];
  readonly enforceCacheCoherency: boolean;
}

/** What tests and tools can see of a type1 instance. */
export interface Type1Snapshot {
  readonly v2: boolean;
  readonly dmaAvail: number;
  readonly pgsizeBitmap: bigint;
  readonly dirtyPageTracking: boolean;
  readonly iovaList: readonly IovaRange[];
  readonly mappings: readonly { iova: bigint; size: bigint; vaddr: bigint; prot: number; vaddrInvalid: boolean }[];
  readonly domainIds: readonly number[];
}

/** struct vfio_iommu: one type1 instance, owned by one container. */
export class VfioIommu implements VfioIommuBackend {
  /** dma_list: every user mapping by IOVA, one entry per MAP_DMA. */
  readonly dmaList = new IntervalMap<VfioDma>();
  readonly domains: VfioDomain[] = [];
  /** Usable IOVA ranges, ascending: the domains' aperture minus reserved regions. */
  iovaList: IovaRange[] = [];
  dmaAvail: number;
  vaddrInvalidCount = 0;
  pgsizeBitmap = PAGE_MASK;
  /** Smallest IOMMU page size (1 << __ffs(pgsize_bitmap)) and its mask, kept with the bitmap. */
  pgsize = BigInt(PAGE_SIZE);
  pgmask = BigInt(PAGE_SIZE - 1);
  dirtyPageTracking = false;
  /**
   * Groups that can dirty memory without telling us (every IOMMU-backed group: no device here
   * pins pages through vfio_pin_pages). While non-zero, dirty reports mark every mapped page.
   */
  nonPinnedGroups = 0;
  private released = false;

  constructor(
    readonly v2: boolean,
    readonly params: Readonly<Type1Params>,
  ) {
    this.dmaAvail = params.dmaEntryLimit;
  }

  get domainCount(): number {
    return this.domains.length;
  }

  checkExtension(arg: bigint): number {
    return type1CheckExtension(this, arg);
  }

  ioctl(task: Task, request: number, arg: bigint): number {
    if (request === VFIO_CHECK_EXTENSION) return this.checkExtension(arg);
    const handler = TYPE1_IOCTLS.get(request);
    if (!handler) return fail('ENOTTY');
    return handler(this, task, arg);
  }

  /** vfio_iommu_type1_attach_group(). */
  attachGroup(group: IommuGroup): void {
    // Attaching may need pinning (replay), which cannot happen while a vaddr is invalid.
    if (this.vaddrInvalidCount) return fail('EBUSY');
    if (this.findDomainOf(group)) return fail('EINVAL');
    const hw = group.iommu;
    const domain = hw.allocDomain();
    group.attachDomain(domain);
    try {
      const iovaCopy = this.iovaListForAttach(hw);
      // iommu_group_has_isolated_msi(): without interrupt remapping a device could raise any MSI.
      if (!this.params.allowUnsafeInterrupts && !(hw.ecapReg & ECAP_IR)) return fail('EPERM');
      const enforceCacheCoherency = (hw.ecapReg & ECAP_SC) !== 0n;
      const existing = this.domains.find((d) => d.hw === hw && d.enforceCacheCoherency === enforceCacheCoherency);
      if (existing) {
        group.attachDomain(existing.domain);
        hw.freeDomain(domain);
        existing.groups.push(group);
      } else {
        const first = this.domains[0];
        if (first) replayMappings(this, first.domain, domain);
        this.domains.unshift({ domain, hw, groups: [group], enforceCacheCoherency });
        this.updatePgsizeBitmap();
      }
      this.iovaList = iovaCopy;
      this.nonPinnedGroups++;
    } catch (err) {
      if (!this.domains.some((d) => d.domain === domain)) {
        group.attachDomain(null);
        if (!domain.freed) hw.freeDomain(domain);
      }
      throw err;
    }
  }

  /** vfio_iommu_type1_detach_group(). */
  detachGroup(group: IommuGroup): void {
    const vd = this.findDomainOf(group);
    if (!vd) return;
    group.attachDomain(null);
    vd.groups.splice(vd.groups.indexOf(group), 1);
    if (vd.groups.length === 0) {
      // Group ownership is the privilege: the last IOMMU-backed group takes every mapping along.
      if (this.domains.length === 1) this.unmapUnpinAll();
      this.domains.splice(this.domains.indexOf(vd), 1);
      vd.hw.freeDomain(vd.domain);
      this.updatePgsizeBitmap();
    }
    this.iovaList = this.rebuildIovaList();
    this.nonPinnedGroups--;
  }

  /** vfio_iommu_type1_release(): the container lost its last group, or is being torn down. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.unmapUnpinAll();
    for (const vd of this.domains) {
      for (const group of vd.groups) group.attachDomain(null);
      vd.hw.freeDomain(vd.domain);
    }
    this.domains.length = 0;
    this.iovaList = [];
  }

  /** vfio_update_pgsize_bitmap(): the domains' common page sizes, sub-page sizes folded into PAGE_SIZE. */
  updatePgsizeBitmap(): void {
    let bitmap = U64_MAX;
    for (const vd of this.domains) bitmap &= vd.hw.pageSizes;
    if (bitmap & ~PAGE_MASK) bitmap = (bitmap & PAGE_MASK) | BigInt(PAGE_SIZE);
    this.pgsizeBitmap = bitmap;
    let shift = 0n;
    while (shift < 64n && !((bitmap >> shift) & 1n)) shift++;
    this.pgsize = 1n << shift;
    this.pgmask = this.pgsize - 1n;
  }

  /** vfio_iova_dma_valid(): [iova, last] lies inside one usable range (or the list is empty). */
  iovaDmaValid(iova: bigint, last: bigint): boolean {
    const list = this.iovaList;
    for (let i = 0; i < list.length; i++) {
      const range = list[i]!;
      if (iova >= range.start && last <= range.last) return true;
    }
    return list.length === 0;
  }

  /** vfio_iommu_unmap_unpin_all(). */
  unmapUnpinAll(): void {
    for (let dma = this.dmaList.first(); dma; dma = this.dmaList.first()) removeDma(this, dma.value);
  }

  snapshot(): Type1Snapshot {
    return {
      v2: this.v2,
      dmaAvail: this.dmaAvail,
      pgsizeBitmap: this.pgsizeBitmap,
      dirtyPageTracking: this.dirtyPageTracking,
      iovaList: this.iovaList.map((r) => ({ ...r })),
      mappings: [...this.dmaList].map(({ value: d }) => ({
        iova: d.iova,
        size: d.size,
        vaddr: d.vaddr,
        prot: d.prot,
        vaddrInvalid: d.vaddrInvalid,
      })),
      domainIds: this.domains.map((d) => d.domain.id),
    };
  }

  private findDomainOf(group: IommuGroup): VfioDomain | undefined {
    return this.domains.find((d) => d.groups.includes(group));
  }

  /**
   * The IOVA list as it will be once a group of `hw` is attached (vfio_iommu_aper_conflict,
   * vfio_iommu_resv_conflict, vfio_iommu_aper_resize, vfio_iommu_resv_exclude): EINVAL when the
   * new aperture or reserved regions clash with the current list or existing mappings, or when
   * nothing usable would remain.
   */
  private iovaListForAttach(hw: VtdIommu): IovaRange[] {
    const { start, last } = hw.aperture;
    const list = this.iovaList;
    if (list.length) {
      const first = list[0]!;
      const end = list[list.length - 1]!;
      if (start > end.last || last < first.start) return fail('EINVAL');
      if (start > first.start && this.dmaList.firstOverlapping(first.start, start - 1n)) return fail('EINVAL');
      if (last < end.last && this.dmaList.firstOverlapping(last + 1n, end.last)) return fail('EINVAL');
    }
    for (const resv of hw.reservedRegions) {
      if (this.dmaList.firstOverlapping(resv.start, resv.last)) return fail('EINVAL');
    }
    const copy = apertureResize(
      list.map((r) => ({ ...r })),
      start,
      last,
    );
    return excludeReserved(copy, hw.reservedRegions);
  }

  /**
   * After a detach (vfio_iommu_aper_expand + vfio_iommu_resv_refresh): the narrowest aperture of
   * the remaining domains minus their reserved regions. Empty when no domain is left.
   */
  private rebuildIovaList(): IovaRange[] {
    if (this.domains.length === 0 || this.iovaList.length === 0) return [];
    let start = 0n;
    let last = U64_MAX;
    for (const vd of this.domains) {
      if (vd.hw.aperture.start > start) start = vd.hw.aperture.start;
      if (vd.hw.aperture.last < last) last = vd.hw.aperture.last;
    }
    const list = apertureResize([], start, last);
    try {
      return excludeReserved(
        list,
        this.domains.flatMap((vd) => vd.hw.reservedRegions),
      );
    } catch {
      return this.iovaList;
    }
  }
}

/** vfio_iommu_aper_resize(): trims (or creates) the list to [start, last]. */
function apertureResize(list: IovaRange[], start: bigint, last: bigint): IovaRange[] {
  if (list.length === 0) return [{ start, last }];
  const out: IovaRange[] = [];
  for (const range of list) {
    if (range.last < start || range.start > last) continue;
    out.push({ start: range.start > start ? range.start : start, last: range.last < last ? range.last : last });
  }
  return out;
}

/** vfio_iommu_resv_exclude(): punches the reserved regions out of the list; EINVAL if nothing is left. */
function excludeReserved(list: IovaRange[], reserved: readonly { start: bigint; last: bigint }[]): IovaRange[] {
  let current = list;
  for (const resv of reserved) {
    const next: IovaRange[] = [];
    for (const range of current) {
      if (resv.start > range.last || resv.last < range.start) {
        next.push(range);
        continue;
      }
      if (resv.start > range.start) next.push({ start: range.start, last: resv.start - 1n });
      if (resv.last < range.last) next.push({ start: resv.last + 1n, last: range.last });
    }
    current = next;
  }
  if (current.length === 0) return fail('EINVAL');
  return current;
}

/**
 * vfio_iommu_type1_check_extension(); `iommu` is null when the container has no backend yet
 * (the driver is polled with a NULL instance).
 */
export function type1CheckExtension(iommu: VfioIommu | null, arg: bigint): number {
  switch (arg) {
    case BigInt(VFIO_TYPE1_IOMMU):
    case BigInt(VFIO_TYPE1v2_IOMMU):
    case BigInt(VFIO_UNMAP_ALL):
      return 1;
    case BigInt(VFIO_UPDATE_VADDR):
      // Only with an instance, and never with emulated (mdev) groups, which we have none of.
      return iommu ? 1 : 0;
    case BigInt(VFIO_DMA_CC_IOMMU):
      if (!iommu) return 0;
      return iommu.domains.every((d) => d.enforceCacheCoherency) ? 1 : 0;
    default:
      // Includes 6, the former TYPE1_NESTING: 0 since ~6.13 (the 6.12 transcripts answer 1;
      // semantics.md §1 says newest behaviour wins).
      return 0;
  }
}

/**
 * vfio_iommu_type1_open(): TYPE1 selects v1 unmap semantics, TYPE1v2 v2. The kernel's open
 * still accepts the retired nesting value as v2, but CHECK_EXTENSION never claims it, so
 * SET_IOMMU(6) cannot reach here (ENODEV); any other value is EINVAL.
 */
function type1Open(arg: bigint, params: Readonly<Type1Params>): VfioIommu {
  if (arg === BigInt(VFIO_TYPE1_IOMMU)) return new VfioIommu(false, params);
  if (arg === BigInt(VFIO_TYPE1v2_IOMMU) || arg === 6n) return new VfioIommu(true, params);
  return fail('EINVAL');
}

/** The vfio_iommu_driver_ops of type1, with its module parameters. */
export function type1Driver(params: Readonly<Type1Params> = DEFAULT_TYPE1_PARAMS): VfioIommuDriver {
  return Object.freeze({
    name: 'vfio-iommu-type1',
    noiommu: false,
    checkExtension: (arg: bigint) => type1CheckExtension(null, arg),
    open: (arg: bigint) => type1Open(arg, params),
  });
}

const INFO_MINSZ = vfio_iommu_type1_info.offsetofend('iova_pgsizes');
const INFO_SIZE = vfio_iommu_type1_info.size;

/** vfio_iommu_type1_get_info() (semantics.md §5.1). */
function getInfo(iommu: VfioIommu, task: Task, arg: bigint): number {
  const info = copyArgszIn(task, arg, vfio_iommu_type1_info, INFO_MINSZ);
  const argsz = info.argsz;
  info.flags = VFIO_IOMMU_INFO_PGSIZES;
  info.iova_pgsizes = iommu.pgsizeBitmap;
  info.cap_offset = 0;
  const caps = buildInfoCaps(iommu);
  if (caps.size) {
    info.flags |= VFIO_IOMMU_INFO_CAPS;
    if (argsz < caps.totalSize) {
      info.argsz = caps.totalSize;
    } else {
      task.copyToUser(arg + BigInt(INFO_SIZE), caps.bytes);
      info.cap_offset = caps.capOffset;
    }
  }
  copyArgszOut(task, arg, vfio_iommu_type1_info, info, argsz);
  return 0;
}

/** The chain in the kernel's order: MIGRATION, DMA_AVAIL, then IOVA_RANGE when the list is not empty. */
function buildInfoCaps(iommu: VfioIommu): CapChain {
  const chain = new CapChainBuilder(INFO_SIZE);
  chain.add(VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1, vfio_iommu_type1_info_cap_migration, {
    flags: 0,
    pgsize_bitmap: iommu.pgsize,
    max_dirty_bitmap_size: BigInt(DIRTY_BITMAP_SIZE_MAX),
  });
  chain.add(VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, vfio_iommu_type1_info_dma_avail, { avail: iommu.dmaAvail });
  if (iommu.iovaList.length) {
    const ranges = encodeArray(
      vfio_iova_range,
      iommu.iovaList.map((r) => ({ start: r.start, end: r.last })),
    );
    chain.add(
      VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
      1,
      vfio_iommu_type1_info_cap_iova_range,
      { nr_iovas: iommu.iovaList.length },
      ranges,
    );
  }
  return chain.build();
}

const TYPE1_IOCTLS = ioctlTable<VfioIommu>([
  [VFIO_IOMMU_GET_INFO, 'VFIO_IOMMU_GET_INFO', getInfo],
  [VFIO_IOMMU_MAP_DMA, 'VFIO_IOMMU_MAP_DMA', mapDma],
  [VFIO_IOMMU_UNMAP_DMA, 'VFIO_IOMMU_UNMAP_DMA', unmapDma],
  [VFIO_IOMMU_DIRTY_PAGES, 'VFIO_IOMMU_DIRTY_PAGES', dirtyPages],
]);
