/**
 * Trace decode tables for the VFIO fds: container (/dev/vfio/vfio, type1), group
 * (/dev/vfio/N), device (group-obtained or cdev) and migration data fds.
 */
import type { Struct } from '../uapi/layout.js';
import * as v from '../uapi/vfio.js';
import { vfioInfoCaps, walkCapChain, type CapKind } from '../uapi/capability.js';
import { NONE, peekArray, struct, table, type IoctlTable, type TailContext } from './ioctl-decode.js';
import { flagsToString, formatStruct, hex, type FlagNames, type StructStyle } from './struct-format.js';

const EXTENSIONS = new Map<number, string>([
  [v.VFIO_TYPE1_IOMMU, 'VFIO_TYPE1_IOMMU'],
  [v.VFIO_SPAPR_TCE_IOMMU, 'VFIO_SPAPR_TCE_IOMMU'],
  [v.VFIO_TYPE1v2_IOMMU, 'VFIO_TYPE1v2_IOMMU'],
  [v.VFIO_DMA_CC_IOMMU, 'VFIO_DMA_CC_IOMMU'],
  [v.VFIO_EEH, 'VFIO_EEH'],
  [v.__VFIO_RESERVED_TYPE1_NESTING_IOMMU, '__VFIO_RESERVED_TYPE1_NESTING_IOMMU'],
  [v.VFIO_SPAPR_TCE_v2_IOMMU, 'VFIO_SPAPR_TCE_v2_IOMMU'],
  [v.VFIO_NOIOMMU_IOMMU, 'VFIO_NOIOMMU_IOMMU'],
  [v.VFIO_UNMAP_ALL, 'VFIO_UNMAP_ALL'],
  [v.VFIO_UPDATE_VADDR, 'VFIO_UPDATE_VADDR'],
]);

const flags = (names: FlagNames): StructStyle => ({ flags: { flags: names } });

