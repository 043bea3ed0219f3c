/**
 * struct io_pagetable (drivers/iommu/iommufd/io_pagetable.c): the IOVA space of one IOAS.
 *
 * - Areas: one per MAP / MAP_FILE / COPY, in an ordered interval map, never merged; each names a
 *   byte range of an IoptPages and the access it allows. Unmapping must cover areas whole.
 * - Reserved ranges (owner-tagged, may overlap): outside a domain's aperture, a device's
 *   reserved regions (the MSI window). Allowed ranges (ALLOW_IOVAS) bound automatic allocation.
 * - Domains: the IOMMU page tables (HWPT_PAGING) that mirror every area. Loading an area into
 *   the first domain pins its pages; later domains map the same pinned pages.
 * - iova_alignment: 1 with no domain, else the largest minimum page size of the domains
 *   (PAGE_SIZE at least when huge pages are disabled).
 */
import { fail, type ErrnoCode } from '../../uapi/errno.js';
import { PAGE_SIZE } from '../../hw/memory.js';
import type { IommuDomain } from '../../hw/iommu/domain.js';
import { IntervalMap } from '../../hw/iommu/interval-map.js';
import { holes, intersectsSorted, type Span, usedSpans } from './double-span.js';
import { IoptPages } from './pages.js';

export const ULONG_MAX = 0xffffffffffffffffn;
const PAGE = BigInt(PAGE_SIZE);
/** HPAGE_SIZE with CONFIG_TRANSPARENT_HUGEPAGE: the cap on automatic IOVA alignment. */
const HPAGE = 2n * 1024n * 1024n;

/** An IOMMU domain as the io_pagetable sees it (struct iommu_domain). */
export interface PagingDomain {
  readonly hw: IommuDomain;
  readonly pgsizeBitmap: bigint;
  readonly apertureStart: bigint;
  readonly apertureLast: bigint;
}

export interface IoProt {
  readonly read: boolean;
  readonly write: boolean;
}

/** struct iopt_area: [iova, last] maps bytes [startByte, startByte + length) of `pages`. */
export class IoptArea {
  /** Set once the area is complete (the kernel inserts with NULL pages first). */
  pages: IoptPages | null = null;
  /** Whether the area's pages are pinned for the domains (area->storage_domain != NULL). */
  filled = false;

  constructor(
    readonly iova: bigint,
    readonly last: bigint,
    readonly pagesRef: IoptPages,
    readonly startByte: bigint,
    readonly prot: IoProt,
  ) {}

  get length(): bigint {
    return this.last - this.iova + 1n;
  }

  /** start_byte % PAGE_SIZE. */
  get pageOffset(): bigint {
    return this.startByte % PAGE;
  }

  /** Page indexes in the pages object covered by the area. */
  get firstIndex(): number {
    return Number(this.startByte / PAGE);
  }

  get lastIndex(): number {
    return Number((this.startByte + this.length - 1n) / PAGE);
  }

  /** iopt_area_start_byte(): the pages byte offset of `iova` inside the area. */
  startByteOf(iova: bigint): bigint {
    return this.startByte + (iova - this.iova);
  }
}

/** One element of a pages list: `length` bytes of `pages` from `startByte` (iopt_pages_list). */
export interface PagesSlice {
  readonly pages: IoptPages;
  readonly startByte: bigint;
  readonly length: bigint;
}

interface Reserved extends Span {
  readonly owner: object;
}

/** Result of removing areas: the bytes removed, and why it stopped early (null = done). */
export interface UnmapResult {
  readonly unmapped: bigint;
  readonly error: ErrnoCode | null;
}

export class IoPagetable {
  readonly areas = new IntervalMap<IoptArea>();
  /** Reserved ranges, owner-tagged; `reservedSpans` is their merged, sorted union. */
  private reserved: Reserved[] = [];
  private reservedSpans: Span[] = [];
  /** Allowed ranges, sorted and disjoint (ALLOW_IOVAS). */
  private allowed: Span[] = [];
  readonly domains: PagingDomain[] = [];
  iovaAlignment = 1n;
  disableLargePages = false;

  // ---- IOVA placement ----

