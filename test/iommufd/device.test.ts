// Devices through cdevs (semantics.md 3, 4, 7.11): access gating, BIND_IOMMUFD, ATTACH/DETACH,
// replace, reserved regions, group/cdev exclusion, DMA ownership, IOMMU_GET_HW_INFO.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IOMMU_DESTROY,
  IOMMU_GET_HW_INFO,
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED,
  IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HWPT_ALLOC,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_IOVA_RANGES,
  iommu_destroy,
  iommu_hw_info,
  iommu_hw_info_vtd,
  iommu_hwpt_alloc,
  iommu_ioas_allow_iovas,
  iommu_ioas_iova_ranges,
  iommu_iova_range,
} from '../../src/uapi/iommufd.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_DETACH_PASID,
  VFIO_DEVICE_GET_INFO,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
  vfio_device_info,
} from '../../src/uapi/vfio.js';
import { decodeArray, encodeArray } from '../../src/uapi/layout.js';
import { Env, PAGE, U64_MAX, leakCheck } from './helpers.js';

const MSI_START = 0xfee00000n;
const MSI_LAST = 0xfeefffffn;
const APERTURE_LAST = (1n << 39n) - 1n;

function ranges(env: Env, ioas: number): { start: bigint; last: bigint }[] {
  const at = env.scratch + 2048n;
  const out = env.call(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, {
    ioas_id: ioas,
    num_iovas: 8,
    allowed_iovas: at,
  });
  return decodeArray(iommu_iova_range, env.proc.memory.read(at, 16 * out.num_iovas), 0, out.num_iovas);
}

function destroy(env: Env, id: number): void {
  env.call(IOMMU_DESTROY, iommu_destroy, { id });
}

test('a cdev fd refuses everything but BIND before it is bound (EINVAL)', () => {
  const env = Env.create();
  const cdev = env.openCdev(0);
  assert.throws(() => env.vcall(cdev, VFIO_DEVICE_GET_INFO, vfio_device_info, {}), { code: 'EINVAL' });
  assert.throws(() => env.attach(cdev, 1), { code: 'EINVAL' });
  assert.throws(() => env.detach(cdev), { code: 'EINVAL' });
  assert.throws(() => env.proc.pread(cdev, 4, 0), { code: 'EINVAL' });
  assert.throws(() => env.proc.pwrite(cdev, new Uint8Array(4), 0), { code: 'EINVAL' });
  assert.throws(() => env.proc.mmap(4096, 3, 1, cdev, 0), { code: 'EINVAL' });
  env.leakCheck();
});

test('BIND_IOMMUFD: argsz, growth rules, fd and flag checks, in the kernel order', () => {
  const env = Env.create();
  const cdev = env.openCdev(0);
  const bind = (value: Parameters<typeof vfio_device_bind_iommufd.encode>[0]) =>
    env.vcall(cdev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, value);
  assert.throws(() => bind({ argsz: 15, iommufd: env.iommufd }), { code: 'EINVAL' });
  // A larger struct must be zero past the 24 known bytes.
  const grown = new Uint8Array(32);
  const view = new DataView(grown.buffer);
  view.setUint32(0, 32, true);
  view.setInt32(8, env.iommufd, true);
  grown[28] = 1;
  env.proc.memory.write(env.scratch, grown);
  assert.throws(() => env.proc.ioctl(cdev, VFIO_DEVICE_BIND_IOMMUFD, env.scratch), { code: 'E2BIG' });
  assert.throws(() => bind({ iommufd: -1 }), { code: 'EINVAL' });
  assert.throws(() => bind({ iommufd: -2 }), { code: 'EINVAL' });
  assert.throws(() => bind({ iommufd: env.iommufd, flags: 2 }), { code: 'EINVAL' });
  // vfio-pci only takes a token for SR-IOV devices; edu is not one.
  assert.throws(() => bind({ iommufd: env.iommufd, flags: VFIO_DEVICE_BIND_FLAG_TOKEN, token_uuid_ptr: env.scratch }), {
    code: 'EINVAL',
  });
  assert.throws(() => bind({ iommufd: 77 }), { code: 'EBADF' });
  const efd = env.proc.eventfd();
  assert.throws(() => bind({ iommufd: efd }), { code: 'EBADFD' });
  // The 16-byte pre-6.17 struct still works; out_devid is the device object id.
  env.ioasAlloc();
  assert.equal(bind({ argsz: 16, iommufd: env.iommufd }).out_devid, 2);
  assert.throws(() => bind({ iommufd: env.iommufd }), { code: 'EINVAL' });
  // A second fd on the same device cannot bind too (open_count != 0).
  const second = env.openCdev(0);
  assert.throws(() => env.bind(second), { code: 'EINVAL' });
  env.leakCheck();
});

