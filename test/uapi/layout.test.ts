import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { decodeArray, defineStruct, encodeArray } from '../../src/uapi/layout.js';
import * as vfio from '../../src/uapi/vfio.js';
import * as iommufd from '../../src/uapi/iommufd.js';
import { CapChainBuilder, CapChainError, findCap, vfioInfoCaps, walkCapChain } from '../../src/uapi/capability.js';
import * as uapi from '../../src/uapi/index.js';

const {
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_cap_iova_range,
  vfio_iommu_type1_info_cap_migration,
  vfio_iommu_type1_info_dma_avail,
  vfio_iova_range,
} = vfio;

const hex = (n: number): string => '0x' + n.toString(16);

// ---- codecs ----

test('encode/decode round trip of a plain ioctl struct', () => {
  const s = vfio.vfio_iommu_type1_dma_map;
  assert.equal(s.size, 32);
  const value = { argsz: 32, flags: 3, vaddr: 0x7f0000001000n, iova: 0xffff_ffff_ffff_f000n, size: 0x1000n };
  const bytes = s.encode(value);
  assert.equal(bytes.length, 32);
  assert.deepEqual(s.decode(bytes), value);
  assert.deepEqual([...bytes.subarray(0, 8)], [32, 0, 0, 0, 3, 0, 0, 0]);
});

test('embedded structs, unions, signed fields and element arrays round trip', () => {
  const mig = vfio_iommu_type1_info_cap_migration;
  const migValue = {
    header: { id: 2, version: 1, next: 56 },
    flags: 0,
    pgsize_bitmap: 0x1000n,
    max_dirty_bitmap_size: 1n << 28n,
  };
  assert.deepEqual(mig.decode(mig.encode(migValue)), migValue);
  assert.equal(mig.offsetof('pgsize_bitmap'), 16);

  const dep = vfio.vfio_pci_dependent_device;
  const d = dep.decode(dep.encode({ devid: vfio.VFIO_PCI_DEVID_NOT_OWNED, segment: 1, bus: 2, devfn: 0x18 }));
  assert.equal(d.group_id, 0xffffffff, 'union members alias');
  assert.equal(d.devid, vfio.VFIO_PCI_DEVID_NOT_OWNED);
  assert.equal(dep.size, 8);

  const mig_state = vfio.vfio_device_feature_mig_state;
  assert.equal(mig_state.decode(mig_state.encode({ device_state: 2, data_fd: -1 })).data_fd, -1);

  const smmu = iommufd.iommu_hw_info_arm_smmuv3;
  const smmuValue = { flags: 1, __reserved: 0, idr: [1, 2, 3, 4, 5, 0xffffffff], iidr: 7, aidr: 8 };
  assert.deepEqual(smmu.decode(smmu.encode(smmuValue)), smmuValue);
  assert.equal(smmu.offsetof('iidr'), 32);

  const ste = iommufd.iommu_hwpt_arm_smmuv3;
  assert.deepEqual(ste.decode(ste.encode({ ste: [1n, 1n << 63n] })).ste, [1n, 1n << 63n]);

  const info = iommufd.iommu_hw_info;
  const decoded = info.decode(info.encode({ size: 40, out_data_type: 1, __reserved: new Uint8Array([1, 2, 3]) }));
  assert.equal(decoded.in_data_type, 1);
  assert.deepEqual([...decoded.__reserved], [1, 2, 3]);
});

test('decode zero-fills past the end of a short buffer, including a cut field', () => {
  const s = vfio.vfio_region_info;
  const full = s.encode({ argsz: 32, flags: 7, index: 7, cap_offset: 0, size: 0x100n, offset: 0x70000000000n });
  const short = s.decode(full.subarray(0, 20));
  assert.deepEqual(short, { argsz: 32, flags: 7, index: 7, cap_offset: 0, size: 0x100n, offset: 0n });
  const cut = s.decode(full.subarray(0, 17));
  assert.equal(cut.size, 0n, 'only the low byte of size survives, and it is 0x00');
  const cut2 = s.decode(s.encode({ size: 0x1234n }).subarray(0, 17));
  assert.equal(cut2.size, 0x34n);
  const info = iommufd.iommu_hw_info.decode(new Uint8Array(30).fill(0xff));
  assert.deepEqual([...info.__reserved], [0xff, 0, 0]);
  assert.equal(info.out_capabilities, 0n);
  assert.deepEqual(
    iommufd.iommu_hw_info_arm_smmuv3.decode(new Uint8Array(12).fill(1)).idr,
    [0x01010101, 0, 0, 0, 0, 0],
  );
});

