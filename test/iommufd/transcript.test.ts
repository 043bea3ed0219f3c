// A replay of oracle/probes/iommufd_probe.c as recorded in custom-iommufd-vtd.txt (real 6.12 on
// QEMU's VT-d without dirty tracking), step by step with the same arguments. Differences, all
// deliberate: IOMMU_TEST_CMD does not exist here (not a CONFIG_IOMMUFD_TEST kernel); GET_HW_INFO
// reports the model's cap/ecap registers and, newest-kernel behaviour, ATS_NOT_SUPPORTED (8).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SyscallError } from '../../src/uapi/errno.js';
import { IO } from '../../src/uapi/ioctl.js';
import * as f from '../../src/uapi/iommufd.js';
import * as v from '../../src/uapi/vfio.js';
import { decodeArray, encodeArray, type EncodeValue, type Struct } from '../../src/uapi/layout.js';
import { Env, FIXED_RW, MAP_RW, U64_MAX } from './helpers.js';

const TOPOLOGY = { iommu: { dirtyTracking: false }, devices: [{ bdf: '0000:00:03.0', model: 'edu', iommuGroup: 2 }] };

test('custom-iommufd-vtd.txt, replayed', () => {
  const env = Env.create(TOPOLOGY);
  const { proc } = env;
  const fd = env.iommufd;
  const lines: string[] = [];
  /** R(): one transcript line, `ret=0` or `errno=NAME`. */
  const R = (what: string, fn: () => unknown): void => {
    try {
      fn();
      lines.push(`${what}: 0`);
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
      lines.push(`${what}: ${err.code}`);
    }
  };
  const raw = <T extends object>(
    target: number,
    request: number,
    struct: Struct<T>,
    value: EncodeValue<T>,
    at = env.scratch,
  ): T => {
    proc.memory.write(at, new Uint8Array(struct.size + 16));
    env.put(struct, value, at);
    proc.ioctl(target, request, at);
    return env.get(struct, at);
  };
  // The probe's malloc'ed buffer sat at an address whose lowest set bit was 4 KiB, which the
  // kernel-chosen IOVAs below depend on; place ours the same way.
  const mem = proc.mmap(0x102000, 3, 0x22);
  const buf = mem & 0x1000n ? mem : mem + 0x1000n;
  proc.memory.write(
    buf,
    Uint8Array.from({ length: 0x100000 }, (_, i) => (i * 13 + 1) & 0xff),
  );
  const map = (ioas: number, flags: number, va: bigint, length: number, iova: bigint): bigint =>
    raw(fd, f.IOMMU_IOAS_MAP, f.iommu_ioas_map, {
      size: 40,
      flags,
      ioas_id: ioas,
      user_va: va,
      length: BigInt(length),
      iova,
    }).iova;
  const unmap = (ioas: number, iova: bigint, length: bigint): bigint =>
    raw(fd, f.IOMMU_IOAS_UNMAP, f.iommu_ioas_unmap, { size: 24, ioas_id: ioas, iova, length }).length;
  const destroy = (id: number) => raw(fd, f.IOMMU_DESTROY, f.iommu_destroy, { size: 8, id });
  const ioasAlloc = () => raw(fd, f.IOMMU_IOAS_ALLOC, f.iommu_ioas_alloc, { size: 12 }).out_ioas_id;
  const ranges = (ioas: number) => {
    let probe: f.IommuIoasIovaRanges | undefined;
    R('IOAS_IOVA_RANGES num_iovas=0', () => {
      try {
        raw(fd, f.IOMMU_IOAS_IOVA_RANGES, f.iommu_ioas_iova_ranges, { size: 32, ioas_id: ioas });
      } finally {
        probe = env.get(f.iommu_ioas_iova_ranges);
      }
    });
    const at = env.scratch + 1024n;
    const out = raw(fd, f.IOMMU_IOAS_IOVA_RANGES, f.iommu_ioas_iova_ranges, {
      size: 32,
      ioas_id: ioas,
      num_iovas: 16,
      allowed_iovas: at,
    });
    const list = decodeArray(f.iommu_iova_range, proc.memory.read(at, 16 * out.num_iovas), 0, out.num_iovas);
    return { num: probe!.num_iovas, align: probe!.out_iova_alignment, list: list.map((r) => [r.start, r.last]) };
  };

  // == core IOAS semantics (no device)
  const big = new Uint8Array(20);
  new DataView(big.buffer).setUint32(0, 20, true);
  big[16] = 7;
  proc.memory.write(env.scratch, big);
  R('IOAS_ALLOC size=sizeof+8 with nonzero tail', () => proc.ioctl(fd, f.IOMMU_IOAS_ALLOC, env.scratch));
  R('IOAS_ALLOC size=4', () => raw(fd, f.IOMMU_IOAS_ALLOC, f.iommu_ioas_alloc, { size: 4 }));
  R('IOAS_ALLOC flags=1', () => raw(fd, f.IOMMU_IOAS_ALLOC, f.iommu_ioas_alloc, { size: 12, flags: 1 }));
  R('bogus nr 0x3bff', () => proc.ioctl(fd, IO(';', 0xff), 0));
  const ioas = ioasAlloc();
  assert.equal(ioas, 1);
  assert.deepEqual(ranges(ioas), { num: 1, align: 1n, list: [[0n, U64_MAX]] });
  R('MAP FIXED 0x100000 0x2000', () => map(ioas, FIXED_RW, buf, 0x2000, 0x100000n));
  R('MAP FIXED overlapping 0x101000', () => map(ioas, FIXED_RW, buf + 0x4000n, 0x1000, 0x101000n));
  assert.equal(map(ioas, MAP_RW, buf + 0x8000n, 0x3000, 0n), 0x1000n);
  assert.equal(map(ioas, MAP_RW, buf + 0x8000n, 0x3000, 0n), 0x4000n);
  R('MAP FIXED unaligned iova', () => map(ioas, FIXED_RW, buf, 0x1000, 0x200800n));
  R('MAP FIXED unaligned va', () => map(ioas, FIXED_RW, buf + 0x10n, 0x1000, 0x200000n));
  R('MAP FIXED len=0x800', () => map(ioas, FIXED_RW, buf, 0x800, 0x200000n));
  R('MAP FIXED len=0', () => map(ioas, FIXED_RW, buf, 0, 0x200000n));
  R('MAP FIXED no R/W', () => map(ioas, f.IOMMU_IOAS_MAP_FIXED_IOVA, buf, 0x1000, 0x200000n));
  R('MAP FIXED bogus flag 0x100', () => map(ioas, FIXED_RW | 0x100, buf, 0x1000, 0x200000n));
  R('MAP FIXED va=NULL', () => map(ioas, FIXED_RW, 0n, 0x1000, 0x300000n));
  R('MAP FIXED 4 pages @0x400000', () => map(ioas, FIXED_RW, buf + 0x10000n, 0x4000, 0x400000n));
  R('UNMAP middle page', () => unmap(ioas, 0x401000n, 0x1000n));
  R('UNMAP first page', () => unmap(ioas, 0x400000n, 0x1000n));
  R('UNMAP nothing mapped', () => unmap(ioas, 0x900000n, 0x1000n));
  assert.equal(unmap(ioas, 0x400000n, 0x4000n), 0x4000n);
  const ioas2 = ioasAlloc();
  assert.equal(ioas2, 2);
  const copy = {
    size: 40,
    flags: FIXED_RW,
    dst_ioas_id: ioas2,
    src_ioas_id: ioas,
    length: 0x2000n,
    dst_iova: 0x100000n,
    src_iova: 0x100000n,
  };
  R('IOAS_COPY 0x100000+0x2000 -> ioas2', () => raw(fd, f.IOMMU_IOAS_COPY, f.iommu_ioas_copy, copy));
  R('IOAS_COPY src partly unmapped', () =>
    raw(fd, f.IOMMU_IOAS_COPY, f.iommu_ioas_copy, { ...copy, src_iova: 0x101000n, dst_iova: 0x500000n }),
  );
  proc.memory.write(env.scratch + 2048n, encodeArray(f.iommu_iova_range, [{ start: 0x100000n, last: 0x1fffffn }]));
  R('ALLOW_IOVAS on ioas2', () =>
    raw(fd, f.IOMMU_IOAS_ALLOW_IOVAS, f.iommu_ioas_allow_iovas, {
      size: 24,
      ioas_id: ioas2,
      num_iovas: 1,
      allowed_iovas: env.scratch + 2048n,
    }),
  );
  assert.deepEqual(ranges(ioas2), { num: 1, align: 1n, list: [[0n, U64_MAX]] });
  R('MAP FIXED outside allowed', () => map(ioas2, FIXED_RW, buf, 0x1000, 0x800000n));
  R('DESTROY ioas2', () => destroy(ioas2));
  R('DESTROY ioas2 again', () => destroy(ioas2));
  assert.equal(raw(fd, f.IOMMU_OPTION, f.iommu_option, { size: 24, option_id: 0, op: 1 }).val64, 0n);
  assert.equal(raw(fd, f.IOMMU_OPTION, f.iommu_option, { size: 24, option_id: 1, op: 1, object_id: ioas }).val64, 1n);
  R('OPTION GET option 99', () => raw(fd, f.IOMMU_OPTION, f.iommu_option, { size: 24, option_id: 99, op: 1 }));
  R('VFIO_IOAS GET (none yet)', () => raw(fd, f.IOMMU_VFIO_IOAS, f.iommu_vfio_ioas, { size: 12, op: 0 }));
  R('VFIO_IOAS SET', () => raw(fd, f.IOMMU_VFIO_IOAS, f.iommu_vfio_ioas, { size: 12, op: 1, ioas_id: ioas }));
  assert.equal(raw(fd, f.IOMMU_VFIO_IOAS, f.iommu_vfio_ioas, { size: 12, op: 0 }).ioas_id, ioas);
  R('VFIO_IOAS CLEAR', () => raw(fd, f.IOMMU_VFIO_IOAS, f.iommu_vfio_ioas, { size: 12, op: 2 }));
  assert.equal(unmap(ioas, 0n, U64_MAX), 0xa800n);
  R('UNMAP iova=0 len=0', () => unmap(ioas, 0n, 0n));
  R('DESTROY 9999', () => destroy(9999));

  assert.deepEqual(lines, [
    'IOAS_ALLOC size=sizeof+8 with nonzero tail: E2BIG',
    'IOAS_ALLOC size=4: EINVAL',
    'IOAS_ALLOC flags=1: EOPNOTSUPP',
    'bogus nr 0x3bff: ENOTTY',
    'IOAS_IOVA_RANGES num_iovas=0: EMSGSIZE',
    'MAP FIXED 0x100000 0x2000: 0',
    'MAP FIXED overlapping 0x101000: EEXIST',
    'MAP FIXED unaligned iova: 0',
    'MAP FIXED unaligned va: EEXIST',
    'MAP FIXED len=0x800: 0',
    'MAP FIXED len=0: EINVAL',
    'MAP FIXED no R/W: EINVAL',
    'MAP FIXED bogus flag 0x100: EOPNOTSUPP',
    'MAP FIXED va=NULL: 0',
    'MAP FIXED 4 pages @0x400000: 0',
    'UNMAP middle page: ENOENT',
    'UNMAP first page: ENOENT',
    'UNMAP nothing mapped: ENOENT',
    'IOAS_COPY 0x100000+0x2000 -> ioas2: 0',
    'IOAS_COPY src partly unmapped: ENOENT',
    'ALLOW_IOVAS on ioas2: 0',
    'IOAS_IOVA_RANGES num_iovas=0: EMSGSIZE',
    'MAP FIXED outside allowed: 0',
    'DESTROY ioas2: 0',
    'DESTROY ioas2 again: ENOENT',
    'OPTION GET option 99: EOPNOTSUPP',
    'VFIO_IOAS GET (none yet): ENODEV',
    'VFIO_IOAS SET: 0',
    'VFIO_IOAS CLEAR: 0',
    'UNMAP iova=0 len=0: EINVAL',
    'DESTROY 9999: ENOENT',
  ]);
  lines.length = 0;

  // == VFIO cdev + iommufd with a real (emulated) PCI device
  assert.deepEqual(proc.readdir('/sys/bus/pci/devices/0000:00:03.0/vfio-dev'), ['vfio0']);
  const dev = proc.open('/dev/vfio/devices/vfio0');
  R('GET_INFO before bind', () => raw(dev, v.VFIO_DEVICE_GET_INFO, v.vfio_device_info, { argsz: 24 }));
  const devid = raw(dev, v.VFIO_DEVICE_BIND_IOMMUFD, v.vfio_device_bind_iommufd, { argsz: 24, iommufd: fd }).out_devid;
  assert.equal(devid, 2);
  R('BIND again', () => raw(dev, v.VFIO_DEVICE_BIND_IOMMUFD, v.vfio_device_bind_iommufd, { argsz: 24, iommufd: fd }));
  proc.open('/dev/vfio/devices/vfio0');
  const info = raw(fd, f.IOMMU_GET_HW_INFO, f.iommu_hw_info, {
    size: 40,
    dev_id: devid,
    data_len: 24,
    data_uptr: env.scratch + 2048n,
  });
  const vtd = f.iommu_hw_info_vtd.decode(proc.memory.read(env.scratch + 2048n, 24));
  assert.deepEqual(
    [info.out_data_type, info.data_len, info.out_max_pasid_log2, info.out_capabilities, vtd.flags],
    [1, 24, 0, BigInt(f.IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED), 1],
  );
  const di = raw(dev, v.VFIO_DEVICE_GET_INFO, v.vfio_device_info, { argsz: 24 });
  assert.deepEqual([di.flags, di.num_regions, di.num_irqs], [2, 9, 5]);
  const ioas3 = ioasAlloc();
  assert.equal(ioas3, 3);
  assert.equal(
    raw(dev, v.VFIO_DEVICE_ATTACH_IOMMUFD_PT, v.vfio_device_attach_iommufd_pt, { argsz: 16, pt_id: ioas3 }).pt_id,
    4,
  );
  assert.deepEqual(ranges(ioas3), {
    num: 2,
    align: 0x1000n,
    list: [
      [0n, 0xfedfffffn],
      [0xfef00000n, 0x7fffffffffn],
    ],
  });
  R('MAP FIXED in MSI window', () => map(ioas3, FIXED_RW, buf, 0x1000, 0xfee00000n));
  const A = buf;
  const B = buf + 0x20000n;
  proc.memory.write(B, new Uint8Array(0x1000));
  map(ioas3, FIXED_RW, A, 0x1000, 0x100000n);
  map(ioas3, FIXED_RW, B, 0x1000, 0x200000n);
  const bar0 = raw(dev, v.VFIO_DEVICE_GET_REGION_INFO, v.vfio_region_info, { argsz: 32, index: 0 }).offset;
  const config = raw(dev, v.VFIO_DEVICE_GET_REGION_INFO, v.vfio_region_info, {
    argsz: 32,
    index: v.VFIO_PCI_CONFIG_REGION_INDEX,
  }).offset;
  const cmd = proc.pread(dev, 2, config + 4n);
  cmd[0] = cmd[0]! | 6;
  proc.pwrite(dev, cmd, config + 4n);
  const le = (n: number, value: bigint) => {
    const out = new Uint8Array(n);
    const view = new DataView(out.buffer);
    if (n === 8) view.setBigUint64(0, value, true);
    else view.setUint32(0, Number(value), true);
    return out;
  };
  assert.deepEqual(proc.pread(dev, 4, bar0), le(4, 0x010000edn));
  const eduDma = (src: bigint, dst: bigint, n: bigint, command: bigint) => {
    proc.pwrite(dev, le(8, src), bar0 + 0x80n);
    proc.pwrite(dev, le(8, dst), bar0 + 0x88n);
    proc.pwrite(dev, le(8, n), bar0 + 0x90n);
    proc.pwrite(dev, le(8, command), bar0 + 0x98n);
    for (let i = 0; i < 300; i++) if (!(proc.pread(dev, 4, bar0 + 0x98n)[0]! & 1)) return i;
    return -1;
  };
  assert.notEqual(eduDma(0x100000n, 0x40000n, 0x800n, 1n), -1);
  assert.notEqual(eduDma(0x40000n, 0x200000n, 0x800n, 3n), -1);
  assert.deepEqual(proc.memory.read(B, 0x800), proc.memory.read(A, 0x800));
  const hwpt = raw(fd, f.IOMMU_HWPT_ALLOC, f.iommu_hwpt_alloc, { size: 48, dev_id: devid, pt_id: ioas3 }).out_hwpt_id;
  assert.equal(hwpt, 5);
  R('HWPT_ALLOC DIRTY_TRACKING', () =>
    raw(fd, f.IOMMU_HWPT_ALLOC, f.iommu_hwpt_alloc, { size: 48, flags: 2, dev_id: devid, pt_id: ioas3 }),
  );
  R('HWPT_ALLOC NEST_PARENT', () =>
    raw(fd, f.IOMMU_HWPT_ALLOC, f.iommu_hwpt_alloc, { size: 48, flags: 1, dev_id: devid, pt_id: ioas3 }),
  );
  R('ATTACH hwpt (replace)', () =>
    raw(dev, v.VFIO_DEVICE_ATTACH_IOMMUFD_PT, v.vfio_device_attach_iommufd_pt, { argsz: 16, pt_id: hwpt }),
  );
  proc.memory.write(B, new Uint8Array(0x1000));
  eduDma(0x40000n, 0x200000n, 0x800n, 3n);
  assert.deepEqual(proc.memory.read(B, 0x800), proc.memory.read(A, 0x800));
  R('DESTROY ioas in use', () => destroy(ioas3));
  R('DESTROY hwpt attached', () => destroy(hwpt));
  assert.equal(unmap(ioas3, 0x200000n, 0x1000n), 0x1000n);
  R('DETACH', () => raw(dev, v.VFIO_DEVICE_DETACH_IOMMUFD_PT, v.vfio_device_detach_iommufd_pt, { argsz: 12 }));
  R('DETACH again', () => raw(dev, v.VFIO_DEVICE_DETACH_IOMMUFD_PT, v.vfio_device_detach_iommufd_pt, { argsz: 12 }));
  R('DESTROY hwpt after detach', () => destroy(hwpt));
  R('DESTROY devid', () => destroy(devid));
  proc.close(dev);
  R('DESTROY ioas', () => destroy(ioas3));
  proc.close(fd);
  assert.deepEqual(lines, [
    'GET_INFO before bind: EINVAL',
    'BIND again: EINVAL',
    'IOAS_IOVA_RANGES num_iovas=0: EMSGSIZE',
    'MAP FIXED in MSI window: EINVAL',
    'HWPT_ALLOC DIRTY_TRACKING: EOPNOTSUPP',
    'HWPT_ALLOC NEST_PARENT: EOPNOTSUPP',
    'ATTACH hwpt (replace): 0',
    'DESTROY ioas in use: EBUSY',
    'DESTROY hwpt attached: EBUSY',
    'DETACH: 0',
    'DETACH again: 0',
    'DESTROY hwpt after detach: 0',
    'DESTROY devid: EBUSY',
    'DESTROY ioas: 0',
  ]);
  env.leakCheck();
});
