/**
 * linux/iommufd.h as data: command numbers, ioctl numbers, enum values, struct layouts, and the
 * per-command size table (iommufdIoctlOps) the /dev/iommu dispatcher checks `size` against.
 * Constants keep the kernel's names; layouts are `Struct`s named as the C struct, and each
 * layout's value type is the PascalCase form of that name.
 */
import { IO, iocNr } from './ioctl.js';
import { defineStruct, type Struct, type StructType } from './layout.js';

/** ';' — VFIO uses the same type with numbers below 0x80. */
export const IOMMUFD_TYPE = 0x3b;

export const IOMMUFD_CMD_BASE = 0x80;
export const IOMMUFD_CMD_DESTROY = IOMMUFD_CMD_BASE;
export const IOMMUFD_CMD_IOAS_ALLOC = 0x81;
export const IOMMUFD_CMD_IOAS_ALLOW_IOVAS = 0x82;
export const IOMMUFD_CMD_IOAS_COPY = 0x83;
export const IOMMUFD_CMD_IOAS_IOVA_RANGES = 0x84;
export const IOMMUFD_CMD_IOAS_MAP = 0x85;
export const IOMMUFD_CMD_IOAS_UNMAP = 0x86;
export const IOMMUFD_CMD_OPTION = 0x87;
export const IOMMUFD_CMD_VFIO_IOAS = 0x88;
export const IOMMUFD_CMD_HWPT_ALLOC = 0x89;
export const IOMMUFD_CMD_GET_HW_INFO = 0x8a;
export const IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING = 0x8b;
export const IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP = 0x8c;
export const IOMMUFD_CMD_HWPT_INVALIDATE = 0x8d;
export const IOMMUFD_CMD_FAULT_QUEUE_ALLOC = 0x8e;
export const IOMMUFD_CMD_IOAS_MAP_FILE = 0x8f;
export const IOMMUFD_CMD_VIOMMU_ALLOC = 0x90;
export const IOMMUFD_CMD_VDEVICE_ALLOC = 0x91;
export const IOMMUFD_CMD_IOAS_CHANGE_PROCESS = 0x92;
export const IOMMUFD_CMD_VEVENTQ_ALLOC = 0x93;
export const IOMMUFD_CMD_HW_QUEUE_ALLOC = 0x94;
export const IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA = 0x95;

// ---- Objects and IOAS ----

export const iommu_destroy = defineStruct('iommu_destroy', [
  ['size', 'u32'],
  ['id', 'u32'],
]);
export type IommuDestroy = StructType<typeof iommu_destroy>;
export const IOMMU_DESTROY = IO(IOMMUFD_TYPE, IOMMUFD_CMD_DESTROY);

export const iommu_ioas_alloc = defineStruct('iommu_ioas_alloc', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['out_ioas_id', 'u32'],
]);
export type IommuIoasAlloc = StructType<typeof iommu_ioas_alloc>;
export const IOMMU_IOAS_ALLOC = IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOC);

/** Inclusive range: `last` is the last usable IOVA. */
export const iommu_iova_range = defineStruct('iommu_iova_range', [
  ['start', 'u64'],
  ['last', 'u64'],
]);
export type IommuIovaRange = StructType<typeof iommu_iova_range>;

/** `allowed_iovas` is a user pointer to `num_iovas` iommu_iova_range. */
export const iommu_ioas_iova_ranges = defineStruct('iommu_ioas_iova_ranges', [
  ['size', 'u32'],
  ['ioas_id', 'u32'],
  ['num_iovas', 'u32'],
  ['__reserved', 'u32'],
  ['allowed_iovas', 'u64'],
  ['out_iova_alignment', 'u64'],
]);
export type IommuIoasIovaRanges = StructType<typeof iommu_ioas_iova_ranges>;
export const IOMMU_IOAS_IOVA_RANGES = IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_IOVA_RANGES);

