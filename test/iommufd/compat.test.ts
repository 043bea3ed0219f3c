// VFIO container compatibility (semantics.md 7.10, 7.14; custom-compat.txt): type1 ioctls on an
// iommufd, IOMMU_VFIO_IOAS, and a group's SET_CONTAINER with an iommufd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SyscallError } from '../../src/uapi/errno.js';
import {
  IOMMU_DESTROY,
  IOMMU_OPTION,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_RLIMIT_MODE,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_CLEAR,
  IOMMU_VFIO_IOAS_GET,
  IOMMU_VFIO_IOAS_SET,
  iommu_destroy,
  iommu_option,
  iommu_vfio_ioas,
} from '../../src/uapi/iommufd.js';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_group_status,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from '../../src/uapi/vfio.js';
import { Env, PAGE } from './helpers.js';

const ONE_DEVICE = {
  vfioContainer: 'iommufd' as const,
  devices: [{ bdf: '0000:00:03.0', model: 'edu', iommuGroup: 2 }],
};
const RW_DMA = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

function result(fn: () => number): number | string {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SyscallError) return err.code;
    throw err;
  }
}

function extensions(env: Env, container: number): (number | string)[] {
  return Array.from({ length: 12 }, (_, i) => result(() => env.proc.ioctl(container, VFIO_CHECK_EXTENSION, i)));
}

/** Opens the compat container and group 2, joins them; optionally picks an IOMMU type. */
function setup(env: Env, type?: number): { container: number; group: number } {
  const container = env.proc.open('/dev/vfio/vfio');
  const group = env.proc.open('/dev/vfio/2');
  env.proc.memory.write(env.scratch + 3072n, new Uint8Array(new Int32Array([container]).buffer));
  env.proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.scratch + 3072n);
  if (type !== undefined) env.proc.ioctl(container, VFIO_SET_IOMMU, type);
  return { container, group };
}

function deviceFd(env: Env, group: number): number {
  env.proc.memory.write(env.scratch + 3072n, new Uint8Array([...Buffer.from('0000:00:03.0'), 0]));
  return env.proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env.scratch + 3072n);
}

test('container without a group: API 0, extensions, ENOTTY, ENODEV for IOAS-needing calls', () => {
  const env = Env.create(ONE_DEVICE);
  const container = env.proc.open('/dev/vfio/vfio');
  assert.equal(env.proc.ioctl(container, VFIO_GET_API_VERSION), 0);
  assert.deepEqual(extensions(env, container), [0, 1, 0, 1, 'ENODEV', 0, 0, 0, 0, 1, 0, 0]);
  assert.throws(() => env.proc.ioctl(container, 0x3b99, env.scratch), { code: 'ENOTTY' });
  assert.throws(() => env.vcall(container, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {}), { code: 'ENODEV' });
  assert.throws(() => env.proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), { code: 'ENODEV' });
  assert.throws(() => env.proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU), { code: 'ENODEV' });
  assert.throws(() => env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { argsz: 1 }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: 1 << 31 }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: RW_DMA }), {
    code: 'ENODEV',
  });
  assert.throws(() => env.vcall(container, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { argsz: 1 }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.vcall(container, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { flags: 1 << 31 }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.vcall(container, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, {}), { code: 'ENODEV' });
  assert.throws(() => env.vcall(container, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: 1 }), {
    code: 'EINVAL',
  });
  // /dev/vfio/vfio as iommufd starts in the VFIO-compatible per-mm accounting mode.
  assert.equal(
    env.call(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }, container)
      .val64,
    1n,
  );
  assert.equal(
    env.call(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }).val64,
    0n,
  );
  env.leakCheck();
});

