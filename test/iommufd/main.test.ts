// The generic /dev/iommu ioctl path (semantics.md 7.1, 7.2, 7.9): size checks, zero tails,
// ENOTTY, the object table, IOMMU_DESTROY, IOMMU_OPTION.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IO } from '../../src/uapi/ioctl.js';
import {
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_NOIOMMU_GET_PA,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_OPTION_RLIMIT_MODE,
  iommu_destroy,
  iommu_ioas_alloc,
  iommu_option,
  iommufdIoctlOps,
  type IommuOption,
} from '../../src/uapi/iommufd.js';
import type { EncodeValue } from '../../src/uapi/layout.js';
import { Env, u64 } from './helpers.js';
import { outcome } from '../support/process-env.js';

test('every command: size below the minimum is EINVAL, a non-zero tail E2BIG, a zero tail like sizeof', () => {
  for (const op of Object.values(iommufdIoctlOps)) {
    if (op.ioctl === IOMMU_IOAS_NOIOMMU_GET_PA) continue;
    const env = Env.create();
    const { proc, scratch } = env;
    const raw = (size: number, tail: number): string => {
      const bytes = new Uint8Array(op.size + 16);
      new DataView(bytes.buffer).setUint32(0, size, true);
      if (tail) bytes[op.size] = tail;
      proc.memory.write(scratch, bytes);
      return outcome(() => proc.ioctl(env.iommufd, op.ioctl, scratch));
    };
    assert.equal(raw(op.minSize - 1, 0), 'EINVAL', `${op.name} size ${op.minSize - 1}`);
    assert.equal(raw(op.size + 8, 1), 'E2BIG', `${op.name} non-zero tail`);
    const exact = raw(op.size, 0);
    assert.equal(raw(op.size + 8, 0), exact, `${op.name} zero tail`);
    env.leakCheck();
  }
});

test('ENOTTY: numbers outside the table, unassigned slots, size or direction bits', () => {
  const env = Env.create();
  const { proc, iommufd, scratch } = env;
  assert.throws(() => proc.ioctl(iommufd, IO(';', 0x7f), scratch), { code: 'ENOTTY' });
  assert.throws(() => proc.ioctl(iommufd, 0x3bff, scratch), { code: 'ENOTTY' });
  // 0x95 (IOAS_NOIOMMU_GET_PA) only exists in no-iommu kernels: outside the table, even with NULL.
  assert.throws(() => proc.ioctl(iommufd, IOMMU_IOAS_NOIOMMU_GET_PA, 0), { code: 'ENOTTY' });
  env.put(iommu_destroy, { size: 8, id: 1 });
  const withSize = (IOMMU_DESTROY | (8 << 16)) >>> 0;
  assert.throws(() => proc.ioctl(iommufd, withSize, scratch), { code: 'ENOTTY' });
  // Inside the table the size is read first: a bad pointer faults before the number is checked.
  assert.throws(() => proc.ioctl(iommufd, withSize, 0), { code: 'EFAULT' });
  env.leakCheck();
});

test('IOMMU_DESTROY: NULL arg EFAULT, id 0 ENOENT, 16-byte struct, tails, size 7 (cmd_ex_fail)', () => {
  const env = Env.create();
  const { proc, iommufd, scratch } = env;
  assert.throws(() => proc.ioctl(iommufd, IOMMU_DESTROY, 0), { code: 'EFAULT' });
  assert.throws(() => env.call(IOMMU_DESTROY, iommu_destroy, { id: 0 }), { code: 'ENOENT' });
  const bytes = new Uint8Array(16);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 16, true);
  proc.memory.write(scratch, bytes);
  assert.throws(() => proc.ioctl(iommufd, IOMMU_DESTROY, scratch), { code: 'ENOENT' });
  bytes[12] = 1;
  proc.memory.write(scratch, bytes);
  assert.throws(() => proc.ioctl(iommufd, IOMMU_DESTROY, scratch), { code: 'E2BIG' });
  view.setUint32(0, 8, true);
  proc.memory.write(scratch, bytes);
  assert.throws(() => proc.ioctl(iommufd, IOMMU_DESTROY, scratch), { code: 'ENOENT' });
  view.setUint32(0, 7, true);
  proc.memory.write(scratch, bytes);
  assert.throws(() => proc.ioctl(iommufd, IOMMU_DESTROY, scratch), { code: 'EINVAL' });
  // A tail that cannot be read faults (check_zeroed_user).
  const pages = proc.mmap(8192, 3, 0x22);
  proc.munmap(pages + 4096n, 4096);
  view.setUint32(0, 0x2000, true);
  proc.memory.write(pages, bytes.subarray(0, 8));
  assert.throws(() => proc.ioctl(iommufd, IOMMU_DESTROY, pages), { code: 'EFAULT' });
  env.leakCheck();
});