export const iommu_ioas_allow_iovas = defineStruct('iommu_ioas_allow_iovas', [
  ['size', 'u32'],
  ['ioas_id', 'u32'],
  ['num_iovas', 'u32'],
  ['__reserved', 'u32'],
  ['allowed_iovas', 'u64'],
]);
export type IommuIoasAllowIovas = StructType<typeof iommu_ioas_allow_iovas>;
export const IOMMU_IOAS_ALLOW_IOVAS = IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_ALLOW_IOVAS);

// enum iommufd_ioas_map_flags (MAP, MAP_FILE and COPY)
export const IOMMU_IOAS_MAP_FIXED_IOVA = 1 << 0;
export const IOMMU_IOAS_MAP_WRITEABLE = 1 << 1;
export const IOMMU_IOAS_MAP_READABLE = 1 << 2;

export const iommu_ioas_map = defineStruct('iommu_ioas_map', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['ioas_id', 'u32'],
  ['__reserved', 'u32'],
  ['user_va', 'u64'],
  ['length', 'u64'],
  ['iova', 'u64'],
]);
export type IommuIoasMap = StructType<typeof iommu_ioas_map>;
export const IOMMU_IOAS_MAP = IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP);

export const iommu_ioas_noiommu_get_pa = defineStruct('iommu_ioas_noiommu_get_pa', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['ioas_id', 'u32'],
  ['__reserved', 'u32'],
  ['iova', 'u64'],
  ['length', 'u64'],
  ['out_phys', 'u64'],
]);
export type IommuIoasNoiommuGetPa = StructType<typeof iommu_ioas_noiommu_get_pa>;
export const IOMMU_IOAS_NOIOMMU_GET_PA = IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_NOIOMMU_GET_PA);

export const iommu_ioas_map_file = defineStruct('iommu_ioas_map_file', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['ioas_id', 'u32'],
  ['fd', 's32'],
  ['start', 'u64'],
  ['length', 'u64'],
  ['iova', 'u64'],
]);
export type IommuIoasMapFile = StructType<typeof iommu_ioas_map_file>;
export const IOMMU_IOAS_MAP_FILE = IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_MAP_FILE);

export const iommu_ioas_copy = defineStruct('iommu_ioas_copy', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['dst_ioas_id', 'u32'],
  ['src_ioas_id', 'u32'],
  ['length', 'u64'],
  ['dst_iova', 'u64'],
  ['src_iova', 'u64'],
]);
export type IommuIoasCopy = StructType<typeof iommu_ioas_copy>;
export const IOMMU_IOAS_COPY = IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_COPY);

export const iommu_ioas_unmap = defineStruct('iommu_ioas_unmap', [
  ['size', 'u32'],
  ['ioas_id', 'u32'],
  ['iova', 'u64'],
  ['length', 'u64'],
]);
export type IommuIoasUnmap = StructType<typeof iommu_ioas_unmap>;
export const IOMMU_IOAS_UNMAP = IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_UNMAP);

// enum iommufd_option, enum iommufd_option_ops
export const IOMMU_OPTION_RLIMIT_MODE = 0;
export const IOMMU_OPTION_HUGE_PAGES = 1;
export const IOMMU_OPTION_OP_SET = 0;
export const IOMMU_OPTION_OP_GET = 1;

export const iommu_option = defineStruct('iommu_option', [
  ['size', 'u32'],
  ['option_id', 'u32'],
  ['op', 'u16'],
  ['__reserved', 'u16'],
  ['object_id', 'u32'],
  ['val64', 'u64'],
]);
export type IommuOption = StructType<typeof iommu_option>;
export const IOMMU_OPTION = IO(IOMMUFD_TYPE, IOMMUFD_CMD_OPTION);

// enum iommufd_vfio_ioas_op
export const IOMMU_VFIO_IOAS_GET = 0;
export const IOMMU_VFIO_IOAS_SET = 1;
export const IOMMU_VFIO_IOAS_CLEAR = 2;