test('encode leaves unspecified fields zero and writes at an offset', () => {
  const buf = new Uint8Array(40).fill(0xaa);
  vfio.vfio_irq_info.encode({ argsz: 16, index: 2 }, buf, 8);
  assert.equal(buf[7], 0xaa);
  assert.deepEqual(vfio.vfio_irq_info.decode(buf, 8), { argsz: 16, flags: 0xaaaaaaaa, index: 2, count: 0xaaaaaaaa });
  const fresh = vfio.vfio_irq_info.encode({ index: 2 });
  assert.deepEqual(vfio.vfio_irq_info.decode(fresh), { argsz: 0, flags: 0, index: 2, count: 0 });
});

test('explicitly typed defineStruct still works, and arrays of elements', () => {
  interface Pair {
    a: number;
    b: bigint;
  }
  const pair = defineStruct<Pair>('pair', [
    ['a', 'u32'],
    ['b', 'u64'],
  ]);
  assert.equal(pair.size, 16);
  assert.equal(pair.align, 8);
  const ranges = [
    { start: 0n, end: 0xfedfffffn },
    { start: 0xfef00000n, end: 0x7fffffffffn },
  ];
  const bytes = encodeArray(vfio_iova_range, ranges);
  assert.equal(bytes.length, 32);
  assert.deepEqual(decodeArray(vfio_iova_range, bytes, 0, 2), ranges);
});

test('flexible array members are not fields but set alignment, size and their own offset', () => {
  assert.deepEqual({ ...vfio.vfio_irq_set.flexible }, { name: 'data', type: 'u8', offset: 20, elementSize: 1 });
  assert.equal(vfio.vfio_irq_set.size, 20);
  const dmaBuf = vfio.vfio_device_feature_dma_buf;
  assert.deepEqual([dmaBuf.size, dmaBuf.align, dmaBuf.flexible?.offset], [16, 8, 16]);
  assert.equal(dmaBuf.flexible?.struct, vfio.vfio_region_dma_range);
  assert.ok(!dmaBuf.fields.some((f) => f.name === 'dma_ranges'));
  // C: struct { u32 a; struct vfio_iova_range r[]; } is 8 bytes, 8-aligned, r at 8.
  const padded = defineStruct('padded', [['a', 'u32']], ['r', vfio_iova_range]);
  assert.deepEqual([padded.size, padded.align, padded.flexible?.offset], [8, 8, 8]);
  // C: struct { u64 a; u32 b; u8 c[]; } puts c at 12 inside the 16-byte sizeof.
  const tail = defineStruct(
    'tail',
    [
      ['a', 'u64'],
      ['b', 'u32'],
    ],
    ['c', 'u8'],
  );
  assert.deepEqual([tail.size, tail.flexible?.offset], [16, 12]);
});

test('offsetof / offsetofend follow the C layout', () => {
  assert.equal(vfio.vfio_device_gfx_plane_info.offsetof('dmabuf_id'), 56);
  assert.equal(vfio.vfio_device_gfx_plane_info.offsetof('region_index'), 56);
  assert.equal(vfio.vfio_device_gfx_plane_info.offsetofend('reserved'), 64);
  assert.equal(vfio.vfio_eeh_pe_op.offsetof('err'), 16);
  assert.equal(vfio.vfio_iommu_type1_dirty_bitmap_get.offsetofend('bitmap'), 40);
  assert.throws(() => vfio.vfio_irq_set.offsetof('data' as never), /no field data/);
});

