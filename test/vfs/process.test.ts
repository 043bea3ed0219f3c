import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Host } from '../../src/host.js';
import { SyscallError } from '../../src/uapi/errno.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../src/kernel/vfs/mm.js';
import { EFD_NONBLOCK, EFD_SEMAPHORE } from '../../src/kernel/vfs/eventfd.js';

const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

function readU64(b: Uint8Array): bigint {
  return new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true);
}

test('fds are handed out lowest first from 3, and reused after close', () => {
  const proc = Host.create().spawn();
  const a = proc.eventfd();
  const b = proc.eventfd();
  assert.equal(a, 3);
  assert.equal(b, 4);
  proc.close(a);
  assert.equal(proc.eventfd(), 3);
  assert.throws(() => proc.close(99), { code: 'EBADF', syscall: 'close' });
  assert.throws(() => proc.close(-1), { code: 'EBADF' });
});

test('dup shares the file: the counter is one object', () => {
  const proc = Host.create().spawn();
  const fd = proc.eventfd(0, EFD_NONBLOCK);
  const copy = proc.dup(fd);
  proc.write(fd, u64(5n));
  proc.close(fd);
  assert.equal(readU64(proc.read(copy, 8)), 5n);
});

test('eventfd counter, semaphore mode, EAGAIN at zero, EINVAL on short buffers and ~0', () => {
  const proc = Host.create().spawn();
  const fd = proc.eventfd(2, EFD_SEMAPHORE);
  assert.equal(readU64(proc.read(fd, 8)), 1n);
  assert.equal(readU64(proc.read(fd, 8)), 1n);
  assert.throws(() => proc.read(fd, 8), { code: 'EAGAIN', syscall: 'read' });
  assert.throws(() => proc.read(fd, 4), { code: 'EINVAL' });
  assert.throws(() => proc.write(fd, new Uint8Array(4)), { code: 'EINVAL' });
  assert.throws(() => proc.write(fd, u64(0xffffffffffffffffn)), { code: 'EINVAL' });
  proc.write(fd, u64(0xfffffffffffffffdn));
  assert.throws(() => proc.write(fd, u64(2n)), { code: 'EAGAIN' });
  assert.throws(() => proc.eventfd(0, 0x40), { code: 'EINVAL', syscall: 'eventfd' });
});

test('waitReadable resolves once the eventfd is written', async () => {
  const proc = Host.create().spawn();
  const fd = proc.eventfd();
  let resolved = false;
  const waiting = proc.waitReadable(fd).then(() => (resolved = true));
  await Promise.resolve();
  assert.equal(resolved, false);
  proc.write(fd, u64(1n));
  await waiting;
  assert.equal(resolved, true);
  await assert.rejects(proc.waitReadable(77), { code: 'EBADF' });
});

test('anonymous memory is lazy, zero-filled, and faults outside mappings', () => {
  const host = Host.create();
  const proc = host.spawn();
  const huge = proc.mmap(64n << 30n, RW, ANON);
  assert.deepEqual(proc.memory.read(huge + (63n << 30n), 4), new Uint8Array(4));
  proc.memory.write(huge + 4094n, Uint8Array.of(1, 2, 3, 4));
  assert.deepEqual(proc.memory.read(huge + 4094n, 4), Uint8Array.of(1, 2, 3, 4));
  assert.throws(() => proc.memory.read(huge - 4096n, 1), { code: 'EFAULT' });
  assert.throws(() => proc.memory.read(huge + (64n << 30n), 1), { code: 'EFAULT' });
  assert.throws(() => proc.memory.read(0n, 1), { code: 'EFAULT' });
  // A huge length that faults must not allocate first.
  assert.throws(() => proc.memory.read(0n, 0x7fffffff), { code: 'EFAULT' });
  // The accessors work detached from proc.memory (passed as callbacks, destructured).
  const { read, write } = proc.memory;
  write(huge, Uint8Array.of(7));
  assert.deepEqual(
    [huge].map((addr) => read(addr, 1)[0]),
    [7],
  );
  assert.throws(() => read(0n, 1), { code: 'EFAULT' });
  proc.exit();
  assert.throws(() => read(huge, 1), { code: 'ESRCH' });
});