export const iommu_vfio_ioas = defineStruct('iommu_vfio_ioas', [
  ['size', 'u32'],
  ['ioas_id', 'u32'],
  ['op', 'u16'],
  ['__reserved', 'u16'],
]);
export type IommuVfioIoas = StructType<typeof iommu_vfio_ioas>;
export const IOMMU_VFIO_IOAS = IO(IOMMUFD_TYPE, IOMMUFD_CMD_VFIO_IOAS);

// ---- HW page tables ----

// enum iommufd_hwpt_alloc_flags
export const IOMMU_HWPT_ALLOC_NEST_PARENT = 1 << 0;
export const IOMMU_HWPT_ALLOC_DIRTY_TRACKING = 1 << 1;
export const IOMMU_HWPT_FAULT_ID_VALID = 1 << 2;
export const IOMMU_HWPT_ALLOC_PASID = 1 << 3;

// enum iommu_hwpt_vtd_s1_flags
export const IOMMU_VTD_S1_SRE = 1 << 0;
export const IOMMU_VTD_S1_EAFE = 1 << 1;
export const IOMMU_VTD_S1_WPE = 1 << 2;

/** HWPT_ALLOC data for IOMMU_HWPT_DATA_VTD_S1. */
export const iommu_hwpt_vtd_s1 = defineStruct('iommu_hwpt_vtd_s1', [
  ['flags', 'u64'],
  ['pgtbl_addr', 'u64'],
  ['addr_width', 'u32'],
  ['__reserved', 'u32'],
]);
export type IommuHwptVtdS1 = StructType<typeof iommu_hwpt_vtd_s1>;

/** HWPT_ALLOC data for IOMMU_HWPT_DATA_ARM_SMMUV3: the first two STE words, little-endian. */
export const iommu_hwpt_arm_smmuv3 = defineStruct('iommu_hwpt_arm_smmuv3', [{ name: 'ste', type: 'u64', count: 2 }]);
export type IommuHwptArmSmmuv3 = StructType<typeof iommu_hwpt_arm_smmuv3>;

/** HWPT_ALLOC data for IOMMU_HWPT_DATA_AMD_GUEST: the guest DTE. */
export const iommu_hwpt_amd_guest = defineStruct('iommu_hwpt_amd_guest', [{ name: 'dte', type: 'u64', count: 4 }]);
export type IommuHwptAmdGuest = StructType<typeof iommu_hwpt_amd_guest>;

// enum iommu_hwpt_data_type
export const IOMMU_HWPT_DATA_NONE = 0;
export const IOMMU_HWPT_DATA_VTD_S1 = 1;
export const IOMMU_HWPT_DATA_ARM_SMMUV3 = 2;
export const IOMMU_HWPT_DATA_AMD_GUEST = 3;

export const iommu_hwpt_alloc = defineStruct('iommu_hwpt_alloc', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['dev_id', 'u32'],
  ['pt_id', 'u32'],
  ['out_hwpt_id', 'u32'],
  ['__reserved', 'u32'],
  ['data_type', 'u32'],
  ['data_len', 'u32'],
  ['data_uptr', 'u64'],
  ['fault_id', 'u32'],
  ['__reserved2', 'u32'],
]);
export type IommuHwptAlloc = StructType<typeof iommu_hwpt_alloc>;
export const IOMMU_HWPT_ALLOC = IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_ALLOC);

// ---- IOMMU_GET_HW_INFO ----

// enum iommu_hw_info_vtd_flags
export const IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17 = 1 << 0;

export const iommu_hw_info_vtd = defineStruct('iommu_hw_info_vtd', [
  ['flags', 'u32'],
  ['__reserved', 'u32'],
  ['cap_reg', 'u64'],
  ['ecap_reg', 'u64'],
]);
export type IommuHwInfoVtd = StructType<typeof iommu_hw_info_vtd>;

// enum iommu_hw_info_arm_smmuv3_flags
export const IOMMU_HW_INFO_ARM_SMMUV3_ERRATA_REPEAT_TLBI_CFGI = 1 << 0;

