/**
 * Trace decode table for /dev/iommu (and for /dev/vfio/vfio when it is an iommufd in VFIO
 * compat mode): every IOMMU_* command from the uapi command table, with flags and enums named.
 */
import * as u from '../uapi/iommufd.js';
import { peekArray, struct, table, type ArgSpec, type IoctlTable, type TailContext } from './ioctl-decode.js';
import { hex, type FlagNames, type StructStyle } from './struct-format.js';

const MAP_FLAGS: FlagNames = [
  [u.IOMMU_IOAS_MAP_FIXED_IOVA, 'FIXED_IOVA'],
  [u.IOMMU_IOAS_MAP_WRITEABLE, 'WRITEABLE'],
  [u.IOMMU_IOAS_MAP_READABLE, 'READABLE'],
];
const HWPT_ALLOC_FLAGS: FlagNames = [
  [u.IOMMU_HWPT_ALLOC_NEST_PARENT, 'NEST_PARENT'],
  [u.IOMMU_HWPT_ALLOC_DIRTY_TRACKING, 'DIRTY_TRACKING'],
  [u.IOMMU_HWPT_FAULT_ID_VALID, 'FAULT_ID_VALID'],
  [u.IOMMU_HWPT_ALLOC_PASID, 'PASID'],
];
const HW_CAPS: FlagNames = [
  [u.IOMMU_HW_CAP_DIRTY_TRACKING, 'DIRTY_TRACKING'],
  [u.IOMMU_HW_CAP_PCI_PASID_EXEC, 'PCI_PASID_EXEC'],
  [u.IOMMU_HW_CAP_PCI_PASID_PRIV, 'PCI_PASID_PRIV'],
  [u.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED, 'PCI_ATS_NOT_SUPPORTED'],
];
const names = (entries: readonly string[]): ReadonlyMap<number, string> => new Map(entries.map((n, i) => [i, n]));

export const HW_INFO_TYPES = names(['NONE', 'INTEL_VTD', 'ARM_SMMUV3', 'TEGRA241_CMDQV', 'AMD']);

/** IOAS_IOVA_RANGES / ALLOW_IOVAS: the array behind `allowed_iovas`. */
function ranges(ctx: TailContext): string | undefined {
  const addr = BigInt(ctx.value['allowed_iovas'] as bigint);
  // On the way out only the first min(capacity, total) entries were written.
  const n = Math.min(Number(ctx.value['num_iovas']), Number(ctx.before['num_iovas']));
  if (!addr || !n) return undefined;
  const r = u.iommu_iova_range;
  return `ranges=${peekArray(ctx.peek, addr, n, r.size, (b) => {
    const x = r.decode(b);
    return `[${hex(x.start)}, ${hex(x.last)}]`;
  })}`;
}

const style = (s: StructStyle): { style: StructStyle } => ({ style: s });

