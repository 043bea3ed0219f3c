/**
 * /dev/vfio/vfio, the legacy container (semantics.md §1), replaying the "== container" part of
 * probe-612-edu.txt / custom-legacy.txt and every rule of §1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IO } from '../../src/uapi/ioctl.js';
import {
  VFIO_CHECK_EXTENSION,
  VFIO_GET_API_VERSION,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_DISABLE,
  VFIO_IOMMU_ENABLE,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_group_status,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_info,
} from '../../src/uapi/vfio.js';
import { Env, PAGE, assertHostClean, exitAndCheck } from './legacy-helpers.js';

/** CHECK_EXTENSION(0..11) on 6.18+: like the 6.12 transcript except 6 (old TYPE1_NESTING) = 0. */
const EXTENSIONS_NO_BACKEND = [0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0];
/** With type1 selected: UPDATE_VADDR (10) is 1, DMA_CC_IOMMU (4) 0 (no snoop control on VT-d here). */
const EXTENSIONS_TYPE1 = [0, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0];

function extensions(env: Env, fd: number): number[] {
  return Array.from({ length: 12 }, (_, ext) => env.proc.ioctl(fd, VFIO_CHECK_EXTENSION, ext));
}

test('transcript "== container": version, extensions, EINVAL before a backend', () => {
  const env = Env.create();
  const { proc } = env;
  const container = proc.open('/dev/vfio/vfio');
  assert.equal(proc.ioctl(container, VFIO_GET_API_VERSION), 0);
  assert.deepEqual(extensions(env, container), EXTENSIONS_NO_BACKEND);
  assert.throws(() => proc.ioctl(container, IO(VFIO_TYPE, 0x99)), { code: 'EINVAL' });
  const info = env.put(vfio_iommu_type1_info, { argsz: 24 });
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_GET_INFO, info), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), { code: 'EINVAL' });
  assert.equal(proc.readlink(`/proc/self/fd/${container}`), '/dev/vfio/vfio');
  exitAndCheck(env);
});

test('CHECK_EXTENSION per state: no group, group attached, type1 selected; never an error', () => {
  const env = Env.create();
  const { proc } = env;
  const { container, group } = env.containerWithGroup(2, 0);
  assert.deepEqual(extensions(env, container), EXTENSIONS_NO_BACKEND);
  proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  assert.deepEqual(extensions(env, container), EXTENSIONS_TYPE1);
  for (const ext of [12, 99, 0xffffffff, 2 ** 40]) assert.equal(proc.ioctl(container, VFIO_CHECK_EXTENSION, ext), 0);
  assert.equal(proc.ioctl(container, VFIO_CHECK_EXTENSION, 2n ** 64n - 1n), 0);
  proc.close(group);
  // The last group left: the backend is gone, the drivers are polled again.
  assert.deepEqual(extensions(env, container), EXTENSIONS_NO_BACKEND);
  exitAndCheck(env);
});

test('SET_IOMMU: ENODEV for what no driver claims, EINVAL for UNMAP_ALL (claimed, not openable)', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2, 0);
  // 99 and SPAPR_TCE as in the transcript; DMA_CC_IOMMU, EEH, the retired nesting type,
  // SPAPR v2, NOIOMMU and UPDATE_VADDR are claimed by nobody either.
  for (const arg of [99, 2, 4, 5, 6, 7, 8, 10, 0, 2 ** 32 + 3]) {
    assert.throws(() => proc.ioctl(container, VFIO_SET_IOMMU, arg), { code: 'ENODEV' }, `SET_IOMMU(${arg})`);
  }
  assert.throws(() => proc.ioctl(container, VFIO_SET_IOMMU, 9), { code: 'EINVAL' });
  assert.equal(proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
  assert.throws(() => proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(container, VFIO_SET_IOMMU, 99), { code: 'EINVAL' });
  exitAndCheck(env);
});

test('SET_IOMMU(TYPE1) selects type1 v1 (DIRTY_PAGES answers EACCES)', () => {
  const env = Env.create();
  const { container } = env.containerWithGroup(2, VFIO_TYPE1_IOMMU);
  const dirty = env.put(vfio_iommu_type1_dirty_bitmap, { argsz: 8, flags: VFIO_IOMMU_DIRTY_PAGES_FLAG_START });
  assert.throws(() => env.proc.ioctl(container, VFIO_IOMMU_DIRTY_PAGES, dirty), { code: 'EACCES' });
  exitAndCheck(env);
});

