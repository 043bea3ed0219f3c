/**
 * linux/vfio.h, part 2: the device fd — device/region/IRQ info and their capabilities, IRQ
 * setup, reset, the fixed vfio-pci/ccw/ap indexes, hot reset, gfx planes, ioeventfds, and the
 * cdev bind/attach/detach ioctls.
 */
import { IO } from '../ioctl.js';
import { defineStruct, type StructType } from '../layout.js';
import { VFIO_BASE, VFIO_TYPE, vfio_info_cap_header } from './container.js';

// ---- VFIO_DEVICE_GET_INFO ----

export const vfio_device_info = defineStruct('vfio_device_info', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['num_regions', 'u32'],
  ['num_irqs', 'u32'],
  ['cap_offset', 'u32'],
  ['pad', 'u32'],
]);
export type VfioDeviceInfo = StructType<typeof vfio_device_info>;
export const VFIO_DEVICE_FLAGS_RESET = 1 << 0;
export const VFIO_DEVICE_FLAGS_PCI = 1 << 1;
export const VFIO_DEVICE_FLAGS_PLATFORM = 1 << 2;
export const VFIO_DEVICE_FLAGS_AMBA = 1 << 3;
export const VFIO_DEVICE_FLAGS_CCW = 1 << 4;
export const VFIO_DEVICE_FLAGS_AP = 1 << 5;
export const VFIO_DEVICE_FLAGS_FSL_MC = 1 << 6;
export const VFIO_DEVICE_FLAGS_CAPS = 1 << 7;
export const VFIO_DEVICE_FLAGS_CDX = 1 << 8;
export const VFIO_DEVICE_GET_INFO = IO(VFIO_TYPE, VFIO_BASE + 7);

// The mdev `device_api` sysfs strings, one per device flag.
export const VFIO_DEVICE_API_PCI_STRING = 'vfio-pci';
export const VFIO_DEVICE_API_PLATFORM_STRING = 'vfio-platform';
export const VFIO_DEVICE_API_AMBA_STRING = 'vfio-amba';
export const VFIO_DEVICE_API_CCW_STRING = 'vfio-ccw';
export const VFIO_DEVICE_API_AP_STRING = 'vfio-ap';

// Device info capability ids (s390 zPCI payloads live in vfio_zdev.h, not declared here).
export const VFIO_DEVICE_INFO_CAP_ZPCI_BASE = 1;
export const VFIO_DEVICE_INFO_CAP_ZPCI_GROUP = 2;
export const VFIO_DEVICE_INFO_CAP_ZPCI_UTIL = 3;
export const VFIO_DEVICE_INFO_CAP_ZPCI_PFIP = 4;
export const VFIO_DEVICE_INFO_CAP_PCI_ATOMIC_COMP = 5;

export const vfio_device_info_cap_pci_atomic_comp = defineStruct('vfio_device_info_cap_pci_atomic_comp', [
  ['header', vfio_info_cap_header],
  ['flags', 'u32'],
  ['reserved', 'u32'],
]);
export type VfioDeviceInfoCapPciAtomicComp = StructType<typeof vfio_device_info_cap_pci_atomic_comp>;
export const VFIO_PCI_ATOMIC_COMP32 = 1 << 0;
export const VFIO_PCI_ATOMIC_COMP64 = 1 << 1;
export const VFIO_PCI_ATOMIC_COMP128 = 1 << 2;

// ---- VFIO_DEVICE_GET_REGION_INFO ----

export const vfio_region_info = defineStruct('vfio_region_info', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['index', 'u32'],
  ['cap_offset', 'u32'],
  ['size', 'u64'],
  ['offset', 'u64'],
]);
export type VfioRegionInfo = StructType<typeof vfio_region_info>;
export const VFIO_REGION_INFO_FLAG_READ = 1 << 0;
export const VFIO_REGION_INFO_FLAG_WRITE = 1 << 1;
export const VFIO_REGION_INFO_FLAG_MMAP = 1 << 2;
export const VFIO_REGION_INFO_FLAG_CAPS = 1 << 3;
export const VFIO_DEVICE_GET_REGION_INFO = IO(VFIO_TYPE, VFIO_BASE + 8);