const GROUP_FLAGS: FlagNames = [
  [v.VFIO_GROUP_FLAGS_VIABLE, 'VIABLE'],
  [v.VFIO_GROUP_FLAGS_CONTAINER_SET, 'CONTAINER_SET'],
];
const INFO_FLAGS: FlagNames = [
  [v.VFIO_IOMMU_INFO_PGSIZES, 'PGSIZES'],
  [v.VFIO_IOMMU_INFO_CAPS, 'CAPS'],
];
const MAP_FLAGS: FlagNames = [
  [v.VFIO_DMA_MAP_FLAG_READ, 'READ'],
  [v.VFIO_DMA_MAP_FLAG_WRITE, 'WRITE'],
  [v.VFIO_DMA_MAP_FLAG_VADDR, 'VADDR'],
];
const UNMAP_FLAGS: FlagNames = [
  [v.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, 'GET_DIRTY_BITMAP'],
  [v.VFIO_DMA_UNMAP_FLAG_ALL, 'ALL'],
  [v.VFIO_DMA_UNMAP_FLAG_VADDR, 'VADDR'],
];
const DIRTY_FLAGS: FlagNames = [
  [v.VFIO_IOMMU_DIRTY_PAGES_FLAG_START, 'START'],
  [v.VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP, 'STOP'],
  [v.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP, 'GET_BITMAP'],
];
const DEVICE_FLAGS: FlagNames = [
  [v.VFIO_DEVICE_FLAGS_RESET, 'RESET'],
  [v.VFIO_DEVICE_FLAGS_PCI, 'PCI'],
  [v.VFIO_DEVICE_FLAGS_PLATFORM, 'PLATFORM'],
  [v.VFIO_DEVICE_FLAGS_AMBA, 'AMBA'],
  [v.VFIO_DEVICE_FLAGS_CCW, 'CCW'],
  [v.VFIO_DEVICE_FLAGS_AP, 'AP'],
  [v.VFIO_DEVICE_FLAGS_FSL_MC, 'FSL_MC'],
  [v.VFIO_DEVICE_FLAGS_CAPS, 'CAPS'],
  [v.VFIO_DEVICE_FLAGS_CDX, 'CDX'],
];
export const REGION_FLAGS: FlagNames = [
  [v.VFIO_REGION_INFO_FLAG_READ, 'READ'],
  [v.VFIO_REGION_INFO_FLAG_WRITE, 'WRITE'],
  [v.VFIO_REGION_INFO_FLAG_MMAP, 'MMAP'],
  [v.VFIO_REGION_INFO_FLAG_CAPS, 'CAPS'],
];
export const IRQ_INFO_FLAGS: FlagNames = [
  [v.VFIO_IRQ_INFO_EVENTFD, 'EVENTFD'],
  [v.VFIO_IRQ_INFO_MASKABLE, 'MASKABLE'],
  [v.VFIO_IRQ_INFO_AUTOMASKED, 'AUTOMASKED'],
  [v.VFIO_IRQ_INFO_NORESIZE, 'NORESIZE'],
];
const IRQ_SET_FLAGS: FlagNames = [
  [v.VFIO_IRQ_SET_DATA_NONE, 'DATA_NONE'],
  [v.VFIO_IRQ_SET_DATA_BOOL, 'DATA_BOOL'],
  [v.VFIO_IRQ_SET_DATA_EVENTFD, 'DATA_EVENTFD'],
  [v.VFIO_IRQ_SET_ACTION_MASK, 'ACTION_MASK'],
  [v.VFIO_IRQ_SET_ACTION_UNMASK, 'ACTION_UNMASK'],
  [v.VFIO_IRQ_SET_ACTION_TRIGGER, 'ACTION_TRIGGER'],
];
const HOT_RESET_FLAGS: FlagNames = [
  [v.VFIO_PCI_HOT_RESET_FLAG_DEV_ID, 'DEV_ID'],
  [v.VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED, 'DEV_ID_OWNED'],
];
const GFX_FLAGS: FlagNames = [
  [v.VFIO_GFX_PLANE_TYPE_PROBE, 'PROBE'],
  [v.VFIO_GFX_PLANE_TYPE_DMABUF, 'DMABUF'],
  [v.VFIO_GFX_PLANE_TYPE_REGION, 'REGION'],
];
const IOEVENTFD_FLAGS: FlagNames = [
  [v.VFIO_DEVICE_IOEVENTFD_8, '8'],
  [v.VFIO_DEVICE_IOEVENTFD_16, '16'],
  [v.VFIO_DEVICE_IOEVENTFD_32, '32'],
  [v.VFIO_DEVICE_IOEVENTFD_64, '64'],
];

export const IRQ_INDEX_NAMES = ['INTX', 'MSI', 'MSIX', 'ERR', 'REQ'];
export const REGION_INDEX_NAMES = ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'CONFIG', 'VGA'];
const MIG_STATES = ['ERROR', 'STOP', 'RUNNING', 'STOP_COPY', 'RESUMING', 'RUNNING_P2P', 'PRE_COPY', 'PRE_COPY_P2P'];

/** Renders one capability payload from the INFO buffer. */
function formatCap(info: Uint8Array, offset: number, kind: CapKind | undefined, id: number): string {
  if (!kind) return `{id=${id}}`;
  if (!kind.struct) return kind.name;
  const body = kind.struct as Struct<Record<string, unknown>>;
  const value = body.decode(info, offset);
  const fields = formatStruct(body, value).replace(/^\{header=\{[^}]*\}(, )?/, '{');
  let tail = '';
  if (kind.name === 'IOVA_RANGE') {
    const n = Math.min(Number(value['nr_iovas']), 16);
    const ranges: string[] = [];
    for (let i = 0; i < n; i++) {
      const at = offset + body.size + i * v.vfio_iova_range.size;
      if (at + v.vfio_iova_range.size > info.length) break;
      const r = v.vfio_iova_range.decode(info, at);
      ranges.push(`[${hex(r.start)}, ${hex(r.end)}]`);
    }
    tail = `, iova_ranges=[${ranges.join(', ')}]`;
  }
  return `${kind.name}${fields.slice(0, -1)}${tail}}`;
}