test('struct sizes listed in semantics.md', () => {
  const sizes: [keyof typeof vfio, number][] = [
    ['vfio_group_status', 8],
    ['vfio_device_info', 24],
    ['vfio_region_info', 32],
    ['vfio_irq_info', 16],
    ['vfio_irq_set', 20],
    ['vfio_pci_hot_reset_info', 12],
    ['vfio_pci_dependent_device', 8],
    ['vfio_pci_hot_reset', 12],
    ['vfio_device_ioeventfd', 32],
    ['vfio_device_feature', 8],
    ['vfio_device_feature_mig_state', 8],
    ['vfio_device_feature_migration', 8],
    ['vfio_device_feature_dma_logging_control', 24],
    ['vfio_device_feature_dma_logging_range', 16],
    ['vfio_device_feature_dma_logging_report', 32],
    ['vfio_device_feature_mig_data_size', 8],
    ['vfio_precopy_info', 24],
    ['vfio_device_bind_iommufd', 24],
    ['vfio_device_attach_iommufd_pt', 16],
    ['vfio_device_detach_iommufd_pt', 12],
    ['vfio_iommu_type1_info', 24],
    ['vfio_iommu_type1_dma_map', 32],
    ['vfio_iommu_type1_dma_unmap', 24],
    ['vfio_bitmap', 24],
    ['vfio_iommu_type1_dirty_bitmap', 8],
    ['vfio_iommu_type1_dirty_bitmap_get', 40],
    ['vfio_iommu_type1_info_cap_iova_range', 16],
    ['vfio_iova_range', 16],
    ['vfio_iommu_type1_info_cap_migration', 32],
    ['vfio_iommu_type1_info_dma_avail', 12],
  ];
  for (const [name, size] of sizes) assert.equal((vfio[name] as { size: number }).size, size, name);
  assert.equal(iommufd.iommu_hwpt_pgfault.size, 40);
  assert.equal(iommufd.iommu_hwpt_page_response.size, 8);
});

// ---- minimum sizes ----

test('VFIO minsz table', () => {
  const expected: Record<keyof typeof vfio.vfioMinsz, number> = {
    vfio_group_status: 8,
    vfio_device_info: 16,
    vfio_region_info: 32,
    vfio_irq_info: 16,
    vfio_irq_set: 20,
    vfio_pci_hot_reset_info: 12,
    vfio_pci_hot_reset: 12,
    vfio_device_gfx_plane_info: 60,
    vfio_device_ioeventfd: 28,
    vfio_device_feature: 8,
    vfio_device_bind_iommufd: 16,
    vfio_device_attach_iommufd_pt: 12,
    vfio_device_detach_iommufd_pt: 8,
    vfio_precopy_info: 24,
    vfio_iommu_type1_info: 16,
    vfio_iommu_type1_dma_map: 32,
    vfio_iommu_type1_dma_unmap: 24,
    vfio_iommu_type1_dirty_bitmap: 8,
    vfio_iommu_spapr_tce_info: 16,
    vfio_eeh_pe_op: 12,
    vfio_iommu_spapr_register_memory: 24,
    vfio_iommu_spapr_tce_create: 40,
    vfio_iommu_spapr_tce_remove: 16,
  };
  const actual = Object.fromEntries(Object.entries(vfio.vfioMinsz).map(([k, r]) => [k, r.minsz]));
  assert.deepEqual(actual, expected);
  for (const [key, rule] of Object.entries(vfio.vfioMinsz)) assert.equal(rule.struct.name, key);
  assert.deepEqual(
    { ...vfio.vfioFlagMinsz },
    {
      VFIO_DEVICE_ATTACH_PASID: 16,
      VFIO_DEVICE_DETACH_PASID: 12,
      VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP: 48,
      VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP: 48,
    },
  );
});

test('VFIO_DEVICE_FEATURE payload minimums (semantics.md §3.1)', () => {
  const payloads = vfio.vfioFeaturePayloads;
  payloads.forEach((p, i) => assert.equal(p.feature, i));
  const minsz = Object.fromEntries(payloads.map((p) => [p.name, p.minsz]));
  assert.deepEqual(minsz, {
    PCI_VF_TOKEN: 16,
    MIGRATION: 8,
    MIG_DEVICE_STATE: 8,
    LOW_POWER_ENTRY: 0,
    LOW_POWER_ENTRY_WITH_WAKEUP: 8,
    LOW_POWER_EXIT: 0,
    DMA_LOGGING_START: 24,
    DMA_LOGGING_STOP: 0,
    DMA_LOGGING_REPORT: 32,
    MIG_DATA_SIZE: 8,
    BUS_MASTER: 4,
    DMA_BUF: 16,
  });
});