export const iommu_hw_info_arm_smmuv3 = defineStruct('iommu_hw_info_arm_smmuv3', [
  ['flags', 'u32'],
  ['__reserved', 'u32'],
  { name: 'idr', type: 'u32', count: 6 },
  ['iidr', 'u32'],
  ['aidr', 'u32'],
]);
export type IommuHwInfoArmSmmuv3 = StructType<typeof iommu_hw_info_arm_smmuv3>;

export const iommu_hw_info_tegra241_cmdqv = defineStruct('iommu_hw_info_tegra241_cmdqv', [
  ['flags', 'u32'],
  ['version', 'u8'],
  ['log2vcmdqs', 'u8'],
  ['log2vsids', 'u8'],
  ['__reserved', 'u8'],
]);
export type IommuHwInfoTegra241Cmdqv = StructType<typeof iommu_hw_info_tegra241_cmdqv>;

export const iommu_hw_info_amd = defineStruct('iommu_hw_info_amd', [
  ['efr', 'u64'],
  ['efr2', 'u64'],
]);
export type IommuHwInfoAmd = StructType<typeof iommu_hw_info_amd>;

// enum iommu_hw_info_type (NONE and DEFAULT are both 0: output "none", input "default")
export const IOMMU_HW_INFO_TYPE_NONE = 0;
export const IOMMU_HW_INFO_TYPE_DEFAULT = 0;
export const IOMMU_HW_INFO_TYPE_INTEL_VTD = 1;
export const IOMMU_HW_INFO_TYPE_ARM_SMMUV3 = 2;
export const IOMMU_HW_INFO_TYPE_TEGRA241_CMDQV = 3;
export const IOMMU_HW_INFO_TYPE_AMD = 4;

// enum iommufd_hw_capabilities (bits of the u64 out_capabilities)
export const IOMMU_HW_CAP_DIRTY_TRACKING = 1 << 0;
export const IOMMU_HW_CAP_PCI_PASID_EXEC = 1 << 1;
export const IOMMU_HW_CAP_PCI_PASID_PRIV = 1 << 2;
export const IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED = 1 << 3;

// enum iommufd_hw_info_flags
export const IOMMU_HW_INFO_FLAG_INPUT_TYPE = 1 << 0;

/** `in_data_type` and `out_data_type` share offset 24. */
export const iommu_hw_info = defineStruct('iommu_hw_info', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['dev_id', 'u32'],
  ['data_len', 'u32'],
  ['data_uptr', 'u64'],
  ['in_data_type', 'u32'],
  { name: 'out_data_type', type: 'u32', offset: 24 },
  ['out_max_pasid_log2', 'u8'],
  ['__reserved', 'u8', 3],
  ['out_capabilities', 'u64'],
]);
export type IommuHwInfo = StructType<typeof iommu_hw_info>;
export const IOMMU_GET_HW_INFO = IO(IOMMUFD_TYPE, IOMMUFD_CMD_GET_HW_INFO);

// ---- Dirty tracking ----

// enum iommufd_hwpt_set_dirty_tracking_flags
export const IOMMU_HWPT_DIRTY_TRACKING_ENABLE = 1;

export const iommu_hwpt_set_dirty_tracking = defineStruct('iommu_hwpt_set_dirty_tracking', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['hwpt_id', 'u32'],
  ['__reserved', 'u32'],
]);
export type IommuHwptSetDirtyTracking = StructType<typeof iommu_hwpt_set_dirty_tracking>;
export const IOMMU_HWPT_SET_DIRTY_TRACKING = IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_SET_DIRTY_TRACKING);

// enum iommufd_hwpt_get_dirty_bitmap_flags
export const IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR = 1;