/** The capability chain behind an INFO struct, read after the call (`caps=[...]`). */
function capsTail(caps: ReadonlyMap<number, CapKind>) {
  return (ctx: TailContext): string | undefined => {
    const capOffset = Number(ctx.value['cap_offset'] ?? 0);
    const argsz = Number(ctx.value['argsz'] ?? 0);
    if (!capOffset || argsz > 1 << 16) return undefined;
    const info = ctx.peek(ctx.addr, argsz);
    if (!info) return undefined;
    const parts: string[] = [];
    try {
      for (const cap of walkCapChain(info, capOffset)) {
        parts.push(formatCap(info, cap.offset, caps.get(cap.id), cap.id));
        if (parts.length >= 16) break;
      }
    } catch {
      parts.push('<bad chain>');
    }
    return `caps=[${parts.join(', ')}]`;
  };
}

/** vfio_irq_set.data[]: eventfds or bools, per the DATA flag. */
function irqSetData(ctx: TailContext): string | undefined {
  const f = Number(ctx.value['flags']);
  const count = Number(ctx.value['count']);
  const at = ctx.addr + BigInt(v.vfio_irq_set.size);
  if (f & v.VFIO_IRQ_SET_DATA_EVENTFD) {
    return `data=${peekArray(ctx.peek, at, count, 4, (b) => String(new DataView(b.buffer, b.byteOffset).getInt32(0, true)))}`;
  }
  if (f & v.VFIO_IRQ_SET_DATA_BOOL) return `data=${peekArray(ctx.peek, at, count, 1, (b) => String(b[0]))}`;
  return undefined;
}

/** vfio_pci_hot_reset_info.devices[] after the call. */
function hotResetDevices(ctx: TailContext): string | undefined {
  const count = Number(ctx.value['count']);
  const room = Math.floor(
    (Number(ctx.value['argsz']) - v.vfio_pci_hot_reset_info.size) / v.vfio_pci_dependent_device.size,
  );
  const at = ctx.addr + BigInt(v.vfio_pci_hot_reset_info.size);
  const dev = v.vfio_pci_dependent_device;
  return `devices=${peekArray(ctx.peek, at, Math.max(0, Math.min(count, room)), dev.size, (b) => {
    const d = dev.decode(b);
    return `{id=${d.group_id}, ${d.segment.toString(16).padStart(4, '0')}:${d.bus.toString(16).padStart(2, '0')}:${(d.devfn >> 3).toString(16).padStart(2, '0')}.${d.devfn & 7}}`;
  })}`;
}

function hotResetFds(ctx: TailContext): string | undefined {
  const at = ctx.addr + BigInt(v.vfio_pci_hot_reset.size);
  const count = Number(ctx.value['count']);
  return `group_fds=${peekArray(ctx.peek, at, count, 4, (b) => String(new DataView(b.buffer, b.byteOffset).getInt32(0, true)))}`;
}

/** The vfio_bitmap that follows UNMAP_DMA with GET_DIRTY_BITMAP. */
function unmapBitmap(ctx: TailContext): string | undefined {
  if (!(Number(ctx.value['flags']) & v.VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP)) return undefined;
  const b = ctx.peek(ctx.addr + BigInt(v.vfio_iommu_type1_dma_unmap.size), v.vfio_bitmap.size);
  return b ? `bitmap=${formatStruct(v.vfio_bitmap, v.vfio_bitmap.decode(b))}` : undefined;
}

function dirtyBitmapGet(ctx: TailContext): string | undefined {
  if (!(Number(ctx.value['flags']) & v.VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP)) return undefined;
  const s = v.vfio_iommu_type1_dirty_bitmap_get;
  const b = ctx.peek(ctx.addr + BigInt(v.vfio_iommu_type1_dirty_bitmap.size), s.size);
  return b ? `data=${formatStruct(s, s.decode(b))}` : undefined;
}

const FEATURE_NAMES = new Map(v.vfioFeaturePayloads.map((p) => [p.feature, p.name]));

export function featureFlags(value: unknown): string {
  const f = Number(value);
  const ops = flagsToString(f & ~v.VFIO_DEVICE_FEATURE_MASK, [
    [v.VFIO_DEVICE_FEATURE_GET, 'GET'],
    [v.VFIO_DEVICE_FEATURE_SET, 'SET'],
    [v.VFIO_DEVICE_FEATURE_PROBE, 'PROBE'],
  ]);
  const index = f & v.VFIO_DEVICE_FEATURE_MASK;
  const name = FEATURE_NAMES.get(index) ?? String(index);
  return ops === '0' ? name : `${ops}|${name}`;
}