test('iommufd min_size / size per command (semantics.md §7.1)', () => {
  const expected: Record<keyof typeof iommufd.iommufdIoctlOps, [number, number]> = {
    IOMMU_DESTROY: [8, 8],
    IOMMU_FAULT_QUEUE_ALLOC: [16, 16],
    IOMMU_GET_HW_INFO: [32, 40],
    IOMMU_HW_QUEUE_ALLOC: [40, 40],
    IOMMU_HWPT_ALLOC: [24, 48],
    IOMMU_HWPT_GET_DIRTY_BITMAP: [48, 48],
    IOMMU_HWPT_INVALIDATE: [32, 32],
    IOMMU_HWPT_SET_DIRTY_TRACKING: [16, 16],
    IOMMU_IOAS_ALLOC: [12, 12],
    IOMMU_IOAS_ALLOW_IOVAS: [24, 24],
    IOMMU_IOAS_CHANGE_PROCESS: [8, 8],
    IOMMU_IOAS_COPY: [40, 40],
    IOMMU_IOAS_IOVA_RANGES: [32, 32],
    IOMMU_IOAS_MAP: [40, 40],
    IOMMU_IOAS_MAP_FILE: [40, 40],
    // Not in semantics.md's list (newer than its kernel table).
    IOMMU_IOAS_NOIOMMU_GET_PA: [40, 40],
    IOMMU_IOAS_UNMAP: [24, 24],
    IOMMU_OPTION: [24, 24],
    IOMMU_VDEVICE_ALLOC: [24, 24],
    IOMMU_VEVENTQ_ALLOC: [28, 32],
    IOMMU_VFIO_IOAS: [12, 12],
    IOMMU_VIOMMU_ALLOC: [24, 40],
  };
  const actual = Object.fromEntries(Object.entries(iommufd.iommufdIoctlOps).map(([k, o]) => [k, [o.minSize, o.size]]));
  assert.deepEqual(actual, expected);
  for (const [name, o] of Object.entries(iommufd.iommufdIoctlOps)) {
    assert.equal(o.name, name);
    assert.equal(o.ioctl, iommufd[name as keyof typeof iommufd]);
    assert.equal(iommufd.iommufdIoctlOp(o.ioctl), o);
  }
  assert.equal(iommufd.iommufdIoctlOp(0x3b7f), undefined);
  assert.equal(iommufd.iommufdIoctlOp(0x3b96), undefined);
});

// ---- ioctl numbers ----

test('every VFIO ioctl number (semantics.md §0)', () => {
  const pinned: Record<string, number> = {
    VFIO_GET_API_VERSION: 0x3b64,
    VFIO_CHECK_EXTENSION: 0x3b65,
    VFIO_SET_IOMMU: 0x3b66,
    VFIO_GROUP_GET_STATUS: 0x3b67,
    VFIO_GROUP_SET_CONTAINER: 0x3b68,
    VFIO_GROUP_UNSET_CONTAINER: 0x3b69,
    VFIO_GROUP_GET_DEVICE_FD: 0x3b6a,
    VFIO_DEVICE_GET_INFO: 0x3b6b,
    VFIO_DEVICE_GET_REGION_INFO: 0x3b6c,
    VFIO_DEVICE_GET_IRQ_INFO: 0x3b6d,
    VFIO_DEVICE_SET_IRQS: 0x3b6e,
    VFIO_DEVICE_RESET: 0x3b6f,
    VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: 0x3b70,
    VFIO_DEVICE_PCI_HOT_RESET: 0x3b71,
    VFIO_DEVICE_QUERY_GFX_PLANE: 0x3b72,
    VFIO_DEVICE_GET_GFX_DMABUF: 0x3b73,
    VFIO_DEVICE_IOEVENTFD: 0x3b74,
    VFIO_DEVICE_FEATURE: 0x3b75,
    VFIO_DEVICE_BIND_IOMMUFD: 0x3b76,
    VFIO_DEVICE_ATTACH_IOMMUFD_PT: 0x3b77,
    VFIO_DEVICE_DETACH_IOMMUFD_PT: 0x3b78,
    VFIO_MIG_GET_PRECOPY_INFO: 0x3b79,
    VFIO_IOMMU_GET_INFO: 0x3b70,
    VFIO_IOMMU_MAP_DMA: 0x3b71,
    VFIO_IOMMU_UNMAP_DMA: 0x3b72,
    VFIO_IOMMU_ENABLE: 0x3b73,
    VFIO_IOMMU_DISABLE: 0x3b74,
    VFIO_IOMMU_DIRTY_PAGES: 0x3b75,
    VFIO_IOMMU_SPAPR_TCE_GET_INFO: 0x3b70,
    VFIO_IOMMU_SPAPR_REGISTER_MEMORY: 0x3b75,
    VFIO_IOMMU_SPAPR_UNREGISTER_MEMORY: 0x3b76,
    VFIO_IOMMU_SPAPR_TCE_CREATE: 0x3b77,
    VFIO_IOMMU_SPAPR_TCE_REMOVE: 0x3b78,
    VFIO_EEH_PE_OP: 0x3b79,
  };
  for (const [name, value] of Object.entries(pinned)) {
    assert.equal(hex(vfio[name as keyof typeof vfio] as number), hex(value), name);
  }
  // No other export has a value in the ioctl range, so this finds every declared VFIO ioctl.
  const exported = Object.entries(vfio).filter(([, v]) => typeof v === 'number' && v >= 0x3b64 && v <= 0x3b7f);
  assert.deepEqual(exported.map(([k]) => k).sort(), Object.keys(pinned).sort());
});

