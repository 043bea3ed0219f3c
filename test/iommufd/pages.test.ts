// Pinning and accounting (semantics.md 7.6 rule 10, 7.7, 7.9, 7.17): lazy pins, per-user or
// per-mm charges against RLIMIT_MEMLOCK, CAP_IPC_LOCK, pages shared by COPY, EFAULT cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IOMMU_IOAS_CHANGE_PROCESS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_OPTION,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  iommu_ioas_change_process,
  iommu_ioas_copy,
  iommu_ioas_map_file,
  iommu_option,
} from '../../src/uapi/iommufd.js';
import { MAP_SHARED, PROT_READ } from '../../src/kernel/vfs/mm.js';
import { ANON, Env, FIXED_RW, PAGE, RW, U64_MAX } from './helpers.js';

const UID = 1000;

function unprivileged(env: Env, caps: string[] = [], limitPages = 16): Env {
  return new Env(env.host, env.host.spawn({ uid: UID, capabilities: caps, rlimitMemlock: limitPages * PAGE }));
}

function charges(env: Env): { user: number; mmLocked: number; mmPinned: number } {
  const task = env.proc.task;
  return { user: env.host.kernel.user(task.cred.uid).lockedVm, mmLocked: task.mm.lockedVm, mmPinned: task.mm.pinnedVm };
}

test('per-user accounting (default): charges at MAP with a domain, ENOMEM past RLIMIT_MEMLOCK', () => {
  const root = Env.create();
  const env = unprivileged(root);
  const { ioas } = env.device(0);
  const buf = env.buffer(32 * PAGE);
  env.map(ioas, { iova: 0x100000n, length: 8 * PAGE, va: buf });
  assert.deepEqual(charges(env), { user: 8, mmLocked: 0, mmPinned: 8 });
  env.map(ioas, { iova: 0x200000n, length: 8 * PAGE, va: buf + BigInt(8 * PAGE) });
  assert.throws(() => env.map(ioas, { iova: 0x300000n, length: PAGE, va: buf + BigInt(16 * PAGE) }), {
    code: 'ENOMEM',
  });
  assert.deepEqual(charges(env), { user: 16, mmLocked: 0, mmPinned: 16 });
  env.unmap(ioas, 0x100000n, 8 * PAGE);
  assert.deepEqual(charges(env), { user: 8, mmLocked: 0, mmPinned: 8 });
  // The charge is per uid: another process of the same user shares the budget.
  const sibling = unprivileged(root);
  const other = sibling.device(1);
  assert.throws(() => sibling.map(other.ioas, { iova: 0x100000n, length: 9 * PAGE, va: sibling.buffer(9 * PAGE) }), {
    code: 'ENOMEM',
  });
  sibling.proc.exit();
  env.proc.exit();
  root.leakCheck();
});

test('per-mm accounting (RLIMIT_MODE 1, needs CAP_SYS_RESOURCE) and CAP_IPC_LOCK (not charged)', () => {
  const root = Env.create();
  const env = unprivileged(root, ['CAP_SYS_RESOURCE']);
  env.call(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1n });
  const { ioas } = env.device(0);
  env.map(ioas, { iova: 0x100000n, length: 8 * PAGE, va: env.buffer(8 * PAGE) });
  assert.deepEqual(charges(env), { user: 0, mmLocked: 8, mmPinned: 8 });
  assert.throws(() => env.map(ioas, { iova: 0x200000n, length: 9 * PAGE, va: env.buffer(9 * PAGE) }), {
    code: 'ENOMEM',
  });
  env.proc.exit();
  const locked = unprivileged(root, ['CAP_IPC_LOCK'], 1);
  const dev = locked.device(1);
  locked.map(dev.ioas, { iova: 0x100000n, length: 64 * PAGE, va: locked.buffer(64 * PAGE) });
  assert.deepEqual(charges(locked), { user: 0, mmLocked: 0, mmPinned: 64 });
  locked.proc.exit();
  root.leakCheck();
});