test('group and cdev exclude each other (EBUSY both ways); a group-obtained fd cannot BIND', () => {
  const env = Env.create();
  const group = env.proc.open('/dev/vfio/3');
  const cdev = env.openCdev(0);
  assert.throws(() => env.bind(cdev), { code: 'EBUSY' });
  // Through the group with an iommufd container the device fd is bound automatically.
  env.proc.memory.write(env.scratch + 512n, new Uint8Array(new Int32Array([env.iommufd]).buffer));
  env.proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.scratch + 512n);
  env.proc.memory.write(env.scratch + 1024n, new Uint8Array([...Buffer.from('0000:00:03.0'), 0]));
  const dfd = env.proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env.scratch + 1024n);
  assert.throws(() => env.bind(dfd), { code: 'EINVAL' });
  assert.throws(() => env.attach(dfd, 1), { code: 'ENOTTY' });
  env.proc.close(dfd);
  env.proc.close(group);
  env.bind(cdev);
  assert.throws(() => env.proc.open('/dev/vfio/3'), { code: 'EBUSY' });
  env.proc.close(cdev);
  env.proc.close(env.proc.open('/dev/vfio/3'));
  env.leakCheck();
});

test('DMA ownership: siblings bind to one context only (EPERM); a host-driver sibling blocks (EPERM)', () => {
  const env = Env.create();
  const a = env.openCdev(2);
  const b = env.openCdev(3);
  env.bind(a);
  const other = env.proc.open('/dev/iommu');
  assert.throws(() => env.bind(b, other), { code: 'EPERM' });
  env.bind(b);
  env.proc.close(a);
  env.proc.close(b);
  env.bind(env.openCdev(3), other);
  env.leakCheck();

  const hostDriver = Env.create({
    devices: [
      { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 7 },
      { bdf: '0000:00:03.1', model: 'edu', iommuGroup: 7, driver: 'host' },
    ],
  });
  assert.throws(() => hostDriver.bind(hostDriver.openCdev(0)), { code: 'EPERM' });
  hostDriver.leakCheck();
});