/** `data` is a user pointer to u64 words, one bit per `page_size`. */
export const iommu_hwpt_get_dirty_bitmap = defineStruct('iommu_hwpt_get_dirty_bitmap', [
  ['size', 'u32'],
  ['hwpt_id', 'u32'],
  ['flags', 'u32'],
  ['__reserved', 'u32'],
  ['iova', 'u64'],
  ['length', 'u64'],
  ['page_size', 'u64'],
  ['data', 'u64'],
]);
export type IommuHwptGetDirtyBitmap = StructType<typeof iommu_hwpt_get_dirty_bitmap>;
export const IOMMU_HWPT_GET_DIRTY_BITMAP = IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_GET_DIRTY_BITMAP);

// ---- Cache invalidation ----

// enum iommu_hwpt_invalidate_data_type
export const IOMMU_HWPT_INVALIDATE_DATA_VTD_S1 = 0;
export const IOMMU_VIOMMU_INVALIDATE_DATA_ARM_SMMUV3 = 1;

// enum iommu_hwpt_vtd_s1_invalidate_flags
export const IOMMU_VTD_INV_FLAGS_LEAF = 1 << 0;

export const iommu_hwpt_vtd_s1_invalidate = defineStruct('iommu_hwpt_vtd_s1_invalidate', [
  ['addr', 'u64'],
  ['npages', 'u64'],
  ['flags', 'u32'],
  ['__reserved', 'u32'],
]);
export type IommuHwptVtdS1Invalidate = StructType<typeof iommu_hwpt_vtd_s1_invalidate>;

/** One 128-bit SMMU CMDQ command, little-endian. */
export const iommu_viommu_arm_smmuv3_invalidate = defineStruct('iommu_viommu_arm_smmuv3_invalidate', [
  { name: 'cmd', type: 'u64', count: 2 },
]);
export type IommuViommuArmSmmuv3Invalidate = StructType<typeof iommu_viommu_arm_smmuv3_invalidate>;

/** `data_uptr` points at `entry_num` entries of `entry_len` bytes each. */
export const iommu_hwpt_invalidate = defineStruct('iommu_hwpt_invalidate', [
  ['size', 'u32'],
  ['hwpt_id', 'u32'],
  ['data_uptr', 'u64'],
  ['data_type', 'u32'],
  ['entry_len', 'u32'],
  ['entry_num', 'u32'],
  ['__reserved', 'u32'],
]);
export type IommuHwptInvalidate = StructType<typeof iommu_hwpt_invalidate>;
export const IOMMU_HWPT_INVALIDATE = IO(IOMMUFD_TYPE, IOMMUFD_CMD_HWPT_INVALIDATE);

// ---- I/O page faults (records read from / written to the fault queue fd) ----

// enum iommu_hwpt_pgfault_flags
export const IOMMU_PGFAULT_FLAGS_PASID_VALID = 1 << 0;
export const IOMMU_PGFAULT_FLAGS_LAST_PAGE = 1 << 1;

// enum iommu_hwpt_pgfault_perm
export const IOMMU_PGFAULT_PERM_READ = 1 << 0;
export const IOMMU_PGFAULT_PERM_WRITE = 1 << 1;
export const IOMMU_PGFAULT_PERM_EXEC = 1 << 2;
export const IOMMU_PGFAULT_PERM_PRIV = 1 << 3;

export const iommu_hwpt_pgfault = defineStruct('iommu_hwpt_pgfault', [
  ['flags', 'u32'],
  ['dev_id', 'u32'],
  ['pasid', 'u32'],
  ['grpid', 'u32'],
  ['perm', 'u32'],
  ['__reserved', 'u32'],
  ['addr', 'u64'],
  ['length', 'u32'],
  ['cookie', 'u32'],
]);
export type IommuHwptPgfault = StructType<typeof iommu_hwpt_pgfault>;

// enum iommufd_page_response_code
export const IOMMUFD_PAGE_RESP_SUCCESS = 0;
export const IOMMUFD_PAGE_RESP_INVALID = 1;

export const iommu_hwpt_page_response = defineStruct('iommu_hwpt_page_response', [
  ['cookie', 'u32'],
  ['code', 'u32'],
]);
export type IommuHwptPageResponse = StructType<typeof iommu_hwpt_page_response>;