test('IOAS_ALLOC: flags EOPNOTSUPP, size 4 EINVAL, ids from 1, lowest free id reused', () => {
  const env = Env.create();
  assert.throws(() => env.call(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { flags: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => env.call(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, { size: 4 }), { code: 'EINVAL' });
  assert.deepEqual([env.ioasAlloc(), env.ioasAlloc(), env.ioasAlloc()], [1, 2, 3]);
  env.call(IOMMU_DESTROY, iommu_destroy, { id: 2 });
  assert.throws(() => env.call(IOMMU_DESTROY, iommu_destroy, { id: 2 }), { code: 'ENOENT' });
  env.call(IOMMU_DESTROY, iommu_destroy, { id: 1 });
  assert.equal(env.ioasAlloc(), 1);
  assert.equal(env.ioasAlloc(), 2);
  assert.equal(env.ioasAlloc(), 4);
  // Each open is its own context.
  const other = env.proc.open('/dev/iommu');
  assert.equal(env.ioasAlloc(other), 1);
  env.leakCheck();
});

test('a failed copy-back of IOAS_ALLOC gives the id back (abort)', () => {
  const env = Env.create();
  const { proc, iommufd } = env;
  // A read-only mapping of a memfd holding the struct: it can be read, the answer not written.
  const memfd = proc.memfdCreate('ro');
  proc.ftruncate(memfd, 4096);
  proc.pwrite(memfd, iommu_ioas_alloc.encode({ size: 12 }), 0);
  const ro = proc.mmap(4096, 1, 1, memfd, 0);
  assert.throws(() => proc.ioctl(iommufd, IOMMU_IOAS_ALLOC, ro), { code: 'EFAULT' });
  assert.equal(env.ioasAlloc(), 1);
  env.leakCheck();
});

test('IOMMU_OPTION RLIMIT_MODE: GET 0, SET needs CAP_SYS_RESOURCE, EINVAL, EBUSY, EOPNOTSUPP', () => {
  const env = Env.create();
  const opt = (value: EncodeValue<IommuOption>): IommuOption => env.call(IOMMU_OPTION, iommu_option, value);
  assert.equal(opt({ option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }).val64, 0n);
  assert.equal(opt({ option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 1n }).val64, 1n);
  assert.equal(opt({ option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }).val64, 1n);
  assert.throws(() => opt({ option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 2n }), {
    code: 'EINVAL',
  });
  assert.throws(() => opt({ option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, object_id: 1 }), {
    code: 'EOPNOTSUPP',
  });
  assert.throws(() => opt({ option_id: IOMMU_OPTION_RLIMIT_MODE, op: 2 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => opt({ option_id: 99, op: IOMMU_OPTION_OP_GET }), { code: 'EOPNOTSUPP' });
  assert.throws(() => opt({ option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET, __reserved: 1 }), {
    code: 'EOPNOTSUPP',
  });
  // HUGE_PAGES needs an IOAS id: 0 is ENOENT for GET and SET.
  assert.throws(() => opt({ option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_GET }), { code: 'ENOENT' });
  assert.throws(() => opt({ option_id: IOMMU_OPTION_HUGE_PAGES, op: IOMMU_OPTION_OP_SET, val64: 1n }), {
    code: 'ENOENT',
  });
  // Only while the context is empty.
  env.ioasAlloc();
  assert.throws(() => opt({ option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET, val64: 0n }), {
    code: 'EBUSY',
  });
  // Without CAP_SYS_RESOURCE: EPERM, GET still works.
  const user = new Env(env.host, env.host.spawn({ uid: 1000, capabilities: [] }));
  assert.throws(
    () => user.call(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_SET }),
    { code: 'EPERM' },
  );
  assert.equal(
    user.call(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_RLIMIT_MODE, op: IOMMU_OPTION_OP_GET }).val64,
    0n,
  );
  user.proc.exit();
  env.leakCheck();
});

test('IOMMU_OPTION writes back only val64', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const at = env.put(iommu_option, {
    size: 24,
    option_id: IOMMU_OPTION_HUGE_PAGES,
    op: IOMMU_OPTION_OP_GET,
    object_id: ioas,
    val64: 7n,
  });
  env.proc.ioctl(env.iommufd, IOMMU_OPTION, at);
  const out = env.get(iommu_option);
  assert.equal(out.val64, 1n);
  assert.equal(out.object_id, ioas);
  assert.deepEqual(env.proc.memory.read(at + 16n, 8), u64(1n));
  env.leakCheck();
});

test('closing the fd destroys every object; the process exit does it too', () => {
  const env = Env.create();
  for (let i = 0; i < 5; i++) env.ioasAlloc();
  env.proc.close(env.iommufd);
  const fd = env.proc.open('/dev/iommu');
  assert.equal(env.ioasAlloc(fd), 1);
  env.leakCheck();
});

test('/dev/iommu has no read/write (EINVAL); mmap: MAP_PRIVATE EINVAL, PROT_EXEC EPERM, else ENXIO', () => {
  const env = Env.create();
  const { proc, iommufd } = env;
  assert.throws(() => proc.read(iommufd, 8), { code: 'EINVAL' });
  assert.throws(() => proc.write(iommufd, new Uint8Array(8)), { code: 'EINVAL' });
  assert.throws(() => proc.pread(iommufd, 8, 0), { code: 'EINVAL' });
  assert.throws(() => proc.pwrite(iommufd, new Uint8Array(8), 0), { code: 'EINVAL' });
  assert.throws(() => proc.mmap(4096, 3, 2, iommufd, 0), { code: 'EINVAL' });
  assert.throws(() => proc.mmap(4096, 7, 1, iommufd, 0), { code: 'EPERM' });
  assert.throws(() => proc.mmap(4096, 3, 1, iommufd, 0), { code: 'ENXIO' });
  env.leakCheck();
});