  /**
   * iopt_alloc_iova(): first fit from the lowest address, aligned to min(roundup_pow_of_two(
   * length), lowest set bit of `addr`) capped at HPAGE_SIZE, keeping `addr`'s offset in its page;
   * inside the allowed ranges if any, never at IOVA 0 or in the first/last page, avoiding
   * reserved ranges and areas (semantics.md 7.6 rule 8).
   */
  allocIova(addr: bigint, length: bigint): bigint {
    const pageOffset = addr % PAGE;
    if (length === 0n || length >= ULONG_MAX / 2n) return fail('EOVERFLOW');
    let align = roundupPowOfTwo(length);
    if (addr !== 0n) {
      const low = addr & -addr;
      if (low < align) align = low;
    }
    if (align >= HPAGE) align = HPAGE;
    if (align < this.iovaAlignment) return fail('EINVAL');

    const first = PAGE;
    const last = ULONG_MAX - PAGE;
    const bounds = this.allowed.length ? usedSpans(first, last, this.allowed) : [{ start: first, last }];
    for (const span of bounds) {
      const start = fitStart(span.start, span.last, length, align, pageOffset);
      if (start === null) continue;
      for (const hole of holes(start, span.last, this.reservedSpans, this.areas.entries(start))) {
        const at = fitStart(hole.start, hole.last, length, align, pageOffset);
        if (at !== null) return at;
      }
    }
    return fail('ENOSPC');
  }

  /** iopt_check_iova(): a FIXED_IOVA placement. */
  checkIova(iova: bigint, length: bigint): void {
    if (iova & (this.iovaAlignment - 1n)) return fail('EINVAL');
    const last = iova + length - 1n;
    if (last > ULONG_MAX) return fail('EOVERFLOW');
    if (intersectsSorted(this.reservedSpans, iova, last)) return fail('EINVAL');
    if (this.areas.firstOverlapping(iova, last)) return fail('EEXIST');
  }

  // ---- Mapping ----

  /**
   * iopt_map_pages(): creates one area per slice, placed contiguously at `iova` (or at an
   * allocated IOVA), and loads them into every domain. On failure nothing is left behind and the
   * slices' pages references are still the caller's. On success the areas own them.
   */
  mapPages(slices: readonly PagesSlice[], length: bigint, iova: bigint, prot: IoProt, allocate: boolean): bigint {
    if (length & (this.iovaAlignment - 1n) || length === 0n) return fail('EINVAL');
    let at: bigint;
    if (allocate) {
      const head = slices[0]!;
      at = this.allocIova(head.pages.addressOf(head.startByte), length);
    } else {
      this.checkIova(iova, length);
      at = iova;
    }
    const created: IoptArea[] = [];
    try {
      let next = at;
      for (const slice of slices) {
        created.push(this.insertArea(slice, next, prot));
        next += slice.length;
      }
      this.fillDomainsAll(created);
    } catch (err) {
      for (const area of created) this.areas.remove(area.iova);
      throw err;
    }
    for (const area of created) area.pages = area.pagesRef;
    return at;
  }

  /** iopt_get_pages(): the pages under [iova, iova + length) for IOAS_COPY; ENOENT on a gap. */
  getPages(iova: bigint, length: bigint): PagesSlice[] {
    if (length === 0n) return fail('EINVAL');
    const last = iova + length - 1n;
    if (last > ULONG_MAX) return fail('EOVERFLOW');
    const out: PagesSlice[] = [];
    let cursor = iova;
    let entry = this.areas.find(iova);
    // iopt_for_each_contig_area(): the first area contains iova, each next one starts right
    // after the previous one ends.
    while (entry && entry.start <= cursor && entry.value.pages) {
      const area = entry.value;
      const end = area.last < last ? area.last : last;
      out.push({ pages: area.pagesRef, startByte: area.startByteOf(cursor), length: end - cursor + 1n });
      if (end >= last) {
        for (const slice of out) slice.pages.get();
        return out;
      }
      cursor = end + 1n;
      entry = this.areas.next(entry);
      if (entry && entry.start !== cursor) break;
    }
    return fail('ENOENT');
  }

  /** iopt_unmap_iova(): EINVAL for length 0, EOVERFLOW when the range wraps. */
  unmapIova(iova: bigint, length: bigint): UnmapResult {
    if (length === 0n) return fail('EINVAL');
    const last = iova + length - 1n;
    if (last > ULONG_MAX) return fail('EOVERFLOW');
    return this.unmapRange(iova, last);
  }

  unmapAll(): UnmapResult {
    return this.unmapRange(0n, ULONG_MAX);
  }

