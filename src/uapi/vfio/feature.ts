/**
 * linux/vfio.h, part 3: VFIO_DEVICE_FEATURE, its feature indexes and payloads, the migration v2
 * state machine's states, and VFIO_MIG_GET_PRECOPY_INFO on migration data fds.
 */
import { IO } from '../ioctl.js';
import { defineStruct, type StructType } from '../layout.js';
import { VFIO_BASE, VFIO_TYPE } from './container.js';

/** Followed by the feature's payload in `data[]`. */
export const vfio_device_feature = defineStruct(
  'vfio_device_feature',
  [
    ['argsz', 'u32'],
    ['flags', 'u32'],
  ],
  ['data', 'u8'],
);
export type VfioDeviceFeature = StructType<typeof vfio_device_feature>;
export const VFIO_DEVICE_FEATURE_MASK = 0xffff;
export const VFIO_DEVICE_FEATURE_GET = 1 << 16;
export const VFIO_DEVICE_FEATURE_SET = 1 << 17;
export const VFIO_DEVICE_FEATURE_PROBE = 1 << 18;
/** Same number as VFIO_IOMMU_DIRTY_PAGES (container fd). */
export const VFIO_DEVICE_FEATURE = IO(VFIO_TYPE, VFIO_BASE + 17);

/** SET only; payload is a 16-byte UUID. */
export const VFIO_DEVICE_FEATURE_PCI_VF_TOKEN = 0;

export const vfio_device_feature_migration = defineStruct('vfio_device_feature_migration', [['flags', 'u64']]);
export type VfioDeviceFeatureMigration = StructType<typeof vfio_device_feature_migration>;
export const VFIO_MIGRATION_STOP_COPY = 1 << 0;
export const VFIO_MIGRATION_P2P = 1 << 1;
export const VFIO_MIGRATION_PRE_COPY = 1 << 2;
export const VFIO_DEVICE_FEATURE_MIGRATION = 1;

export const vfio_device_feature_mig_state = defineStruct('vfio_device_feature_mig_state', [
  ['device_state', 'u32'],
  ['data_fd', 's32'],
]);
export type VfioDeviceFeatureMigState = StructType<typeof vfio_device_feature_mig_state>;
export const VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE = 2;

// enum vfio_device_mig_state
export const VFIO_DEVICE_STATE_ERROR = 0;
export const VFIO_DEVICE_STATE_STOP = 1;
export const VFIO_DEVICE_STATE_RUNNING = 2;
export const VFIO_DEVICE_STATE_STOP_COPY = 3;
export const VFIO_DEVICE_STATE_RESUMING = 4;
export const VFIO_DEVICE_STATE_RUNNING_P2P = 5;
export const VFIO_DEVICE_STATE_PRE_COPY = 6;
export const VFIO_DEVICE_STATE_PRE_COPY_P2P = 7;
export const VFIO_DEVICE_STATE_NR = 8;
/** A valid `enum vfio_device_mig_state` value. */
export type VfioDeviceMigState =
  | typeof VFIO_DEVICE_STATE_ERROR
  | typeof VFIO_DEVICE_STATE_STOP
  | typeof VFIO_DEVICE_STATE_RUNNING
  | typeof VFIO_DEVICE_STATE_STOP_COPY
  | typeof VFIO_DEVICE_STATE_RESUMING
  | typeof VFIO_DEVICE_STATE_RUNNING_P2P
  | typeof VFIO_DEVICE_STATE_PRE_COPY
  | typeof VFIO_DEVICE_STATE_PRE_COPY_P2P;

/** Issued on the saving data fd, not the device fd. */
export const vfio_precopy_info = defineStruct('vfio_precopy_info', [
  ['argsz', 'u32'],
  ['flags', 'u32'],
  ['initial_bytes', 'u64'],
  ['dirty_bytes', 'u64'],
]);
export type VfioPrecopyInfo = StructType<typeof vfio_precopy_info>;
export const VFIO_MIG_GET_PRECOPY_INFO = IO(VFIO_TYPE, VFIO_BASE + 21);

/** SET only, no payload. */
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY = 3;

export const vfio_device_low_power_entry_with_wakeup = defineStruct('vfio_device_low_power_entry_with_wakeup', [
  ['wakeup_eventfd', 's32'],
  ['reserved', 'u32'],
]);
export type VfioDeviceLowPowerEntryWithWakeup = StructType<typeof vfio_device_low_power_entry_with_wakeup>;
export const VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP = 4;
/** SET only, no payload. */
export const VFIO_DEVICE_FEATURE_LOW_POWER_EXIT = 5;

/** `ranges` is a user pointer to `num_ranges` vfio_device_feature_dma_logging_range. */
export const vfio_device_feature_dma_logging_control = defineStruct('vfio_device_feature_dma_logging_control', [
  ['page_size', 'u64'],
  ['num_ranges', 'u32'],
  ['__reserved', 'u32'],
  ['ranges', 'u64'],
]);
export type VfioDeviceFeatureDmaLoggingControl = StructType<typeof vfio_device_feature_dma_logging_control>;

export const vfio_device_feature_dma_logging_range = defineStruct('vfio_device_feature_dma_logging_range', [
  ['iova', 'u64'],
  ['length', 'u64'],
]);
export type VfioDeviceFeatureDmaLoggingRange = StructType<typeof vfio_device_feature_dma_logging_range>;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_START = 6;
/** SET only, no payload. */
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP = 7;

/** `bitmap` is a user pointer to u64 words, one bit per `page_size`. */
export const vfio_device_feature_dma_logging_report = defineStruct('vfio_device_feature_dma_logging_report', [
  ['iova', 'u64'],
  ['length', 'u64'],
  ['page_size', 'u64'],
  ['bitmap', 'u64'],
]);
export type VfioDeviceFeatureDmaLoggingReport = StructType<typeof vfio_device_feature_dma_logging_report>;
export const VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT = 8;

export const vfio_device_feature_mig_data_size = defineStruct('vfio_device_feature_mig_data_size', [
  ['stop_copy_length', 'u64'],
]);
export type VfioDeviceFeatureMigDataSize = StructType<typeof vfio_device_feature_mig_data_size>;
export const VFIO_DEVICE_FEATURE_MIG_DATA_SIZE = 9;

export const vfio_device_feature_bus_master = defineStruct('vfio_device_feature_bus_master', [['op', 'u32']]);
export type VfioDeviceFeatureBusMaster = StructType<typeof vfio_device_feature_bus_master>;
export const VFIO_DEVICE_FEATURE_CLEAR_MASTER = 0;
export const VFIO_DEVICE_FEATURE_SET_MASTER = 1;
export const VFIO_DEVICE_FEATURE_BUS_MASTER = 10;

export const VFIO_DEVICE_FEATURE_DMA_BUF = 11;

export const vfio_region_dma_range = defineStruct('vfio_region_dma_range', [
  ['offset', 'u64'],
  ['length', 'u64'],
]);
export type VfioRegionDmaRange = StructType<typeof vfio_region_dma_range>;

/** Followed by `dma_ranges[nr_ranges]`, whose u64 members make the struct 8-byte aligned. */
export const vfio_device_feature_dma_buf = defineStruct(
  'vfio_device_feature_dma_buf',
  [
    ['region_index', 'u32'],
    ['open_flags', 'u32'],
    ['flags', 'u32'],
    ['nr_ranges', 'u32'],
  ],
  ['dma_ranges', vfio_region_dma_range],
);
export type VfioDeviceFeatureDmaBuf = StructType<typeof vfio_device_feature_dma_buf>;
