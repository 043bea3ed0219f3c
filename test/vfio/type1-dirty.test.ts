/**
 * Type1 dirty-page tracking (semantics.md §5.4 and GET_DIRTY_BITMAP of §5.3): flag rules,
 * START/STOP idempotence, every GET_BITMAP check in order, and the reports - with vfio-pci
 * devices attached every mapped page is dirty on every query, written word by word as
 * update_user_bitmap() does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  VFIO_DMA_UNMAP_FLAG_VADDR,
  VFIO_IOMMU_DIRTY_PAGES,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_START,
  VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_TYPE1_IOMMU,
  vfio_bitmap,
  vfio_iommu_type1_dirty_bitmap,
  vfio_iommu_type1_dirty_bitmap_get,
  vfio_iommu_type1_dma_unmap,
} from '../../src/uapi/vfio.js';
import { Env, PAGE, exitAndCheck } from './legacy-helpers.js';

const START = VFIO_IOMMU_DIRTY_PAGES_FLAG_START;
const STOP = VFIO_IOMMU_DIRTY_PAGES_FLAG_STOP;
const GET = VFIO_IOMMU_DIRTY_PAGES_FLAG_GET_BITMAP;

function dirtyPages(env: Env, container: number, flags: number, argsz = 8): number {
  const arg = env.put(vfio_iommu_type1_dirty_bitmap, { argsz, flags });
  return env.proc.ioctl(container, VFIO_IOMMU_DIRTY_PAGES, arg);
}

interface BitmapQuery {
  iova: bigint;
  size: bigint;
  pgsize?: bigint;
  bitmapSize?: bigint;
  data: bigint;
  argsz?: number;
}

function getBitmap(env: Env, container: number, q: BitmapQuery): number {
  env.put(vfio_iommu_type1_dirty_bitmap, { argsz: q.argsz ?? 48, flags: GET });
  env.put(
    vfio_iommu_type1_dirty_bitmap_get,
    {
      iova: q.iova,
      size: q.size,
      bitmap: { pgsize: q.pgsize ?? 4096n, size: q.bitmapSize ?? 8n, data: q.data },
    },
    env.scratch + 8n,
  );
  return env.proc.ioctl(container, VFIO_IOMMU_DIRTY_PAGES, env.scratch);
}

test('DIRTY_PAGES on a TYPE1 (v1) container is EACCES for any flags', () => {
  const env = Env.create();
  const { container } = env.containerWithGroup(2, VFIO_TYPE1_IOMMU);
  for (const flags of [START, STOP, GET, 0, 0x80])
    assert.throws(() => dirtyPages(env, container, flags), { code: 'EACCES' });
  assert.throws(
    () => env.proc.ioctl(container, VFIO_IOMMU_DIRTY_PAGES, 0),
    { code: 'EACCES' },
    'before copying anything',
  );
  exitAndCheck(env);
});

test('DIRTY_PAGES flag rules: exactly one known flag; argsz >= 8; START/STOP idempotent', () => {
  const env = Env.create();
  const { container } = env.containerWithGroup(2);
  assert.throws(() => env.proc.ioctl(container, VFIO_IOMMU_DIRTY_PAGES, 0), { code: 'EFAULT' });
  assert.throws(() => dirtyPages(env, container, START, 7), { code: 'EINVAL' });
  for (const flags of [0, START | STOP, STOP | GET, 0x8, START | 0x10]) {
    assert.throws(() => dirtyPages(env, container, flags), { code: 'EINVAL' }, `flags ${flags}`);
  }
  assert.equal(dirtyPages(env, container, STOP), 0, 'STOP without START');
  assert.equal(dirtyPages(env, container, START), 0);
  assert.equal(dirtyPages(env, container, START), 0);
  assert.equal(dirtyPages(env, container, STOP), 0);
  assert.equal(dirtyPages(env, container, STOP), 0);
  exitAndCheck(env);
});

test('GET_BITMAP checks in order (6.18+ errnos)', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(4 * PAGE);
  const bits = env.buffer(PAGE);
  env.map(container, buf, 0x100000n, 2 * PAGE);
  const q = { iova: 0x100000n, size: 0x8000n, data: bits };

  assert.throws(() => getBitmap(env, container, { ...q, argsz: 8 }), { code: 'EINVAL' }, 'no payload');
  assert.throws(() => getBitmap(env, container, { ...q, argsz: 47 }), { code: 'EINVAL' }, 'short payload');
  assert.throws(() => getBitmap(env, container, { ...q, size: 0n }), { code: 'EINVAL' }, 'size 0');
  assert.throws(() => getBitmap(env, container, { ...q, iova: 0xffff_ffff_ffff_f000n, size: 0x2000n }), {
    code: 'EOVERFLOW',
  });
  assert.throws(
    () => getBitmap(env, container, { ...q, data: 0x7fff_ffff_f000n, bitmapSize: 0x2000n }),
    { code: 'EINVAL' },
    'not user memory',
  );
  assert.throws(() => getBitmap(env, container, { ...q, bitmapSize: 0n }), { code: 'EINVAL' }, 'empty bitmap');
  assert.throws(
    () => getBitmap(env, container, { ...q, size: 0x41000n }),
    { code: 'EINVAL' },
    '65 pages need 16 bytes',
  );
  assert.throws(
    () => getBitmap(env, container, { ...q, bitmapSize: (1n << 28n) + 8n }),
    { code: 'EINVAL' },
    'over 256 MiB',
  );
  assert.throws(
    () => getBitmap(env, container, { ...q, pgsize: 0x2000n }),
    { code: 'EINVAL' },
    'not the IOMMU page size',
  );
  assert.throws(() => getBitmap(env, container, { ...q, iova: 0x100800n }), { code: 'EINVAL' }, 'unaligned iova');
  assert.throws(() => getBitmap(env, container, { ...q, size: 0x8800n }), { code: 'EINVAL' }, 'unaligned size');
  assert.throws(() => getBitmap(env, container, q), { code: 'EINVAL' }, 'tracking not started');
  dirtyPages(env, container, START);
  assert.equal(getBitmap(env, container, q), 0);
  assert.throws(() => getBitmap(env, container, { ...q, iova: 0x101000n }), { code: 'EINVAL' }, 'bisects at the start');
  assert.throws(() => getBitmap(env, container, { ...q, size: 0x1000n }), { code: 'EINVAL' }, 'bisects at the end');
  const gone = env.buffer(PAGE);
  proc.munmap(gone, PAGE);
  assert.throws(() => getBitmap(env, container, { ...q, data: gone }), { code: 'EFAULT' }, 'bitmap not writable');
  dirtyPages(env, container, STOP);
  assert.throws(() => getBitmap(env, container, q), { code: 'EINVAL' }, 'stopped again');
  exitAndCheck(env);
});

test('GET_BITMAP: every mapped page is dirty on every query, written in whole u64 words', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(4 * PAGE);
  const bits = env.buffer(PAGE);
  env.map(container, buf, 0x100000n, 2 * PAGE);
  dirtyPages(env, container, START);
  env.map(container, buf, 0x104000n, PAGE); // created after START: reported too
  for (let round = 0; round < 2; round++) {
    proc.memory.write(bits, new Uint8Array(16).fill(0xff));
    assert.equal(getBitmap(env, container, { iova: 0x100000n, size: 0x8000n, data: bits, bitmapSize: 8n }), 0);
    // Pages 0, 1 and 4 dirty; the rest of each written word is cleared, the next word untouched.
    assert.deepEqual(
      [...proc.memory.read(bits, 16)],
      [0x13, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
    );
  }
  // A mapping starting at bit 70: the first word is untouched, bits 64..69 of the second kept.
  env.map(container, buf, 0x100000n + 70n * 0x1000n, PAGE);
  proc.memory.write(bits, new Uint8Array(16).fill(0xa5));
  const q = { iova: 0x100000n, size: 0x80000n, data: bits, bitmapSize: 16n };
  assert.throws(
    () => getBitmap(env, container, { ...q, size: 0x80000n + 0x1000n }),
    { code: 'EINVAL' },
    'needs 24 bytes',
  );
  assert.equal(getBitmap(env, container, q), 0);
  const out = proc.memory.read(bits, 16);
  assert.deepEqual([...out.subarray(0, 8)], [0x13, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...out.subarray(8, 16)], [0x25 | 0x40, 0, 0, 0, 0, 0, 0, 0]);
  exitAndCheck(env);
});

test('GET_BITMAP of a large mapping is written in pieces and only covers the mapping', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const size = 4n << 30n; // 1 Mi pages: a 128 KiB bitmap
  const buf = env.buffer(Number(size));
  env.map(container, buf, 1n << 32n, size);
  dirtyPages(env, container, START);
  const bits = env.buffer(256 * 1024);
  assert.equal(getBitmap(env, container, { iova: 1n << 32n, size, data: bits, bitmapSize: 128n * 1024n }), 0);
  const out = proc.memory.read(bits, 256 * 1024);
  assert.ok(out.subarray(0, 128 * 1024).every((b) => b === 0xff));
  assert.ok(out.subarray(128 * 1024).every((b) => b === 0));
  exitAndCheck(env);
});

function unmapWithBitmap(
  env: Env,
  container: number,
  iova: bigint,
  size: bigint,
  bitmap: { pgsize?: bigint; size?: bigint; data: bigint },
  flags = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP,
  argsz = 48,
): bigint {
  env.put(vfio_iommu_type1_dma_unmap, { argsz, flags, iova, size });
  env.put(
    vfio_bitmap,
    { pgsize: bitmap.pgsize ?? 4096n, size: bitmap.size ?? 8n, data: bitmap.data },
    env.scratch + 24n,
  );
  env.proc.ioctl(container, VFIO_IOMMU_UNMAP_DMA, env.scratch);
  return env.get(vfio_iommu_type1_dma_unmap).size;
}

test('UNMAP_DMA with GET_DIRTY_BITMAP: checks, then the bitmap before the unmap', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(4 * PAGE);
  const bits = env.buffer(PAGE);
  env.map(container, buf, 0x100000n, 2 * PAGE);
  env.map(container, buf, 0x103000n, PAGE);
  const dirty = VFIO_DMA_UNMAP_FLAG_GET_DIRTY_BITMAP;
  const ok = { data: bits };
  assert.throws(() => unmapWithBitmap(env, container, 0x100000n, 0x4000n, ok, dirty | VFIO_DMA_UNMAP_FLAG_ALL), {
    code: 'EINVAL',
  });
  assert.throws(() => unmapWithBitmap(env, container, 0x100000n, 0x4000n, ok, dirty | VFIO_DMA_UNMAP_FLAG_VADDR), {
    code: 'EINVAL',
  });
  assert.throws(() => unmapWithBitmap(env, container, 0x100000n, 0x4000n, ok, dirty, 47), { code: 'EINVAL' });
  assert.throws(() => unmapWithBitmap(env, container, 0x100000n, 0x4000n, { data: 0x7fff_ffff_f000n, size: 0x2000n }), {
    code: 'EINVAL',
  });
  assert.throws(() => unmapWithBitmap(env, container, 0x100000n, 0x4000n, { data: bits, size: 0n }), {
    code: 'EINVAL',
  });
  assert.throws(() => unmapWithBitmap(env, container, 0x100000n, 0x41000n, { data: bits, size: 8n }), {
    code: 'EINVAL',
  });
  assert.throws(() => unmapWithBitmap(env, container, 0x100000n, 0x4000n, ok), { code: 'EINVAL' }, 'tracking off');
  dirtyPages(env, container, START);
  assert.throws(() => unmapWithBitmap(env, container, 0x100000n, 0x4000n, { data: bits, pgsize: 0x2000n }), {
    code: 'EINVAL',
  });
  assert.throws(() => unmapWithBitmap(env, container, 0x101000n, 0x3000n, ok), { code: 'EINVAL' }, 'v2 bisect');
  assert.equal(host.usage().iommuMappings, 2);
  proc.memory.write(bits, new Uint8Array(8).fill(0xff));
  assert.equal(unmapWithBitmap(env, container, 0x100000n, 0x4000n, ok), 0x3000n);
  assert.deepEqual([...proc.memory.read(bits, 8)], [0x0b, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(host.usage().iommuMappings, 0);
  exitAndCheck(env);
});