  /**
   * iopt_unmap_iova_range(): removes the areas inside [start, last] in ascending order. An area
   * sticking out of the range stops the walk with ENOENT, after the earlier ones are gone (not
   * atomic, semantics.md 7.8). Nothing mapped is success with 0 bytes.
   */
  unmapRange(start: bigint, last: bigint): UnmapResult {
    let unmapped = 0n;
    let from = start;
    for (;;) {
      const entry = this.areas.firstOverlapping(from, last);
      if (!entry) break;
      const area = entry.value;
      if (area.iova < start || area.last > last) return { unmapped, error: 'ENOENT' };
      this.removeArea(area);
      unmapped += area.length;
      if (area.last >= last) break;
      from = area.last + 1n;
    }
    return { unmapped, error: null };
  }

  /**
   * iopt_cut_iova() for VFIO type1 (v1) compat: splits the areas containing each IOVA so that it
   * becomes the last byte of the left part. EINVAL where the cut is misaligned or the area may
   * have been mapped with huge pages.
   */
  cutIova(iovas: readonly bigint[]): void {
    for (const iova of iovas) {
      const entry = this.areas.find(iova);
      if (entry) this.splitArea(entry.value, iova);
    }
  }

  // ---- Allowed and reserved ranges ----

  /** iopt_set_allow_iova(): replaces the allowed list; EADDRINUSE if any is reserved. */
  setAllowedIovas(ranges: Span[]): void {
    for (const range of ranges) if (intersectsSorted(this.reservedSpans, range.start, range.last)) fail('EADDRINUSE');
    this.allowed = [...ranges].sort((a, b) => (a.start < b.start ? -1 : 1));
  }

  /** iopt_reserve_iova(): EADDRINUSE if an area or an allowed range intersects. */
  reserveIova(start: bigint, last: bigint, owner: object): void {
    if (this.areas.firstOverlapping(start, last) || intersectsSorted(this.allowed, start, last)) fail('EADDRINUSE');
    this.reserved.push({ start, last, owner });
    this.rebuildReserved();
  }

  removeReservedIova(owner: object): void {
    const kept = this.reserved.filter((r) => r.owner !== owner);
    if (kept.length === this.reserved.length) return;
    this.reserved = kept;
    this.rebuildReserved();
  }

  /** IOMMU_IOAS_IOVA_RANGES: the holes of the reserved set over [0, ULONG_MAX]. */
  iovaRanges(): Span[] {
    return [...holes(0n, ULONG_MAX, this.reservedSpans)];
  }

  /**
   * iopt_table_enforce_dev_resv_regions(): reserves a device's regions for `owner`; on a
   * conflict (EADDRINUSE) none of them stays.
   */
  enforceDevResvRegions(regions: readonly Span[], owner: object): void {
    try {
      for (const region of regions) this.reserveIova(region.start, region.last, owner);
    } catch (err) {
      this.removeReservedIova(owner);
      throw err;
    }
  }

  // ---- Domains ----

  /**
   * iopt_table_add_domain(): the aperture's outside becomes reserved, the alignment rises to
   * the domain's smallest page, and every area is mapped into the domain (pinning now if it is
   * the first). Any failure leaves the io_pagetable unchanged.
   */
  addDomain(domain: PagingDomain): void {
    const minPage = domain.pgsizeBitmap & -domain.pgsizeBitmap;
    const align = minPage > this.iovaAlignment ? minPage : this.iovaAlignment;
    if (align > PAGE) return fail('EINVAL');
    if (align !== this.iovaAlignment) this.checkIovaAlignment(align);
    try {
      if (domain.apertureStart !== 0n) this.reserveIova(0n, domain.apertureStart - 1n, domain);
      if (domain.apertureLast !== ULONG_MAX) this.reserveIova(domain.apertureLast + 1n, ULONG_MAX, domain);
      this.fillDomain(domain);
    } catch (err) {
      this.removeReservedIova(domain);
      throw err;
    }
    this.iovaAlignment = align;
    this.domains.push(domain);
  }

  /** iopt_table_remove_domain(): unmaps every area from the domain (unpinning after the last). */
  removeDomain(domain: PagingDomain): void {
    const i = this.domains.indexOf(domain);
    if (i < 0) return;
    this.domains.splice(i, 1);
    for (const entry of this.areas) {
      const area = entry.value;
      if (!area.pages) continue;
      domain.hw.unmap(area.iova, area.length);
      if (this.domains.length === 0 && area.filled) {
        area.filled = false;
        area.pagesRef.unpin(area.firstIndex, area.lastIndex);
      }
    }
    this.removeReservedIova(domain);
    this.calculateIovaAlignment();
  }