test('/dev/vfio/vfio as iommufd charges per mm (VFIO compatible)', () => {
  const root = Env.create({
    vfioContainer: 'iommufd',
    devices: [{ bdf: '0000:00:03.0', model: 'edu', iommuGroup: 3 }],
  });
  const env = unprivileged(root);
  const container = env.proc.open('/dev/vfio/vfio');
  const ioas = env.ioasAlloc(container);
  const cdev = env.openCdev(0);
  env.bind(cdev, container);
  env.attach(cdev, ioas);
  env.map(ioas, { iova: 0x100000n, length: 4 * PAGE, va: env.buffer(4 * PAGE) }, container);
  assert.deepEqual(charges(env), { user: 0, mmLocked: 4, mmPinned: 4 });
  env.proc.exit();
  root.leakCheck();
});

test('lazy pinning: nothing charged without a domain; attach pins (EFAULT/ENOMEM fail it), detach unpins', () => {
  const root = Env.create();
  const env = unprivileged(root);
  const cdev = env.openCdev(0);
  env.bind(cdev);
  const ioas = env.ioasAlloc();
  const buf = env.buffer(8 * PAGE);
  env.map(ioas, { iova: 0x100000n, length: 8 * PAGE, va: buf });
  assert.deepEqual(charges(env), { user: 0, mmLocked: 0, mmPinned: 0 });
  env.attach(cdev, ioas);
  assert.deepEqual(charges(env), { user: 8, mmLocked: 0, mmPinned: 8 });
  env.detach(cdev);
  assert.deepEqual(charges(env), { user: 0, mmLocked: 0, mmPinned: 0 });
  // Unmapped user memory behind an area: the attach fails and leaves nothing behind.
  env.map(ioas, { iova: 0x200000n, length: PAGE, va: 0x10000n });
  assert.throws(() => env.attach(cdev, ioas), { code: 'EFAULT' });
  assert.deepEqual(charges(env), { user: 0, mmLocked: 0, mmPinned: 0 });
  assert.equal(env.host.usage().iommuDomains, 0);
  env.unmap(ioas, 0x200000n, PAGE);
  env.map(ioas, { iova: 0x300000n, length: 9 * PAGE, va: env.buffer(9 * PAGE) });
  assert.throws(() => env.attach(cdev, ioas), { code: 'ENOMEM' });
  assert.equal(env.host.usage().iommuAttachments, 0);
  env.proc.exit();
  root.leakCheck();
});

test('COPY shares pins: a page used by two IOASes is charged once', () => {
  const root = Env.create();
  const env = unprivileged(root);
  const a = env.device(0);
  const b = env.device(1);
  env.map(a.ioas, { iova: 0x100000n, length: 4 * PAGE, va: env.buffer(4 * PAGE) });
  const copy = (src: bigint, dst: bigint, length: number) =>
    env.call(IOMMU_IOAS_COPY, iommu_ioas_copy, {
      flags: FIXED_RW,
      src_ioas_id: a.ioas,
      dst_ioas_id: b.ioas,
      src_iova: src,
      dst_iova: dst,
      length: BigInt(length),
    });
  copy(0x100000n, 0x100000n, 4 * PAGE);
  copy(0x101000n, 0x200000n, 2 * PAGE);
  assert.deepEqual(charges(env), { user: 4, mmLocked: 0, mmPinned: 4 });
  env.unmap(a.ioas, 0n, U64_MAX);
  assert.deepEqual(charges(env), { user: 4, mmLocked: 0, mmPinned: 4 });
  env.unmap(b.ioas, 0x100000n, 4 * PAGE);
  assert.deepEqual(charges(env), { user: 2, mmLocked: 0, mmPinned: 2 });
  env.unmap(b.ioas, 0n, U64_MAX);
  assert.deepEqual(charges(env), { user: 0, mmLocked: 0, mmPinned: 0 });
  env.proc.exit();
  root.leakCheck();
});