test('group on the compat container: status, SET twice EINVAL, DMA_CC_IOMMU, SET_IOMMU rules', () => {
  const env = Env.create(ONE_DEVICE);
  const { container, group } = setup(env);
  assert.equal(env.vcall(group, VFIO_GROUP_GET_STATUS, vfio_group_status, {}).flags, 3);
  env.proc.memory.write(env.scratch + 3072n, new Uint8Array(new Int32Array([container]).buffer));
  assert.throws(() => env.proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.scratch + 3072n), { code: 'EINVAL' });
  // The compat IOAS exists now, with no HWPT yet: cache coherent "for all of none", and every
  // page size from PAGE_SIZE up, one IOVA range.
  assert.deepEqual(extensions(env, container), [0, 1, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0]);
  const bare = env.vcall(container, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {});
  assert.deepEqual(bare, { argsz: 72, flags: 3, iova_pgsizes: 0xfffffffffffff000n, cap_offset: 0, pad: 0 });
  // GET_DEVICE_FD works before SET_IOMMU: the device is bound and attached to the compat IOAS.
  deviceFd(env, group);
  // The VT-d model does not enforce snoop (no ECAP.SC): not cache coherent.
  assert.equal(env.proc.ioctl(container, VFIO_CHECK_EXTENSION, 4), 0);
  assert.throws(() => env.proc.ioctl(container, VFIO_SET_IOMMU, 99), { code: 'EINVAL' });
  assert.throws(() => env.proc.ioctl(container, VFIO_SET_IOMMU, 2), { code: 'EINVAL' });
  assert.throws(() => env.proc.ioctl(container, VFIO_SET_IOMMU, 0x100000003n), { code: 'EINVAL' });
  assert.equal(env.proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
  assert.equal(env.proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
  env.leakCheck();
});

test('GET_INFO: argsz 16 and 24, then the exact 88 bytes of the transcript', () => {
  const env = Env.create(ONE_DEVICE);
  const { container, group } = setup(env, VFIO_TYPE1v2_IOMMU);
  deviceFd(env, group);
  // argsz 16 (the pre-capability ABI) still gets iova_pgsizes, which ends at byte 16.
  const small = env.vcall(container, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, { argsz: 16, cap_offset: 0x77 });
  assert.deepEqual(small, { argsz: 88, flags: 3, iova_pgsizes: 0x40201000n, cap_offset: 0x77, pad: 0 });
  const header = env.vcall(container, VFIO_IOMMU_GET_INFO, vfio_iommu_type1_info, {});
  assert.deepEqual(header, { argsz: 88, flags: 3, iova_pgsizes: 0x40201000n, cap_offset: 0, pad: 0 });
  env.proc.memory.write(env.scratch, new Uint8Array(128));
  env.put(vfio_iommu_type1_info, { argsz: 88 });
  env.proc.ioctl(container, VFIO_IOMMU_GET_INFO, env.scratch);
  const raw = Buffer.from(env.proc.memory.read(env.scratch, 88)).toString('hex');
  assert.equal(
    raw,
    '5800000003000000001020400000000018000000000000000300010028000000' +
      'ffffffff00000000010001000000000002000000000000000000000000000000' +
      'ffffdffe000000000000f0fe00000000ffffffff7f000000',
  );
  env.leakCheck();
});

test('GET_INFO never writes past argsz; cap_offset only when everything fits', () => {
  const env = Env.create(ONE_DEVICE);
  const { container, group } = setup(env, VFIO_TYPE1v2_IOMMU);
  deviceFd(env, group);
  for (let argsz = 16; argsz <= 96; argsz++) {
    env.proc.memory.write(env.scratch, new Uint8Array(128).fill(0xee));
    env.proc.memory.write(env.scratch, new Uint8Array(new Uint32Array([argsz]).buffer));
    env.proc.ioctl(container, VFIO_IOMMU_GET_INFO, env.scratch);
    const after = env.proc.memory.read(env.scratch + BigInt(argsz), 128 - argsz);
    assert.ok(
      after.every((b) => b === 0xee),
      `argsz ${argsz} wrote past its end`,
    );
    const info = env.get(vfio_iommu_type1_info);
    assert.equal(info.argsz, 88);
    assert.equal(info.flags, 3);
    if (argsz >= 24) assert.equal(info.cap_offset, argsz >= 88 ? 24 : 0);
    // Whenever the chain is announced it is complete and well formed.
    if (argsz >= 88) {
      const chain = Buffer.from(env.proc.memory.read(env.scratch + 24n, 64)).toString('hex');
      assert.equal(chain.slice(0, 16), '0300010028000000');
      assert.equal(chain.slice(32, 48), '0100010000000000');
    }
  }
  env.leakCheck();
});

test('MAP_DMA: the transcript cases through the compat layer', () => {
  const env = Env.create(ONE_DEVICE);
  const { container, group } = setup(env, VFIO_TYPE1v2_IOMMU);
  deviceFd(env, group);
  const buf = env.buffer(8 * PAGE);
  const map = (value: Parameters<typeof vfio_iommu_type1_dma_map.encode>[0]) =>
    env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
      flags: RW_DMA,
      vaddr: buf,
      size: BigInt(PAGE),
      ...value,
    });
  map({ iova: 0x100000n });
  map({ iova: 0x200000n });
  assert.throws(() => map({ iova: 0x100000n }), { code: 'EEXIST' });
  assert.throws(() => map({ iova: 0x0ff000n, size: 0x2000n }), { code: 'EEXIST' });
  map({ iova: 0x400000n });
  assert.throws(() => map({ iova: 0x600000n, size: 0x800n }), { code: 'EINVAL' });
  assert.throws(() => map({ iova: 0x400800n }), { code: 'EINVAL' });
  assert.throws(() => map({ iova: 0x600000n, vaddr: buf + 0x800n }), { code: 'EINVAL' });
  assert.throws(() => map({ iova: 0x600000n, size: 0n }), { code: 'EINVAL' });
  // flags 0 passes the compat checks; the VT-d driver refuses a mapping with no access.
  assert.throws(() => map({ iova: 0x600000n, flags: 0 }), { code: 'EINVAL' });
  map({ iova: 0x500000n, flags: VFIO_DMA_MAP_FLAG_READ });
  assert.throws(() => map({ iova: 0x600000n, flags: 0x80 }), { code: 'EINVAL' });
  assert.throws(() => map({ iova: 0x600000n, flags: VFIO_DMA_MAP_FLAG_VADDR }), { code: 'EINVAL' });
  assert.throws(() => map({ iova: 1n << 40n }), { code: 'EINVAL' });
  assert.throws(() => map({ iova: 0xfee00000n }), { code: 'EINVAL' });
  assert.throws(() => map({ iova: 0x600000n, vaddr: 0n }), { code: 'EFAULT' });
  assert.throws(() => map({ iova: 0xfffffffffffff000n, size: 0x2000n }), { code: 'EOVERFLOW' });
  assert.throws(() => map({ iova: 0x600000n, argsz: 16 }), { code: 'EINVAL' });
  env.leakCheck();
});

