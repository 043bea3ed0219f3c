/**
 * The minimum `argsz` the kernel accepts for each VFIO ioctl struct, and the payload minimum of
 * each VFIO_DEVICE_FEATURE. A VFIO handler computes `minsz = offsetofend(struct, last required
 * field)` and answers EINVAL below it; this is the one table of those fields.
 */
import type { Struct } from '../layout.js';
import { vfio_group_status } from './container.js';
import {
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  vfio_device_gfx_plane_info,
  vfio_device_info,
  vfio_device_ioeventfd,
  vfio_irq_info,
  vfio_irq_set,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  vfio_region_info,
} from './device.js';
import {
  VFIO_DEVICE_FEATURE_BUS_MASTER,
  VFIO_DEVICE_FEATURE_DMA_BUF,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  vfio_device_feature,
  vfio_device_feature_bus_master,
  vfio_device_feature_dma_buf,
  vfio_device_feature_dma_logging_control,
  vfio_device_feature_dma_logging_report,
  vfio_device_feature_mig_data_size,
  vfio_device_feature_mig_state,
  vfio_device_feature_migration,
  vfio_device_low_power_entry_with_wakeup,
  vfio_precopy_info,
} from './feature.js';
import {
  vfio_eeh_pe_op,
  vfio_iommu_spapr_register_memory,
  vfio_iommu_spapr_tce_create,
  vfio_iommu_spapr_tce_info,
  vfio_iommu_spapr_tce_remove,
} from './spapr.js';
import {
  vfio_bitmap,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from './type1.js';

/** `minsz = offsetofend(struct, last)`. */
export interface MinszRule {
  readonly struct: Struct<object>;
  readonly last: string;
  readonly minsz: number;
}

function rule<T extends object>(struct: Struct<T>, last: keyof T & string): MinszRule {
  return Object.freeze({ struct: struct as Struct<object>, last, minsz: struct.offsetofend(last) });
}

/** Per ioctl struct, keyed by the struct's C name: `vfioMinsz.vfio_device_info.minsz` is 16. */
export const vfioMinsz = Object.freeze({
  vfio_group_status: rule(vfio_group_status, 'flags'),
  vfio_device_info: rule(vfio_device_info, 'num_irqs'),
  vfio_region_info: rule(vfio_region_info, 'offset'),
  vfio_irq_info: rule(vfio_irq_info, 'count'),
  vfio_irq_set: rule(vfio_irq_set, 'count'),
  vfio_pci_hot_reset_info: rule(vfio_pci_hot_reset_info, 'count'),
  vfio_pci_hot_reset: rule(vfio_pci_hot_reset, 'count'),
  vfio_device_gfx_plane_info: rule(vfio_device_gfx_plane_info, 'dmabuf_id'),
  // The trailing `reserved` is not required: 28, although semantics.md §6.12 says 32.
  vfio_device_ioeventfd: rule(vfio_device_ioeventfd, 'fd'),
  vfio_device_feature: rule(vfio_device_feature, 'flags'),
  // token_uuid_ptr (6.17+) is optional; larger argsz goes through copy_struct_from_user.
  vfio_device_bind_iommufd: rule(vfio_device_bind_iommufd, 'out_devid'),
  vfio_device_attach_iommufd_pt: rule(vfio_device_attach_iommufd_pt, 'pt_id'),
  vfio_device_detach_iommufd_pt: rule(vfio_device_detach_iommufd_pt, 'flags'),
  vfio_precopy_info: rule(vfio_precopy_info, 'dirty_bytes'),
  vfio_iommu_type1_info: rule(vfio_iommu_type1_info, 'iova_pgsizes'),
  vfio_iommu_type1_dma_map: rule(vfio_iommu_type1_dma_map, 'size'),
  vfio_iommu_type1_dma_unmap: rule(vfio_iommu_type1_dma_unmap, 'size'),
  vfio_iommu_type1_dirty_bitmap: rule(vfio_iommu_type1_dirty_bitmap, 'flags'),
  vfio_iommu_spapr_tce_info: rule(vfio_iommu_spapr_tce_info, 'dma32_window_size'),
  vfio_eeh_pe_op: rule(vfio_eeh_pe_op, 'op'),
  vfio_iommu_spapr_register_memory: rule(vfio_iommu_spapr_register_memory, 'size'),
  vfio_iommu_spapr_tce_create: rule(vfio_iommu_spapr_tce_create, 'start_addr'),
  vfio_iommu_spapr_tce_remove: rule(vfio_iommu_spapr_tce_remove, 'start_addr'),
});

/** Larger minimums that apply when a flag asks for an optional tail, keyed by that flag's name. */
export const vfioFlagMinsz = Object.freeze({
  VFIO_DEVICE_ATTACH_PASID: vfio_device_attach_iommufd_pt.offsetofend('pasid'),
  VFIO_DEVICE_DETACH_PASID: vfio_device_detach_iommufd_pt.offsetofend('pasid'),
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: vfio_iommu_type1_dma_unmap.offsetofend('size') + vfio_bitmap.size,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP:
    vfio_iommu_type1_dirty_bitmap.offsetofend('flags') + vfio_iommu_type1_dirty_bitmap_get.size,
});

/** The payload in `vfio_device_feature.data[]` for one feature index. */
export interface VfioFeaturePayload {
  readonly feature: number;
  readonly name: string;
  /** Absent when the payload is not a struct (none, or PCI_VF_TOKEN's raw UUID). */
  readonly struct?: Struct<object>;
  /** vfio_check_feature()'s minsz: data length below it is EINVAL for GET/SET. */
  readonly minsz: number;
}

function payload(
  feature: number,
  name: string,
  struct?: Struct<object>,
  minsz = struct?.size ?? 0,
): VfioFeaturePayload {
  return Object.freeze({ feature, name, ...(struct ? { struct } : {}), minsz });
}

const UUID_SIZE = 16;

/** Indexed by feature index: `vfioFeaturePayloads[VFIO_DEVICE_FEATURE_MIGRATION].minsz` is 8. */
export const vfioFeaturePayloads: readonly VfioFeaturePayload[] = Object.freeze([
  payload(VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, 'PCI_VF_TOKEN', undefined, UUID_SIZE),
  payload(VFIO_DEVICE_FEATURE_MIGRATION, 'MIGRATION', vfio_device_feature_migration),
  payload(VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE, 'MIG_DEVICE_STATE', vfio_device_feature_mig_state),
  payload(VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY, 'LOW_POWER_ENTRY'),
  payload(
    VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
    'LOW_POWER_ENTRY_WITH_WAKEUP',
    vfio_device_low_power_entry_with_wakeup,
  ),
  payload(VFIO_DEVICE_FEATURE_LOW_POWER_EXIT, 'LOW_POWER_EXIT'),
  payload(VFIO_DEVICE_FEATURE_DMA_LOGGING_START, 'DMA_LOGGING_START', vfio_device_feature_dma_logging_control),
  payload(VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP, 'DMA_LOGGING_STOP'),
  payload(VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT, 'DMA_LOGGING_REPORT', vfio_device_feature_dma_logging_report),
  payload(VFIO_DEVICE_FEATURE_MIG_DATA_SIZE, 'MIG_DATA_SIZE', vfio_device_feature_mig_data_size),
  payload(VFIO_DEVICE_FEATURE_BUS_MASTER, 'BUS_MASTER', vfio_device_feature_bus_master),
  payload(VFIO_DEVICE_FEATURE_DMA_BUF, 'DMA_BUF', vfio_device_feature_dma_buf),
]);
