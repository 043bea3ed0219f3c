// IOAS ioctls without devices (semantics.md 7.3-7.9, 7.17; custom-iommufd-vtd.txt "core IOAS
// semantics"): ranges, MAP/MAP_FILE/COPY/UNMAP, ALLOW_IOVAS, HUGE_PAGES, CHANGE_PROCESS.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IOMMU_DESTROY,
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_CHANGE_PROCESS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FILE,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_UNMAP,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  iommu_destroy,
  iommu_ioas_allow_iovas,
  iommu_ioas_change_process,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_ioas_map,
  iommu_ioas_map_file,
  iommu_ioas_unmap,
  iommu_iova_range,
  iommu_option,
} from '../../src/uapi/iommufd.js';
import { decodeArray, encodeArray } from '../../src/uapi/layout.js';
import { Env, FIXED_RW, MAP_RW, PAGE, U64_MAX } from './helpers.js';

const RANGES_AT = 1024n;

function ranges(
  env: Env,
  ioas: number,
  capacity = 16,
): { num: number; align: bigint; list: { start: bigint; last: bigint }[] } {
  const out = env.call(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, {
    ioas_id: ioas,
    num_iovas: capacity,
    allowed_iovas: env.scratch + RANGES_AT,
  });
  const bytes = env.proc.memory.read(env.scratch + RANGES_AT, 16 * out.num_iovas);
  return {
    num: out.num_iovas,
    align: out.out_iova_alignment,
    list: decodeArray(iommu_iova_range, bytes, 0, out.num_iovas),
  };
}

function hugePages(env: Env, ioas: number, val?: bigint): bigint {
  const op = val === undefined ? IOMMU_OPTION_OP_GET : IOMMU_OPTION_OP_SET;
  return env.call(IOMMU_OPTION, iommu_option, {
    option_id: IOMMU_OPTION_HUGE_PAGES,
    op,
    object_id: ioas,
    val64: val ?? 0n,
  }).val64;
}

test('IOVA_RANGES: fresh IOAS is [0, U64_MAX] with alignment 1; num_iovas 0 is the EMSGSIZE probe', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  assert.throws(() => env.call(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: ioas }), {
    code: 'EMSGSIZE',
  });
  const probe = env.last(iommu_ioas_iova_ranges);
  assert.equal(probe.num_iovas, 1);
  assert.equal(probe.out_iova_alignment, 1n);
  assert.deepEqual(ranges(env, ioas), { num: 1, align: 1n, list: [{ start: 0n, last: U64_MAX }] });
  assert.throws(() => env.call(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: ioas, __reserved: 1 }), {
    code: 'EOPNOTSUPP',
  });
  assert.throws(() => env.call(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: 99 }), { code: 'ENOENT' });
  assert.throws(
    () => env.call(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: ioas, num_iovas: 1, allowed_iovas: 8n }),
    { code: 'EFAULT' },
  );
  env.leakCheck();
});

test('MAP: the transcript sequence (FIXED, overlap, kernel-chosen IOVAs, unaligned, errors)', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const mem = env.buffer(16 * PAGE);
  // A buffer whose lowest set address bit is 4 KiB, like the transcript's.
  const buf = mem & 0x1000n ? mem : mem + 0x1000n;
  assert.equal(env.map(ioas, { iova: 0x100000n, length: 0x2000, va: buf }), 0x100000n);
  assert.throws(() => env.map(ioas, { iova: 0x101000n, length: 0x1000, va: buf }), { code: 'EEXIST' });
  assert.equal(env.map(ioas, { length: 0x3000, va: buf }), 0x1000n);
  assert.equal(env.map(ioas, { length: 0x3000, va: buf }), 0x4000n);
  // No domain: byte granular, and nothing is pinned (a NULL VA maps fine).
  env.map(ioas, { iova: 0x300001n, length: 0x1000, va: buf });
  env.map(ioas, { iova: 0x310000n, length: 0x800, va: buf + 1n });
  env.map(ioas, { iova: 0x320000n, length: 0x1000, va: 0n });
  assert.throws(() => env.map(ioas, { iova: 0x330000n, length: 0, va: buf }), { code: 'EINVAL' });
  assert.throws(() => env.map(ioas, { iova: 0x330000n, length: 0x1000, va: buf, flags: IOMMU_IOAS_MAP_FIXED_IOVA }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.map(ioas, { iova: 0x330000n, length: 0x1000, va: buf, flags: FIXED_RW | 0x100 }), {
    code: 'EOPNOTSUPP',
  });
  assert.throws(
    () =>
      env.call(IOMMU_IOAS_MAP, iommu_ioas_map, {
        ioas_id: ioas,
        flags: FIXED_RW,
        __reserved: 1,
        user_va: buf,
        length: 4096n,
        iova: 0x330000n,
      }),
    { code: 'EOPNOTSUPP' },
  );
  env.leakCheck();
});