test('every iommufd ioctl number (0x3b80..0x3b95)', () => {
  const pinned: Record<string, number> = {
    IOMMU_DESTROY: 0x3b80,
    IOMMU_IOAS_ALLOC: 0x3b81,
    IOMMU_IOAS_ALLOW_IOVAS: 0x3b82,
    IOMMU_IOAS_COPY: 0x3b83,
    IOMMU_IOAS_IOVA_RANGES: 0x3b84,
    IOMMU_IOAS_MAP: 0x3b85,
    IOMMU_IOAS_UNMAP: 0x3b86,
    IOMMU_OPTION: 0x3b87,
    IOMMU_VFIO_IOAS: 0x3b88,
    IOMMU_HWPT_ALLOC: 0x3b89,
    IOMMU_GET_HW_INFO: 0x3b8a,
    IOMMU_HWPT_SET_DIRTY_TRACKING: 0x3b8b,
    IOMMU_HWPT_GET_DIRTY_BITMAP: 0x3b8c,
    IOMMU_HWPT_INVALIDATE: 0x3b8d,
    IOMMU_FAULT_QUEUE_ALLOC: 0x3b8e,
    IOMMU_IOAS_MAP_FILE: 0x3b8f,
    IOMMU_VIOMMU_ALLOC: 0x3b90,
    IOMMU_VDEVICE_ALLOC: 0x3b91,
    IOMMU_IOAS_CHANGE_PROCESS: 0x3b92,
    IOMMU_VEVENTQ_ALLOC: 0x3b93,
    IOMMU_HW_QUEUE_ALLOC: 0x3b94,
    IOMMU_IOAS_NOIOMMU_GET_PA: 0x3b95,
  };
  for (const [name, value] of Object.entries(pinned)) {
    assert.equal(hex(iommufd[name as keyof typeof iommufd] as number), hex(value), name);
  }
  assert.deepEqual(Object.keys(iommufd.iommufdIoctlOps).sort(), Object.keys(pinned).sort());
});

test('the numeric collisions between fd types are all declared', () => {
  assert.equal(vfio.VFIO_IOMMU_GET_INFO, vfio.VFIO_DEVICE_GET_PCI_HOT_RESET_INFO);
  assert.equal(vfio.VFIO_IOMMU_MAP_DMA, vfio.VFIO_DEVICE_PCI_HOT_RESET);
  assert.equal(vfio.VFIO_IOMMU_UNMAP_DMA, vfio.VFIO_DEVICE_QUERY_GFX_PLANE);
  assert.equal(vfio.VFIO_IOMMU_DIRTY_PAGES, vfio.VFIO_DEVICE_FEATURE);
  assert.equal(vfio.VFIO_PCI_INDEX_TO_OFFSET(vfio.VFIO_PCI_CONFIG_REGION_INDEX), 0x70000000000n);
  assert.equal(vfio.VFIO_PCI_OFFSET_TO_INDEX(0x70000000123n), 7);
  assert.equal(0x70000000123n & vfio.VFIO_PCI_OFFSET_MASK, 0x123n);
});

// ---- capability chains ----