  /** iopt_disable_large_pages(): EINVAL once domains hold mappings; EADDRINUSE if misaligned. */
  setLargePages(enable: boolean): void {
    if (enable) {
      this.disableLargePages = false;
      this.calculateIovaAlignment();
      return;
    }
    if (this.disableLargePages) return;
    if (this.domains.length && this.areas.size) return fail('EINVAL');
    this.disableLargePages = true;
    try {
      this.calculateIovaAlignment();
    } catch (err) {
      this.disableLargePages = false;
      throw err;
    }
  }

  /** Every domain's minimum page size, folded, intersected (for VFIO compat GET_INFO). */
  pageSizes(): bigint {
    let bitmap = ULONG_MAX;
    for (const d of this.domains) bitmap &= d.pgsizeBitmap;
    if (bitmap & (PAGE - 1n)) bitmap = (bitmap & ~(PAGE - 1n)) | PAGE;
    return bitmap > this.iovaAlignment ? bitmap : this.iovaAlignment;
  }

  // ---- Dirty tracking ----

  /** iopt_set_dirty_tracking(): enabling first clears stale dirty bits of every area. */
  setDirtyTracking(domain: PagingDomain, enable: boolean): void {
    if (enable) {
      for (const entry of this.areas) {
        if (entry.value.pages) domain.hw.forEachDirty(entry.start, entry.value.length, true, noop);
      }
    }
    domain.hw.setDirtyTracking(enable);
  }

  /**
   * __iommu_read_and_clear_dirty() over one bitmap window: reports the dirty 4 KiB pages of
   * [iova, last] (contiguously covered by areas, else EINVAL after reporting the covered head)
   * as page indexes counted from `iova`.
   */
  readDirty(domain: PagingDomain, iova: bigint, last: bigint, clear: boolean, visit: (page4k: number) => void): void {
    let cursor = iova;
    let entry = this.areas.find(iova);
    while (entry && entry.start <= cursor && entry.value.pages) {
      const end = entry.last < last ? entry.last : last;
      const base = Number((cursor - iova) / PAGE);
      domain.hw.forEachDirty(cursor, end - cursor + 1n, clear, (page) => visit(base + page));
      if (end >= last) return;
      cursor = end + 1n;
      entry = this.areas.next(entry);
      if (entry && entry.start !== cursor) break;
    }
    fail('EINVAL');
  }

  // ---- internals ----

  /** iopt_insert_area(). */
  private insertArea(slice: PagesSlice, iova: bigint, prot: IoProt): IoptArea {
    if (prot.write && !slice.pages.writable) return fail('EPERM');
    const area = new IoptArea(iova, iova + slice.length - 1n, slice.pages, slice.startByte, prot);
    if (area.pageOffset & (this.iovaAlignment - 1n)) return fail('EINVAL');
    if (area.last > ULONG_MAX) return fail('EOVERFLOW');
    this.areas.insert(area.iova, area.last, area);
    return area;
  }

  /** iopt_fill_domains_pages(): loads new areas into every domain; undone on failure. */
  private fillDomainsAll(areas: readonly IoptArea[]): void {
    if (this.domains.length === 0) return;
    const done: IoptArea[] = [];
    try {
      for (const area of areas) {
        this.fillArea(area, this.domains);
        done.push(area);
      }
    } catch (err) {
      for (const area of done) this.unfillArea(area);
      throw err;
    }
  }

  /** iopt_fill_domain(): maps every area into a new domain; undone on failure. */
  private fillDomain(domain: PagingDomain): void {
    const done: IoptArea[] = [];
    try {
      for (const entry of this.areas) {
        const area = entry.value;
        if (!area.pages) continue;
        this.fillArea(area, [domain]);
        done.push(area);
      }
    } catch (err) {
      for (const area of done) {
        domain.hw.unmap(area.iova, area.length);
        if (this.domains.length === 0 && area.filled) {
          area.filled = false;
          area.pagesRef.unpin(area.firstIndex, area.lastIndex);
        }
      }
      throw err;
    }
  }

