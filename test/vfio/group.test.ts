/**
 * /dev/vfio/<N> (semantics.md §2), replaying the "== group", "== device" (open part) and
 * "== teardown" parts of probe-612-edu.txt, and every rule of §2.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { File } from '../../src/kernel/vfs/file.js';
import { O_CLOEXEC } from '../../src/kernel/vfs/syscalls.js';
import { VFIO_GROUP_IOMMUFD, type VfioGroup, type VfioGroupIommufd } from '../../src/kernel/vfio/group.js';
import type { VfioDevice } from '../../src/kernel/vfio/vfio-main.js';
import { fail, type ErrnoCode } from '../../src/uapi/errno.js';
import { IO } from '../../src/uapi/ioctl.js';
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_SET_IOMMU,
  VFIO_TYPE,
  VFIO_TYPE1v2_IOMMU,
  vfio_group_status,
  vfio_iommu_type1_info,
} from '../../src/uapi/vfio.js';
import { BDF, Env, PAGE, assertHostClean, exitAndCheck } from './legacy-helpers.js';

function status(env: Env, group: number): number {
  const arg = env.put(vfio_group_status, { argsz: 8, flags: 0xdead });
  env.proc.ioctl(group, VFIO_GROUP_GET_STATUS, arg);
  return env.get(vfio_group_status, arg).flags;
}

function getDeviceFd(env: Env, group: number, name = BDF): number {
  return env.proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env.putString(name, env.scratch + 1024n));
}

test('transcript "== group": single open, status, EINVAL/EBADF before and after SET_CONTAINER', () => {
  const env = Env.create();
  const { proc } = env;
  const container = proc.open('/dev/vfio/vfio');
  const group = proc.open('/dev/vfio/2');
  assert.throws(() => proc.open('/dev/vfio/2'), { code: 'EBUSY', syscall: 'open' });
  assert.equal(status(env, group), VFIO_GROUP_FLAGS_VIABLE);
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_GET_STATUS, env.put(vfio_group_status, { argsz: 4 })), {
    code: 'EINVAL',
  });
  assert.throws(() => getDeviceFd(env, group), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(12345)), { code: 'EBADF' });
  assert.equal(proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), 0);
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), { code: 'EINVAL' });
  assert.equal(status(env, group), VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
  assert.throws(() => getDeviceFd(env, group), { code: 'EINVAL' }, 'GET_DEVICE_FD before SET_IOMMU');
  assert.equal(proc.readlink(`/proc/self/fd/${group}`), '/dev/vfio/2');
  exitAndCheck(env);
});

test('unknown group ioctls are ENOTTY; nodes exist only for vfio groups', () => {
  const env = Env.create({
    devices: [
      { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 2 },
      { bdf: '0000:00:04.0', model: 'edu', iommuGroup: 9, driver: 'host' },
    ],
  });
  const group = env.proc.open('/dev/vfio/2');
  assert.throws(() => env.proc.ioctl(group, IO(VFIO_TYPE, 0x99)), { code: 'ENOTTY' });
  assert.throws(() => env.proc.ioctl(group, VFIO_IOMMU_GET_INFO, env.scratch), { code: 'ENOTTY' });
  assert.throws(() => env.proc.open('/dev/vfio/9'), { code: 'ENOENT' });
  exitAndCheck(env);
});

test('GET_STATUS copies back exactly 8 bytes and faults on a bad pointer', () => {
  const env = Env.create();
  const group = env.proc.open('/dev/vfio/2');
  const arg = env.scratch;
  env.proc.memory.write(arg, new Uint8Array(16).fill(0xee));
  env.put(vfio_group_status, { argsz: 16, flags: 0 }, arg);
  env.proc.ioctl(group, VFIO_GROUP_GET_STATUS, arg);
  assert.deepEqual([...env.proc.memory.read(arg, 12)], [16, 0, 0, 0, 1, 0, 0, 0, 0xee, 0xee, 0xee, 0xee]);
  assert.throws(() => env.proc.ioctl(group, VFIO_GROUP_GET_STATUS, 0), { code: 'EFAULT' });
  const ro = env.buffer(PAGE, 1);
  assert.throws(
    () => env.proc.ioctl(group, VFIO_GROUP_GET_STATUS, ro),
    { code: 'EINVAL' },
    'argsz 0 read from a zero page',
  );
  exitAndCheck(env);
});

test('SET_CONTAINER: EFAULT, EBADF, EBADFD for an fd that is neither container nor iommufd', () => {
  const env = Env.create();
  const { proc } = env;
  const group = proc.open('/dev/vfio/2');
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, 0), { code: 'EFAULT' });
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(-1)), { code: 'EBADF' });
  const efd = proc.eventfd();
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(efd)), { code: 'EBADFD' });
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(group)), { code: 'EBADFD' });
  assert.equal(status(env, group), VFIO_GROUP_FLAGS_VIABLE);
  // A second container is refused like the same one twice.
  const a = proc.open('/dev/vfio/vfio');
  const b = proc.open('/dev/vfio/vfio');
  proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(a));
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(b)), { code: 'EINVAL' });
  exitAndCheck(env);
});

test('a group with a device on a host driver is not viable: status 0, SET_CONTAINER EPERM', () => {
  const env = Env.create({
    devices: [
      { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 7 },
      { bdf: '0000:00:03.1', model: 'edu', iommuGroup: 7, driver: 'host' },
    ],
  });
  const { proc } = env;
  const container = proc.open('/dev/vfio/vfio');
  const group = proc.open('/dev/vfio/7');
  assert.equal(status(env, group), 0);
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), { code: 'EPERM' });
  assert.throws(() => proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), { code: 'EINVAL' });
  exitAndCheck(env);
});

test('SET_CONTAINER is EPERM while another owner holds the IOMMU group', () => {
  const env = Env.create();
  const { proc, host } = env;
  const iommuGroup = host.vfio.group(2)!.iommuGroup;
  const owner = {};
  iommuGroup.claimDmaOwner(owner);
  const container = proc.open('/dev/vfio/vfio');
  const group = proc.open('/dev/vfio/2');
  assert.equal(status(env, group), 0, 'claimed by someone: not viable');
  // iommu_group_claim_dma_owner(): owner_cnt != 0 is EPERM (EBUSY is for a foreign domain).
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), { code: 'EPERM' });
  iommuGroup.releaseDmaOwner(owner);
  assert.equal(proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), 0);
  exitAndCheck(env);
});

test('transcript "== device": GET_DEVICE_FD name errors, several fds for one device', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { group } = env.containerWithGroup(2);
  assert.throws(() => getDeviceFd(env, group, 'nonexistent'), { code: 'ENODEV' });
  assert.throws(() => getDeviceFd(env, group, '0000:00:04.0'), { code: 'ENODEV' }, 'a device of another group');
  assert.throws(() => getDeviceFd(env, group, `${BDF}x`), { code: 'ENODEV' }, 'no space after the name');
  assert.throws(() => getDeviceFd(env, group, `${BDF} bogus=1`), { code: 'EINVAL' }, "vfio-pci's matcher");
  assert.throws(() => getDeviceFd(env, group, `${BDF} vf_token=short`), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, 0), { code: 'EFAULT' });
  const long = env.buffer(2 * PAGE);
  proc.memory.write(long, new Uint8Array(PAGE).fill(0x41));
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, long), { code: 'EINVAL' }, 'no NUL within PAGE_SIZE');
  proc.memory.write(long + BigInt(PAGE - 1), new Uint8Array([0]));
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, long), { code: 'ENODEV' }, '4095 chars + NUL fits');
  const edge = env.buffer(2 * PAGE);
  proc.memory.write(edge, new Uint8Array(PAGE).fill(0x41));
  proc.munmap(edge + BigInt(PAGE), PAGE);
  assert.throws(
    () => proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, edge + 100n),
    { code: 'EFAULT' },
    'runs off the mapping',
  );
  const device = host.vfio.deviceByName(BDF)!;
  const a = getDeviceFd(env, group);
  const b = getDeviceFd(env, group);
  assert.notEqual(a, b);
  assert.equal(device.openCount, 2);
  assert.equal(proc.readlink(`/proc/self/fd/${a}`), 'anon_inode:[vfio-device]');
  assert.equal(proc.task.files.get(a).flags & O_CLOEXEC, O_CLOEXEC);
  proc.close(b);
  assert.equal(device.openCount, 1);
  proc.close(a);
  assert.equal(device.openCount, 0);
  exitAndCheck(env);
});

test('transcript "== teardown": UNSET_CONTAINER is EBUSY while a device fd is open', () => {
  const env = Env.create();
  const { proc } = env;
  const { container, group } = env.containerWithGroup(2);
  const device = getDeviceFd(env, group);
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER), { code: 'EBUSY' });
  proc.close(device);
  assert.equal(proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER), 0);
  assert.equal(status(env, group), VFIO_GROUP_FLAGS_VIABLE);
  const info = env.put(vfio_iommu_type1_info, { argsz: 24 });
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_GET_INFO, info), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER), { code: 'EINVAL' });
  proc.close(group);
  proc.close(container);
  exitAndCheck(env);
});

test('device fds keep the group file: reopening is EBUSY until they are closed', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container, group } = env.containerWithGroup(2);
  const a = getDeviceFd(env, group);
  const b = getDeviceFd(env, group);
  proc.close(group);
  proc.close(container);
  assert.throws(() => proc.open('/dev/vfio/2'), { code: 'EBUSY' });
  assert.equal(host.usage().iommuDomains, 1, 'still attached through the device fds');
  proc.close(a);
  assert.throws(() => proc.open('/dev/vfio/2'), { code: 'EBUSY' });
  proc.close(b);
  assert.equal(host.usage().iommuDomains, 0, 'the group left its container on release');
  const again = proc.open('/dev/vfio/2');
  assert.equal(status(env, again), VFIO_GROUP_FLAGS_VIABLE);
  exitAndCheck(env);
});

test('with an iommufd the device fds do not pin the group file: it is released, and reopens', () => {
  const env = Env.create();
  const { proc } = env;
  const iommufd = proc.open('/dev/iommu');
  const group = proc.open('/dev/vfio/2');
  proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(iommufd));
  const device = getDeviceFd(env, group);
  // Only vfio_group_use_container() takes a group file reference; the iommufd path does not.
  proc.close(group);
  const again = proc.open('/dev/vfio/2');
  // The device is still bound to the iommufd, which owns the IOMMU group's DMA.
  assert.equal(status(env, again), 0);
  const container = proc.open('/dev/vfio/vfio');
  assert.throws(() => proc.ioctl(again, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), { code: 'EPERM' });
  proc.close(device);
  assert.equal(status(env, again), VFIO_GROUP_FLAGS_VIABLE);
  assert.equal(proc.ioctl(again, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), 0);
  exitAndCheck(env);
});

test('a group of two devices: both are opened through it and both DMA through the domain', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { group } = env.containerWithGroup(5);
  const f0 = getDeviceFd(env, group, '0000:00:05.0');
  const f1 = getDeviceFd(env, group, '0000:00:05.1');
  assert.notEqual(f0, f1);
  const snap = host.machine.iommu.snapshot();
  assert.equal(snap.attachments.length, 2);
  assert.equal(host.vfio.group(5)!.devices.length, 2);
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER), { code: 'EBUSY' });
  proc.close(f0);
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER), { code: 'EBUSY' });
  proc.close(f1);
  assert.equal(proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER), 0);
  exitAndCheck(env);
});

test('the group node fails with EBUSY while a device of it is bound through its cdev, and blocks binds while open', () => {
  const env = Env.create();
  const { proc, host } = env;
  const vgroup = host.vfio.group(2)!;
  vgroup.blockGroup();
  assert.throws(() => proc.open('/dev/vfio/2'), { code: 'EBUSY' });
  vgroup.unblockGroup();
  const group = proc.open('/dev/vfio/2');
  assert.throws(() => vgroup.blockGroup(), { code: 'EBUSY' });
  proc.close(group);
  vgroup.blockGroup();
  vgroup.unblockGroup();
  assert.equal(host.vfio.deviceByName(BDF)!.group, vgroup);
  exitAndCheck(env);
});

test('the group node answers ENODEV once no device is registered', () => {
  const env = Env.create();
  const { host, proc } = env;
  const device = host.vfio.deviceByName(BDF)!;
  host.vfio.unregisterDevice(device);
  assert.throws(() => proc.open('/dev/vfio/2'), { code: 'ENODEV' });
  assert.throws(() => proc.open('/dev/vfio/devices/vfio0'), { code: 'ENODEV' });
  exitAndCheck(env);
});

/** A stand-in for an iommufd context file, recording what the group asks of it. */
class FakeIommufdFile extends File implements VfioGroupIommufd {
  readonly path = 'anon_inode:[iommufd]';
  readonly calls: string[] = [];
  failAttach: ErrnoCode | null = null;
  readonly [VFIO_GROUP_IOMMUFD] = this;

