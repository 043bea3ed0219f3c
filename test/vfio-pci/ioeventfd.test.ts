/** VFIO_DEVICE_IOEVENTFD (semantics.md §6.12). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EduReg } from '../../src/hw/devices/edu.js';
import { VFIO_PCI_IOEVENTFD_MAX } from '../../src/kernel/vfio/pci/vfio-pci-rdwr.js';
import { VFIO_DEVICE_IOEVENTFD, vfio_device_ioeventfd } from '../../src/uapi/vfio.js';
import { BAR0, CONFIG, Env, exitAndCheck, region } from './helpers.js';

const ONE = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);

function setup() {
  const env = Env.create();
  const { device } = env.openDevice();
  const ioeventfd = (value: { argsz?: number; flags: number; offset: bigint; data?: bigint; fd: number }) =>
    env.call(device, VFIO_DEVICE_IOEVENTFD, vfio_device_ioeventfd, { data: 0n, ...value });
  return { env, device, ioeventfd };
}

test('argument checks: argsz, size flags, fd, region, bounds, 8 bytes', () => {
  const { env, ioeventfd } = setup();
  const efd = env.proc.eventfd();
  const liveness = region(BAR0, EduReg.LIVENESS);
  assert.throws(() => ioeventfd({ argsz: 27, flags: 4, offset: liveness, fd: efd }), { code: 'EINVAL' });
  assert.throws(() => ioeventfd({ flags: 0x10 | 4, offset: liveness, fd: efd }), { code: 'EINVAL' });
  assert.throws(() => ioeventfd({ flags: 0, offset: liveness, fd: efd }), { code: 'EINVAL' });
  assert.throws(() => ioeventfd({ flags: 4 | 2, offset: liveness, fd: efd }), { code: 'EINVAL' });
  assert.throws(() => ioeventfd({ flags: 4, offset: liveness, fd: -2 }), { code: 'EINVAL' });
  assert.throws(() => ioeventfd({ flags: 4, offset: region(CONFIG, 4), fd: efd }), { code: 'EINVAL' });
  assert.throws(() => ioeventfd({ flags: 4, offset: region(1), fd: efd }), { code: 'EINVAL' });
  assert.throws(() => ioeventfd({ flags: 4, offset: region(BAR0, (1 << 20) - 2), fd: efd }), { code: 'EINVAL' });
  assert.throws(() => ioeventfd({ flags: 8, offset: region(BAR0, EduReg.DMA_SRC), fd: efd }), { code: 'EINVAL' });
  // Removing what is not there; registering a bad fd.
  assert.throws(() => ioeventfd({ flags: 4, offset: liveness, fd: -1 }), { code: 'ENODEV' });
  assert.throws(() => ioeventfd({ flags: 4, offset: liveness, fd: 999 }), { code: 'EBADF' });
  const notEventfd = env.proc.memfdCreate('x');
  assert.throws(() => ioeventfd({ flags: 4, offset: liveness, fd: notEventfd }), { code: 'EINVAL' });
  exitAndCheck(env);
});

test('a write to the eventfd performs the programmed register write; EEXIST; removal', () => {
  const { env, device, ioeventfd } = setup();
  const efd = env.proc.eventfd();
  const liveness = region(BAR0, EduReg.LIVENESS);
  // 28 bytes (up to fd) are enough: the kernel's minsz ends at `fd`.
  const at = env.put(vfio_device_ioeventfd, { argsz: 28, flags: 4, offset: liveness, data: 0x1111n, fd: efd });
  assert.equal(env.proc.ioctl(device, VFIO_DEVICE_IOEVENTFD, at), 0);
  assert.throws(() => ioeventfd({ flags: 4, offset: liveness, data: 0x1111n, fd: efd }), { code: 'EEXIST' });
  // Another value at the same place is another ioeventfd.
  const efd2 = env.proc.eventfd();
  ioeventfd({ flags: 4, offset: liveness, data: 0x2222n, fd: efd2 });
  env.proc.write(efd, ONE);
  assert.equal(env.barRead32(device, EduReg.LIVENESS), ~0x1111 >>> 0);
  assert.equal(env.drain(efd), 0n, 'the count is consumed by the kernel');
  env.proc.write(efd2, ONE);
  assert.equal(env.barRead32(device, EduReg.LIVENESS), ~0x2222 >>> 0);
  // Memory decode off: the write is skipped.
  env.cfgWrite(device, 0x04, 2, 0x0101);
  env.proc.write(efd, ONE);
  env.cfgWrite(device, 0x04, 2, 0x0103);
  assert.equal(env.barRead32(device, EduReg.LIVENESS), ~0x2222 >>> 0);
  // Removal with fd -1.
  assert.equal(ioeventfd({ flags: 4, offset: liveness, data: 0x1111n, fd: -1 }).fd, -1);
  env.proc.write(efd, ONE);
  assert.equal(env.barRead32(device, EduReg.LIVENESS), ~0x2222 >>> 0);
  assert.equal(env.drain(efd), 1n, 'no longer consumed');
  exitAndCheck(env);
});

test(`at most ${VFIO_PCI_IOEVENTFD_MAX} ioeventfds (ENOSPC); all dropped at close`, () => {
  const { env, device, ioeventfd } = setup();
  const efd = env.proc.eventfd();
  for (let i = 0; i < VFIO_PCI_IOEVENTFD_MAX; i++) ioeventfd({ flags: 1, offset: region(BAR0, 0x1000 + i), fd: efd });
  assert.throws(() => ioeventfd({ flags: 1, offset: region(BAR0, 0x2000), fd: efd }), { code: 'ENOSPC' });
  env.proc.close(device);
  env.proc.close(efd);
  exitAndCheck(env);
});

test('closing the eventfd stops the ioeventfd acting; its entry stays until removed', () => {
  const { env, device, ioeventfd } = setup();
  const efd = env.proc.eventfd();
  const dup = env.proc.dup(efd);
  const liveness = region(BAR0, EduReg.LIVENESS);
  ioeventfd({ flags: 4, offset: liveness, data: 0x1111n, fd: efd });
  env.proc.close(efd);
  // The file lives on through the dup: still acting.
  env.proc.write(dup, ONE);
  assert.equal(env.barRead32(device, EduReg.LIVENESS), ~0x1111 >>> 0);
  // Its last close (EPOLLHUP) deactivates the virqfd, not the list entry (vfio_pci_ioeventfd).
  env.proc.close(dup);
  const again = env.proc.eventfd();
  assert.throws(() => ioeventfd({ flags: 4, offset: liveness, data: 0x1111n, fd: again }), { code: 'EEXIST' });
  ioeventfd({ flags: 4, offset: liveness, data: 0x1111n, fd: -1 });
  ioeventfd({ flags: 4, offset: liveness, data: 0x1111n, fd: again });
  env.barWrite32(device, EduReg.LIVENESS, 0);
  env.proc.write(again, ONE);
  assert.equal(env.barRead32(device, EduReg.LIVENESS), ~0x1111 >>> 0);
  exitAndCheck(env);
});