// Region info capability ids.
export const VFIO_REGION_INFO_CAP_SPARSE_MMAP = 1;
export const VFIO_REGION_INFO_CAP_TYPE = 2;
/** Header-only capability: the MSI-X table's BAR may be mmapped whole. */
export const VFIO_REGION_INFO_CAP_MSIX_MAPPABLE = 3;
export const VFIO_REGION_INFO_CAP_NVLINK2_SSATGT = 4;
export const VFIO_REGION_INFO_CAP_NVLINK2_LNKSPD = 5;

export const vfio_region_sparse_mmap_area = defineStruct('vfio_region_sparse_mmap_area', [
  ['offset', 'u64'],
  ['size', 'u64'],
]);
export type VfioRegionSparseMmapArea = StructType<typeof vfio_region_sparse_mmap_area>;

/** Followed by `areas[nr_areas]`. */
export const vfio_region_info_cap_sparse_mmap = defineStruct(
  'vfio_region_info_cap_sparse_mmap',
  [
    ['header', vfio_info_cap_header],
    ['nr_areas', 'u32'],
    ['reserved', 'u32'],
  ],
  ['areas', vfio_region_sparse_mmap_area],
);
export type VfioRegionInfoCapSparseMmap = StructType<typeof vfio_region_info_cap_sparse_mmap>;

export const vfio_region_info_cap_type = defineStruct('vfio_region_info_cap_type', [
  ['header', vfio_info_cap_header],
  ['type', 'u32'],
  ['subtype', 'u32'],
]);
export type VfioRegionInfoCapType = StructType<typeof vfio_region_info_cap_type>;

// Region types, global per bus driver. C writes (1 << 31); as a u32 field value it reads 0x80000000.
export const VFIO_REGION_TYPE_PCI_VENDOR_TYPE = 0x80000000;
export const VFIO_REGION_TYPE_PCI_VENDOR_MASK = 0xffff;
export const VFIO_REGION_TYPE_GFX = 1;
export const VFIO_REGION_TYPE_CCW = 2;
export const VFIO_REGION_TYPE_MIGRATION_DEPRECATED = 3;

// Subtypes: 8086 (Intel) vendor regions.
export const VFIO_REGION_SUBTYPE_INTEL_IGD_OPREGION = 1;
export const VFIO_REGION_SUBTYPE_INTEL_IGD_HOST_CFG = 2;
export const VFIO_REGION_SUBTYPE_INTEL_IGD_LPC_CFG = 3;
// Subtypes: 10de (NVIDIA) and 1014 (IBM) vendor regions, no longer provided.
export const VFIO_REGION_SUBTYPE_NVIDIA_NVLINK2_RAM = 1;
export const VFIO_REGION_SUBTYPE_IBM_NVLINK2_ATSD = 1;
// Subtypes of VFIO_REGION_TYPE_GFX.
export const VFIO_REGION_SUBTYPE_GFX_EDID = 1;

/** Layout of the GFX_EDID region itself (not an ioctl argument). */
export const vfio_region_gfx_edid = defineStruct('vfio_region_gfx_edid', [
  ['edid_offset', 'u32'],
  ['edid_max_size', 'u32'],
  ['edid_size', 'u32'],
  ['max_xres', 'u32'],
  ['max_yres', 'u32'],
  ['link_state', 'u32'],
]);
export type VfioRegionGfxEdid = StructType<typeof vfio_region_gfx_edid>;
export const VFIO_DEVICE_GFX_LINK_STATE_UP = 1;
export const VFIO_DEVICE_GFX_LINK_STATE_DOWN = 2;

// Subtypes of VFIO_REGION_TYPE_CCW.
export const VFIO_REGION_SUBTYPE_CCW_ASYNC_CMD = 1;
export const VFIO_REGION_SUBTYPE_CCW_SCHIB = 2;
export const VFIO_REGION_SUBTYPE_CCW_CRW = 3;

// Migration v1 (region based; removed from the kernel, kept in the uapi).
export const VFIO_REGION_SUBTYPE_MIGRATION_DEPRECATED = 1;

export const vfio_device_migration_info = defineStruct('vfio_device_migration_info', [
  ['device_state', 'u32'],
  ['reserved', 'u32'],
  ['pending_bytes', 'u64'],
  ['data_offset', 'u64'],
  ['data_size', 'u64'],
]);
export type VfioDeviceMigrationInfo = StructType<typeof vfio_device_migration_info>;
export const VFIO_DEVICE_STATE_V1_STOP = 0;
export const VFIO_DEVICE_STATE_V1_RUNNING = 1 << 0;
export const VFIO_DEVICE_STATE_V1_SAVING = 1 << 1;
export const VFIO_DEVICE_STATE_V1_RESUMING = 1 << 2;
export const VFIO_DEVICE_STATE_MASK =
  VFIO_DEVICE_STATE_V1_RUNNING | VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING;

