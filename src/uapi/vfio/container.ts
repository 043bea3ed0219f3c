/**
 * linux/vfio.h, part 1: API version, IOMMU extensions, the ioctl base, the capability-chain
 * header, and the ioctls of the container fd (/dev/vfio/vfio) and group fds (/dev/vfio/N).
 */
import { IO } from '../ioctl.js';
import { defineStruct, type StructType } from '../layout.js';

export const VFIO_API_VERSION = 0;

// Extensions: VFIO_CHECK_EXTENSION arguments; the IOMMU types among them are VFIO_SET_IOMMU arguments.
export const VFIO_TYPE1_IOMMU = 1;
export const VFIO_SPAPR_TCE_IOMMU = 2;
export const VFIO_TYPE1v2_IOMMU = 3;
export const VFIO_DMA_CC_IOMMU = 4;
export const VFIO_EEH = 5;
/** Formerly TYPE1_NESTING; kernels since ~6.13 answer 0 for it. */
export const __VFIO_RESERVED_TYPE1_NESTING_IOMMU = 6;
export const VFIO_SPAPR_TCE_v2_IOMMU = 7;
export const VFIO_NOIOMMU_IOMMU = 8;
export const VFIO_UNMAP_ALL = 9;
export const VFIO_UPDATE_VADDR = 10;

/** ';' — shared with iommufd, whose numbers start at 0x80 so the two never meet. */
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;

/** Every INFO capability starts with this; `next` is an offset from the start of the INFO struct. */
export const vfio_info_cap_header = defineStruct('vfio_info_cap_header', [
  ['id', 'u16'],
  ['version', 'u16'],
  ['next', 'u32'],
]);
export type VfioInfoCapHeader = StructType<typeof vfio_info_cap_header>;

// Container fd.
export const VFIO_GET_API_VERSION = IO(VFIO_TYPE, VFIO_BASE + 0);
export const VFIO_CHECK_EXTENSION = IO(VFIO_TYPE, VFIO_BASE + 1);
export const VFIO_SET_IOMMU = IO(VFIO_TYPE, VFIO_BASE + 2);

// Group fd.
export const vfio_group_status = defineStruct('vfio_group_status', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
]);
export type VfioGroupStatus = StructType<typeof vfio_group_status>;
export const VFIO_GROUP_FLAGS_VIABLE = 1 << 0;
export const VFIO_GROUP_FLAGS_CONTAINER_SET = 1 << 1;

export const VFIO_GROUP_GET_STATUS = IO(VFIO_TYPE, VFIO_BASE + 3);
/** Argument: pointer to an s32 container (or iommufd) fd. */
export const VFIO_GROUP_SET_CONTAINER = IO(VFIO_TYPE, VFIO_BASE + 4);
export const VFIO_GROUP_UNSET_CONTAINER = IO(VFIO_TYPE, VFIO_BASE + 5);
/** Argument: pointer to a NUL-terminated device name. */
export const VFIO_GROUP_GET_DEVICE_FD = IO(VFIO_TYPE, VFIO_BASE + 6);