/** The feature payload in data[], decoded per feature index. */
function featurePayload(ctx: TailContext): string | undefined {
  const f = Number(ctx.value['flags']);
  const payload = v.vfioFeaturePayloads.find((p) => p.feature === (f & v.VFIO_DEVICE_FEATURE_MASK));
  const length = Number(ctx.value['argsz']) - v.vfio_device_feature.size;
  if (!payload?.struct || length <= 0 || f & v.VFIO_DEVICE_FEATURE_PROBE) return undefined;
  const s = payload.struct as Struct<Record<string, unknown>>;
  const b = ctx.peek(ctx.addr + BigInt(v.vfio_device_feature.size), Math.min(length, s.size));
  if (!b) return undefined;
  const style: StructStyle =
    payload.feature === v.VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE
      ? { device_state: { values: new Map(MIG_STATES.map((n, i) => [i, n])) } }
      : {};
  return `data=${formatStruct(s, s.decode(b), undefined, style, Math.min(length, s.size))}`;
}

export const containerTable: IoctlTable = table([
  [v.VFIO_GET_API_VERSION, 'VFIO_GET_API_VERSION', NONE],
  [v.VFIO_CHECK_EXTENSION, 'VFIO_CHECK_EXTENSION', { type: 'int', values: EXTENSIONS }],
  [v.VFIO_SET_IOMMU, 'VFIO_SET_IOMMU', { type: 'int', values: EXTENSIONS }],
  [
    v.VFIO_IOMMU_GET_INFO,
    'VFIO_IOMMU_GET_INFO',
    struct(v.vfio_iommu_type1_info, { style: flags(INFO_FLAGS), tailOut: capsTail(vfioInfoCaps.iommuType1) }),
  ],
  [v.VFIO_IOMMU_MAP_DMA, 'VFIO_IOMMU_MAP_DMA', struct(v.vfio_iommu_type1_dma_map, { style: flags(MAP_FLAGS) })],
  [
    v.VFIO_IOMMU_UNMAP_DMA,
    'VFIO_IOMMU_UNMAP_DMA',
    struct(v.vfio_iommu_type1_dma_unmap, { style: flags(UNMAP_FLAGS), tailIn: unmapBitmap }),
  ],
  [v.VFIO_IOMMU_ENABLE, 'VFIO_IOMMU_ENABLE', NONE],
  [v.VFIO_IOMMU_DISABLE, 'VFIO_IOMMU_DISABLE', NONE],
  [
    v.VFIO_IOMMU_DIRTY_PAGES,
    'VFIO_IOMMU_DIRTY_PAGES',
    struct(v.vfio_iommu_type1_dirty_bitmap, { style: flags(DIRTY_FLAGS), tailIn: dirtyBitmapGet }),
  ],
  [
    v.VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY,
    'VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY',
    struct(v.vfio_iommu_spapr_register_memory),
  ],
  [v.VFIO_IOMMU_SPAPR_TCE_CREATE, 'VFIO_IOMMU_SPAPR_TCE_CREATE', struct(v.vfio_iommu_spapr_tce_create)],
  [v.VFIO_IOMMU_SPAPR_TCE_REMOVE, 'VFIO_IOMMU_SPAPR_TCE_REMOVE', struct(v.vfio_iommu_spapr_tce_remove)],
  [v.VFIO_EEH_PE_OP, 'VFIO_EEH_PE_OP', struct(v.vfio_eeh_pe_op)],
]);

export const groupTable: IoctlTable = table([
  [v.VFIO_GROUP_GET_STATUS, 'VFIO_GROUP_GET_STATUS', struct(v.vfio_group_status, { style: flags(GROUP_FLAGS) })],
  [v.VFIO_GROUP_SET_CONTAINER, 'VFIO_GROUP_SET_CONTAINER', { type: 's32ptr' }],
  [v.VFIO_GROUP_UNSET_CONTAINER, 'VFIO_GROUP_UNSET_CONTAINER', NONE],
  [v.VFIO_GROUP_GET_DEVICE_FD, 'VFIO_GROUP_GET_DEVICE_FD', { type: 'string' }],
]);

