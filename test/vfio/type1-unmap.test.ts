/**
 * VFIO_IOMMU_UNMAP_DMA (semantics.md §5.3): the "== unmap semantics" sequence of
 * probe-612-edu.txt, v1 against v2 rules, UNMAP_ALL, the size copy-back, and the UPDATE_VADDR
 * protocol (invalidate with UNMAP|VADDR, restore with MAP|VADDR, rollback, EBUSY on attach).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_VADDR,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  vfio_group_status,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dma_unmap,
} from '../../src/uapi/vfio.js';
import { DMA_RW, Env, PAGE, exitAndCheck } from './legacy-helpers.js';

const ALL = VFIO_DMA_UNMAP_FLAG_ALL;
const VADDR = VFIO_DMA_UNMAP_FLAG_VADDR;

/** UNMAP_DMA that fails: the struct's size must stay as written (nothing copied back). */
function unmapFails(
  env: Env,
  container: number,
  iova: bigint,
  size: number | bigint,
  flags: number,
  code: string,
): void {
  const arg = env.put(vfio_iommu_type1_dma_unmap, { argsz: 24, flags, iova, size: BigInt(size) });
  assert.throws(() => env.proc.ioctl(container, VFIO_IOMMU_UNMAP_DMA, arg), { code });
  assert.equal(env.get(vfio_iommu_type1_dma_unmap, arg).size, BigInt(size), 'size not copied back on error');
}

function mapped(env: Env): bigint[] {
  const iommu = env.host.vfio.group(2)!.container!.backend as unknown as {
    snapshot(): { mappings: { iova: bigint }[] };
  };
  return iommu.snapshot().mappings.map((m) => m.iova);
}

test('transcript "== unmap semantics" (TYPE1v2)', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(0x10000);
  env.map(container, buf, 0x100000n, PAGE);
  env.map(container, buf, 0x200000n, PAGE);
  env.map(container, buf, 0x180000n, PAGE);
  env.map(container, buf, 0x500000n, PAGE, VFIO_DMA_MAP_FLAG_READ);
  env.map(container, buf, 0x300000n, 3 * PAGE);

  unmapFails(env, container, 0x301000n, 0x1000, 0, 'EINVAL');
  unmapFails(env, container, 0x300000n, 0x1000, 0, 'EINVAL');
  assert.equal(env.unmap(container, 0x300000n, 0x3000), 0x3000n);
  assert.equal(env.unmap(container, 0x300000n, 0x3000), 0n);
  unmapFails(env, container, 0x300800n, 0x1000, 0, 'EINVAL');
  unmapFails(env, container, 0x300000n, 0, 0, 'EINVAL');
  unmapFails(env, container, 0x300000n, 0x1000, 0x80, 'EINVAL');
  unmapFails(env, container, 0x1000n, 0x1000, ALL, 'EINVAL');
  unmapFails(env, container, 0n, 0x1000, ALL, 'EINVAL');
  const dirty = (flags: number) =>
    proc.ioctl(
      container,
      VFIO_IOMMU_DIRTY_PAGES,
      env.put(vfio_iommu_type1_dirty_bitmap, { argsz: 8, flags }, env.scratch + 512n),
    );
  assert.equal(dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_START), 0);
  assert.equal(dirty(VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP), 0);
  assert.equal(env.unmap(container, 0n, 0, ALL), 0x4000n);
  assert.equal(env.unmap(container, 0n, 0, ALL), 0n);
  assert.equal(env.unmap(container, 0x100000n, 0x1000, VADDR), 0n);
  assert.equal(env.unmap(container, 0n, 0, VADDR | ALL), 0n);
  assert.equal(proc.task.mm.lockedVm, 0);
  exitAndCheck(env);
});

