/**
 * An IOMMU domain: one set of translation tables (VT-d second-level page tables) that devices are
 * attached to. The kernel side programs it with map/unmap the way the intel-iommu driver writes
 * page-table entries; devices reach memory only through `IommuDomain#access` (called by the
 * IOMMU's translate path).
 *
 * Mappings live in an interval map, one entry per map() call (split when part of it is unmapped),
 * never per page. Granularity is 4 KiB: iova, length and target offset must be 4 KiB aligned.
 * Unmapping any 4 KiB-aligned range is allowed and splits mappings at its edges; we do not model
 * superpage entries, so an unmap never removes more than was asked.
 *
 * Dirty tracking: while enabled, every DMA write sets the dirty bit of each 4 KiB page it touches
 * (the D bit of the leaf entries). Bits persist while tracking is off, like D bits in page tables;
 * software reads and clears them with `forEachDirty` / `readDirtyBitmap`. Unmapping drops them.
 */
import { type MemoryObject, PAGE_SHIFT, PAGE_SIZE } from '../memory.js';
import { safeNumber } from '../../uapi/u64.js';
import { DirtyBitmap } from './dirty-bitmap.js';
import { type IntervalEntry, IntervalMap } from './interval-map.js';

const PAGE_MASK_BIG = BigInt(PAGE_SIZE - 1);
const PAGE_SHIFT_BIG = BigInt(PAGE_SHIFT);

export interface DmaProt {
  readonly read: boolean;
  readonly write: boolean;
}

export interface DmaTarget {
  readonly object: MemoryObject;
  /** Byte offset in the object; 4 KiB aligned. */
  readonly offset: number;
}

export interface DomainMapping {
  readonly iova: bigint;
  readonly length: bigint;
  readonly object: MemoryObject;
  readonly offset: number;
  readonly prot: DmaProt;
}

/** One piece of a translated DMA: `length` bytes at `offset` in `object`. */
export interface DmaSegment {
  readonly object: MemoryObject;
  readonly offset: number;
  readonly length: number;
}

export interface DomainSnapshot {
  readonly id: number;
  readonly mappingCount: number;
  readonly mappedBytes: bigint;
  readonly dirtyTracking: boolean;
  readonly dirtyPages: number;
}

/** Outcome of a domain walk that failed: why, and the first address that could not be used. */
export interface DomainFault {
  readonly reason: 'unmapped' | 'permission';
  readonly iova: bigint;
}

interface MappingState {
  readonly object: MemoryObject;
  readonly offset: number;
  readonly prot: DmaProt;
  readonly pages: number;
  /** The mapping's IOVA as a number when exact (below 2^53), else -1: lets the hot path skip bigint math. */
  readonly iovaNumber: number;
  dirty: DirtyBitmap | null;
}

type Entry = IntervalEntry<MappingState>;

export class IommuDomain {
  private readonly table = new IntervalMap<MappingState>();
  private bytes = 0n;
  private tracking = false;
  private released = false;
  /** The entry the last access used: DMA tends to hit the same mapping again (a one-entry IOTLB). */
  private hot: Entry | undefined;
  /** Set by a failed walk, read by the caller right after; avoids allocating on the success path. */
  private faultReason: DomainFault['reason'] = 'unmapped';
  private faultIova = 0n;

  constructor(
    readonly id: number,
    /** Highest IOVA the tables can hold (2^addressWidth - 1). */
    readonly apertureLast: bigint,
    /** Whether the IOMMU hardware can track dirty pages for this domain. */
    readonly dirtyTrackingSupported: boolean,
  ) {}

  get dirtyTracking(): boolean {
    return this.tracking;
  }

  /** True once the IOMMU freed the domain; every further use throws. */
  get freed(): boolean {
    return this.released;
  }

  get mappingCount(): number {
    return this.table.size;
  }

  get mappedBytes(): bigint {
    return this.bytes;
  }

  setDirtyTracking(enabled: boolean): void {
    this.checkLive();
    if (enabled && !this.dirtyTrackingSupported)
      throw new Error(`IOMMU domain ${this.id}: dirty tracking not supported`);
    this.tracking = enabled;
  }