const ENTRIES: readonly (readonly [number, string, ArgSpec])[] = [
  [u.IOMMU_DESTROY, 'IOMMU_DESTROY', struct(u.iommu_destroy)],
  [u.IOMMU_IOAS_ALLOC, 'IOMMU_IOAS_ALLOC', struct(u.iommu_ioas_alloc)],
  [u.IOMMU_IOAS_ALLOW_IOVAS, 'IOMMU_IOAS_ALLOW_IOVAS', struct(u.iommu_ioas_allow_iovas, { tailIn: ranges })],
  [u.IOMMU_IOAS_COPY, 'IOMMU_IOAS_COPY', struct(u.iommu_ioas_copy, style({ flags: { flags: MAP_FLAGS } }))],
  [u.IOMMU_IOAS_IOVA_RANGES, 'IOMMU_IOAS_IOVA_RANGES', struct(u.iommu_ioas_iova_ranges, { tailOut: ranges })],
  [u.IOMMU_IOAS_MAP, 'IOMMU_IOAS_MAP', struct(u.iommu_ioas_map, style({ flags: { flags: MAP_FLAGS } }))],
  [u.IOMMU_IOAS_UNMAP, 'IOMMU_IOAS_UNMAP', struct(u.iommu_ioas_unmap)],
  [
    u.IOMMU_OPTION,
    'IOMMU_OPTION',
    struct(
      u.iommu_option,
      style({ option_id: { values: names(['RLIMIT_MODE', 'HUGE_PAGES']) }, op: { values: names(['SET', 'GET']) } }),
    ),
  ],
  [
    u.IOMMU_VFIO_IOAS,
    'IOMMU_VFIO_IOAS',
    struct(u.iommu_vfio_ioas, style({ op: { values: names(['GET', 'SET', 'CLEAR']) } })),
  ],
  [
    u.IOMMU_HWPT_ALLOC,
    'IOMMU_HWPT_ALLOC',
    struct(
      u.iommu_hwpt_alloc,
      style({
        flags: { flags: HWPT_ALLOC_FLAGS },
        data_type: { values: names(['NONE', 'VTD_S1', 'ARM_SMMUV3', 'AMD_GUEST']) },
      }),
    ),
  ],
  [
    u.IOMMU_GET_HW_INFO,
    'IOMMU_GET_HW_INFO',
    struct(
      u.iommu_hw_info,
      style({
        flags: { flags: [[u.IOMMU_HW_INFO_FLAG_INPUT_TYPE, 'INPUT_TYPE']] },
        in_data_type: { values: HW_INFO_TYPES },
        out_data_type: { values: HW_INFO_TYPES },
        out_capabilities: { flags: HW_CAPS },
      }),
    ),
  ],
  [
    u.IOMMU_HWPT_SET_DIRTY_TRACKING,
    'IOMMU_HWPT_SET_DIRTY_TRACKING',
    struct(
      u.iommu_hwpt_set_dirty_tracking,
      style({ flags: { flags: [[u.IOMMU_HWPT_DIRTY_TRACKING_ENABLE, 'ENABLE']] } }),
    ),
  ],
  [
    u.IOMMU_HWPT_GET_DIRTY_BITMAP,
    'IOMMU_HWPT_GET_DIRTY_BITMAP',
    struct(
      u.iommu_hwpt_get_dirty_bitmap,
      style({ flags: { flags: [[u.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR, 'NO_CLEAR']] } }),
    ),
  ],
  [
    u.IOMMU_HWPT_INVALIDATE,
    'IOMMU_HWPT_INVALIDATE',
    struct(u.iommu_hwpt_invalidate, style({ data_type: { values: names(['VTD_S1', 'ARM_SMMUV3']) } })),
  ],
  [u.IOMMU_FAULT_QUEUE_ALLOC, 'IOMMU_FAULT_QUEUE_ALLOC', struct(u.iommu_fault_alloc)],
  [u.IOMMU_IOAS_MAP_FILE, 'IOMMU_IOAS_MAP_FILE', struct(u.iommu_ioas_map_file, style({ flags: { flags: MAP_FLAGS } }))],
  [
    u.IOMMU_VIOMMU_ALLOC,
    'IOMMU_VIOMMU_ALLOC',
    struct(u.iommu_viommu_alloc, style({ type: { values: names(['DEFAULT', 'ARM_SMMUV3', 'TEGRA241_CMDQV']) } })),
  ],
  [u.IOMMU_VDEVICE_ALLOC, 'IOMMU_VDEVICE_ALLOC', struct(u.iommu_vdevice_alloc)],
  [u.IOMMU_IOAS_CHANGE_PROCESS, 'IOMMU_IOAS_CHANGE_PROCESS', struct(u.iommu_ioas_change_process)],
  [
    u.IOMMU_VEVENTQ_ALLOC,
    'IOMMU_VEVENTQ_ALLOC',
    struct(u.iommu_veventq_alloc, style({ type: { values: names(['DEFAULT', 'ARM_SMMUV3', 'TEGRA241_CMDQV']) } })),
  ],
  [
    u.IOMMU_HW_QUEUE_ALLOC,
    'IOMMU_HW_QUEUE_ALLOC',
    struct(u.iommu_hw_queue_alloc, style({ type: { values: names(['DEFAULT', 'TEGRA241_CMDQV']) } })),
  ],
  [u.IOMMU_IOAS_NOIOMMU_GET_PA, 'IOMMU_IOAS_NOIOMMU_GET_PA', struct(u.iommu_ioas_noiommu_get_pa)],
];

export const iommufdTable: IoctlTable = table(ENTRIES);

/** Every command of the uapi table must be decodable; checked by the trace tests. */
export const iommufdCommandsCovered = (): string[] =>
  Object.keys(u.iommufdIoctlOps).filter((name) => !ENTRIES.some(([, n]) => n === name));