export const iommu_fault_alloc = defineStruct('iommu_fault_alloc', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['out_fault_id', 'u32'],
  ['out_fault_fd', 'u32'],
]);
export type IommuFaultAlloc = StructType<typeof iommu_fault_alloc>;
export const IOMMU_FAULT_QUEUE_ALLOC = IO(IOMMUFD_TYPE, IOMMUFD_CMD_FAULT_QUEUE_ALLOC);

// ---- vIOMMU, vDEVICE, vEVENTQ, HW queues ----

// enum iommu_viommu_type
export const IOMMU_VIOMMU_TYPE_DEFAULT = 0;
export const IOMMU_VIOMMU_TYPE_ARM_SMMUV3 = 1;
export const IOMMU_VIOMMU_TYPE_TEGRA241_CMDQV = 2;

export const iommu_viommu_tegra241_cmdqv = defineStruct('iommu_viommu_tegra241_cmdqv', [
  ['out_vintf_mmap_offset', 'u64'],
  ['out_vintf_mmap_length', 'u64'],
]);
export type IommuViommuTegra241Cmdqv = StructType<typeof iommu_viommu_tegra241_cmdqv>;

export const iommu_viommu_alloc = defineStruct('iommu_viommu_alloc', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['type', 'u32'],
  ['dev_id', 'u32'],
  ['hwpt_id', 'u32'],
  ['out_viommu_id', 'u32'],
  ['data_len', 'u32'],
  ['__reserved', 'u32'],
  ['data_uptr', 'u64'],
]);
export type IommuViommuAlloc = StructType<typeof iommu_viommu_alloc>;
export const IOMMU_VIOMMU_ALLOC = IO(IOMMUFD_TYPE, IOMMUFD_CMD_VIOMMU_ALLOC);

export const iommu_vdevice_alloc = defineStruct('iommu_vdevice_alloc', [
  ['size', 'u32'],
  ['viommu_id', 'u32'],
  ['dev_id', 'u32'],
  ['out_vdevice_id', 'u32'],
  ['virt_id', 'u64'],
]);
export type IommuVdeviceAlloc = StructType<typeof iommu_vdevice_alloc>;
export const IOMMU_VDEVICE_ALLOC = IO(IOMMUFD_TYPE, IOMMUFD_CMD_VDEVICE_ALLOC);

export const iommu_ioas_change_process = defineStruct('iommu_ioas_change_process', [
  ['size', 'u32'],
  ['__reserved', 'u32'],
]);
export type IommuIoasChangeProcess = StructType<typeof iommu_ioas_change_process>;
export const IOMMU_IOAS_CHANGE_PROCESS = IO(IOMMUFD_TYPE, IOMMUFD_CMD_IOAS_CHANGE_PROCESS);

// enum iommu_veventq_flag
export const IOMMU_VEVENTQ_FLAG_LOST_EVENTS = 1 << 0;

/** Precedes every record read from a vEVENTQ fd. */
export const iommufd_vevent_header = defineStruct('iommufd_vevent_header', [
  ['flags', 'u32'],
  ['sequence', 'u32'],
]);
export type IommufdVeventHeader = StructType<typeof iommufd_vevent_header>;

// enum iommu_veventq_type
export const IOMMU_VEVENTQ_TYPE_DEFAULT = 0;
export const IOMMU_VEVENTQ_TYPE_ARM_SMMUV3 = 1;
export const IOMMU_VEVENTQ_TYPE_TEGRA241_CMDQV = 2;

/** One 256-bit SMMUv3 event record, little-endian. */
export const iommu_vevent_arm_smmuv3 = defineStruct('iommu_vevent_arm_smmuv3', [
  { name: 'evt', type: 'u64', count: 4 },
]);
export type IommuVeventArmSmmuv3 = StructType<typeof iommu_vevent_arm_smmuv3>;