test('MAP: EOVERFLOW for U64_MAX fields and wraps, checked before the IOAS lookup', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const buf = env.buffer(PAGE);
  assert.throws(() => env.map(ioas, { iova: U64_MAX, length: 0x1000, va: buf }), { code: 'EOVERFLOW' });
  assert.throws(() => env.map(99, { iova: 0n, length: U64_MAX, va: buf }), { code: 'EOVERFLOW' });
  assert.throws(() => env.map(99, { iova: 0n, length: 0x1000, va: buf, flags: IOMMU_IOAS_MAP_FIXED_IOVA }), {
    code: 'EINVAL',
  });
  assert.throws(() => env.map(99, { iova: 0n, length: 0x1000, va: buf }), { code: 'ENOENT' });
  assert.throws(() => env.map(ioas, { iova: 0n, length: 0x2000, va: U64_MAX - 0xfffn }), { code: 'EOVERFLOW' });
  assert.throws(() => env.map(ioas, { iova: U64_MAX - 0xfffn, length: 0x2000, va: buf }), { code: 'EOVERFLOW' });
  // Ending exactly at the top is fine.
  assert.equal(env.map(ioas, { iova: U64_MAX - 0xfffn, length: 0x1000, va: buf }), U64_MAX - 0xfffn);
  env.leakCheck();
});

test('MAP auto IOVA: alignment from length and VA, capped at 2 MiB, sub-page offset kept', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const big = env.buffer(8 * 1024 * 1024);
  const aligned2m = (big + 0x1fffffn) & ~0x1fffffn;
  assert.equal(env.map(ioas, { length: 0x200000, va: aligned2m }), 0x200000n);
  // 4 MiB stays 2 MiB aligned (THP cap): the next 2 MiB boundary above the first area.
  assert.equal(env.map(ioas, { length: 0x400000, va: aligned2m }), 0x400000n);
  // A VA at 16 bytes into a page: alignment 16, offset 0x10 kept.
  assert.equal(env.map(ioas, { length: 0x20, va: big + 0x10n }), 0x1010n);
  // NULL VA: the length alone decides (roundup_pow_of_two(0x3000) = 0x4000).
  assert.equal(env.map(ioas, { length: 0x3000, va: 0n }), 0x4000n);
  env.leakCheck();
});