  /** Pins the area's pages if needed and maps them into `domains`; all or nothing. */
  private fillArea(area: IoptArea, domains: readonly PagingDomain[]): void {
    const pinnedNow = !area.filled;
    if (pinnedNow) area.pagesRef.pin(area.firstIndex, area.lastIndex);
    // intel-iommu refuses a mapping with neither read nor write (__domain_mapping: EINVAL),
    // which VFIO compat MAP_DMA with flags 0 reaches (custom-compat.txt).
    if (!area.prot.read && !area.prot.write) {
      if (pinnedNow) area.pagesRef.unpin(area.firstIndex, area.lastIndex);
      return fail('EINVAL');
    }
    area.filled = true;
    const first = area.firstIndex;
    for (const domain of domains) {
      area.pagesRef.forEachRun(first, area.lastIndex, (object, offset, pageFirst, pages) => {
        const iova = area.iova + BigInt(pageFirst - first) * PAGE;
        domain.hw.map(iova, BigInt(pages) * PAGE, { object, offset }, area.prot);
      });
    }
  }

  /** Unmaps an area from every domain and drops its pins. */
  private unfillArea(area: IoptArea): void {
    for (const domain of this.domains) domain.hw.unmap(area.iova, area.length);
    if (area.filled) {
      area.filled = false;
      area.pagesRef.unpin(area.firstIndex, area.lastIndex);
    }
  }

  private removeArea(area: IoptArea): void {
    this.unfillArea(area);
    this.areas.remove(area.iova);
    area.pages = null;
    area.pagesRef.put();
  }

  /** iopt_area_split(). */
  private splitArea(area: IoptArea, iova: bigint): void {
    if (iova === area.iova || iova === area.last) return;
    if (!area.pages) return fail('EBUSY');
    const align = this.iovaAlignment;
    const newStart = iova + 1n;
    if (newStart & (align - 1n) || area.startByteOf(newStart) & (align - 1n)) return fail('EINVAL');
    // A domain may have used huge IOPTEs for the area, which cannot be cut.
    if (area.filled && !this.disableLargePages) return fail('EINVAL');
    const pages = area.pagesRef;
    const lhs = new IoptArea(area.iova, iova, pages, area.startByte, area.prot);
    const rhs = new IoptArea(newStart, area.last, pages.get(), area.startByteOf(newStart), area.prot);
    this.areas.remove(area.iova);
    this.areas.insert(lhs.iova, lhs.last, lhs);
    this.areas.insert(rhs.iova, rhs.last, rhs);
    lhs.pages = rhs.pages = pages;
    if (area.filled) {
      // The pins move to the two halves; nothing is pinned or unpinned.
      pages.pin(lhs.firstIndex, lhs.lastIndex);
      pages.pin(rhs.firstIndex, rhs.lastIndex);
      pages.unpin(area.firstIndex, area.lastIndex);
      lhs.filled = rhs.filled = true;
    }
  }

  /** iopt_check_iova_alignment(): EADDRINUSE if an area would violate the new alignment. */
  private checkIovaAlignment(align: bigint): void {
    const mask = align - 1n;
    for (const entry of this.areas) {
      const area = entry.value;
      if (area.iova & mask || area.length & mask || area.pageOffset & mask) fail('EADDRINUSE');
    }
  }

  /** iopt_calculate_iova_alignment(). */
  private calculateIovaAlignment(): void {
    let align = this.disableLargePages ? PAGE : 1n;
    for (const d of this.domains) {
      const min = d.pgsizeBitmap & -d.pgsizeBitmap;
      if (min > align) align = min;
    }
    if (align > this.iovaAlignment) this.checkIovaAlignment(align);
    this.iovaAlignment = align;
  }

  private rebuildReserved(): void {
    const sorted = [...this.reserved].sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    this.reservedSpans = usedSpans(0n, ULONG_MAX, sorted);
  }
}

/** __alloc_iova_check_range(): the aligned start inside [start, last] that fits, or null. */
function fitStart(start: bigint, last: bigint, length: bigint, align: bigint, pageOffset: bigint): bigint | null {
  const up = start + align - 1n;
  if (up > ULONG_MAX) return null;
  const aligned = (up & ~(align - 1n)) | pageOffset;
  if (aligned >= last || last - aligned < length - 1n) return null;
  return aligned;
}

function roundupPowOfTwo(n: bigint): bigint {
  let p = 1n;
  while (p < n) p <<= 1n;
  return p;
}

function noop(): void {}

/** The error of an UnmapResult as a throw, else the bytes unmapped. */
export function unmappedOrThrow(result: UnmapResult): bigint {
  if (result.error) fail(result.error);
  return result.unmapped;
}