test('ioctls other than the container three: EINVAL before SET_IOMMU, then the backend answers (ENOTTY)', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2, 0);
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_MAP_DMA, env.scratch), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_ENABLE), { code: 'EINVAL' });
  proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_ENABLE), { code: 'ENOTTY' });
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_DISABLE), { code: 'ENOTTY' });
  assert.throws(() => proc.ioctl(container, IO(VFIO_TYPE, 0x99)), { code: 'ENOTTY' });
  assert.throws(() => proc.ioctl(container, VFIO_GROUP_GET_STATUS, env.scratch), { code: 'ENOTTY' });
  exitAndCheck(env);
});

test('each open is its own container; SET_IOMMU needs a group of that container', () => {
  const env = Env.create();
  const { proc } = env;
  const a = proc.open('/dev/vfio/vfio');
  const b = proc.open('/dev/vfio/vfio');
  const group = proc.open('/dev/vfio/2');
  proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(a));
  assert.throws(() => proc.ioctl(b, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), { code: 'EINVAL' });
  assert.equal(proc.ioctl(a, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
  assert.equal(proc.ioctl(b, VFIO_CHECK_EXTENSION, 10), 0);
  assert.equal(proc.ioctl(a, VFIO_CHECK_EXTENSION, 10), 1);
  exitAndCheck(env);
});

test('groups keep the container alive after its fd is closed; the last group releases the backend', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container, group } = env.containerWithGroup(2);
  const buf = env.buffer(PAGE);
  env.map(container, buf, 0x100000n, PAGE);
  proc.close(container);
  const status = env.put(vfio_group_status, { argsz: 8 });
  proc.ioctl(group, VFIO_GROUP_GET_STATUS, status);
  assert.equal(env.get(vfio_group_status).flags, 3);
  assert.equal(host.usage().iommuMappings, 1);
  assert.equal(host.usage().lockedPages, 1);
  proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER);
  assert.equal(host.usage().iommuMappings, 0);
  assert.equal(host.usage().lockedPages, 0);
  assert.equal(host.usage().iommuDomains, 0);
  exitAndCheck(env);
});

test('after the last group leaves the container is unset again: it can take a group and a backend anew', () => {
  const env = Env.create();
  const { proc } = env;
  const { container, group } = env.containerWithGroup(2);
  proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER);
  const info = env.put(vfio_iommu_type1_info, { argsz: 24 });
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_GET_INFO, info), { code: 'EINVAL' });
  assert.equal(proc.ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU), 1);
  assert.throws(() => proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU), { code: 'EINVAL' });
  proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(container));
  assert.equal(proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1_IOMMU), 0);
  proc.ioctl(container, VFIO_IOMMU_GET_INFO, env.put(vfio_iommu_type1_info, { argsz: 24 }));
  assert.equal(env.get(vfio_iommu_type1_info).flags, 3);
  exitAndCheck(env);
});

test('SET_IOMMU attaches every group already in the container; later groups attach at SET_CONTAINER', () => {
  const env = Env.create();
  const { proc, host } = env;
  const container = proc.open('/dev/vfio/vfio');
  const g2 = proc.open('/dev/vfio/2');
  const g4 = proc.open('/dev/vfio/4');
  const g5 = proc.open('/dev/vfio/5');
  proc.ioctl(g2, VFIO_GROUP_SET_CONTAINER, env.putS32(container));
  proc.ioctl(g4, VFIO_GROUP_SET_CONTAINER, env.putS32(container));
  assert.equal(host.machine.iommu.snapshot().attachments.length, 0);
  proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  let snap = host.machine.iommu.snapshot();
  assert.equal(snap.domains.length, 1, 'compatible groups share one domain');
  assert.deepEqual(
    snap.attachments.map((a) => a.domainId),
    [snap.domains[0]!.id, snap.domains[0]!.id],
  );
  proc.ioctl(g5, VFIO_GROUP_SET_CONTAINER, env.putS32(container));
  snap = host.machine.iommu.snapshot();
  assert.equal(snap.attachments.length, 4, 'both functions of group 5 attached');
  assert.equal(snap.domains.length, 1);
  proc.close(g2);
  proc.close(g4);
  assert.equal(host.machine.iommu.snapshot().attachments.length, 2);
  proc.close(g5);
  assert.equal(host.machine.iommu.snapshot().domains.length, 0);
  proc.close(container);
  proc.exit();
  assertHostClean(host);
});

test('process exit tears everything down whatever the fd order', () => {
  const env = Env.create();
  const { proc } = env;
  const group = proc.open('/dev/vfio/2');
  const container = proc.open('/dev/vfio/vfio');
  proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(container));
  proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  env.map(container, env.buffer(4 * PAGE), 0x200000n, 4 * PAGE);
  exitAndCheck(env);
});
