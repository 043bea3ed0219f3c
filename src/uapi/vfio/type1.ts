/**
 * linux/vfio.h, part 4: the Type1 IOMMU backend's ioctls on the container fd, with the
 * capabilities of VFIO_IOMMU_GET_INFO.
 */
import { IO } from '../ioctl.js';
import { defineStruct, type StructType } from '../layout.js';
import { VFIO_BASE, VFIO_TYPE, vfio_info_cap_header } from './container.js';

export const vfio_iommu_type1_info = defineStruct('vfio_iommu_type1_info', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['iova_pgsizes', 'u64'],
  ['cap_offset', 'u32'],
  ['pad', 'u32'],
]);
export type VfioIommuType1Info = StructType<typeof vfio_iommu_type1_info>;
export const VFIO_IOMMU_INFO_PGSIZES = 1 << 0;
export const VFIO_IOMMU_INFO_CAPS = 1 << 1;

// VFIO_IOMMU_GET_INFO capability ids (all version 1).
export const VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE = 1;
export const VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION = 2;
export const VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL = 3;

/** Inclusive range: `end` is the last usable IOVA. */
export const vfio_iova_range = defineStruct('vfio_iova_range', [
  ['start', 'u64'],
  ['end', 'u64'],
]);
export type VfioIovaRange = StructType<typeof vfio_iova_range>;

/** Followed by `iova_ranges[nr_iovas]`. */
export const vfio_iommu_type1_info_cap_iova_range = defineStruct(
  'vfio_iommu_type1_info_cap_iova_range',
  [
    ['header', vfio_info_cap_header],
    ['nr_iovas', 'u32'],
    ['reserved', 'u32'],
  ],
  ['iova_ranges', vfio_iova_range],
);
export type VfioIommuType1InfoCapIovaRange = StructType<typeof vfio_iommu_type1_info_cap_iova_range>;

export const vfio_iommu_type1_info_cap_migration = defineStruct('vfio_iommu_type1_info_cap_migration', [
  ['header', vfio_info_cap_header],
  ['flags', 'u32'],
  ['pgsize_bitmap', 'u64'],
  ['max_dirty_bitmap_size', 'u64'],
]);
export type VfioIommuType1InfoCapMigration = StructType<typeof vfio_iommu_type1_info_cap_migration>;

/** sizeof is 12; since 6.6 the chain pads it to 16. */
export const vfio_iommu_type1_info_dma_avail = defineStruct('vfio_iommu_type1_info_dma_avail', [
  ['header', vfio_info_cap_header],
  ['avail', 'u32'],
]);
export type VfioIommuType1InfoDmaAvail = StructType<typeof vfio_iommu_type1_info_dma_avail>;

/** Same number as VFIO_DEVICE_GET_PCI_HOT_RESET_INFO and VFIO_IOMMU_SPAPR_TCE_GET_INFO. */
export const VFIO_IOMMU_GET_INFO = IO(VFIO_TYPE, VFIO_BASE + 12);

export const vfio_iommu_type1_dma_map = defineStruct('vfio_iommu_type1_dma_map', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['vaddr', 'u64'],
  ['iova', 'u64'],
  ['size', 'u64'],
]);
export type VfioIommuType1DmaMap = StructType<typeof vfio_iommu_type1_dma_map>;
export const VFIO_DMA_MAP_FLAG_READ = 1 << 0;
export const VFIO_DMA_MAP_FLAG_WRITE = 1 << 1;
export const VFIO_DMA_MAP_FLAG_VADDR = 1 << 2;
/** Same number as VFIO_DEVICE_PCI_HOT_RESET. */
export const VFIO_IOMMU_MAP_DMA = IO(VFIO_TYPE, VFIO_BASE + 13);

/** `data` is a user pointer (8 bytes on x86-64) to the bitmap, one bit per `pgsize`. */
export const vfio_bitmap = defineStruct('vfio_bitmap', [
  ['pgsize', 'u64'],
  ['size', 'u64'],
  ['data', 'u64'],
]);
export type VfioBitmap = StructType<typeof vfio_bitmap>;

/** With GET_DIRTY_BITMAP, `data[]` carries a vfio_bitmap. */
export const vfio_iommu_type1_dma_unmap = defineStruct(
  'vfio_iommu_type1_dma_unmap',
  [
    ['argsz', 'u32'],
    ['flags', 'u32'],
    ['iova', 'u64'],
    ['size', 'u64'],
  ],
  ['data', 'u8'],
);
export type VfioIommuType1DmaUnmap = StructType<typeof vfio_iommu_type1_dma_unmap>;
export const VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP = 1 << 0;
export const VFIO_DMA_UNMAP_FLAG_ALL = 1 << 1;
export const VFIO_DMA_UNMAP_FLAG_VADDR = 1 << 2;
/** Same number as VFIO_DEVICE_QUERY_GFX_PLANE. */
export const VFIO_IOMMU_UNMAP_DMA = IO(VFIO_TYPE, VFIO_BASE + 14);

/** sPAPR only; type1 answers ENOTTY. Same numbers as GET_GFX_DMABUF / DEVICE_IOEVENTFD. */
export const VFIO_IOMMU_ENABLE = IO(VFIO_TYPE, VFIO_BASE + 15);
export const VFIO_IOMMU_DISABLE = IO(VFIO_TYPE, VFIO_BASE + 16);

/** With GET_BITMAP, `data[]` carries a vfio_iommu_type1_dirty_bitmap_get. */
export const vfio_iommu_type1_dirty_bitmap = defineStruct(
  'vfio_iommu_type1_dirty_bitmap',
  [
    ['argsz', 'u32'],
    ['flags', 'u32'],
  ],
  ['data', 'u8'],
);
export type VfioIommuType1DirtyBitmap = StructType<typeof vfio_iommu_type1_dirty_bitmap>;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_START = 1 << 0;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP = 1 << 1;
export const VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP = 1 << 2;

export const vfio_iommu_type1_dirty_bitmap_get = defineStruct('vfio_iommu_type1_dirty_bitmap_get', [
  ['iova', 'u64'],
  ['size', 'u64'],
  ['bitmap', vfio_bitmap],
]);
export type VfioIommuType1DirtyBitmapGet = StructType<typeof vfio_iommu_type1_dirty_bitmap_get>;
/** Same number as VFIO_DEVICE_FEATURE and VFIO_IOMMU_SPAPR_REGISTER_MEMORY. */
export const VFIO_IOMMU_DIRTY_PAGES = IO(VFIO_TYPE, VFIO_BASE + 17);