/** v1: RESUMING may not be combined with other bits. */
export function VFIO_DEVICE_STATE_VALID(state: number): boolean {
  return state & VFIO_DEVICE_STATE_V1_RESUMING
    ? (state & VFIO_DEVICE_STATE_MASK) === VFIO_DEVICE_STATE_V1_RESUMING
    : true;
}

/** v1: SAVING|RESUMING together is the error state. */
export function VFIO_DEVICE_STATE_IS_ERROR(state: number): boolean {
  return (state & VFIO_DEVICE_STATE_MASK) === (VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING);
}

export function VFIO_DEVICE_STATE_SET_ERROR(state: number): number {
  return ((state & ~VFIO_DEVICE_STATE_MASK) | VFIO_DEVICE_STATE_V1_SAVING | VFIO_DEVICE_STATE_V1_RESUMING) >>> 0;
}

export const vfio_region_info_cap_nvlink2_ssatgt = defineStruct('vfio_region_info_cap_nvlink2_ssatgt', [
  ['header', vfio_info_cap_header],
  ['tgt', 'u64'],
]);
export type VfioRegionInfoCapNvlink2Ssatgt = StructType<typeof vfio_region_info_cap_nvlink2_ssatgt>;

export const vfio_region_info_cap_nvlink2_lnkspd = defineStruct('vfio_region_info_cap_nvlink2_lnkspd', [
  ['header', vfio_info_cap_header],
  ['link_speed', 'u32'],
  ['__pad', 'u32'],
]);
export type VfioRegionInfoCapNvlink2Lnkspd = StructType<typeof vfio_region_info_cap_nvlink2_lnkspd>;

// ---- IRQs ----

export const vfio_irq_info = defineStruct('vfio_irq_info', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['index', 'u32'],
  ['count', 'u32'],
]);
export type VfioIrqInfo = StructType<typeof vfio_irq_info>;
export const VFIO_IRQ_INFO_EVENTFD = 1 << 0;
export const VFIO_IRQ_INFO_MASKABLE = 1 << 1;
export const VFIO_IRQ_INFO_AUTOMASKED = 1 << 2;
export const VFIO_IRQ_INFO_NORESIZE = 1 << 3;
export const VFIO_DEVICE_GET_IRQ_INFO = IO(VFIO_TYPE, VFIO_BASE + 9);

/** Followed by `data[]`: `count` u8 bools or s32 eventfds, per the DATA flag. */
export const vfio_irq_set = defineStruct(
  'vfio_irq_set',
  [
    ['argsz', 'u32'],
    ['flags', 'u32'],
    ['index', 'u32'],
    ['start', 'u32'],
    ['count', 'u32'],
  ],
  ['data', 'u8'],
);
export type VfioIrqSet = StructType<typeof vfio_irq_set>;
export const VFIO_IRQ_SET_DATA_NONE = 1 << 0;
export const VFIO_IRQ_SET_DATA_BOOL = 1 << 1;
export const VFIO_IRQ_SET_DATA_EVENTFD = 1 << 2;
export const VFIO_IRQ_SET_ACTION_MASK = 1 << 3;
export const VFIO_IRQ_SET_ACTION_UNMASK = 1 << 4;
export const VFIO_IRQ_SET_ACTION_TRIGGER = 1 << 5;
export const VFIO_DEVICE_SET_IRQS = IO(VFIO_TYPE, VFIO_BASE + 10);
export const VFIO_IRQ_SET_DATA_TYPE_MASK = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_DATA_BOOL | VFIO_IRQ_SET_DATA_EVENTFD;
export const VFIO_IRQ_SET_ACTION_TYPE_MASK =
  VFIO_IRQ_SET_ACTION_MASK | VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_ACTION_TRIGGER;

export const VFIO_DEVICE_RESET = IO(VFIO_TYPE, VFIO_BASE + 11);

// ---- Fixed vfio-pci region and IRQ indexes (user ABI) ----