test('protection is enforced: read-only memory refuses writes, PROT_NONE refuses both', () => {
  const proc = Host.create().spawn();
  const ro = proc.mmap(4096, PROT_READ, ANON);
  assert.throws(() => proc.memory.write(ro, Uint8Array.of(1)), { code: 'EFAULT' });
  assert.equal(proc.memory.read(ro, 1)[0], 0);
  const none = proc.mmap(4096, 0, ANON);
  assert.throws(() => proc.memory.read(none, 1), { code: 'EFAULT' });
});

test('munmap splits mappings and MAP_FIXED replaces', () => {
  const proc = Host.create().spawn();
  const base = proc.mmap(3 * 4096, RW, ANON);
  proc.memory.write(base + 8192n, Uint8Array.of(9));
  proc.munmap(base + 4096n, 4096);
  assert.throws(() => proc.memory.read(base + 4096n, 1), { code: 'EFAULT' });
  assert.equal(proc.memory.read(base + 8192n, 1)[0], 9);
  assert.throws(() => proc.memory.read(base + 4095n, 2), { code: 'EFAULT' });
  assert.throws(() => proc.munmap(base + 1n, 4096), { code: 'EINVAL' });
  assert.throws(() => proc.munmap(base, 0), { code: 'EINVAL' });
  const again = proc.mmapAt(base, 4096, RW, ANON | MAP_FIXED);
  assert.equal(again, base);
  assert.equal(proc.memory.read(base, 1)[0], 0);
});

test('mmap argument checks', () => {
  const proc = Host.create().spawn();
  assert.throws(() => proc.mmap(0, RW, ANON), { code: 'EINVAL', syscall: 'mmap' });
  assert.throws(() => proc.mmap(4096, RW, MAP_ANONYMOUS), { code: 'EINVAL' });
  // Unknown prot bits are not looked at by mmap; MAP_SHARED_VALIDATE refuses unknown flags.
  assert.equal(typeof proc.mmap(4096, RW | 8, ANON), 'bigint');
  // MAP_SHARED | MAP_PRIVATE is MAP_SHARED_VALIDATE.
  assert.equal(typeof proc.mmap(4096, RW, ANON | MAP_SHARED), 'bigint');
  assert.throws(() => proc.mmap(4096, RW, MAP_ANONYMOUS | 0x03 | 0x200), { code: 'EOPNOTSUPP' });
  assert.throws(() => proc.mmap(4096, RW, MAP_ANONYMOUS | 0x04), { code: 'EINVAL' });
  assert.throws(() => proc.mmap(1n << 60n, RW, ANON), { code: 'ENOMEM' });
  assert.throws(() => proc.mmap(4096, RW, MAP_SHARED, 55), { code: 'EBADF' });
  const efd = proc.eventfd();
  assert.throws(() => proc.mmap(4096, RW, MAP_SHARED, efd), { code: 'ENODEV' });
});

test('memfd: ftruncate, pread/pwrite, shared mappings see the same pages', () => {
  const proc = Host.create().spawn();
  const fd = proc.memfdCreate('buf');
  proc.ftruncate(fd, 8192);
  const a = proc.mmap(8192, RW, MAP_SHARED, fd);
  const b = proc.mmap(8192, RW, MAP_SHARED, fd);
  proc.memory.write(a + 100n, Uint8Array.of(7));
  assert.equal(proc.memory.read(b + 100n, 1)[0], 7);
  assert.equal(proc.pread(fd, 1, 100)[0], 7);
  assert.equal(proc.pwrite(fd, Uint8Array.of(8), 4096), 1);
  assert.equal(proc.memory.read(b + 4096n, 1)[0], 8);
  proc.ftruncate(fd, 4096);
  assert.throws(() => proc.memory.read(a + 4096n, 1), { code: 'EFAULT' });
  assert.throws(() => proc.ftruncate(fd, -1), { code: 'EINVAL' });
  assert.throws(() => proc.memfdCreate('x', 0x100), { code: 'EINVAL' });
  assert.throws(() => proc.memfdCreate('x'.repeat(250)), { code: 'EINVAL' });
  assert.equal(proc.readlink(`/proc/self/fd/${fd}`), '/memfd:buf (deleted)');
});