test('UNMAP: whole areas only (ENOENT), nothing mapped ENOENT, exact and all, EINVAL/EOVERFLOW', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const buf = env.buffer(16 * PAGE);
  env.map(ioas, { iova: 0x400000n, length: 4 * PAGE, va: buf });
  assert.throws(() => env.unmap(ioas, 0x401000n, PAGE), { code: 'ENOENT' });
  assert.throws(() => env.unmap(ioas, 0x400000n, PAGE), { code: 'ENOENT' });
  assert.throws(() => env.unmap(ioas, 0x900000n, PAGE), { code: 'ENOENT' });
  assert.equal(env.unmap(ioas, 0x400000n, 4 * PAGE), 0x4000n);
  assert.throws(() => env.unmap(ioas, 0n, 0), { code: 'EINVAL' });
  assert.throws(() => env.unmap(ioas, U64_MAX, 1), { code: 'EOVERFLOW' });
  assert.throws(() => env.unmap(ioas, 0x1000n, U64_MAX), { code: 'EOVERFLOW' });
  assert.throws(() => env.unmap(ioas, U64_MAX - 0xfffn, 0x2000), { code: 'EOVERFLOW' });
  // The IOAS is looked up first: a bad id wins over a bad range.
  assert.throws(() => env.unmap(99, 0n, 0), { code: 'ENOENT' });
  // iova 0, length U64_MAX: everything, even nothing.
  env.map(ioas, { iova: 0x100000n, length: 0x2000, va: buf });
  env.map(ioas, { iova: 0x200000n, length: 0x800, va: buf });
  assert.equal(env.unmap(ioas, 0n, U64_MAX), 0x2800n);
  assert.equal(env.unmap(ioas, 0n, U64_MAX), 0n);
  env.leakCheck();
});

test('UNMAP: a range covering whole areas and holes (unmap_fully_contained_areas); not atomic', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const buf = env.buffer(8 * PAGE);
  for (let i = 0; i < 4; i++) env.map(ioas, { iova: BigInt((16 * i + 1) * PAGE), length: 8 * PAGE, va: buf });
  assert.throws(() => env.unmap(ioas, BigInt(2 * PAGE), 64 * PAGE), { code: 'ENOENT' });
  assert.throws(() => env.unmap(ioas, BigInt(PAGE), 52 * PAGE), { code: 'ENOENT' });
  // The first three areas went before the cut one stopped the walk.
  assert.equal(env.unmap(ioas, 0n, U64_MAX), BigInt(8 * PAGE));
  for (let i = 0; i < 4; i++) env.map(ioas, { iova: BigInt((16 * i + 1) * PAGE), length: 8 * PAGE, va: buf });
  assert.equal(env.unmap(ioas, 0n, BigInt(64 * PAGE)), BigInt(32 * PAGE));
  env.leakCheck();
});

