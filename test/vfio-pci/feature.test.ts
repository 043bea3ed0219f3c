/** vfio-pci device features: low power entry/exit, VF token (semantics.md §3.1, §3.4). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EduReg } from '../../src/hw/devices/edu.js';
import type { EventFd } from '../../src/kernel/vfs/eventfd.js';
import {
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY as ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP as ENTRY_WAKEUP,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT as EXIT,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_GET_INFO,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_INTX_IRQ_INDEX,
  vfio_device_feature,
  vfio_device_info,
} from '../../src/uapi/vfio.js';
import { BAR0, Env, RW, SHARED, exitAndCheck, region, s32s, u32 } from './helpers.js';

const SET = VFIO_DEVICE_FEATURE_SET;
const GET = VFIO_DEVICE_FEATURE_GET;
const PROBE = VFIO_DEVICE_FEATURE_PROBE;

function setup() {
  const env = Env.create();
  const { device } = env.openDevice();
  const feature = (flags: number, payload: Uint8Array = new Uint8Array(0)) =>
    env.proc.ioctl(
      device,
      VFIO_DEVICE_FEATURE,
      env.put(vfio_device_feature, { argsz: 8 + payload.length, flags }, env.scratch, payload),
    );
  const getInfo = () => env.call(device, VFIO_DEVICE_GET_INFO, vfio_device_info, {});
  return { env, device, feature, getInfo };
}

test('LOW_POWER_ENTRY / EXIT: SET only, no double entry, mmap faults while engaged', () => {
  const { env, device, feature, getInfo } = setup();
  assert.equal(feature(PROBE | SET | ENTRY), 0);
  assert.throws(() => feature(PROBE | GET | ENTRY), { code: 'EINVAL' });
  assert.throws(() => feature(GET | ENTRY), { code: 'EINVAL' });
  assert.throws(() => feature(ENTRY), { code: 'EINVAL' }, 'neither GET nor SET');
  const bar = env.proc.mmap(4096, RW, SHARED, device, region(BAR0));
  assert.equal(feature(SET | ENTRY), 0);
  assert.throws(() => env.proc.memory.read(bar, 4), { code: 'EFAULT' });
  // Ioctls and region accesses resume the device but, without a wake-up eventfd, stay engaged.
  getInfo();
  assert.equal(env.barRead32(device, EduReg.ID), 0x010000ed);
  assert.throws(() => feature(SET | ENTRY), { code: 'EINVAL' });
  assert.equal(feature(SET | EXIT), 0);
  assert.equal(u32(env.proc.memory.read(bar, 4)), 0x010000ed);
  assert.equal(feature(SET | EXIT), 0, 'exit when not engaged is a no-op');
  assert.throws(() => feature(GET | EXIT), { code: 'EINVAL' });
  assert.equal(feature(SET | ENTRY), 0);
  exitAndCheck(env);
});

test('LOW_POWER_ENTRY_WITH_WAKEUP: payload checks; the next access signals and exits', () => {
  const { env, device, feature, getInfo } = setup();
  const wake = env.proc.eventfd();
  assert.throws(() => feature(SET | ENTRY_WAKEUP), { code: 'EINVAL' }, 'payload too short');
  assert.equal(feature(PROBE | SET | ENTRY_WAKEUP), 0);
  assert.throws(() => feature(SET | ENTRY_WAKEUP, s32s([-1, 0])), { code: 'EINVAL' });
  assert.throws(() => feature(SET | ENTRY_WAKEUP, s32s([999, 0])), { code: 'EBADF' });
  assert.throws(() => feature(SET | ENTRY_WAKEUP, s32s([device, 0])), { code: 'EINVAL' });
  assert.throws(() => feature(GET | ENTRY_WAKEUP, s32s([wake, 0])), { code: 'EINVAL' });
  assert.equal(feature(SET | ENTRY_WAKEUP, s32s([wake, 0])), 0);
  assert.equal(env.drain(wake), 0n);
  getInfo();
  assert.equal(env.drain(wake), 1n);
  // Low power was left: a new entry is accepted, and so is another with wake-up.
  assert.equal(feature(SET | ENTRY_WAKEUP, s32s([wake, 0])), 0);
  assert.equal(env.cfgRead(device, 0, 2), 0x1234);
  assert.equal(env.drain(wake), 1n, 'config access wakes it too');
  // Closing while engaged drops the eventfd reference.
  assert.equal(feature(SET | ENTRY_WAKEUP, s32s([wake, 0])), 0);
  const file = env.proc.task.files.get(wake) as EventFd;
  env.proc.close(wake);
  env.proc.close(device);
  assert.ok(file.released);
  exitAndCheck(env);
});

test('INTx is masked while in low power and unmasked (signalling a pending line) on resume', () => {
  const { env, device, feature, getInfo } = setup();
  const efd = env.proc.eventfd();
  env.setIrqs(
    device,
    VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
    VFIO_PCI_INTX_IRQ_INDEX,
    0,
    1,
    s32s([efd]),
  );
  const wake = env.proc.eventfd();
  feature(SET | ENTRY_WAKEUP, s32s([wake, 0]));
  // The device raises its interrupt behind the user's back (no access through vfio).
  const fn = env.host.machine.function('0000:00:03.0');
  fn.bar(0)!.region.write(EduReg.IRQ_RAISE, new Uint8Array([1, 0, 0, 0]));
  assert.equal(env.drain(efd), 0n);
  assert.ok(fn.configRead(0x04, 2) & 0x400, 'masked at the device');
  getInfo();
  assert.equal(env.drain(wake), 1n);
  assert.equal(env.drain(efd), 1n);
  exitAndCheck(env);
});

test('PCI_VF_TOKEN and unknown features are ENOTTY', () => {
  const { env, feature } = setup();
  assert.throws(() => feature(SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN, new Uint8Array(16)), { code: 'ENOTTY' });
  assert.throws(() => feature(PROBE | SET | VFIO_DEVICE_FEATURE_PCI_VF_TOKEN), { code: 'ENOTTY' });
  for (const index of [10, 11, 12, 0x99, 0xffff]) {
    assert.throws(() => feature(PROBE | SET | index), { code: 'ENOTTY' }, `feature ${index}`);
  }
  exitAndCheck(env);
});

test('every device ioctl resumes the device first, core features and failing calls included', () => {
  const { env, device, feature } = setup();
  const wake = env.proc.eventfd();
  const MIGRATION = 1;
  const calls: Array<[string, () => unknown]> = [
    ['MIGRATION (ENOTTY, handled by the core)', () => feature(PROBE | GET | MIGRATION)],
    [
      'argsz < 8 (EINVAL)',
      () => env.proc.ioctl(device, VFIO_DEVICE_FEATURE, env.put(vfio_device_feature, { argsz: 4, flags: GET })),
    ],
    ['unknown ioctl (ENOTTY)', () => env.proc.ioctl(device, 0x3b99, 0)],
  ];
  for (const [what, call] of calls) {
    assert.equal(feature(SET | ENTRY_WAKEUP, s32s([wake, 0])), 0, what);
    assert.throws(call);
    // vfio_device_pm_runtime_get() ran: the wake-up eventfd fired and low power ended.
    assert.equal(env.drain(wake), 1n, what);
    assert.equal(feature(SET | ENTRY), 0, `${what}: no longer engaged`);
    assert.equal(feature(SET | EXIT), 0);
  }
  // Region accesses refused before the device is touched (count 0, no such region) do not.
  assert.equal(feature(SET | ENTRY_WAKEUP, s32s([wake, 0])), 0);
  assert.equal(env.proc.pread(device, 0, region(BAR0)).length, 0);
  assert.throws(() => env.proc.pread(device, 4, region(9)), { code: 'EINVAL' });
  assert.equal(env.drain(wake), 0n);
  exitAndCheck(env);
});