test('UNMAP_DMA: partial ENOENT with size 0 copied back, empty succeeds, ALL rules, ENOTTY dirty pages', () => {
  const env = Env.create(ONE_DEVICE);
  const { container, group } = setup(env, VFIO_TYPE1v2_IOMMU);
  deviceFd(env, group);
  const buf = env.buffer(8 * PAGE);
  env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
    flags: RW_DMA,
    vaddr: buf,
    iova: 0x100000n,
    size: BigInt(PAGE),
  });
  env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
    flags: RW_DMA,
    vaddr: buf,
    iova: 0x300000n,
    size: 0x3000n,
  });
  const unmap = (value: Parameters<typeof vfio_iommu_type1_dma_unmap.encode>[0]) =>
    env.vcall(container, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, value);
  assert.throws(() => unmap({ iova: 0x301000n, size: 0x1000n }), { code: 'ENOENT' });
  assert.equal(env.get(vfio_iommu_type1_dma_unmap).size, 0n);
  assert.throws(() => unmap({ iova: 0x300000n, size: 0x1000n }), { code: 'ENOENT' });
  assert.equal(unmap({ iova: 0x300000n, size: 0x3000n }).size, 0x3000n);
  // Newest kernels: nothing mapped is success with size 0 (6.12 answered ENOENT).
  assert.equal(unmap({ iova: 0x300000n, size: 0x3000n }).size, 0n);
  assert.throws(() => unmap({ iova: 0x300000n, size: 0n }), { code: 'EINVAL' });
  assert.equal(env.get(vfio_iommu_type1_dma_unmap).size, 0n);
  assert.throws(() => unmap({ iova: 0x300000n, flags: 0x80, size: 0x1000n }), { code: 'EINVAL' });
  assert.throws(() => unmap({ flags: VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP, size: 0x1000n }), { code: 'EINVAL' });
  assert.throws(() => unmap({ flags: VFIO_DMA_UNMAP_FLAG_VADDR }), { code: 'EINVAL' });
  assert.throws(() => unmap({ flags: VFIO_DMA_UNMAP_FLAG_ALL, iova: 0x100000n }), { code: 'EINVAL' });
  assert.throws(() => unmap({ iova: 0xfffffffffffff000n, size: 0x2000n }), { code: 'EOVERFLOW' });
  for (const flags of [1, 2]) {
    assert.throws(() => env.vcall(container, VFIO_IOMMU_DIRTY_PAGES, vfio_iommu_type1_dirty_bitmap, { flags }), {
      code: 'ENOTTY',
    });
  }
  assert.equal(unmap({ flags: VFIO_DMA_UNMAP_FLAG_ALL }).size, 0x1000n);
  assert.equal(unmap({ flags: VFIO_DMA_UNMAP_FLAG_ALL }).size, 0n);
  env.leakCheck();
});