  /**
   * Maps [iova, iova + length) to `target`. Overlapping an existing mapping, leaving the aperture,
   * misalignment, or a target range past the object's end are programming errors of the caller.
   */
  map(iova: bigint, length: bigint, target: DmaTarget, prot: DmaProt): void {
    this.checkLive();
    checkAligned('map', iova, length);
    const last = iova + length - 1n;
    if (last > this.apertureLast) {
      throw new RangeError(`IOMMU domain ${this.id}: map [0x${hex(iova)}, 0x${hex(last)}] beyond the aperture`);
    }
    if (!prot.read && !prot.write) throw new Error(`IOMMU domain ${this.id}: map with neither read nor write`);
    if (target.offset % PAGE_SIZE !== 0 || target.offset < 0) {
      throw new RangeError(`IOMMU domain ${this.id}: target offset ${target.offset} not page aligned`);
    }
    if (target.offset + Number(length) > target.object.size) {
      throw new RangeError(
        `IOMMU domain ${this.id}: target range past the end of its ${target.object.size}-byte object`,
      );
    }
    const state: MappingState = {
      object: target.object,
      offset: target.offset,
      prot: { read: prot.read, write: prot.write },
      pages: Number(length >> PAGE_SHIFT_BIG),
      iovaNumber: safeNumber(iova),
      dirty: null,
    };
    this.table.insert(iova, last, state);
    this.bytes += length;
  }

  /**
   * Unmaps every page in [iova, iova + length), splitting mappings that stick out of the range.
   * Returns the number of bytes that were mapped there (0 if nothing was).
   */
  unmap(iova: bigint, length: bigint): bigint {
    this.checkLive();
    checkAligned('unmap', iova, length);
    const last = iova + length - 1n;
    const hit: Entry[] = [...this.table.overlapping(iova, last)];
    if (hit.length === 0) return 0n;
    this.hot = undefined;
    let unmapped = 0n;
    for (const entry of hit) {
      this.table.remove(entry.start);
      const cutStart = entry.start > iova ? entry.start : iova;
      const cutLast = entry.last < last ? entry.last : last;
      unmapped += cutLast - cutStart + 1n;
      if (entry.start < cutStart) this.reinsertPart(entry, entry.start, cutStart - 1n);
      if (entry.last > cutLast) this.reinsertPart(entry, cutLast + 1n, entry.last);
    }
    this.bytes -= unmapped;
    return unmapped;
  }

  /** The mapping containing `iova`, if any. */
  lookup(iova: bigint): DomainMapping | undefined {
    const entry = this.table.find(iova);
    return entry && describe(entry);
  }

  /** Mappings overlapping [from, to] (default: all), in IOVA order. */
  *mappings(from = 0n, to = this.apertureLast): IterableIterator<DomainMapping> {
    for (const entry of this.table.overlapping(from, to)) yield describe(entry);
  }

  /**
   * The hardware page walk for a device access of `length` bytes at `iova`: checks that the whole
   * range is mapped with the needed permission and, if so, calls `visit` once per mapping piece in
   * IOVA order and (for writes, while tracking) sets dirty bits. Returns null on success; on a
   * fault nothing is visited and the fault is returned. All-or-nothing: a DMA either moves all its
   * bytes or none. `iovaNumber` is `safeNumber(iova)`, for a caller that has already converted it.
   */
  access(
    iova: bigint,
    length: number,
    write: boolean,
    visit: (object: MemoryObject, offset: number, length: number, done: number) => void,
    iovaNumber = safeNumber(iova),
  ): DomainFault | null {
    this.checkLive();
    if (length <= 0) return null;
    const hit = this.iotlbHit(iovaNumber, length, write);
    if (hit === undefined) return this.walk(iova, length, write, visit);
    const rel = iovaNumber - hit.iovaNumber;
    visit(hit.object, hit.offset + rel, length, 0);
    if (write && this.tracking) markDirty(hit, rel, length);
    return null;
  }