test('UNMAP_DMA argument checks: argsz, EFAULT, copy-back of exactly 24 bytes', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  env.map(container, env.buffer(PAGE), 0x100000n, PAGE);
  unmapFails(env, container, 0x100000n, PAGE, 0x8, 'EINVAL');
  const arg = env.put(vfio_iommu_type1_dma_unmap, { argsz: 23, iova: 0x100000n, size: BigInt(PAGE) });
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_UNMAP_DMA, arg), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_UNMAP_DMA, 0), { code: 'EFAULT' });
  proc.memory.write(env.scratch, new Uint8Array(40).fill(0xcc));
  env.put(vfio_iommu_type1_dma_unmap, { argsz: 40, flags: 0, iova: 0x100000n, size: 0x10000n });
  proc.ioctl(container, VFIO_IOMMU_UNMAP_DMA, env.scratch);
  const back = env.get(vfio_iommu_type1_dma_unmap);
  assert.deepEqual(back, { argsz: 40, flags: 0, iova: 0x100000n, size: BigInt(PAGE) });
  assert.ok(proc.memory.read(env.scratch + 24n, 16).every((b) => b === 0xcc));
  exitAndCheck(env);
});

test('v2: ranges may cover several whole mappings and holes, never bisect one', () => {
  const env = Env.create();
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(4 * PAGE);
  env.map(container, buf, 0x100000n, 2 * PAGE);
  env.map(container, buf, 0x110000n, 4 * PAGE);
  env.map(container, buf, 0x120000n, PAGE);
  unmapFails(env, container, 0x100000n, 0x11000, 0, 'EINVAL'); // ends inside the second
  unmapFails(env, container, 0x101000n, 0x20000, 0, 'EINVAL'); // starts inside the first
  assert.equal(env.unmap(container, 0x0n, 0x100000, 0), 0n, 'empty range: size 0');
  assert.equal(env.unmap(container, 0xff000n, 0x22000, 0), BigInt(7 * PAGE));
  assert.deepEqual(mapped(env), []);
  exitAndCheck(env);
});

test('v1: partial ranges never fail; a mapping whose first page is in range goes whole', () => {
  const env = Env.create();
  const { container } = env.containerWithGroup(2, VFIO_TYPE1_IOMMU);
  const buf = env.buffer(4 * PAGE);
  env.map(container, buf, 0x100000n, 3 * PAGE);
  env.map(container, buf, 0x110000n, 4 * PAGE);
  env.map(container, buf, 0x120000n, PAGE);
  // Starts inside a mapping: nothing is unmapped, success with size 0.
  assert.equal(env.unmap(container, 0x101000n, PAGE), 0n);
  assert.equal(env.unmap(container, 0x101000n, 0x30000), 0n, 'stops at the first mapping even if others follow');
  assert.deepEqual(mapped(env), [0x100000n, 0x110000n, 0x120000n]);
  // Covers the first page only: the whole 3-page mapping goes.
  assert.equal(env.unmap(container, 0x100000n, PAGE), BigInt(3 * PAGE));
  // Covers the start of two mappings, ending inside the second.
  assert.equal(env.unmap(container, 0x10f000n, 0x12000), BigInt(5 * PAGE));
  assert.deepEqual(mapped(env), []);
  assert.equal(env.proc.task.mm.lockedVm, 0);
  exitAndCheck(env);
});

test('UNMAP_ALL covers the whole space on v1 and v2 and reports the total', () => {
  for (const type of [VFIO_TYPE1_IOMMU, 3]) {
    const env = Env.create();
    const { container } = env.containerWithGroup(2, type);
    const buf = env.buffer(8 * PAGE);
    env.map(container, buf, 0n, PAGE);
    env.map(container, buf, 0x7f_ffff_f000n, PAGE);
    env.map(container, buf, 0x100000n, 8 * PAGE);
    assert.equal(env.unmap(container, 0n, 0, ALL), BigInt(10 * PAGE));
    assert.deepEqual(mapped(env), []);
    exitAndCheck(env);
  }
});

