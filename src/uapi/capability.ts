/**
 * VFIO INFO capability chains. An INFO struct (vfio_iommu_type1_info, vfio_device_info,
 * vfio_region_info) may be followed by capabilities, each starting with vfio_info_cap_header;
 * `cap_offset` in the INFO struct and `next` in each header are offsets from the start of the
 * INFO struct, and the last `next` is 0. The kernel side builds chains (CapChainBuilder), the
 * userspace side walks them (walkCapChain).
 */
import type { EncodeValue, Struct } from './layout.js';
import {
  VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP,
  VFIO_DEVICE_INFO_CAP_ZPCI_BASE,
  VFIO_DEVICE_INFO_CAP_ZPCI_GROUP,
  VFIO_DEVICE_INFO_CAP_ZPCI_PFIP,
  VFIO_DEVICE_INFO_CAP_ZPCI_UTIL,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
  VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD,
  VFIO_REGION_INFO_CAP_NVLINK2_SSATGT,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP,
  VFIO_REGION_INFO_CAP_TYPE,
  vfio_device_info_cap_pci_atomic_comp,
  vfio_info_cap_header,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_region_info_cap_nvlink2_lnkspd,
  vfio_region_info_cap_nvlink2_ssatgt,
  vfio_region_info_cap_sparse_mmap,
  vfio_region_info_cap_type,
  type VfioInfoCapHeader,
} from './vfio.js';

// The layouts are declared in vfio.ts with the rest of the header; re-exported here for callers
// that only deal with chains.
export {
  vfio_device_info_cap_pci_atomic_comp,
  vfio_info_cap_header,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
  vfio_region_info_cap_nvlink2_lnkspd,
  vfio_region_info_cap_nvlink2_ssatgt,
  vfio_region_info_cap_sparse_mmap,
  vfio_region_info_cap_type,
  vfio_region_sparse_mmap_area,
  type VfioInfoCapHeader,
} from './vfio.js';

const HEADER_SIZE = vfio_info_cap_header.size;
/** Since v6.6 every capability is padded so the next one starts 8-byte aligned. */
export const VFIO_CAP_ALIGN = 8;

/** A finished chain, ready to copy to `base` in the INFO buffer. */
export interface CapChain {
  readonly bytes: Uint8Array;
  /** Offset of the first capability (the INFO struct's cap_offset), 0 when the chain is empty. */
  readonly capOffset: number;
  /** Byte length of the chain. */
  readonly size: number;
  /** base + size: the argsz the caller needs to receive everything. */
  readonly totalSize: number;
}

/** Builds a chain the way vfio_info_cap_add()/vfio_info_cap_shift() do. */
export class CapChainBuilder {
  private readonly parts: Uint8Array[] = [];
  private length = 0;

  /** `base` is where the chain will start in the INFO buffer, normally sizeof(info struct). */
  constructor(readonly base: number) {}

  /**
   * Appends a capability whose layout starts with `header`; `value` fills the other fields and
   * `tail` (a flexible array such as iova_ranges[]) follows the struct. Returns the capability's
   * absolute offset.
   */
  add<T extends { header: VfioInfoCapHeader }>(
    id: number,
    version: number,
    struct: Struct<T>,
    value: Omit<EncodeValue<T>, 'header'> = {} as Omit<EncodeValue<T>, 'header'>,
    tail: Uint8Array = new Uint8Array(0),
  ): number {
    const header = struct.fields[0];
    if (header?.name !== 'header' || header.offset !== 0 || header.struct !== vfio_info_cap_header) {
      throw new Error(`${struct.name} does not start with a vfio_info_cap_header`);
    }
    const body = new Uint8Array(struct.size - HEADER_SIZE + tail.length);
    const full = struct.encode(value as EncodeValue<T>);
    body.set(full.subarray(HEADER_SIZE));
    body.set(tail, struct.size - HEADER_SIZE);
    return this.addBytes(id, version, body);
  }

  /** Appends a capability given the bytes after its header (none for header-only capabilities). */
  addBytes(id: number, version: number, body: Uint8Array = new Uint8Array(0)): number {
    const at = this.base + this.length;
    const cap = new Uint8Array(alignUp(HEADER_SIZE + body.length, VFIO_CAP_ALIGN));
    vfio_info_cap_header.encode({ id, version, next: 0 }, cap);
    cap.set(body, HEADER_SIZE);
    const previous = this.parts[this.parts.length - 1];
    if (previous) vfio_info_cap_header.encode({ next: at }, previous);
    this.parts.push(cap);
    this.length += cap.length;
    return at;
  }