export const VFIO_PCI_BAR0_REGION_INDEX = 0;
export const VFIO_PCI_BAR1_REGION_INDEX = 1;
export const VFIO_PCI_BAR2_REGION_INDEX = 2;
export const VFIO_PCI_BAR3_REGION_INDEX = 3;
export const VFIO_PCI_BAR4_REGION_INDEX = 4;
export const VFIO_PCI_BAR5_REGION_INDEX = 5;
export const VFIO_PCI_ROM_REGION_INDEX = 6;
export const VFIO_PCI_CONFIG_REGION_INDEX = 7;
export const VFIO_PCI_VGA_REGION_INDEX = 8;
/** Indexes from here on are device specific and described by VFIO_REGION_INFO_CAP_TYPE. */
export const VFIO_PCI_NUM_REGIONS = 9;

export const VFIO_PCI_INTX_IRQ_INDEX = 0;
export const VFIO_PCI_MSI_IRQ_INDEX = 1;
export const VFIO_PCI_MSIX_IRQ_INDEX = 2;
export const VFIO_PCI_ERR_IRQ_INDEX = 3;
export const VFIO_PCI_REQ_IRQ_INDEX = 4;
export const VFIO_PCI_NUM_IRQS = 5;

/**
 * vfio-pci places region `index` at device-fd offset `index << 40`. These come from the driver
 * (vfio_pci_core.h), not the uapi header, but every vfio-pci user depends on them.
 */
export const VFIO_PCI_OFFSET_SHIFT = 40;
export const VFIO_PCI_OFFSET_MASK = (1n << BigInt(VFIO_PCI_OFFSET_SHIFT)) - 1n;
export function VFIO_PCI_INDEX_TO_OFFSET(index: number): bigint {
  return BigInt(index) << BigInt(VFIO_PCI_OFFSET_SHIFT);
}
export function VFIO_PCI_OFFSET_TO_INDEX(offset: bigint): number {
  return Number(offset >> BigInt(VFIO_PCI_OFFSET_SHIFT));
}

// vfio-ccw and vfio-ap indexes.
export const VFIO_CCW_CONFIG_REGION_INDEX = 0;
export const VFIO_CCW_NUM_REGIONS = 1;
export const VFIO_CCW_IO_IRQ_INDEX = 0;
export const VFIO_CCW_CRW_IRQ_INDEX = 1;
export const VFIO_CCW_REQ_IRQ_INDEX = 2;
export const VFIO_CCW_NUM_IRQS = 3;
export const VFIO_AP_REQ_IRQ_INDEX = 0;
export const VFIO_AP_CFG_CHG_IRQ_INDEX = 1;
export const VFIO_AP_NUM_IRQS = 2;

// ---- PCI hot reset ----

/** `group_id` (group-opened device) and `devid` (cdev-opened device) share offset 0. */
export const vfio_pci_dependent_device = defineStruct('vfio_pci_dependent_device', [
  ['group_id', 'u32'],
  { name: 'devid', type: 'u32', offset: 0 },
  ['segment', 'u16'],
  ['bus', 'u8'],
  ['devfn', 'u8'],
]);
export type VfioPciDependentDevice = StructType<typeof vfio_pci_dependent_device>;
export const VFIO_PCI_DEVID_OWNED = 0;
/** C writes -1; in the u32 `devid` field it reads 0xffffffff. */
export const VFIO_PCI_DEVID_NOT_OWNED = 0xffffffff;

/** Followed by `devices[count]`. */
export const vfio_pci_hot_reset_info = defineStruct(
  'vfio_pci_hot_reset_info',
  [
    ['argsz', 'u32'],
    ['flags', 'u32'],
    ['count', 'u32'],
  ],
  ['devices', vfio_pci_dependent_device],
);
export type VfioPciHotResetInfo = StructType<typeof vfio_pci_hot_reset_info>;
export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID = 1 << 0;
export const VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED = 1 << 1;
/** Same number as VFIO_IOMMU_GET_INFO (container fd). */
export const VFIO_DEVICE_GET_PCI_HOT_RESET_INFO = IO(VFIO_TYPE, VFIO_BASE + 12);

/** Followed by `group_fds[count]`. */
export const vfio_pci_hot_reset = defineStruct(
  'vfio_pci_hot_reset',
  [
    ['argsz', 'u32'],
    ['flags', 'u32'],
    ['count', 'u32'],
  ],
  ['group_fds', 's32'],
);
export type VfioPciHotReset = StructType<typeof vfio_pci_hot_reset>;
/** Same number as VFIO_IOMMU_MAP_DMA (container fd). */
export const VFIO_DEVICE_PCI_HOT_RESET = IO(VFIO_TYPE, VFIO_BASE + 13);