export const iommu_vevent_tegra241_cmdqv = defineStruct('iommu_vevent_tegra241_cmdqv', [
  { name: 'lvcmdq_err_map', type: 'u64', count: 2 },
]);
export type IommuVeventTegra241Cmdqv = StructType<typeof iommu_vevent_tegra241_cmdqv>;

export const iommu_veventq_alloc = defineStruct('iommu_veventq_alloc', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['viommu_id', 'u32'],
  ['type', 'u32'],
  ['veventq_depth', 'u32'],
  ['out_veventq_id', 'u32'],
  ['out_veventq_fd', 'u32'],
  ['__reserved', 'u32'],
]);
export type IommuVeventqAlloc = StructType<typeof iommu_veventq_alloc>;
export const IOMMU_VEVENTQ_ALLOC = IO(IOMMUFD_TYPE, IOMMUFD_CMD_VEVENTQ_ALLOC);

// enum iommu_hw_queue_type
export const IOMMU_HW_QUEUE_TYPE_DEFAULT = 0;
export const IOMMU_HW_QUEUE_TYPE_TEGRA241_CMDQV = 1;

export const iommu_hw_queue_alloc = defineStruct('iommu_hw_queue_alloc', [
  ['size', 'u32'],
  ['flags', 'u32'],
  ['viommu_id', 'u32'],
  ['type', 'u32'],
  ['index', 'u32'],
  ['out_hw_queue_id', 'u32'],
  ['nesting_parent_iova', 'u64'],
  ['length', 'u64'],
]);
export type IommuHwQueueAlloc = StructType<typeof iommu_hw_queue_alloc>;
export const IOMMU_HW_QUEUE_ALLOC = IO(IOMMUFD_TYPE, IOMMUFD_CMD_HW_QUEUE_ALLOC);

// ---- The command table ----

/**
 * One row of the kernel's iommufd_ioctl_ops: `size` below `minSize` is EINVAL; bytes past
 * `size` (the kernel's sizeof) must be zero or the call is E2BIG; copy-back is min(size, sizeof).
 */
export interface IommufdIoctlOp {
  readonly name: string;
  readonly ioctl: number;
  readonly struct: Struct<object>;
  /** The last field every caller must supply: minSize = offsetofend(struct, last). */
  readonly last: string;
  readonly minSize: number;
  readonly size: number;
}

function op<T extends object>(name: string, ioctl: number, struct: Struct<T>, last: keyof T & string): IommufdIoctlOp {
  return Object.freeze({
    name,
    ioctl,
    struct: struct as Struct<object>,
    last,
    minSize: struct.offsetofend(last),
    size: struct.size,
  });
}