  /**
   * access() for a device copy that hits the IOTLB (see iotlbHit): moves `buffer` to or from
   * memory and returns true; false means nothing happened and access() must decide. The device
   * DMA path, without the visitor.
   */
  copyOnHit(iovaNumber: number, buffer: Uint8Array, write: boolean): boolean {
    const hit = this.iotlbHit(iovaNumber, buffer.length, write);
    if (hit === undefined || buffer.length === 0) return false;
    const rel = iovaNumber - hit.iovaNumber;
    if (!write) {
      hit.object.read(hit.offset + rel, buffer);
      return true;
    }
    hit.object.write(hit.offset + rel, buffer);
    if (this.tracking) markDirty(hit, rel, buffer.length);
    return true;
  }

  /**
   * The mapping the last access used (a one-entry IOTLB) if [iovaNumber, +length) lies inside it
   * with the permission; plain numbers only (iovaNumber is -1 past 2^53, which never hits).
   */
  private iotlbHit(iovaNumber: number, length: number, write: boolean): MappingState | undefined {
    const hot = this.hot;
    if (hot === undefined || iovaNumber < 0) return undefined;
    const state = hot.value;
    const rel = iovaNumber - state.iovaNumber;
    const inside = state.iovaNumber >= 0 && rel >= 0 && rel + length <= state.pages * PAGE_SIZE;
    return inside && (write ? state.prot.write : state.prot.read) ? state : undefined;
  }

  /** access() past the hot entry: a table lookup, then one or more mappings. */
  private walk(
    iova: bigint,
    length: number,
    write: boolean,
    visit: (object: MemoryObject, offset: number, length: number, done: number) => void,
  ): DomainFault | null {
    const hot = this.hot;
    const last = iova + BigInt(length - 1);
    let entry = hot;
    if (!entry || entry.start > iova || entry.last < iova) {
      entry = this.table.find(iova);
      if (!entry) return { reason: 'unmapped', iova };
    }
    const allowed = write ? entry.value.prot.write : entry.value.prot.read;
    if (allowed && entry.last >= last) {
      // One mapping covers the whole access.
      this.hot = entry;
      const rel = Number(iova - entry.start);
      visit(entry.value.object, entry.value.offset + rel, length, 0);
      if (write && this.tracking) markDirty(entry.value, rel, length);
      return null;
    }
    if (!this.walkAllowed(entry, iova, last, write)) return { reason: this.faultReason, iova: this.faultIova };
    let done = 0;
    let at = iova;
    let current: Entry | undefined = entry;
    while (current && done < length) {
      const rel = Number(at - current.start);
      const n = Math.min(length - done, Number(current.last - at) + 1);
      visit(current.value.object, current.value.offset + rel, n, done);
      if (write && this.tracking) markDirty(current.value, rel, n);
      done += n;
      at += BigInt(n);
      current = done < length ? this.table.next(current) : undefined;
    }
    return null;
  }

  /**
   * Reports dirty 4 KiB pages in [iova, iova + length) as page indexes counted from `iova`
   * (page i is iova + i * 4096), in ascending order; with `clear` their bits are cleared.
   * Clean words of the bitmaps are skipped whole.
   */
  forEachDirty(iova: bigint, length: bigint, clear: boolean, visit: (pageIndex: number) => void): void {
    this.checkLive();
    checkAligned('dirty query', iova, length);
    const last = iova + length - 1n;
    for (const entry of this.table.overlapping(iova, last)) {
      const dirty = entry.value.dirty;
      if (!dirty) continue;
      const from = entry.start > iova ? entry.start : iova;
      const to = entry.last < last ? entry.last : last;
      const firstPage = Number((from - entry.start) >> PAGE_SHIFT_BIG);
      const pages = Number((to - from + 1n) >> PAGE_SHIFT_BIG);
      const shift = Number((entry.start - iova) >> PAGE_SHIFT_BIG);
      dirty.forEachSet(firstPage, pages, clear, (page) => visit(page + shift));
      if (clear && dirty.empty) entry.value.dirty = null;
    }
  }