test('EFAULT: read-only memory mapped WRITEABLE, device memory (an mmap-ed BAR); READABLE is fine', () => {
  const env = Env.create();
  const { cdev, ioas } = env.device(0);
  const ro = env.proc.mmap(PAGE, PROT_READ, ANON);
  assert.throws(() => env.map(ioas, { iova: 0x100000n, length: PAGE, va: ro }), { code: 'EFAULT' });
  env.map(ioas, { iova: 0x100000n, length: PAGE, va: ro, flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE });
  const bar = env.proc.mmap(PAGE, RW, MAP_SHARED, cdev, 0);
  assert.throws(() => env.map(ioas, { iova: 0x200000n, length: PAGE, va: bar }), { code: 'EFAULT' });
  // Half mapped: the unmapped half faults and nothing stays pinned.
  const half = env.buffer(2 * PAGE);
  env.proc.munmap(half + BigInt(PAGE), PAGE);
  const before = env.host.usage().lockedPages;
  assert.throws(() => env.map(ioas, { iova: 0x300000n, length: 2 * PAGE, va: half }), { code: 'EFAULT' });
  assert.equal(env.host.usage().lockedPages, before);
  env.leakCheck();
});

test('MAP_FILE pins memfd pages; past the end of the file or a non-memfd file is EINVAL when pinned', () => {
  const root = Env.create();
  const env = unprivileged(root);
  const { proc } = env;
  const memfd = proc.memfdCreate('guest');
  proc.ftruncate(memfd, 8 * PAGE);
  const mapFile = (fd: number, start: bigint, length: number, iova: bigint, ioas: number) =>
    env.call(IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file, {
      ioas_id: ioas,
      flags: FIXED_RW,
      fd,
      start,
      length: BigInt(length),
      iova,
    });
  const { ioas } = env.device(0);
  mapFile(memfd, 0n, 4 * PAGE, 0x100000n, ioas);
  assert.deepEqual(charges(env), { user: 4, mmLocked: 0, mmPinned: 4 });
  assert.throws(() => mapFile(memfd, BigInt(6 * PAGE), 4 * PAGE, 0x200000n, ioas), { code: 'EINVAL' });
  const efd = proc.eventfd();
  assert.throws(() => mapFile(efd, 0n, PAGE, 0x300000n, ioas), { code: 'EINVAL' });
  // Without a domain the same maps are accepted; attaching then fails.
  const lazy = env.ioasAlloc();
  mapFile(efd, 0n, PAGE, 0x300000n, lazy);
  const cdev = env.openCdev(1);
  env.bind(cdev);
  assert.throws(() => env.attach(cdev, lazy), { code: 'EINVAL' });
  // CHANGE_PROCESS by the owner: nothing moves.
  env.unmap(lazy, 0n, U64_MAX);
  env.call(IOMMU_IOAS_CHANGE_PROCESS, iommu_ioas_change_process, {});
  assert.deepEqual(charges(env), { user: 4, mmLocked: 0, mmPinned: 4 });
  env.proc.exit();
  root.leakCheck();
});

test('a process exiting with pins, charges, attachments and HWPTs leaves the host empty', () => {
  const root = Env.create();
  const env = unprivileged(root, [], 1024);
  let ioas = 0;
  for (let i = 0; i < 3; i++) {
    ioas = env.device(i).ioas;
    env.map(ioas, { iova: 0x100000n, length: 16 * PAGE, va: env.buffer(16 * PAGE) });
  }
  // 00:05.1 shares its group with 00:05.0: it joins the same IOAS.
  const sibling = env.openCdev(3);
  env.bind(sibling);
  env.attach(sibling, ioas);
  assert.ok(env.host.usage().lockedPages > 0);
  env.proc.exit();
  root.leakCheck();
});