  build(): CapChain {
    const bytes = new Uint8Array(this.length);
    let at = 0;
    for (const part of this.parts) {
      bytes.set(part, at);
      at += part.length;
    }
    return Object.freeze({
      bytes,
      capOffset: this.parts.length ? this.base : 0,
      size: this.length,
      totalSize: this.base + this.length,
    });
  }
}

/** One capability found by walkCapChain; `offset` is where its header starts in the buffer. */
export interface CapEntry {
  readonly id: number;
  readonly version: number;
  readonly offset: number;
  readonly next: number;
}

export type CapChainFault = 'out-of-range' | 'loop';

/** A malformed chain: a header outside the buffer, or a `next` that revisits a capability. */
export class CapChainError extends Error {
  constructor(
    readonly fault: CapChainFault,
    readonly offset: number,
  ) {
    super(
      fault === 'loop' ? `capability chain loops back to offset ${offset}` : `capability at ${offset} is out of range`,
    );
    this.name = 'CapChainError';
  }
}

/**
 * Yields the capabilities of the chain starting at `capOffset` in `info` (the whole INFO
 * buffer); `capOffset` 0 is an empty chain. Offsets below `base` (the INFO struct itself) or
 * headers that do not fit in `info` throw CapChainError('out-of-range'); revisiting a
 * capability throws CapChainError('loop'), so a hostile chain always terminates.
 * Alignment is not required: kernels before 6.6 packed capabilities at 4-byte boundaries.
 */
export function* walkCapChain(info: Uint8Array, capOffset: number, base = 0): Generator<CapEntry, void, undefined> {
  const seen = new Set<number>();
  for (let offset = capOffset; offset !== 0;) {
    if (offset < base || offset + HEADER_SIZE > info.length) throw new CapChainError('out-of-range', offset);
    if (seen.has(offset)) throw new CapChainError('loop', offset);
    seen.add(offset);
    const { id, version, next } = vfio_info_cap_header.decode(info, offset);
    yield Object.freeze({ id, version, offset, next });
    offset = next;
  }
}

/** The first capability with `id` in the chain, or undefined. */
export function findCap(info: Uint8Array, capOffset: number, id: number, base = 0): CapEntry | undefined {
  for (const cap of walkCapChain(info, capOffset, base)) if (cap.id === id) return cap;
  return undefined;
}

/** What a capability id means within one INFO ioctl; `struct` is absent for header-only or foreign payloads. */
export interface CapKind {
  readonly name: string;
  readonly struct?: Struct<object>;
}

function kind(name: string, struct?: Struct<object>): CapKind {
  return Object.freeze(struct ? { name, struct } : { name });
}

/** Capability ids are per INFO ioctl; these tables name them and give their payload layout. */
export const vfioInfoCaps = Object.freeze({
  iommuType1: new Map<number, CapKind>([
    [VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, kind('IOVA_RANGE', vfio_iommu_type1_info_cap_iova_range)],
    [VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, kind('MIGRATION', vfio_iommu_type1_info_cap_migration)],
    [VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, kind('DMA_AVAIL', vfio_iommu_type1_info_dma_avail)],
  ]) as ReadonlyMap<number, CapKind>,
  device: new Map<number, CapKind>([
    // zPCI payloads are defined in vfio_zdev.h.
    [VFIO_DEVICE_INFO_CAP_ZPCI_BASE, kind('ZPCI_BASE')],
    [VFIO_DEVICE_INFO_CAP_ZPCI_GROUP, kind('ZPCI_GROUP')],
    [VFIO_DEVICE_INFO_CAP_ZPCI_UTIL, kind('ZPCI_UTIL')],
    [VFIO_DEVICE_INFO_CAP_ZPCI_PFIP, kind('ZPCI_PFIP')],
    [VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP, kind('PCI_ATOMIC_COMP', vfio_device_info_cap_pci_atomic_comp)],
  ]) as ReadonlyMap<number, CapKind>,
  region: new Map<number, CapKind>([
    [VFIO_REGION_INFO_CAP_SPARSE_MMAP, kind('SPARSE_MMAP', vfio_region_info_cap_sparse_mmap)],
    [VFIO_REGION_INFO_CAP_TYPE, kind('TYPE', vfio_region_info_cap_type)],
    [VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, kind('MSIX_MAPPABLE')],
    [VFIO_REGION_INFO_CAP_NVLINK2_SSATGT, kind('NVLINK2_SSATGT', vfio_region_info_cap_nvlink2_ssatgt)],
    [VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD, kind('NVLINK2_LNKSPD', vfio_region_info_cap_nvlink2_lnkspd)],
  ]) as ReadonlyMap<number, CapKind>,
});

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}
