/**
 * linux/vfio.h, part 5: the sPAPR TCE IOMMU (POWER) and EEH ioctls on the container fd.
 * Declared for completeness of the uapi; x86 kernels do not implement them.
 */
import { IO } from '../ioctl.js';
import { defineStruct, type StructType } from '../layout.js';
import { VFIO_BASE, VFIO_TYPE } from './container.js';

export const vfio_iommu_spapr_tce_ddw_info = defineStruct('vfio_iommu_spapr_tce_ddw_info', [
  ['pgsizes', 'u64'],
  ['max_dynamic_windows_supported', 'u32'],
  ['levels', 'u32'],
]);
export type VfioIommuSpaprTceDdwInfo = StructType<typeof vfio_iommu_spapr_tce_ddw_info>;

export const vfio_iommu_spapr_tce_info = defineStruct('vfio_iommu_spapr_tce_info', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['dma32_window_start', 'u32'],
  ['dma32_window_size', 'u32'],
  ['ddw', vfio_iommu_spapr_tce_ddw_info],
]);
export type VfioIommuSpaprTceInfo = StructType<typeof vfio_iommu_spapr_tce_info>;
export const VFIO_IOMMU_SPAPR_INFO_DDW = 1 << 0;
export const VFIO_IOMMU_SPAPR_TCE_GET_INFO = IO(VFIO_TYPE, VFIO_BASE + 12);

export const vfio_eeh_pe_err = defineStruct('vfio_eeh_pe_err', [
  ['type', 'u32'],
  ['func', 'u32'],
  ['addr', 'u64'],
  ['mask', 'u64'],
]);
export type VfioEehPeErr = StructType<typeof vfio_eeh_pe_err>;

/** `err` is the only member of an anonymous union, so it takes the union's 8-byte alignment. */
export const vfio_eeh_pe_op = defineStruct('vfio_eeh_pe_op', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['op', 'u32'],
  ['err', vfio_eeh_pe_err],
]);
export type VfioEehPeOp = StructType<typeof vfio_eeh_pe_op>;

// vfio_eeh_pe_op.op values, and the states GET_STATE returns.
export const VFIO_EEH_PE_DISABLE = 0;
export const VFIO_EEH_PE_ENABLE = 1;
export const VFIO_EEH_PE_UNFREEZE_IO = 2;
export const VFIO_EEH_PE_UNFREEZE_DMA = 3;
export const VFIO_EEH_PE_GET_STATE = 4;
export const VFIO_EEH_PE_STATE_NORMAL = 0;
export const VFIO_EEH_PE_STATE_RESET = 1;
export const VFIO_EEH_PE_STATE_STOPPED = 2;
export const VFIO_EEH_PE_STATE_STOPPED_DMA = 4;
export const VFIO_EEH_PE_STATE_UNAVAIL = 5;
export const VFIO_EEH_PE_RESET_DEACTIVATE = 5;
export const VFIO_EEH_PE_RESET_HOT = 6;
export const VFIO_EEH_PE_RESET_FUNDAMENTAL = 7;
export const VFIO_EEH_PE_CONFIGURE = 8;
export const VFIO_EEH_PE_INJECT_ERR = 9;
export const VFIO_EEH_PE_OP = IO(VFIO_TYPE, VFIO_BASE + 21);

/** Used by both REGISTER and UNREGISTER. */
export const vfio_iommu_spapr_register_memory = defineStruct('vfio_iommu_spapr_register_memory', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['vaddr', 'u64'],
  ['size', 'u64'],
]);
export type VfioIommuSpaprRegisterMemory = StructType<typeof vfio_iommu_spapr_register_memory>;
export const VFIO_IOMMU_SPAPR_REGISTER_MEMORY = IO(VFIO_TYPE, VFIO_BASE + 17);
export const VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY = IO(VFIO_TYPE, VFIO_BASE + 18);

export const vfio_iommu_spapr_tce_create = defineStruct('vfio_iommu_spapr_tce_create', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['page_shift', 'u32'],
  ['__resv1', 'u32'],
  ['window_size', 'u64'],
  ['levels', 'u32'],
  ['__resv2', 'u32'],
  ['start_addr', 'u64'],
]);
export type VfioIommuSpaprTceCreate = StructType<typeof vfio_iommu_spapr_tce_create>;
export const VFIO_IOMMU_SPAPR_TCE_CREATE = IO(VFIO_TYPE, VFIO_BASE + 19);

export const vfio_iommu_spapr_tce_remove = defineStruct('vfio_iommu_spapr_tce_remove', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['start_addr', 'u64'],
]);
export type VfioIommuSpaprTceRemove = StructType<typeof vfio_iommu_spapr_tce_remove>;
export const VFIO_IOMMU_SPAPR_TCE_REMOVE = IO(VFIO_TYPE, VFIO_BASE + 20);