test('ATTACH: argsz, flags, PASID refused, unknown and wrong-type pt_id; auto HWPT id returned', () => {
  const env = Env.create();
  const cdev = env.openCdev(0);
  const devid = env.bind(cdev);
  const ioas = env.ioasAlloc();
  const attach = (value: Parameters<typeof vfio_device_attach_iommufd_pt.encode>[0]) =>
    env.vcall(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, value);
  assert.throws(() => attach({ argsz: 11, pt_id: ioas }), { code: 'EINVAL' });
  assert.throws(() => attach({ flags: 2, pt_id: ioas }), { code: 'EINVAL' });
  assert.throws(() => attach({ flags: VFIO_DEVICE_ATTACH_PASID, pt_id: ioas, pasid: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => attach({ argsz: 12, flags: VFIO_DEVICE_ATTACH_PASID, pt_id: ioas }), { code: 'EOPNOTSUPP' });
  assert.throws(() => attach({ pt_id: 0xffffffff }), { code: 'ENOENT' });
  assert.throws(() => attach({ pt_id: devid }), { code: 'EINVAL' });
  // The transcript: device 1, ioas 2 (here), the automatic HWPT takes the next id.
  assert.equal(attach({ pt_id: ioas }).pt_id, 3);
  assert.deepEqual(ranges(env, ioas), [
    { start: 0n, last: MSI_START - 1n },
    { start: MSI_LAST + 1n, last: APERTURE_LAST },
  ]);
  const detach = (value: Parameters<typeof vfio_device_detach_iommufd_pt.encode>[0]) =>
    env.vcall(cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, value);
  assert.throws(() => detach({ argsz: 7 }), { code: 'EINVAL' });
  assert.throws(() => detach({ flags: 2 }), { code: 'EINVAL' });
  assert.throws(() => detach({ flags: VFIO_DEVICE_DETACH_PASID }), { code: 'EOPNOTSUPP' });
  detach({});
  detach({});
  // The automatic HWPT went with its last device; the ranges are wide again.
  assert.throws(() => destroy(env, 3), { code: 'ENOENT' });
  assert.deepEqual(ranges(env, ioas), [{ start: 0n, last: U64_MAX }]);
  env.leakCheck();
});

test('attach narrows the IOAS: MSI window and beyond the aperture are EINVAL for FIXED maps', () => {
  const env = Env.create();
  const { ioas } = env.device(0);
  const buf = env.buffer(2 * PAGE);
  assert.throws(() => env.map(ioas, { iova: MSI_START, length: PAGE, va: buf }), { code: 'EINVAL' });
  assert.throws(() => env.map(ioas, { iova: 1n << 40n, length: PAGE, va: buf }), { code: 'EINVAL' });
  assert.throws(() => env.map(ioas, { iova: APERTURE_LAST - 0xfffn, length: 2 * PAGE, va: buf }), { code: 'EINVAL' });
  env.map(ioas, { iova: APERTURE_LAST - 0xfffn, length: PAGE, va: buf });
  // Automatic allocation skips the window.
  const big = env.buffer(0x200000);
  env.map(ioas, { iova: MSI_START - 0x200000n, length: 0x200000, va: big });
  env.leakCheck();
});

test('attach refuses conflicts: allowed ranges or areas in reserved regions (EADDRINUSE)', () => {
  const env = Env.create();
  const cdev = env.openCdev(0);
  env.bind(cdev);
  const buf = env.buffer(PAGE);
  const ioas = env.ioasAlloc();
  env.proc.memory.write(
    env.scratch + 2048n,
    encodeArray(iommu_iova_range, [{ start: 0xfe000000n, last: 0xfeffffffn }]),
  );
  env.call(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, {
    ioas_id: ioas,
    num_iovas: 1,
    allowed_iovas: env.scratch + 2048n,
  });
  assert.throws(() => env.attach(cdev, ioas), { code: 'EADDRINUSE' });
  const inWindow = env.ioasAlloc();
  env.map(inWindow, { iova: MSI_START + 0x1000n, length: PAGE, va: buf });
  assert.throws(() => env.attach(cdev, inWindow), { code: 'EADDRINUSE' });
  const beyond = env.ioasAlloc();
  env.map(beyond, { iova: 1n << 40n, length: PAGE, va: buf });
  assert.throws(() => env.attach(cdev, beyond), { code: 'EADDRINUSE' });
  const misaligned = env.ioasAlloc();
  env.map(misaligned, { iova: 0x100800n, length: PAGE, va: buf });
  assert.throws(() => env.attach(cdev, misaligned), { code: 'EADDRINUSE' });
  // After the failures the device attaches fine and the IOASes are untouched.
  const good = env.ioasAlloc();
  env.attach(cdev, good);
  assert.deepEqual(ranges(env, inWindow), [{ start: 0n, last: U64_MAX }]);
  // ALLOW_IOVAS over a reserved range now fails.
  env.proc.memory.write(
    env.scratch + 2048n,
    encodeArray(iommu_iova_range, [{ start: 0xfe000000n, last: 0xfeffffffn }]),
  );
  assert.throws(
    () =>
      env.call(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, {
        ioas_id: good,
        num_iovas: 1,
        allowed_iovas: env.scratch + 2048n,
      }),
    { code: 'EADDRINUSE' },
  );
  env.leakCheck();
});

test('replace, HWPT lifetimes and DESTROY EBUSY (the transcript sequence)', () => {
  const env = Env.create();
  const cdev = env.openCdev(0);
  const devid = env.bind(cdev);
  const ioas = env.ioasAlloc();
  const auto = env.attach(cdev, ioas);
  const hwpt = env.call(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { dev_id: devid, pt_id: ioas }).out_hwpt_id;
  assert.equal(hwpt, auto + 1);
  // Replace by attaching again; the automatic HWPT is gone.
  assert.equal(env.attach(cdev, hwpt), hwpt);
  assert.throws(() => destroy(env, auto), { code: 'ENOENT' });
  assert.throws(() => destroy(env, ioas), { code: 'EBUSY' });
  assert.throws(() => destroy(env, hwpt), { code: 'EBUSY' });
  // Replace back to the IOAS: a new automatic HWPT; the user one stays until destroyed.
  const auto2 = env.attach(cdev, ioas);
  assert.notEqual(auto2, hwpt);
  destroy(env, hwpt);
  env.detach(cdev);
  env.detach(cdev);
  assert.throws(() => destroy(env, devid), { code: 'EBUSY' });
  env.proc.close(cdev);
  assert.throws(() => destroy(env, devid), { code: 'ENOENT' });
  destroy(env, ioas);
  env.leakCheck();
});

test('two devices share the automatic HWPT of an IOAS; group siblings share the group attachment', () => {
  const env = Env.create();
  const a = env.openCdev(0);
  const b = env.openCdev(1);
  env.bind(a);
  env.bind(b);
  const ioas = env.ioasAlloc();
  const hwpt = env.attach(a, ioas);
  assert.equal(env.attach(b, ioas), hwpt);
  env.proc.close(a);
  assert.throws(() => destroy(env, hwpt), { code: 'EBUSY' });
  env.proc.close(b);
  assert.throws(() => destroy(env, hwpt), { code: 'ENOENT' });
  const c = env.openCdev(2);
  const d = env.openCdev(3);
  const devc = env.bind(c);
  env.bind(d);
  const other = env.ioasAlloc();
  const shared = env.attach(c, other);
  // A device whose group is attached elsewhere cannot attach to another HWPT alone (EINVAL)...
  const third = env.ioasAlloc();
  const lone = env.call(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { dev_id: devc, pt_id: third }).out_hwpt_id;
  assert.throws(() => env.attach(d, lone), { code: 'EINVAL' });
  // ...nor to another IOAS (no automatic HWPT there accepts it).
  assert.throws(() => env.attach(d, third), { code: 'EINVAL' });
  assert.equal(env.attach(d, other), shared);
  // Replacing through one device moves the whole group.
  assert.equal(env.attach(d, lone), lone);
  assert.throws(() => destroy(env, shared), { code: 'ENOENT' });
  env.leakCheck();
});

test('GET_HW_INFO: VT-d registers, truncation and zero fill, capabilities, flags and reserved', () => {
  const env = Env.create();
  const { devid, ioas } = env.device(0);
  const iommu = env.host.machine.iommu;
  const dataAt = env.scratch + 2048n;
  const info = (value: Parameters<typeof iommu_hw_info.encode>[0]) =>
    env.call(IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: devid, data_uptr: dataAt, ...value });
  env.proc.memory.write(dataAt, new Uint8Array(64).fill(0xaa));
  const full = info({ data_len: 64 });
  assert.equal(full.out_data_type, IOMMU_HW_INFO_TYPE_INTEL_VTD);
  assert.equal(full.data_len, 24);
  assert.equal(full.out_max_pasid_log2, 0);
  assert.equal(full.out_capabilities, BigInt(IOMMU_HW_CAP_DIRTY_TRACKING | IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED));
  const vtd = iommu_hw_info_vtd.decode(env.proc.memory.read(dataAt, 24));
  assert.deepEqual(vtd, { flags: 1, __reserved: 0, cap_reg: iommu.capReg, ecap_reg: iommu.ecapReg });
  assert.deepEqual(env.proc.memory.read(dataAt + 24n, 40), new Uint8Array(40));
  env.proc.memory.write(dataAt, new Uint8Array(64).fill(0xaa));
  assert.equal(info({ data_len: 8 }).data_len, 24);
  assert.deepEqual(env.proc.memory.read(dataAt + 8n, 8), new Uint8Array(8).fill(0xaa));
  info({ data_len: 0, data_uptr: U64_MAX });
  assert.equal(
    info({ flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type: IOMMU_HW_INFO_TYPE_INTEL_VTD }).out_data_type,
    1,
  );
  assert.throws(() => info({ flags: IOMMU_HW_INFO_FLAG_INPUT_TYPE, in_data_type: 2 }), { code: 'EOPNOTSUPP' });
  // Without the flag the input type is ignored.
  assert.equal(info({ in_data_type: 2 }).out_data_type, 1);
  assert.throws(() => info({ flags: 2 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => info({ __reserved: new Uint8Array([0, 1, 0]) }), { code: 'EOPNOTSUPP' });
  assert.throws(() => info({ dev_id: ioas }), { code: 'ENOENT' });
  assert.throws(() => info({ dev_id: 99 }), { code: 'ENOENT' });
  assert.throws(() => info({ data_len: 24, data_uptr: 8n }), { code: 'EFAULT' });
  // size 32 (the minimum): out_capabilities is not written back.
  const at = env.put(iommu_hw_info, { size: 32, dev_id: devid, out_capabilities: 0x5555n });
  env.proc.ioctl(env.iommufd, IOMMU_GET_HW_INFO, at);
  assert.equal(env.get(iommu_hw_info).out_capabilities, 0x5555n);
  env.leakCheck();

  const noDirty = Env.create({ iommu: { dirtyTracking: false }, devices: [{ bdf: '0000:00:03.0', model: 'edu' }] });
  const d = noDirty.device(0);
  const caps = noDirty.call(IOMMU_GET_HW_INFO, iommu_hw_info, { dev_id: d.devid }).out_capabilities;
  assert.equal(caps, BigInt(IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED));
  noDirty.leakCheck();
});

test('closing the cdev detaches and unbinds; exiting with everything attached leaks nothing', () => {
  const env = Env.create();
  const { cdev, ioas } = env.device(0);
  env.map(ioas, { iova: 0x100000n, length: 4 * PAGE, va: env.buffer(4 * PAGE) });
  env.proc.close(cdev);
  assert.equal(env.host.usage().iommuDomains, 0);
  env.device(1);
  env.device(2);
  leakCheck(env.host, [env.proc]);
});