test('COPY: any fully covered sub-range, to another or the same IOAS; ENOENT on a gap', () => {
  const env = Env.create();
  const a = env.ioasAlloc();
  const b = env.ioasAlloc();
  const buf = env.buffer(8 * PAGE);
  env.map(a, { iova: 0x100000n, length: 0x2000, va: buf });
  env.map(a, { iova: 0x102000n, length: 0x2000, va: buf });
  const copy = (value: Parameters<typeof iommu_ioas_copy.encode>[0]) =>
    env.call(IOMMU_IOAS_COPY, iommu_ioas_copy, value);
  assert.equal(
    copy({ flags: FIXED_RW, src_ioas_id: a, dst_ioas_id: b, src_iova: 0x100000n, dst_iova: 0x100000n, length: 0x2000n })
      .dst_iova,
    0x100000n,
  );
  // Spanning two adjacent areas, byte granular.
  assert.equal(
    copy({ flags: FIXED_RW, src_ioas_id: a, dst_ioas_id: b, src_iova: 0x101001n, dst_iova: 0x300000n, length: 0x2000n })
      .dst_iova,
    0x300000n,
  );
  // Same IOAS, kernel-chosen destination.
  assert.equal(
    copy({ flags: MAP_RW, src_ioas_id: a, dst_ioas_id: a, src_iova: 0x100000n, length: 0x1000n }).dst_iova,
    0x1000n,
  );
  assert.throws(
    () =>
      copy({
        flags: FIXED_RW,
        src_ioas_id: a,
        dst_ioas_id: b,
        src_iova: 0x103000n,
        dst_iova: 0x500000n,
        length: 0x2000n,
      }),
    { code: 'ENOENT' },
  );
  assert.throws(
    () =>
      copy({
        flags: FIXED_RW,
        src_ioas_id: a,
        dst_ioas_id: b,
        src_iova: 0x100000n,
        dst_iova: 0x100000n,
        length: 0x1000n,
      }),
    { code: 'EEXIST' },
  );
  assert.throws(() => copy({ flags: FIXED_RW | 8, src_ioas_id: a, dst_ioas_id: b, length: 1n }), {
    code: 'EOPNOTSUPP',
  });
  assert.throws(() => copy({ flags: FIXED_RW, src_ioas_id: a, dst_ioas_id: b, length: U64_MAX }), {
    code: 'EOVERFLOW',
  });
  assert.throws(() => copy({ flags: IOMMU_IOAS_MAP_FIXED_IOVA, src_ioas_id: a, dst_ioas_id: b, length: 1n }), {
    code: 'EINVAL',
  });
  assert.throws(() => copy({ flags: FIXED_RW, src_ioas_id: 99, dst_ioas_id: b, length: 1n }), { code: 'ENOENT' });
  assert.throws(() => copy({ flags: FIXED_RW, src_ioas_id: a, dst_ioas_id: b, src_iova: 0x100000n, length: 0n }), {
    code: 'EINVAL',
  });
  assert.throws(
    () =>
      copy({
        flags: FIXED_RW,
        src_ioas_id: a,
        dst_ioas_id: 99,
        src_iova: 0x100000n,
        dst_iova: 0x900000n,
        length: 0x1000n,
      }),
    { code: 'ENOENT' },
  );
  assert.throws(
    () =>
      copy({
        flags: FIXED_RW,
        src_ioas_id: a,
        dst_ioas_id: b,
        src_iova: 0x100000n,
        dst_iova: 0x900000n,
        length: 0x10000n,
      }),
    { code: 'ENOENT' },
  );
  assert.throws(
    () =>
      copy({
        flags: FIXED_RW,
        src_ioas_id: a,
        dst_ioas_id: b,
        src_iova: 0x100000n,
        dst_iova: 0x900000n,
        length: U64_MAX - 1n,
      }),
    { code: 'EOVERFLOW' },
  );
  // A read-only source cannot become writable.
  env.map(a, { iova: 0x700000n, length: 0x1000, va: buf, flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE });
  assert.throws(
    () =>
      copy({
        flags: FIXED_RW,
        src_ioas_id: a,
        dst_ioas_id: b,
        src_iova: 0x700000n,
        dst_iova: 0x700000n,
        length: 0x1000n,
      }),
    { code: 'EPERM' },
  );
  copy({
    flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_READABLE,
    src_ioas_id: a,
    dst_ioas_id: b,
    src_iova: 0x700000n,
    dst_iova: 0x700000n,
    length: 0x1000n,
  });
  env.leakCheck();
});

test('COPY sweep: 2048-byte windows stepped by 511 bytes (copy_sweep)', () => {
  const env = Env.create();
  const a = env.ioasAlloc();
  const b = env.ioasAlloc();
  const buf = env.buffer(4 * PAGE);
  const start = 0x100000n;
  const end = start + BigInt(2 * PAGE);
  env.map(a, { iova: start, length: 2 * PAGE, va: buf });
  for (let at = start - 4096n; at < end + 4096n; at += 511n) {
    const inside = at >= start && at + 2048n <= end;
    const run = () =>
      env.call(IOMMU_IOAS_COPY, iommu_ioas_copy, {
        flags: MAP_RW,
        src_ioas_id: a,
        dst_ioas_id: b,
        src_iova: at,
        length: 2048n,
      });
    if (inside) run();
    else assert.throws(run, { code: 'ENOENT' }, `window at ${at.toString(16)}`);
  }
  env.leakCheck();
});