  attachGroup(group: VfioGroup): void {
    if (this.failAttach) {
      this.calls.push(`attach-fail ${group.id}`);
      fail(this.failAttach);
    }
    this.calls.push(`attach ${group.id}`);
  }

  detachGroup(group: VfioGroup): void {
    this.calls.push(`detach ${group.id}`);
  }

  bindGroupDevice(_group: VfioGroup, device: VfioDevice) {
    this.calls.push(`bind ${device.name}`);
    return { devId: 1, release: () => this.calls.push(`unbind ${device.name}`) };
  }
}

test('SET_CONTAINER with an iommufd: no backend needed, devices bind on first open, unset allowed with devices open', () => {
  const env = Env.create();
  const { proc, host } = env;
  const fake = new FakeIommufdFile();
  const ifd = proc.task.files.install(fake.get());
  const group = proc.open('/dev/vfio/2');
  proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(ifd));
  assert.equal(status(env, group), VFIO_GROUP_FLAGS_VIABLE | VFIO_GROUP_FLAGS_CONTAINER_SET);
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(ifd)), { code: 'EINVAL' });
  const a = getDeviceFd(env, group);
  const b = getDeviceFd(env, group);
  assert.deepEqual(fake.calls, ['attach 2', `bind ${BDF}`]);
  assert.ok(host.vfio.deviceByName(BDF)!.iommufdBinding);
  assert.equal(proc.ioctl(group, VFIO_GROUP_UNSET_CONTAINER), 0);
  assert.deepEqual(fake.calls.slice(2), ['detach 2']);
  proc.close(a);
  proc.close(b);
  assert.deepEqual(fake.calls.slice(3), [`unbind ${BDF}`]);
  assert.equal(host.vfio.deviceByName(BDF)!.iommufdBinding, null);
  proc.close(group);
  proc.close(ifd);
  fake.put();
  exitAndCheck(env);
});