// VFIO_IOMMU_GET_INFO on Debian 6.12 with the edu device (oracle/results/probe-612-edu.txt).
const PROBE_612_EDU_TYPE1_INFO = `
0000: 78 00 00 00 03 00 00 00 00 10 20 40 00 00 00 00
0010: 18 00 00 00 00 00 00 00 02 00 01 00 38 00 00 00
0020: 00 00 00 00 00 00 00 00 00 10 00 00 00 00 00 00
0030: 00 00 00 10 00 00 00 00 03 00 01 00 48 00 00 00
0040: ff ff 00 00 00 00 00 00 01 00 01 00 00 00 00 00
0050: 02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
0060: ff ff df fe 00 00 00 00 00 00 f0 fe 00 00 00 00
0070: ff ff ff ff 7f 00 00 00
`;

function parseHexDump(dump: string): Uint8Array {
  const bytes: number[] = [];
  for (const line of dump.split('\n')) {
    const m = /^\s*([0-9a-f]{4}):((?: [0-9a-f]{2})+)\s*$/.exec(line);
    if (m)
      bytes.push(
        ...m[2]!
          .trim()
          .split(' ')
          .map((b) => parseInt(b, 16)),
      );
  }
  return new Uint8Array(bytes);
}

function buildProbeInfo(): Uint8Array {
  const chain = new CapChainBuilder(vfio_iommu_type1_info.size);
  assert.equal(
    chain.add(vfio.VFIO_IOMMU_TYPE1_INFO_CAP_MIGRATION, 1, vfio_iommu_type1_info_cap_migration, {
      flags: 0,
      pgsize_bitmap: 0x1000n,
      max_dirty_bitmap_size: 1n << 28n,
    }),
    24,
  );
  assert.equal(
    chain.add(vfio.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, 1, vfio_iommu_type1_info_dma_avail, { avail: 65535 }),
    56,
  );
  const ranges = encodeArray(vfio_iova_range, [
    { start: 0n, end: 0xfedfffffn },
    { start: 0xfef00000n, end: 0x7fffffffffn },
  ]);
  assert.equal(
    chain.add(
      vfio.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
      1,
      vfio_iommu_type1_info_cap_iova_range,
      { nr_iovas: 2 },
      ranges,
    ),
    72,
  );
  const built = chain.build();
  assert.equal(built.capOffset, 24);
  assert.equal(built.size, 96);
  assert.equal(built.totalSize, 120);

  const info = new Uint8Array(built.totalSize);
  vfio_iommu_type1_info.encode(
    {
      argsz: built.totalSize,
      flags: vfio.VFIO_IOMMU_INFO_PGSIZES | vfio.VFIO_IOMMU_INFO_CAPS,
      iova_pgsizes: 0x40201000n,
      cap_offset: built.capOffset,
    },
    info,
  );
  info.set(built.bytes, vfio_iommu_type1_info.size);
  return info;
}

test('capability builder reproduces the real kernel type1 info chain byte for byte', () => {
  assert.deepEqual([...buildProbeInfo()], [...parseHexDump(PROBE_612_EDU_TYPE1_INFO)]);
});

test('the embedded dump matches the oracle transcript, when present', (t) => {
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
  const transcript = resolve(root, '../shared/oracle/results/probe-612-edu.txt');
  if (!existsSync(transcript)) return t.skip(`${transcript} not present`);
  const text = readFileSync(transcript, 'utf8');
  const at = text.indexOf('    raw:', text.indexOf('== IOMMU_GET_INFO'));
  assert.ok(at > 0, 'raw dump not found in transcript');
  const dump = parseHexDump(text.slice(at, text.indexOf('\n\n', at)));
  assert.deepEqual([...dump], [...parseHexDump(PROBE_612_EDU_TYPE1_INFO)]);
});