test('UPDATE_VADDR protocol: invalidate, restore, errors, rollback, and attach is EBUSY meanwhile', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(4 * PAGE);
  const other = env.buffer(4 * PAGE);
  env.map(container, buf, 0x100000n, PAGE);
  env.map(container, buf, 0x200000n, 2 * PAGE);
  env.map(container, buf, 0x300000n, PAGE);

  // MAP|VADDR on mappings that were not invalidated.
  assert.throws(() => env.map(container, other, 0x100000n, PAGE, VFIO_DMA_MAP_FLAG_VADDR), { code: 'EINVAL' });
  assert.throws(() => env.map(container, other, 0x900000n, PAGE, VFIO_DMA_MAP_FLAG_VADDR), { code: 'ENOENT' });

  assert.equal(env.unmap(container, 0x200000n, 2 * PAGE, VADDR), BigInt(2 * PAGE));
  assert.equal(host.usage().iommuMappings, 3, 'invalidated mappings stay in the IOMMU');
  assert.equal(proc.task.mm.lockedVm, 4, 'and stay pinned');
  // A range over the invalid one and a valid one: EINVAL, the valid one is rolled back.
  unmapFails(env, container, 0x100000n, 0x300000, VADDR, 'EINVAL');
  assert.equal(env.unmap(container, 0x100000n, PAGE, VADDR), BigInt(PAGE), 'rolled back: can be invalidated again');
  assert.equal(env.map(container, buf, 0x100000n, PAGE, VFIO_DMA_MAP_FLAG_VADDR), 0);
  assert.equal(env.unmap(container, 0x300000n, PAGE, VADDR), BigInt(PAGE));

  // While a vaddr is invalid no group may attach.
  const g4 = proc.open('/dev/vfio/4');
  assert.throws(() => proc.ioctl(g4, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), { code: 'EBUSY' });
  const status = env.put(vfio_group_status, { argsz: 8 }, env.scratch + 256n);
  proc.ioctl(g4, VFIO_GROUP_GET_STATUS, status);
  assert.equal(env.get(vfio_group_status, status).flags, 1, 'ownership released after the failed attach');

  // Restore: exact iova and size, VADDR alone.
  assert.throws(() => env.map(container, other, 0x200000n, PAGE, VFIO_DMA_MAP_FLAG_VADDR), { code: 'EINVAL' });
  assert.throws(() => env.map(container, other, 0x1ff000n, 2 * PAGE, VFIO_DMA_MAP_FLAG_VADDR), { code: 'EINVAL' });
  assert.throws(() => env.map(container, other, 0x200000n, 2 * PAGE, VFIO_DMA_MAP_FLAG_VADDR | DMA_RW), {
    code: 'EINVAL',
  });
  assert.equal(env.map(container, other, 0x200000n, 2 * PAGE, VFIO_DMA_MAP_FLAG_VADDR), 0);
  assert.throws(() => env.map(container, other, 0x200000n, 2 * PAGE, VFIO_DMA_MAP_FLAG_VADDR), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(g4, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), { code: 'EBUSY' });
  assert.equal(
    env.map(container, 0x10000000n, 0x300000n, PAGE, VFIO_DMA_MAP_FLAG_VADDR),
    0,
    'any vaddr: nothing is re-pinned',
  );
  assert.equal(proc.ioctl(g4, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), 0);

  const iommu = host.vfio.group(2)!.container!.backend as unknown as {
    snapshot(): { mappings: { iova: bigint; vaddr: bigint }[] };
  };
  assert.deepEqual(
    iommu.snapshot().mappings.map((m) => [m.iova, m.vaddr]),
    [
      [0x100000n, buf],
      [0x200000n, other],
      [0x300000n, 0x10000000n],
    ],
  );
  exitAndCheck(env);
});

test('UPDATE_VADDR: UNMAP_ALL|VADDR invalidates everything; a plain UNMAP_ALL still removes invalid ones', () => {
  const env = Env.create();
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(2 * PAGE);
  env.map(container, buf, 0x100000n, PAGE);
  env.map(container, buf, 0x200000n, 2 * PAGE);
  assert.equal(env.unmap(container, 0n, 0, ALL | VADDR), BigInt(3 * PAGE));
  unmapFails(env, container, 0n, 0, ALL | VADDR, 'EINVAL');
  assert.equal(env.unmap(container, 0n, 0, ALL), BigInt(3 * PAGE));
  // The invalid count went back to zero: groups may attach again.
  const g4 = env.proc.open('/dev/vfio/4');
  assert.equal(env.proc.ioctl(g4, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), 0);
  exitAndCheck(env);
});

test('UPDATE_VADDR on v1 follows v1 range rules', () => {
  const env = Env.create();
  const { container } = env.containerWithGroup(2, VFIO_TYPE1_IOMMU);
  const buf = env.buffer(2 * PAGE);
  env.map(container, buf, 0x100000n, 2 * PAGE);
  assert.equal(env.unmap(container, 0x101000n, PAGE, VADDR), 0n, 'starts inside: nothing');
  assert.equal(env.unmap(container, 0x100000n, PAGE, VADDR), BigInt(2 * PAGE));
  exitAndCheck(env);
});