test('ALLOW_IOVAS: bounds automatic allocation only; validation; replace and clear', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const buf = env.buffer(4 * PAGE);
  const allow = (
    list: { start: bigint; last: bigint }[],
    extra: Partial<{ __reserved: number; allowed_iovas: bigint }> = {},
  ) => {
    env.proc.memory.write(env.scratch + RANGES_AT, encodeArray(iommu_iova_range, list));
    env.call(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, {
      ioas_id: ioas,
      num_iovas: list.length,
      allowed_iovas: env.scratch + RANGES_AT,
      ...extra,
    });
  };
  allow([{ start: 0x100000n, last: 0x1fffffn }]);
  // Not reflected in IOVA_RANGES (transcript).
  assert.deepEqual(ranges(env, ioas).list, [{ start: 0n, last: U64_MAX }]);
  assert.equal(env.map(ioas, { length: PAGE, va: buf }), 0x100000n);
  assert.equal(env.map(ioas, { iova: 0x900000n, length: PAGE, va: buf }), 0x900000n);
  assert.throws(() => env.map(ioas, { length: 0x200000, va: buf }), { code: 'ENOSPC' });
  assert.throws(() => allow([{ start: 0x5000n, last: 0x5000n }]), { code: 'EINVAL' });
  assert.throws(() => allow([{ start: 0x6000n, last: 0x5000n }]), { code: 'EINVAL' });
  assert.throws(
    () =>
      allow([
        { start: 0x1000n, last: 0x5000n },
        { start: 0x5000n, last: 0x9000n },
      ]),
    { code: 'EINVAL' },
  );
  assert.throws(() => allow([{ start: 0x1000n, last: 0x5000n }], { __reserved: 1 }), { code: 'EOPNOTSUPP' });
  assert.throws(() => allow([{ start: 0x1000n, last: 0x5000n }], { allowed_iovas: 16n }), { code: 'EFAULT' });
  assert.throws(() => env.call(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, { ioas_id: 99 }), { code: 'ENOENT' });
  // The failed calls kept the old list; an empty list clears it.
  assert.equal(env.map(ioas, { length: PAGE, va: buf }), 0x101000n);
  allow([]);
  assert.equal(env.map(ioas, { length: PAGE, va: buf }), 0x1000n);
  env.leakCheck();
});

test('HUGE_PAGES: GET 1, SET 0 raises the alignment to PAGE_SIZE, EINVAL, EADDRINUSE (ioas_align_change)', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const buf = env.buffer(4 * PAGE);
  assert.equal(hugePages(env, ioas), 1n);
  env.map(ioas, { iova: 0x100000n, length: PAGE, va: buf });
  hugePages(env, ioas, 0n);
  assert.equal(hugePages(env, ioas), 0n);
  assert.equal(ranges(env, ioas).align, 4096n);
  assert.throws(() => env.map(ioas, { iova: 0x200000n, length: PAGE, va: buf + 2048n }), { code: 'EINVAL' });
  assert.throws(() => env.map(ioas, { iova: 0x200800n, length: PAGE, va: buf }), { code: 'EINVAL' });
  assert.throws(() => env.map(ioas, { iova: 0x200000n, length: 0x800, va: buf }), { code: 'EINVAL' });
  assert.throws(() => hugePages(env, ioas, 2n), { code: 'EINVAL' });
  hugePages(env, ioas, 1n);
  assert.equal(ranges(env, ioas).align, 1n);
  env.map(ioas, { iova: 0x200000n, length: PAGE, va: buf + 2048n });
  assert.throws(() => hugePages(env, ioas, 0n), { code: 'EADDRINUSE' });
  assert.equal(hugePages(env, ioas), 1n);
  assert.throws(
    () => env.call(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_HUGE_PAGES, op: 7, object_id: ioas }),
    { code: 'EOPNOTSUPP' },
  );
  env.leakCheck();
});

test('DESTROY of an IOAS with areas is fine (ioas_area_destroy); close with areas too', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  env.map(ioas, { iova: 0x100000n, length: PAGE, va: env.buffer(PAGE) });
  env.call(IOMMU_DESTROY, iommu_destroy, { id: ioas });
  const again = env.ioasAlloc();
  env.map(again, { iova: 0x100000n, length: PAGE, va: env.buffer(PAGE) });
  env.leakCheck();
});