test('TYPE1 (v1) mode: huge pages off, any page-aligned sub-range can be unmapped', () => {
  const env = Env.create(ONE_DEVICE);
  const { container, group } = setup(env, VFIO_TYPE1_IOMMU);
  deviceFd(env, group);
  const buf = env.buffer(8 * PAGE);
  env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
    flags: RW_DMA,
    vaddr: buf,
    iova: 0x300000n,
    size: 0x4000n,
  });
  const unmap = (iova: bigint, size: bigint) =>
    env.vcall(container, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { iova, size }).size;
  assert.equal(unmap(0x301000n, 0x1000n), 0x1000n);
  assert.equal(unmap(0x303000n, 0x1000n), 0x1000n);
  assert.equal(unmap(0x300000n, 0x4000n), 0x2000n);
  // Cuts must fall on page boundaries of the area.
  env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
    flags: RW_DMA,
    vaddr: buf,
    iova: 0x300000n,
    size: 0x4000n,
  });
  assert.throws(() => unmap(0x300800n, 0x1000n), { code: 'EINVAL' });
  assert.equal(unmap(0n, 0x400000n), 0x4000n);
  // A TYPE1 switch is refused once a domain holds mappings (iopt_disable_large_pages).
  const env2 = Env.create(ONE_DEVICE);
  const s2 = setup(env2, VFIO_TYPE1v2_IOMMU);
  deviceFd(env2, s2.group);
  env2.vcall(s2.container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
    flags: RW_DMA,
    vaddr: env2.buffer(PAGE),
    iova: 0x300000n,
    size: 0x1000n,
  });
  assert.throws(() => env2.proc.ioctl(s2.container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU), { code: 'EINVAL' });
  env2.leakCheck();
  env.leakCheck();
});

test('IOMMU_VFIO_IOAS: GET ENODEV, SET 0 ENOENT, SET/GET/CLEAR, reserved and op checks (vfio_ioas)', () => {
  const env = Env.create();
  const vio = (value: Parameters<typeof iommu_vfio_ioas.encode>[0]) =>
    env.call(IOMMU_VFIO_IOAS, iommu_vfio_ioas, value);
  assert.throws(() => vio({ op: IOMMU_VFIO_IOAS_GET }), { code: 'ENODEV' });
  assert.throws(() => vio({ op: IOMMU_VFIO_IOAS_SET, ioas_id: 0 }), { code: 'ENOENT' });
  const ioas = env.ioasAlloc();
  vio({ op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas });
  assert.equal(vio({ op: IOMMU_VFIO_IOAS_GET }).ioas_id, ioas);
  assert.throws(() => vio({ op: IOMMU_VFIO_IOAS_GET, __reserved: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => vio({ op: 3 }), { code: 'EOPNOTSUPP' });
  vio({ op: IOMMU_VFIO_IOAS_CLEAR });
  assert.throws(() => vio({ op: IOMMU_VFIO_IOAS_GET }), { code: 'ENODEV' });
  vio({ op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas });
  // Destroying the compat IOAS clears it.
  env.call(IOMMU_DESTROY, iommu_destroy, { id: ioas });
  assert.throws(() => vio({ op: IOMMU_VFIO_IOAS_GET }), { code: 'ENODEV' });
  env.leakCheck();
});

test('a group on /dev/iommu reuses the compat IOAS set before; GET_DEVICE_FD ENODEV once it is cleared', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  env.call(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas });
  const group = env.proc.open('/dev/vfio/3');
  env.proc.memory.write(env.scratch + 3072n, new Uint8Array(new Int32Array([env.iommufd]).buffer));
  env.proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.scratch + 3072n);
  assert.equal(env.call(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_GET }).ioas_id, ioas);
  env.call(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_CLEAR });
  env.proc.memory.write(env.scratch + 3072n, new Uint8Array([...Buffer.from('0000:00:03.0'), 0]));
  assert.throws(() => env.proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env.scratch + 3072n), { code: 'ENODEV' });
  env.call(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: ioas });
  const dev = env.proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env.scratch + 3072n);
  // The compat IOAS is in use by the device now.
  assert.throws(() => env.call(IOMMU_DESTROY, iommu_destroy, { id: ioas }), { code: 'EBUSY' });
  // UNSET_CONTAINER with the device fd open succeeds on iommufd (transcript); the device stays bound.
  env.proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER);
  env.proc.close(dev);
  env.call(IOMMU_DESTROY, iommu_destroy, { id: ioas });
  env.leakCheck();
});

test('the compat container outlives its fd while a group holds it', () => {
  const env = Env.create(ONE_DEVICE);
  const { container, group } = setup(env, VFIO_TYPE1v2_IOMMU);
  env.proc.close(container);
  const dev = deviceFd(env, group);
  env.proc.close(group);
  env.proc.close(dev);
  assert.equal(env.host.usage().iommuDomains, 0);
  env.leakCheck();
});