test('capability walker reads the real chain', () => {
  const info = parseHexDump(PROBE_612_EDU_TYPE1_INFO);
  const head = vfio_iommu_type1_info.decode(info);
  const caps = [...walkCapChain(info, head.cap_offset, vfio_iommu_type1_info.size)];
  assert.deepEqual(caps, [
    { id: 2, version: 1, offset: 24, next: 56 },
    { id: 3, version: 1, offset: 56, next: 72 },
    { id: 1, version: 1, offset: 72, next: 0 },
  ]);
  assert.deepEqual(
    caps.map((c) => vfioInfoCaps.iommuType1.get(c.id)?.name),
    ['MIGRATION', 'DMA_AVAIL', 'IOVA_RANGE'],
  );
  const iova = findCap(info, head.cap_offset, vfio.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
  assert.ok(iova);
  const cap = vfio_iommu_type1_info_cap_iova_range.decode(info, iova.offset);
  assert.equal(cap.nr_iovas, 2);
  const ranges = decodeArray(
    vfio_iova_range,
    info,
    iova.offset + vfio_iommu_type1_info_cap_iova_range.size,
    cap.nr_iovas,
  );
  assert.deepEqual(ranges[1], { start: 0xfef00000n, end: 0x7fffffffffn });
  assert.equal(vfio_iommu_type1_info_dma_avail.decode(info, 56).avail, 65535);
  assert.equal(findCap(info, head.cap_offset, 99), undefined);
});

test('capability builder pads every capability to 8 and handles header-only and empty chains', () => {
  const chain = new CapChainBuilder(vfio.vfio_region_info.size);
  assert.equal(chain.addBytes(vfio.VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, 1), 32);
  assert.equal(chain.addBytes(0x77, 2, new Uint8Array([1, 2, 3])), 40);
  const built = chain.build();
  assert.equal(built.size, 8 + 16);
  assert.deepEqual([...built.bytes.subarray(0, 8)], [3, 0, 1, 0, 40, 0, 0, 0]);
  assert.deepEqual([...built.bytes.subarray(8, 24)], [0x77, 0, 2, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0]);
  const empty = new CapChainBuilder(24).build();
  assert.deepEqual([empty.size, empty.capOffset, empty.totalSize], [0, 0, 24]);
  assert.throws(() => new CapChainBuilder(24).add(1, 1, vfio.vfio_iova_range as never), /does not start with/);
});

test('capability walker accepts pre-6.6 packed chains (12-byte DMA_AVAIL)', () => {
  const info = new Uint8Array(24 + 12 + 16);
  vfio.vfio_info_cap_header.encode({ id: 3, version: 1, next: 36 }, info, 24);
  vfio.vfio_info_cap_header.encode({ id: 1, version: 1, next: 0 }, info, 36);
  assert.deepEqual(
    [...walkCapChain(info, 24)].map((c) => c.offset),
    [24, 36],
  );
});

test('capability walker terminates on loops and rejects out-of-range offsets', () => {
  const info = new Uint8Array(64);
  vfio.vfio_info_cap_header.encode({ id: 1, version: 1, next: 32 }, info, 24);
  vfio.vfio_info_cap_header.encode({ id: 2, version: 1, next: 24 }, info, 32);
  const seen: number[] = [];
  assert.throws(
    () => {
      for (const cap of walkCapChain(info, 24)) seen.push(cap.offset);
    },
    (e: unknown) => e instanceof CapChainError && e.fault === 'loop' && e.offset === 24,
  );
  assert.deepEqual(seen, [24, 32]);

  vfio.vfio_info_cap_header.encode({ id: 1, version: 1, next: 40 }, info, 40);
  assert.throws(() => [...walkCapChain(info, 40)], /loops back to offset 40/);

  vfio.vfio_info_cap_header.encode({ id: 1, version: 1, next: 60 }, info, 24);
  assert.throws(
    () => [...walkCapChain(info, 24)],
    (e: unknown) => e instanceof CapChainError && e.fault === 'out-of-range' && e.offset === 60,
  );
  assert.throws(() => [...walkCapChain(info, 8, 24)], /out of range/);
  assert.throws(() => [...walkCapChain(info, 0xffffffff)], /out of range/);
  assert.deepEqual([...walkCapChain(info, 0)], []);
});

test('the uapi index re-exports every module without ambiguity', () => {
  assert.equal(uapi.vfio_info_cap_header, vfio.vfio_info_cap_header);
  assert.equal(uapi.IOMMU_DESTROY, iommufd.IOMMU_DESTROY);
  assert.equal(uapi.VFIO_GET_API_VERSION, vfio.VFIO_GET_API_VERSION);
  assert.equal(typeof uapi.walkCapChain, 'function');
  assert.equal(typeof uapi.defineStruct, 'function');
  assert.equal(typeof uapi.IO, 'function');
  assert.equal(uapi.Errno.EINVAL, 22);
});
