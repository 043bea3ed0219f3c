/**
 * VFIO_DEVICE_SET_IRQS (semantics.md §6.8): the validation order, INTx with auto-masking, MSI
 * through interrupt remapping, ERR/REQ, and the "== interrupts" sequence of probe-612-edu.txt.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EduReg } from '../../src/hw/devices/edu.js';
import type { EventFd } from '../../src/kernel/vfs/eventfd.js';
import {
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX as INTX,
  VFIO_PCI_MSI_IRQ_INDEX as MSI,
  VFIO_PCI_MSIX_IRQ_INDEX as MSIX,
  VFIO_PCI_REQ_IRQ_INDEX as REQ,
} from '../../src/uapi/vfio.js';
import { Env, exitAndCheck, s32s } from './helpers.js';

const NONE = VFIO_IRQ_SET_DATA_NONE;
const BOOL = VFIO_IRQ_SET_DATA_BOOL;
const EVENTFD = VFIO_IRQ_SET_DATA_EVENTFD;
const TRIGGER = VFIO_IRQ_SET_ACTION_TRIGGER;
const MASK = VFIO_IRQ_SET_ACTION_MASK;
const UNMASK = VFIO_IRQ_SET_ACTION_UNMASK;

function setup() {
  const env = Env.create();
  const { device } = env.openDevice();
  // Bus mastering on, as a driver does (MSI messages are memory writes).
  env.cfgWrite(device, 0x04, 2, 0x0107);
  const raise = (value = 1) => env.barWrite32(device, EduReg.IRQ_RAISE, value);
  const ack = (value = 0xffffffff) => env.barWrite32(device, EduReg.IRQ_ACK, value);
  return { env, device, raise, ack, fn: env.host.machine.function('0000:00:03.0') };
}

test('the "== interrupts" sequence of the real kernel', () => {
  const { env, device, raise, ack } = setup();
  const efd = env.proc.eventfd();
  assert.equal(env.trigger(device, INTX, [efd]), 0);
  raise(1);
  assert.equal(env.drain(efd), 1n);
  assert.equal(env.barRead32(device, EduReg.IRQ_STATUS), 0x1);
  // UNMASK while the line is still asserted signals again instead of unmasking.
  assert.equal(env.setIrqs(device, NONE | UNMASK, INTX, 0, 1), 0);
  assert.equal(env.drain(efd), 1n);
  assert.equal(env.setIrqs(device, NONE | MASK, INTX, 0, 1), 0);
  raise(1);
  assert.equal(env.drain(efd), 0n, 'raise while masked');
  assert.equal(env.setIrqs(device, NONE | UNMASK, INTX, 0, 1), 0);
  assert.equal(env.drain(efd), 1n, 'after unmask (pending line)');

  const msiEfd = env.proc.eventfd();
  assert.throws(() => env.trigger(device, MSI, [msiEfd]), { code: 'EINVAL' });
  assert.equal(env.setIrqs(device, NONE | TRIGGER, INTX, 0, 0), 0);
  ack();
  assert.equal(env.trigger(device, MSI, [msiEfd]), 0);
  assert.equal(env.cfgRead(device, 0x42, 2), 0x0080, 'user view of the MSI control');
  assert.equal(env.cfgRead(device, 0x44, 4), 0);
  raise(1);
  assert.equal(env.drain(msiEfd), 1n);
  ack();
  assert.throws(() => env.trigger(device, MSI, [msiEfd, msiEfd]), { code: 'EINVAL' });
  assert.equal(env.setIrqs(device, NONE | TRIGGER, MSI, 0, 1), 0);
  assert.equal(env.drain(msiEfd), 1n, 'DATA_NONE loopback');
  assert.equal(env.setIrqs(device, NONE | TRIGGER, MSI, 0, 0), 0);
  assert.throws(() => env.trigger(device, MSIX, [msiEfd]), { code: 'EINVAL' });
  const reqEfd = env.proc.eventfd();
  assert.equal(env.trigger(device, REQ, [reqEfd]), 0);
  assert.throws(() => env.setIrqs(device, NONE | BOOL | TRIGGER, INTX, 0, 1, new Uint8Array([1])), { code: 'EINVAL' });
  exitAndCheck(env);
});

test('generic validation, in the kernel order', () => {
  const { env, device } = setup();
  const efd = env.proc.eventfd();
  const data = s32s([efd]);
  // argsz, index, count overflow and unknown flags: EINVAL.
  assert.throws(() => env.setIrqs(device, EVENTFD | TRIGGER, INTX, 0, 1, data, 19), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, EVENTFD | TRIGGER, 5, 0, 1, data), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, MSI, 1, 0xfffffffe), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER | 0x40, INTX, 0, 1), { code: 'EINVAL' });
  // start/count against the IRQ count: start beyond the last vector even with count 0.
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, INTX, 1, 0), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, MSI, 0, 2), { code: 'EINVAL' });
  // ERR has count 0 on conventional PCI: always EINVAL.
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, VFIO_PCI_ERR_IRQ_INDEX, 0, 0), { code: 'EINVAL' });
  // Exactly one data type.
  assert.throws(() => env.setIrqs(device, TRIGGER, INTX, 0, 1), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, BOOL | EVENTFD | TRIGGER, INTX, 0, 1, data), { code: 'EINVAL' });
  // Data must fit in argsz.
  assert.throws(() => env.setIrqs(device, EVENTFD | TRIGGER, INTX, 0, 1, new Uint8Array(0), 20), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, BOOL | TRIGGER, INTX, 0, 1, new Uint8Array(0), 20), { code: 'EINVAL' });
  // Zero or several actions, or an action the index lacks: ENOTTY.
  assert.throws(() => env.setIrqs(device, NONE, INTX, 0, 1), { code: 'ENOTTY' });
  assert.throws(() => env.setIrqs(device, NONE | MASK | UNMASK, INTX, 0, 1), { code: 'ENOTTY' });
  assert.throws(() => env.setIrqs(device, NONE | MASK, MSI, 0, 1), { code: 'ENOTTY' });
  assert.throws(() => env.setIrqs(device, NONE | UNMASK, REQ, 0, 1), { code: 'ENOTTY' });
  // The data pointer is read only after validation.
  assert.throws(() => env.proc.ioctl(device, 0x3b6e, 0n), { code: 'EFAULT' });
  exitAndCheck(env);
});

test('INTx trigger: enable, swap, fd errors, loopback, disable', () => {
  const { env, device, raise, ack } = setup();
  const a = env.proc.eventfd();
  const b = env.proc.eventfd();
  // Actions on INTx before it is enabled.
  assert.throws(() => env.setIrqs(device, NONE | UNMASK, INTX, 0, 1), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, NONE | MASK, INTX, 0, 1), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, INTX, 0, 1), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, INTX, 0, 0), { code: 'EINVAL' });
  // Bad fds.
  assert.throws(() => env.trigger(device, INTX, [999]), { code: 'EBADF' });
  assert.throws(() => env.trigger(device, INTX, [device]), { code: 'EINVAL' });
  // Enabled with no eventfd: the line is still auto-masked.
  assert.equal(env.trigger(device, INTX, [-1]), 0);
  raise();
  assert.equal(env.trigger(device, INTX, [a]), 0);
  assert.equal(env.drain(a), 0n);
  env.setIrqs(device, NONE | UNMASK, INTX, 0, 1);
  assert.equal(env.drain(a), 1n, 'the pending interrupt reaches the new eventfd on unmask');
  // Swap the trigger.
  assert.equal(env.trigger(device, INTX, [b]), 0);
  env.setIrqs(device, NONE | UNMASK, INTX, 0, 1);
  assert.equal(env.drain(a), 0n);
  assert.equal(env.drain(b), 1n);
  // Acknowledged: unmask unmasks, the next raise fires once.
  ack();
  env.setIrqs(device, NONE | UNMASK, INTX, 0, 1);
  assert.equal(env.drain(b), 0n);
  raise();
  raise();
  assert.equal(env.drain(b), 1n, 'auto-masked after the first');
  // Loopback.
  env.setIrqs(device, NONE | TRIGGER, INTX, 0, 1);
  env.setIrqs(device, BOOL | TRIGGER, INTX, 0, 1, new Uint8Array([0]));
  assert.equal(env.drain(b), 1n);
  env.setIrqs(device, BOOL | TRIGGER, INTX, 0, 1, new Uint8Array([1]));
  assert.equal(env.drain(b), 1n);
  // MASK/UNMASK with BOOL, MASK with an eventfd (never implemented).
  env.setIrqs(device, BOOL | MASK, INTX, 0, 1, new Uint8Array([1]));
  assert.throws(() => env.setIrqs(device, EVENTFD | MASK, INTX, 0, 1, s32s([a])), { code: 'ENOTTY' });
  // Disable: DATA_NONE with count 0; then INTx actions are EINVAL again and the pin is free.
  assert.equal(env.setIrqs(device, NONE | TRIGGER, INTX, 0, 0), 0);
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, INTX, 0, 1), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, BOOL | MASK, INTX, 0, 1, new Uint8Array([1])), { code: 'EINVAL' });
  exitAndCheck(env);
});

test('INTx: unmask eventfd, COMMAND.INTX_DISABLE', () => {
  const { env, device, raise, ack, fn } = setup();
  const trig = env.proc.eventfd();
  const unmask = env.proc.eventfd();
  env.trigger(device, INTX, [trig]);
  assert.equal(env.setIrqs(device, EVENTFD | UNMASK, INTX, 0, 1, s32s([unmask])), 0);
  assert.throws(() => env.setIrqs(device, EVENTFD | UNMASK, INTX, 0, 1, s32s([unmask])), { code: 'EBUSY' });
  raise();
  assert.equal(env.drain(trig), 1n);
  // Writing the unmask eventfd unmasks; the line is still high, so the trigger fires again.
  env.proc.write(unmask, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
  assert.equal(env.drain(unmask), 0n, 'the kernel consumed the unmask signal');
  assert.equal(env.drain(trig), 1n);
  ack();
  env.proc.write(unmask, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
  assert.equal(env.drain(trig), 0n);
  // fd -1 removes the unmask eventfd.
  env.setIrqs(device, EVENTFD | UNMASK, INTX, 0, 1, s32s([-1]));
  raise();
  assert.equal(env.drain(trig), 1n);
  env.proc.write(unmask, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
  assert.equal(env.drain(trig), 0n);
  ack();
  env.setIrqs(device, NONE | UNMASK, INTX, 0, 1);

  // INTX_DISABLE masks at the device; clearing it unmasks (and signals a pending line).
  env.cfgWrite(device, 0x04, 2, 0x0507);
  assert.ok(fn.configRead(0x04, 2) & 0x400);
  raise();
  assert.equal(env.drain(trig), 0n);
  assert.equal(fn.intxLevel, false);
  // UNMASK is refused while the user has INTx disabled.
  env.setIrqs(device, NONE | UNMASK, INTX, 0, 1);
  assert.equal(env.drain(trig), 0n);
  env.cfgWrite(device, 0x04, 2, 0x0107);
  assert.equal(env.drain(trig), 1n);
  exitAndCheck(env);
});

test('MSI: remapping entries, the device message, per-vector eventfds, errors', () => {
  const { env, device, raise, ack, fn } = setup();
  const table = env.host.machine.iommu.irqRemap;
  const a = env.proc.eventfd();
  const b = env.proc.eventfd();
  // A bad fd fails the enable and leaves MSI off.
  assert.throws(() => env.trigger(device, MSI, [999]), { code: 'EBADF' });
  assert.equal(table.allocated, 0);
  assert.equal(fn.msiEnabled, false);
  // EVENTFD with no vectors on an inactive index asks the PCI core for 0 vectors: ERANGE.
  assert.throws(() => env.setIrqs(device, EVENTFD | TRIGGER, MSI, 0, 0), { code: 'ERANGE' });
  assert.equal(env.trigger(device, MSI, [a]), 0);
  assert.equal(table.allocated, 1);
  // Once active, an empty EVENTFD call sets no vector: a no-op.
  assert.equal(env.setIrqs(device, EVENTFD | TRIGGER, MSI, 0, 0), 0);
  assert.ok(fn.msiEnabled);
  assert.equal(fn.msi!.address >> 20n, 0xfeen);
  // INTx is refused while MSI is on.
  assert.throws(() => env.trigger(device, INTX, [b]), { code: 'EINVAL' });
  raise();
  raise(2);
  assert.equal(env.drain(a), 2n, 'one message per raise');
  // Swap, detach.
  env.trigger(device, MSI, [b]);
  raise();
  assert.equal(env.drain(a), 0n);
  assert.equal(env.drain(b), 1n);
  env.trigger(device, MSI, [-1]);
  raise();
  assert.equal(env.drain(b), 0n);
  // Loopback only where an eventfd is attached; BOOL per vector.
  env.setIrqs(device, NONE | TRIGGER, MSI, 0, 1);
  assert.equal(env.drain(b), 0n);
  env.trigger(device, MSI, [b]);
  env.setIrqs(device, BOOL | TRIGGER, MSI, 0, 1, new Uint8Array([0]));
  assert.equal(env.drain(b), 0n);
  env.setIrqs(device, BOOL | TRIGGER, MSI, 0, 1, new Uint8Array([1]));
  assert.equal(env.drain(b), 1n);
  // The user may now set the enable bit in its view; QMASK shows msi_qmax.
  env.cfgWrite(device, 0x42, 2, 0x0081);
  assert.equal(env.cfgRead(device, 0x42, 2), 0x0081);
  ack();
  env.setIrqs(device, NONE | TRIGGER, MSI, 0, 0);
  assert.equal(table.allocated, 0);
  assert.equal(fn.msiEnabled, false);
  // Disabled again, the enable bit cannot be set.
  env.cfgWrite(device, 0x42, 2, 0x0081);
  assert.equal(env.cfgRead(device, 0x42, 2), 0x0080);
  // Loopback with MSI off.
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, MSI, 0, 1), { code: 'EINVAL' });
  exitAndCheck(env);
});

test('ERR/REQ-style single eventfd (REQ on edu)', () => {
  const { env, device } = setup();
  const efd = env.proc.eventfd();
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, REQ, 0, 1), { code: 'EINVAL' }, 'no trigger yet');
  assert.throws(() => env.setIrqs(device, BOOL | TRIGGER, REQ, 0, 0), { code: 'EINVAL' });
  assert.throws(() => env.setIrqs(device, EVENTFD | TRIGGER, REQ, 0, 0), { code: 'EINVAL' });
  assert.equal(env.setIrqs(device, BOOL | TRIGGER, REQ, 0, 1, new Uint8Array([1])), 0, 'BOOL without trigger: 0');
  assert.equal(env.setIrqs(device, EVENTFD | TRIGGER, REQ, 0, 1, s32s([-5])), 0, 'fd < -1 is a no-op');
  assert.throws(() => env.setIrqs(device, EVENTFD | TRIGGER, REQ, 0, 1, s32s([999])), { code: 'EBADF' });
  assert.throws(() => env.setIrqs(device, EVENTFD | TRIGGER, REQ, 0, 1, s32s([device])), { code: 'EINVAL' });
  assert.equal(env.trigger(device, REQ, [efd]), 0);
  env.setIrqs(device, NONE | TRIGGER, REQ, 0, 1);
  env.setIrqs(device, BOOL | TRIGGER, REQ, 0, 1, new Uint8Array([1]));
  env.setIrqs(device, BOOL | TRIGGER, REQ, 0, 1, new Uint8Array([0]));
  assert.equal(env.drain(efd), 2n);
  // DATA_NONE with count 0 clears it.
  env.setIrqs(device, NONE | TRIGGER, REQ, 0, 0);
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, REQ, 0, 1), { code: 'EINVAL' });
  env.trigger(device, REQ, [efd]);
  env.trigger(device, REQ, [-1]);
  assert.throws(() => env.setIrqs(device, NONE | TRIGGER, REQ, 0, 1), { code: 'EINVAL' });
  exitAndCheck(env);
});

test('the kernel holds eventfd counters, not files; closing an unmask eventfd drops its virqfd', () => {
  const { env, device, raise, ack } = setup();
  const efds = [env.proc.eventfd(), env.proc.eventfd(), env.proc.eventfd()];
  const files = efds.map((fd) => env.proc.task.files.get(fd) as EventFd);
  env.trigger(device, INTX, [efds[0]!]);
  env.setIrqs(device, EVENTFD | UNMASK, INTX, 0, 1, s32s([efds[1]!]));
  env.trigger(device, REQ, [efds[2]!]);
  // The unmask slot is taken: a second eventfd is EBUSY until the first is removed...
  const other = env.proc.eventfd();
  assert.throws(() => env.setIrqs(device, EVENTFD | UNMASK, INTX, 0, 1, s32s([other])), { code: 'EBUSY' });
  for (const fd of efds) env.proc.close(fd);
  // ...or its file goes away: the last close wakes the virqfd with EPOLLHUP (virqfd_wakeup).
  assert.ok(
    files.every((f) => f.released),
    'the kernel pins no eventfd file',
  );
  assert.equal(env.setIrqs(device, EVENTFD | UNMASK, INTX, 0, 1, s32s([other])), 0);
  raise();
  assert.equal(files[0]!.counter, 1n, 'the trigger is still signalled after the user closed its fd');
  ack();
  // The new unmask eventfd works: writing it unmasks, and the next raise signals again.
  env.proc.write(other, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
  raise();
  assert.equal(files[0]!.counter, 2n);
  exitAndCheck(env);
});

test('closing the device with MSI on frees the remapping entries and turns MSI off', () => {
  const { env, device, fn } = setup();
  const efd = env.proc.eventfd();
  env.trigger(device, MSI, [efd]);
  assert.ok(fn.msiEnabled);
  env.proc.close(device);
  assert.equal(fn.msiEnabled, false);
  assert.equal(env.host.machine.iommu.irqRemap.allocated, 0);
  exitAndCheck(env);
});