test('MAP_FILE: a memfd range; EBADF, EINVAL, EOVERFLOW; the start offset guides the IOVA', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const { proc } = env;
  const memfd = proc.memfdCreate('guest');
  proc.ftruncate(memfd, 0x400000);
  const mapFile = (value: Parameters<typeof iommu_ioas_map_file.encode>[0]) =>
    env.call(IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file, value).iova;
  assert.equal(
    mapFile({ ioas_id: ioas, flags: FIXED_RW, fd: memfd, start: 0n, length: 0x2000n, iova: 0x100000n }),
    0x100000n,
  );
  assert.equal(mapFile({ ioas_id: ioas, flags: MAP_RW, fd: memfd, start: 0x200000n, length: 0x200000n }), 0x200000n);
  assert.throws(() => mapFile({ ioas_id: ioas, flags: FIXED_RW, fd: 99, length: 0x1000n, iova: 0x800000n }), {
    code: 'EBADF',
  });
  assert.throws(() => mapFile({ ioas_id: ioas, flags: FIXED_RW, fd: -1, length: 0x1000n, iova: 0x800000n }), {
    code: 'EBADF',
  });
  assert.throws(() => mapFile({ ioas_id: ioas, flags: FIXED_RW, fd: memfd, length: 0n, iova: 0x800000n }), {
    code: 'EINVAL',
  });
  assert.throws(
    () =>
      mapFile({ ioas_id: ioas, flags: FIXED_RW, fd: memfd, start: U64_MAX - 0xfffn, length: 0x2000n, iova: 0x800000n }),
    { code: 'EOVERFLOW' },
  );
  assert.throws(() => mapFile({ ioas_id: ioas, flags: FIXED_RW | 0x10, fd: memfd, length: 0x1000n }), {
    code: 'EOPNOTSUPP',
  });
  assert.throws(() => mapFile({ ioas_id: ioas, flags: IOMMU_IOAS_MAP_FIXED_IOVA, fd: memfd, length: 0x1000n }), {
    code: 'EINVAL',
  });
  assert.throws(() => mapFile({ ioas_id: 99, flags: FIXED_RW, fd: memfd, length: 0x1000n }), { code: 'ENOENT' });
  // Past the end of the file is only found when pinning (no domain here: accepted).
  mapFile({ ioas_id: ioas, flags: FIXED_RW, fd: memfd, start: 0x3ff000n, length: 0x2000n, iova: 0x900000n });
  env.leakCheck();
});

test('CHANGE_PROCESS: file-backed areas only (EINVAL otherwise), __reserved EOPNOTSUPP', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  const { proc } = env;
  const change = (reserved = 0) =>
    env.call(IOMMU_IOAS_CHANGE_PROCESS, iommu_ioas_change_process, { __reserved: reserved });
  change();
  assert.throws(() => change(1), { code: 'EOPNOTSUPP' });
  const memfd = proc.memfdCreate('guest');
  proc.ftruncate(memfd, 0x10000);
  env.call(IOMMU_IOAS_MAP_FILE, iommu_ioas_map_file, {
    ioas_id: ioas,
    flags: FIXED_RW,
    fd: memfd,
    length: 0x4000n,
    iova: 0x100000n,
  });
  change();
  const other = env.ioasAlloc();
  env.map(other, { iova: 0x100000n, length: PAGE, va: env.buffer(PAGE) });
  assert.throws(() => change(), { code: 'EINVAL' });
  env.unmap(other, 0n, U64_MAX);
  change();
  env.leakCheck();
});

test('IOAS_UNMAP copies back the unmapped length; a failed UNMAP writes nothing', () => {
  const env = Env.create();
  const ioas = env.ioasAlloc();
  env.map(ioas, { iova: 0x100000n, length: 4 * PAGE, va: env.buffer(4 * PAGE) });
  assert.throws(
    () => env.call(IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { ioas_id: ioas, iova: 0x101000n, length: 0x1000n }),
    { code: 'ENOENT' },
  );
  assert.equal(env.last(iommu_ioas_unmap).length, 0x1000n);
  env.leakCheck();
});