test('SET_CONTAINER with an iommufd: group release drops the context reference', () => {
  const env = Env.create();
  const { proc } = env;
  const fake = new FakeIommufdFile();
  const ifd = proc.task.files.install(fake.get());
  const group = proc.open('/dev/vfio/2');
  proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(ifd));
  proc.close(group);
  assert.deepEqual(fake.calls, ['attach 2', 'detach 2']);
  proc.close(ifd);
  fake.put();
  exitAndCheck(env);
});

test('two groups share one container; each leaves on its own', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container, group: g2 } = env.containerWithGroup(2);
  const g4 = proc.open('/dev/vfio/4');
  proc.ioctl(g4, VFIO_GROUP_SET_CONTAINER, env.putS32(container));
  assert.equal(status(env, g4), 3);
  const buf = env.buffer(PAGE);
  env.map(container, buf, 0x100000n, PAGE);
  proc.ioctl(g2, VFIO_GROUP_UNSET_CONTAINER);
  assert.equal(host.usage().iommuMappings, 1, 'mappings stay while a group remains');
  assert.equal(env.unmap(container, 0x100000n, PAGE), BigInt(PAGE));
  env.map(container, buf, 0x100000n, PAGE);
  proc.ioctl(g4, VFIO_GROUP_UNSET_CONTAINER);
  assert.equal(host.usage().iommuMappings, 0);
  assert.equal(host.usage().lockedPages, 0);
  proc.exit();
  assertHostClean(host);
});

test('SET_CONTAINER with an iommufd passes its compat-IOAS error on and leaves the group unset', () => {
  const env = Env.create();
  const { proc } = env;
  const fake = new FakeIommufdFile();
  fake.failAttach = 'ENOMEM';
  const ifd = proc.task.files.install(fake.get());
  const group = proc.open('/dev/vfio/2');
  assert.throws(() => proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(ifd)), { code: 'ENOMEM' });
  assert.equal(status(env, group), VFIO_GROUP_FLAGS_VIABLE);
  fake.failAttach = null;
  proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.putS32(ifd));
  proc.close(ifd);
  fake.put();
  exitAndCheck(env);
});