export const deviceTable: IoctlTable = table([
  [
    v.VFIO_DEVICE_GET_INFO,
    'VFIO_DEVICE_GET_INFO',
    struct(v.vfio_device_info, { style: flags(DEVICE_FLAGS), tailOut: capsTail(vfioInfoCaps.device) }),
  ],
  [
    v.VFIO_DEVICE_GET_REGION_INFO,
    'VFIO_DEVICE_GET_REGION_INFO',
    struct(v.vfio_region_info, { style: flags(REGION_FLAGS), tailOut: capsTail(vfioInfoCaps.region) }),
  ],
  [
    v.VFIO_DEVICE_GET_IRQ_INFO,
    'VFIO_DEVICE_GET_IRQ_INFO',
    struct(v.vfio_irq_info, {
      style: { flags: { flags: IRQ_INFO_FLAGS }, index: { values: new Map(IRQ_INDEX_NAMES.map((n, i) => [i, n])) } },
    }),
  ],
  [
    v.VFIO_DEVICE_SET_IRQS,
    'VFIO_DEVICE_SET_IRQS',
    struct(v.vfio_irq_set, {
      style: { flags: { flags: IRQ_SET_FLAGS }, index: { values: new Map(IRQ_INDEX_NAMES.map((n, i) => [i, n])) } },
      tailIn: irqSetData,
    }),
  ],
  [v.VFIO_DEVICE_RESET, 'VFIO_DEVICE_RESET', NONE],
  [
    v.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
    'VFIO_DEVICE_GET_PCI_HOT_RESET_INFO',
    struct(v.vfio_pci_hot_reset_info, { style: flags(HOT_RESET_FLAGS), tailOut: hotResetDevices }),
  ],
  [v.VFIO_DEVICE_PCI_HOT_RESET, 'VFIO_DEVICE_PCI_HOT_RESET', struct(v.vfio_pci_hot_reset, { tailIn: hotResetFds })],
  [
    v.VFIO_DEVICE_QUERY_GFX_PLANE,
    'VFIO_DEVICE_QUERY_GFX_PLANE',
    struct(v.vfio_device_gfx_plane_info, { style: flags(GFX_FLAGS) }),
  ],
  [v.VFIO_DEVICE_GET_GFX_DMABUF, 'VFIO_DEVICE_GET_GFX_DMABUF', { type: 'u32ptr' }],
  [
    v.VFIO_DEVICE_IOEVENTFD,
    'VFIO_DEVICE_IOEVENTFD',
    struct(v.vfio_device_ioeventfd, { style: flags(IOEVENTFD_FLAGS) }),
  ],
  [
    v.VFIO_DEVICE_FEATURE,
    'VFIO_DEVICE_FEATURE',
    struct(v.vfio_device_feature, {
      style: { flags: { render: featureFlags } },
      tailIn: featurePayload,
      tailOut: featurePayload,
    }),
  ],
  [
    v.VFIO_DEVICE_BIND_IOMMUFD,
    'VFIO_DEVICE_BIND_IOMMUFD',
    struct(v.vfio_device_bind_iommufd, { style: flags([[v.VFIO_DEVICE_BIND_FLAG_TOKEN, 'TOKEN']]) }),
  ],
  [
    v.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
    'VFIO_DEVICE_ATTACH_IOMMUFD_PT',
    struct(v.vfio_device_attach_iommufd_pt, { style: flags([[v.VFIO_DEVICE_ATTACH_PASID, 'PASID']]) }),
  ],
  [
    v.VFIO_DEVICE_DETACH_IOMMUFD_PT,
    'VFIO_DEVICE_DETACH_IOMMUFD_PT',
    struct(v.vfio_device_detach_iommufd_pt, { style: flags([[v.VFIO_DEVICE_DETACH_PASID, 'PASID']]) }),
  ],
]);

export const migrationTable: IoctlTable = table([
  [v.VFIO_MIG_GET_PRECOPY_INFO, 'VFIO_MIG_GET_PRECOPY_INFO', struct(v.vfio_precopy_info)],
]);