// ---- Graphics planes (mdev vGPUs) ----

/** `region_index` and `dmabuf_id` share offset 56. */
export const vfio_device_gfx_plane_info = defineStruct('vfio_device_gfx_plane_info', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['drm_plane_type', 'u32'],
  ['drm_format', 'u32'],
  ['drm_format_mod', 'u64'],
  ['width', 'u32'],
  ['height', 'u32'],
  ['stride', 'u32'],
  ['size', 'u32'],
  ['x_pos', 'u32'],
  ['y_pos', 'u32'],
  ['x_hot', 'u32'],
  ['y_hot', 'u32'],
  ['region_index', 'u32'],
  { name: 'dmabuf_id', type: 'u32', offset: 56 },
  ['reserved', 'u32'],
]);
export type VfioDeviceGfxPlaneInfo = StructType<typeof vfio_device_gfx_plane_info>;
export const VFIO_GFX_PLANE_TYPE_PROBE = 1 << 0;
export const VFIO_GFX_PLANE_TYPE_DMABUF = 1 << 1;
export const VFIO_GFX_PLANE_TYPE_REGION = 1 << 2;
/** Same number as VFIO_IOMMU_UNMAP_DMA (container fd). */
export const VFIO_DEVICE_QUERY_GFX_PLANE = IO(VFIO_TYPE, VFIO_BASE + 14);
/** Argument: pointer to a u32 dmabuf_id. */
export const VFIO_DEVICE_GET_GFX_DMABUF = IO(VFIO_TYPE, VFIO_BASE + 15);

// ---- VFIO_DEVICE_IOEVENTFD ----

export const vfio_device_ioeventfd = defineStruct('vfio_device_ioeventfd', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['offset', 'u64'],
  ['data', 'u64'],
  ['fd', 's32'],
  ['reserved', 'u32'],
]);
export type VfioDeviceIoeventfd = StructType<typeof vfio_device_ioeventfd>;
export const VFIO_DEVICE_IOEVENTFD_8 = 1 << 0;
export const VFIO_DEVICE_IOEVENTFD_16 = 1 << 1;
export const VFIO_DEVICE_IOEVENTFD_32 = 1 << 2;
export const VFIO_DEVICE_IOEVENTFD_64 = 1 << 3;
export const VFIO_DEVICE_IOEVENTFD_SIZE_MASK = 0xf;
export const VFIO_DEVICE_IOEVENTFD = IO(VFIO_TYPE, VFIO_BASE + 16);

// ---- cdev (/dev/vfio/devices/vfioN) ----

export const vfio_device_bind_iommufd = defineStruct('vfio_device_bind_iommufd', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['iommufd', 's32'],
  ['out_devid', 'u32'],
  ['token_uuid_ptr', 'u64'],
]);
export type VfioDeviceBindIommufd = StructType<typeof vfio_device_bind_iommufd>;
export const VFIO_DEVICE_BIND_FLAG_TOKEN = 1 << 0;
export const VFIO_DEVICE_BIND_IOMMUFD = IO(VFIO_TYPE, VFIO_BASE + 18);

export const vfio_device_attach_iommufd_pt = defineStruct('vfio_device_attach_iommufd_pt', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['pt_id', 'u32'],
  ['pasid', 'u32'],
]);
export type VfioDeviceAttachIommufdPt = StructType<typeof vfio_device_attach_iommufd_pt>;
export const VFIO_DEVICE_ATTACH_PASID = 1 << 0;
export const VFIO_DEVICE_ATTACH_IOMMUFD_PT = IO(VFIO_TYPE, VFIO_BASE + 19);

export const vfio_device_detach_iommufd_pt = defineStruct('vfio_device_detach_iommufd_pt', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['pasid', 'u32'],
]);
export type VfioDeviceDetachIommufdPt = StructType<typeof vfio_device_detach_iommufd_pt>;
export const VFIO_DEVICE_DETACH_PASID = 1 << 0;
export const VFIO_DEVICE_DETACH_IOMMUFD_PT = IO(VFIO_TYPE, VFIO_BASE + 20);