test('pread/pwrite: negative offsets before the fd, ESPIPE without positions, EINVAL without ->read', () => {
  const proc = Host.create().spawn();
  const efd = proc.eventfd();
  const memfd = proc.memfdCreate('buf');
  const container = proc.open('/dev/vfio/vfio');
  const group = proc.open('/dev/vfio/3');
  // ksys_pread64(): pos < 0 (a u64 past LLONG_MAX is one) is refused before fdget.
  assert.throws(() => proc.pread(999, 4, -1), { code: 'EINVAL' });
  assert.throws(() => proc.pwrite(999, new Uint8Array(4), 1n << 63n), { code: 'EINVAL' });
  assert.throws(() => proc.pread(999, 4, 0), { code: 'EBADF' });
  // Anon-inode files have no FMODE_PREAD.
  assert.throws(() => proc.pread(efd, 8, 0), { code: 'ESPIPE' });
  assert.throws(() => proc.pwrite(efd, new Uint8Array(8), 0), { code: 'ESPIPE' });
  // Opened device nodes have positions but no ->read/->write (FMODE_CAN_READ unset).
  for (const fd of [container, group]) {
    assert.throws(() => proc.pread(fd, 4, 0), { code: 'EINVAL' });
    assert.throws(() => proc.pwrite(fd, new Uint8Array(4), 0), { code: 'EINVAL' });
    assert.throws(() => proc.read(fd, 4), { code: 'EINVAL' });
  }
  // rw_verify_area(): pos + count past LLONG_MAX.
  assert.throws(() => proc.pread(memfd, 16, (1n << 63n) - 8n), { code: 'EINVAL' });
  assert.equal(proc.pread(memfd, 0, (1n << 63n) - 1n).length, 0);
  // The access mode of open() decides before the driver: EBADF for reads/writes, EACCES for mmap.
  const wronly = proc.open('/dev/vfio/vfio', 1);
  assert.throws(() => proc.read(wronly, 4), { code: 'EBADF' });
  assert.throws(() => proc.pread(wronly, 4, 0), { code: 'EBADF' });
  const rdonly = proc.open('/dev/vfio/devices/vfio0', 0);
  assert.throws(() => proc.pwrite(rdonly, new Uint8Array(4), 0), { code: 'EBADF' });
  assert.throws(() => proc.write(rdonly, new Uint8Array(4)), { code: 'EBADF' });
  assert.throws(() => proc.mmap(4096, RW, MAP_SHARED, rdonly, 0), { code: 'EACCES' });
  assert.throws(() => proc.mmap(4096, PROT_READ, MAP_SHARED, wronly, 0), { code: 'EACCES' });
  assert.throws(() => proc.mmap(4096, PROT_READ, MAP_SHARED, rdonly, 0), { code: 'EINVAL' }, 'not bound yet');
  assert.throws(() => proc.pread(rdonly, 4, 0), { code: 'EINVAL' }, 'not bound yet');
  proc.exit();
});

test('bad argument types come back as SyscallError, never TypeError', () => {
  const proc = Host.create().spawn();
  const calls: Array<() => unknown> = [
    () => proc.close('3' as unknown as number),
    () => proc.ioctl(1.5, 0),
    () => proc.read(3, -1),
    () => proc.write(3, 'abc' as unknown as Uint8Array),
    () => proc.mmap(4096, 3, 0.5),
    () => proc.memory.read(-1n, 4),
    () => proc.memory.write(1n << 70n, Uint8Array.of(1)),
    () => proc.pread(3, 4, 1.5),
    () => proc.open('/no/such/node'),
    () => proc.readdir('/sys/nothing'),
  ];
  for (const call of calls) assert.throws(call, (err: unknown) => err instanceof SyscallError);
});

test('exit closes every fd and releases every mapping; calls after exit fail with ESRCH', () => {
  const host = Host.create();
  const proc = host.spawn();
  proc.eventfd();
  proc.mmap(4096, RW, ANON);
  proc.exit();
  assert.equal(host.usage().openFiles, 0);
  assert.equal(host.usage().processes, 0);
  assert.throws(() => proc.eventfd(), { code: 'ESRCH' });
  proc.exit();
});