/** Keyed by ioctl name: `iommufdIoctlOps.IOMMU_HWPT_ALLOC` has minSize 24 and size 48. */
export const iommufdIoctlOps = Object.freeze({
  IOMMU_DESTROY: op('IOMMU_DESTROY', IOMMU_DESTROY, iommu_destroy, 'id'),
  IOMMU_FAULT_QUEUE_ALLOC: op('IOMMU_FAULT_QUEUE_ALLOC', IOMMU_FAULT_QUEUE_ALLOC, iommu_fault_alloc, 'out_fault_fd'),
  IOMMU_GET_HW_INFO: op('IOMMU_GET_HW_INFO', IOMMU_GET_HW_INFO, iommu_hw_info, '__reserved'),
  IOMMU_HW_QUEUE_ALLOC: op('IOMMU_HW_QUEUE_ALLOC', IOMMU_HW_QUEUE_ALLOC, iommu_hw_queue_alloc, 'length'),
  IOMMU_HWPT_ALLOC: op('IOMMU_HWPT_ALLOC', IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, '__reserved'),
  IOMMU_HWPT_GET_DIRTY_BITMAP: op(
    'IOMMU_HWPT_GET_DIRTY_BITMAP',
    IOMMU_HWPT_GET_DIRTY_BITMAP,
    iommu_hwpt_get_dirty_bitmap,
    'data',
  ),
  IOMMU_HWPT_INVALIDATE: op('IOMMU_HWPT_INVALIDATE', IOMMU_HWPT_INVALIDATE, iommu_hwpt_invalidate, '__reserved'),
  IOMMU_HWPT_SET_DIRTY_TRACKING: op(
    'IOMMU_HWPT_SET_DIRTY_TRACKING',
    IOMMU_HWPT_SET_DIRTY_TRACKING,
    iommu_hwpt_set_dirty_tracking,
    '__reserved',
  ),
  IOMMU_IOAS_ALLOC: op('IOMMU_IOAS_ALLOC', IOMMU_IOAS_ALLOC, iommu_ioas_alloc, 'out_ioas_id'),
  IOMMU_IOAS_ALLOW_IOVAS: op('IOMMU_IOAS_ALLOW_IOVAS', IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, 'allowed_iovas'),
  IOMMU_IOAS_CHANGE_PROCESS: op(
    'IOMMU_IOAS_CHANGE_PROCESS',
    IOMMU_IOAS_CHANGE_PROCESS,
    iommu_ioas_change_process,
    '__reserved',
  ),
  IOMMU_IOAS_COPY: op('IOMMU_IOAS_COPY', IOMMU_IOAS_COPY, iommu_ioas_copy, 'src_iova'),
  IOMMU_IOAS_IOVA_RANGES: op(
    'IOMMU_IOAS_IOVA_RANGES',
    IOMMU_IOAS_IOVA_RANGES,
    iommu_ioas_iova_ranges,
    'out_iova_alignment',
  ),
  IOMMU_IOAS_MAP: op('IOMMU_IOAS_MAP', IOMMU_IOAS_MAP, iommu_ioas_map, 'iova'),
  IOMMU_IOAS_MAP_FILE: op('IOMMU_IOAS_MAP_FILE', IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file, 'iova'),
  // Not in the stored kernel table (2026 addition); every field up to out_phys assumed required.
  IOMMU_IOAS_NOIOMMU_GET_PA: op(
    'IOMMU_IOAS_NOIOMMU_GET_PA',
    IOMMU_IOAS_NOIOMMU_GET_PA,
    iommu_ioas_noiommu_get_pa,
    'out_phys',
  ),
  IOMMU_IOAS_UNMAP: op('IOMMU_IOAS_UNMAP', IOMMU_IOAS_UNMAP, iommu_ioas_unmap, 'length'),
  IOMMU_OPTION: op('IOMMU_OPTION', IOMMU_OPTION, iommu_option, 'val64'),
  IOMMU_VDEVICE_ALLOC: op('IOMMU_VDEVICE_ALLOC', IOMMU_VDEVICE_ALLOC, iommu_vdevice_alloc, 'virt_id'),
  IOMMU_VEVENTQ_ALLOC: op('IOMMU_VEVENTQ_ALLOC', IOMMU_VEVENTQ_ALLOC, iommu_veventq_alloc, 'out_veventq_fd'),
  IOMMU_VFIO_IOAS: op('IOMMU_VFIO_IOAS', IOMMU_VFIO_IOAS, iommu_vfio_ioas, '__reserved'),
  IOMMU_VIOMMU_ALLOC: op('IOMMU_VIOMMU_ALLOC', IOMMU_VIOMMU_ALLOC, iommu_viommu_alloc, 'out_viommu_id'),
});

const opByNr = new Map<number, IommufdIoctlOp>(Object.values(iommufdIoctlOps).map((o) => [iocNr(o.ioctl), o]));

/**
 * The table row for `request`'s command number, as the kernel indexes it, or undefined outside
 * the table (the kernel then falls through to VFIO compat). The caller still compares
 * `request === op.ioctl`: a number with size or direction bits is ENOTTY.
 */
export function iommufdIoctlOp(request: number): IommufdIoctlOp | undefined {
  return opByNr.get(iocNr(request));
}