  /**
   * ORs the dirty state of [iova, iova + length) into `bitmap`, one bit per `pageSize` page from
   * `iova` (bit n is byte n >> 3, bit n & 7: the kernel's little-endian unsigned-long bitmaps).
   * `pageSize` is a power of two >= 4096. With `clear` the reported IOMMU bits are cleared.
   */
  readDirtyBitmap(iova: bigint, length: bigint, pageSize: number, bitmap: Uint8Array, clear: boolean): void {
    if (!(pageSize >= PAGE_SIZE && (pageSize & (pageSize - 1)) === 0)) {
      throw new RangeError(`dirty bitmap page size ${pageSize} is not a power of two >= ${PAGE_SIZE}`);
    }
    const shift = Math.log2(pageSize) - PAGE_SHIFT;
    const bits = Math.ceil(Number(length) / pageSize);
    if (bitmap.length * 8 < bits)
      throw new RangeError(`dirty bitmap of ${bitmap.length} bytes holds fewer than ${bits} bits`);
    this.forEachDirty(iova, length, clear, (page) => {
      const bit = page >>> shift;
      bitmap[bit >>> 3] = bitmap[bit >>> 3]! | (1 << (bit & 7));
    });
  }

  snapshot(): DomainSnapshot {
    let dirtyPages = 0;
    for (const entry of this.table) if (entry.value.dirty) dirtyPages += entry.value.dirty.countSet();
    return {
      id: this.id,
      mappingCount: this.table.size,
      mappedBytes: this.bytes,
      dirtyTracking: this.tracking,
      dirtyPages,
    };
  }

  /** Called by the IOMMU when it frees the domain. */
  release(): void {
    this.released = true;
    this.table.clear();
    this.bytes = 0n;
    this.hot = undefined;
  }

  /** Checks [iova, last] is covered by `entry` and the mappings right after it, all permitted. */
  private walkAllowed(entry: Entry, iova: bigint, last: bigint, write: boolean): boolean {
    let current: Entry | undefined = entry;
    let expected = iova;
    while (current) {
      if (current.start > expected) break;
      if (!(write ? current.value.prot.write : current.value.prot.read)) {
        this.faultReason = 'permission';
        this.faultIova = expected;
        return false;
      }
      if (current.last >= last) return true;
      expected = current.last + 1n;
      current = this.table.next(current);
    }
    this.faultReason = 'unmapped';
    this.faultIova = expected;
    return false;
  }

  private reinsertPart(entry: Entry, start: bigint, last: bigint): void {
    const state = entry.value;
    const firstPage = Number((start - entry.start) >> PAGE_SHIFT_BIG);
    const pages = Number((last - start + 1n) >> PAGE_SHIFT_BIG);
    const dirty = state.dirty ? state.dirty.slice(firstPage, pages) : null;
    this.table.insert(start, last, {
      object: state.object,
      offset: state.offset + firstPage * PAGE_SIZE,
      prot: state.prot,
      pages,
      iovaNumber: safeNumber(start),
      dirty: dirty && !dirty.empty ? dirty : null,
    });
  }

  private checkLive(): void {
    if (this.released) throw new Error(`IOMMU domain ${this.id} used after it was freed`);
  }
}

function markDirty(state: MappingState, rel: number, length: number): void {
  const first = Math.floor(rel / PAGE_SIZE);
  const lastPage = Math.floor((rel + length - 1) / PAGE_SIZE);
  if (!state.dirty) state.dirty = new DirtyBitmap(state.pages);
  state.dirty.setRange(first, lastPage - first + 1);
}

function describe(entry: Entry): DomainMapping {
  return {
    iova: entry.start,
    length: entry.last - entry.start + 1n,
    object: entry.value.object,
    offset: entry.value.offset,
    prot: entry.value.prot,
  };
}

function checkAligned(what: string, iova: bigint, length: bigint): void {
  if (iova < 0n || (iova & PAGE_MASK_BIG) !== 0n)
    throw new RangeError(`${what}: iova 0x${hex(iova)} not 4 KiB aligned`);
  if (length <= 0n || (length & PAGE_MASK_BIG) !== 0n) {
    throw new RangeError(`${what}: length 0x${hex(length)} not a positive multiple of 4 KiB`);
  }
}

function hex(value: bigint): string {
  return value.toString(16);
}
