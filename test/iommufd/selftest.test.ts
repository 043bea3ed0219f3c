// tools/testing/selftests/iommu/iommufd.c, the iommufd_ioas tests that run without the mock
// (semantics.md 8.1 "N"), replayed in both fixture variants: no_domain, and a domain - here an
// edu device attached through its cdev to the VT-d model instead of a mock domain, so the mock's
// numbers become the model's (aperture 2^39 with the MSI window reserved, alignment 4096). Plus
// vfio_compat_mock_domain with the same substitution.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  IOMMU_IOAS_ALLOW_IOVAS,
  IOMMU_IOAS_COPY,
  IOMMU_IOAS_IOVA_RANGES,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_OPTION,
  IOMMU_OPTION_HUGE_PAGES,
  IOMMU_OPTION_OP_GET,
  IOMMU_OPTION_OP_SET,
  IOMMU_VFIO_IOAS,
  IOMMU_VFIO_IOAS_SET,
  iommu_ioas_allow_iovas,
  iommu_ioas_copy,
  iommu_ioas_iova_ranges,
  iommu_iova_range,
  iommu_option,
  iommu_vfio_ioas,
} from '../../src/uapi/iommufd.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_DMA_UNMAP_FLAG_ALL,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
  vfio_iommu_type1_info,
} from '../../src/uapi/vfio.js';
import { Env, PAGE, U64_MAX } from './helpers.js';
import { outcome } from '../support/process-env.js';

const P = BigInt(PAGE);
/** MOCK_APERTURE_START: inside the VT-d aperture too. */
const START = 1n << 24n;
const BUFFER_SIZE = 16n * P;
const MSI_LAST = 0xfedfffffn;
const TOP = (1n << 39n) - 1n;

interface Fixture {
  env: Env;
  ioas: number;
  domain: boolean;
  base: bigint;
  /** A 2 MiB aligned buffer of BUFFER_SIZE bytes (the selftest's posix_memalign). */
  buffer: bigint;
}

function fixture(domain: boolean): Fixture {
  const env = Env.create();
  const raw = env.buffer(4 << 20);
  const buffer = (raw + 0x1fffffn) & ~0x1fffffn;
  env.proc.memory.write(buffer, new Uint8Array(Number(BUFFER_SIZE)).fill(1));
  const ioas = env.ioasAlloc();
  if (domain) {
    const cdev = env.openCdev(0);
    env.bind(cdev);
    env.attach(cdev, ioas);
  }
  return { env, ioas, domain, base: domain ? START : 0n, buffer };
}

const variants = [false, true] as const;
const name = (domain: boolean) => (domain ? 'vtd_domain' : 'no_domain');

for (const domain of variants) {
  test(`iommufd_ioas.area + unmap_fully_contained_areas [${name(domain)}]`, () => {
    const { env, ioas, base, buffer } = fixture(domain);
    for (let i = 0n; i < 10n; i++)
      assert.equal(
        outcome(() => env.unmap(ioas, i * P, P)),
        'ENOENT',
      );
    for (let i = 0n; i < 10n; i++) env.map(ioas, { va: buffer, length: P, iova: base + i * P });
    for (let i = 0n; i < 10n; i++) assert.equal(env.unmap(ioas, base + i * P, P), P);
    env.map(ioas, { va: buffer, length: 2n * P, iova: base + 16n * P });
    assert.equal(
      outcome(() => env.unmap(ioas, base + 16n * P, P)),
      'ENOENT',
    );
    assert.equal(
      outcome(() => env.unmap(ioas, base + 17n * P, P)),
      'ENOENT',
    );
    for (const [length, at] of [
      [2n, 16n],
      [1n, 16n],
      [1n, 17n],
      [2n, 15n],
      [3n, 15n],
    ] as const) {
      assert.equal(
        outcome(() => env.map(ioas, { va: buffer, length: length * P, iova: base + at * P })),
        'EEXIST',
      );
    }
    assert.equal(env.unmap(ioas, 0n, U64_MAX), 2n * P);
    assert.equal(env.unmap(ioas, 0n, U64_MAX), 0n);
    const b = base + 4n * P;
    for (let i = 0n; i < 4n; i++) env.map(ioas, { va: buffer, length: 8n * P, iova: b + i * 16n * P });
    assert.equal(
      outcome(() => env.unmap(ioas, b - 4n * P, 8n * P)),
      'ENOENT',
    );
    assert.equal(
      outcome(() => env.unmap(ioas, b + 3n * 16n * P + 4n * P, 8n * P)),
      'ENOENT',
    );
    assert.equal(env.unmap(ioas, b - 4n * P, 3n * 16n * P + 12n * P), 32n * P);
    env.leakCheck();
  });

  test(`iommufd_ioas.area_auto_iova + copy_area [${name(domain)}]`, () => {
    const { env, ioas, base, buffer } = fixture(domain);
    const iovas: bigint[] = [];
    for (let i = 1n; i <= 10n; i++) {
      // Without a domain nothing is pinned, so the VA need not be mapped.
      const iova = env.map(ioas, { va: domain ? buffer : 1n << 31n, length: i * P });
      assert.equal(iova % ((i * P) & -(i * P)), 0n);
      iovas.push(iova);
    }
    iovas.forEach((iova, i) => assert.equal(env.unmap(ioas, iova, BigInt(i + 1) * P), BigInt(i + 1) * P));
    const range = domain ? { start: START + P, last: START + 600n * P - 1n } : { start: 200n * P, last: 600n * P - 1n };
    const allow = (r: { start: bigint; last: bigint }) => {
      env.proc.memory.write(env.scratch + 2048n, iommu_iova_range.encode(r));
      env.call(IOMMU_IOAS_ALLOW_IOVAS, iommu_ioas_allow_iovas, {
        ioas_id: ioas,
        num_iovas: 1,
        allowed_iovas: env.scratch + 2048n,
      });
    };
    if (domain)
      assert.equal(
        outcome(() => allow({ start: 0xfe000000n, last: 0xff000000n })),
        'EADDRINUSE',
      );
    allow(range);
    for (let i = 1n; i <= 10n; i++) {
      const iova = env.map(ioas, { va: buffer, length: i * P });
      assert.ok(iova >= range.start && iova + i * P <= range.last + 1n);
    }
    env.unmap(ioas, 0n, U64_MAX);
    env.map(ioas, { va: buffer, length: P, iova: base });
    const copy = (dst: number, dstIova: bigint) =>
      env.call(IOMMU_IOAS_COPY, iommu_ioas_copy, {
        flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE,
        dst_ioas_id: dst,
        src_ioas_id: ioas,
        length: P,
        src_iova: base,
        dst_iova: dstIova,
      });
    copy(ioas, base + P);
    copy(env.ioasAlloc(), 0n);
    env.leakCheck();
  });

  test(`iommufd_ioas.iova_ranges [${name(domain)}]`, () => {
    const { env, ioas } = fixture(domain);
    const at = env.scratch + 1024n;
    const get = (num_iovas: number) =>
      env.call(IOMMU_IOAS_IOVA_RANGES, iommu_ioas_iova_ranges, { ioas_id: ioas, num_iovas, allowed_iovas: at });
    const range = (i: number) => iommu_iova_range.decode(env.proc.memory.read(at + BigInt(16 * i), 16));
    const out = get(64);
    if (domain) {
      assert.deepEqual([out.num_iovas, out.out_iova_alignment], [2, P]);
      assert.deepEqual(
        [range(0), range(1)],
        [
          { start: 0n, last: MSI_LAST },
          { start: 0xfef00000n, last: TOP },
        ],
      );
    } else {
      assert.deepEqual([out.num_iovas, out.out_iova_alignment, range(0)], [1, 1n, { start: 0n, last: U64_MAX }]);
    }
    env.proc.memory.write(at, new Uint8Array(64));
    assert.equal(
      outcome(() => get(0)),
      'EMSGSIZE',
    );
    assert.equal(env.last(iommu_ioas_iova_ranges).num_iovas, domain ? 2 : 1);
    assert.deepEqual(range(0), { start: 0n, last: 0n });
    if (domain) {
      assert.equal(
        outcome(() => get(1)),
        'EMSGSIZE',
      );
      assert.equal(env.last(iommu_ioas_iova_ranges).num_iovas, 2);
      assert.deepEqual(
        [range(0), range(1)],
        [
          { start: 0n, last: MSI_LAST },
          { start: 0n, last: 0n },
        ],
      );
    }
    env.leakCheck();
  });

  test(`iommufd_ioas.ioas_option_huge_pages + ioas_iova_alloc + ioas_align_change [${name(domain)}]`, () => {
    const { env, ioas, buffer } = fixture(domain);
    const option = (op: number, val64: bigint) =>
      env.call(IOMMU_OPTION, iommu_option, { option_id: IOMMU_OPTION_HUGE_PAGES, op, val64, object_id: ioas }).val64;
    assert.equal(option(IOMMU_OPTION_OP_GET, 3n), 1n);
    option(IOMMU_OPTION_OP_SET, 0n);
    assert.equal(option(IOMMU_OPTION_OP_GET, 3n), 0n);
    assert.equal(
      outcome(() => option(IOMMU_OPTION_OP_SET, 2n)),
      'EINVAL',
    );
    option(IOMMU_OPTION_OP_SET, 1n);
    for (let length = 1n; length < 2n * P; length++) {
      if (domain && length % P) {
        assert.equal(
          outcome(() => env.map(ioas, { va: buffer, length })),
          'EINVAL',
        );
      } else {
        assert.equal(env.unmap(ioas, env.map(ioas, { va: buffer, length }), length), length);
      }
    }
    if (!domain) {
      env.map(ioas, { va: buffer, length: P, iova: START });
      option(IOMMU_OPTION_OP_SET, 0n);
      assert.equal(
        outcome(() => env.map(ioas, { va: buffer + 2048n, length: P, iova: START + P })),
        'EINVAL',
      );
      option(IOMMU_OPTION_OP_SET, 0n);
      option(IOMMU_OPTION_OP_SET, 1n);
      env.map(ioas, { va: buffer + 2048n, length: P, iova: START + P });
      assert.equal(
        outcome(() => option(IOMMU_OPTION_OP_SET, 0n)),
        'EADDRINUSE',
      );
    }
    env.leakCheck();
  });

  test(`iommufd_ioas.copy_sweep [${name(domain)}]`, () => {
    const { env, ioas, buffer } = fixture(domain);
    const dst = env.ioasAlloc();
    const last = domain ? START + BUFFER_SIZE - 1n : START + BUFFER_SIZE - 2n;
    env.map(ioas, { va: buffer, length: last - START + 1n, iova: START });
    for (let iova = START - P; iova <= last; iova += 511n) {
      const copy = () =>
        env.call(IOMMU_IOAS_COPY, iommu_ioas_copy, {
          flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE,
          src_ioas_id: ioas,
          dst_ioas_id: dst,
          length: 2048n,
          src_iova: iova,
          dst_iova: START,
        });
      if (iova < START || iova + 2047n > last) {
        assert.equal(outcome(copy), 'ENOENT', `src_iova 0x${iova.toString(16)}`);
      } else {
        copy();
        assert.equal(env.unmap(dst, START, 2048n), 2048n);
      }
    }
    env.leakCheck();
  });
}

for (const version of [VFIO_TYPE1v2_IOMMU, VFIO_TYPE1_IOMMU]) {
  const tag = version === VFIO_TYPE1_IOMMU ? 'Ver1v0' : 'Ver1v2';
  /** The fixture: a device on an IOAS made the compat IOAS by hand, then VFIO_SET_IOMMU. */
  const compat = (): Fixture => {
    const f = fixture(true);
    f.env.call(IOMMU_VFIO_IOAS, iommu_vfio_ioas, { op: IOMMU_VFIO_IOAS_SET, ioas_id: f.ioas });
    f.env.proc.ioctl(f.env.iommufd, VFIO_SET_IOMMU, version);
    return f;
  };

  test(`vfio_compat_mock_domain.get_info: never past argsz, a well-formed chain [${tag}]`, () => {
    const { env } = compat();
    const buf = env.buffer(PAGE);
    const info = (argsz: number) => {
      env.proc.memory.write(buf, new Uint8Array(PAGE).fill(0xaa));
      env.proc.memory.write(buf, new Uint8Array(Math.min(argsz, 24)));
      env.proc.memory.write(buf, new Uint8Array(new Uint32Array([argsz]).buffer));
      env.proc.ioctl(env.iommufd, VFIO_IOMMU_GET_INFO, buf);
      const bytes = env.proc.memory.read(buf, PAGE);
      assert.ok(
        bytes.subarray(argsz).every((b) => b === 0xaa),
        `argsz ${argsz}`,
      );
      return { bytes, info: vfio_iommu_type1_info.decode(bytes.subarray(0, 24)) };
    };
    assert.equal(info(16).info.flags, 3);
    const full = info(24).info;
    assert.deepEqual([full.flags, full.cap_offset, full.iova_pgsizes !== 0n], [3, 0, true]);
    for (let argsz = 24; argsz <= full.argsz; argsz++) {
      const { bytes, info: i } = info(argsz);
      assert.equal(i.flags, 3);
      if (!i.cap_offset) continue;
      // DMA_AVAIL v1 (padded to 16 bytes), then IOVA_RANGE v1 with the model's two ranges.
      const view = new DataView(bytes.buffer);
      assert.deepEqual([view.getUint16(24, true), view.getUint16(26, true), view.getUint32(28, true)], [3, 1, 40]);
      assert.deepEqual([view.getUint16(40, true), view.getUint32(44, true), view.getUint32(48, true)], [1, 0, 2]);
      assert.deepEqual([view.getBigUint64(56, true), view.getBigUint64(64, true)], [0n, MSI_LAST]);
      assert.deepEqual([view.getBigUint64(72, true), view.getBigUint64(80, true)], [0xfef00000n, TOP]);
    }
    env.leakCheck();
  });

  test(`vfio_compat_mock_domain.option_huge_pages + map + huge_map [${tag}]`, () => {
    const { env, ioas, buffer } = compat();
    const hp = env.call(IOMMU_OPTION, iommu_option, {
      option_id: IOMMU_OPTION_HUGE_PAGES,
      op: IOMMU_OPTION_OP_GET,
      val64: 3n,
      object_id: ioas,
    }).val64;
    assert.equal(hp, version === VFIO_TYPE1_IOMMU ? 0n : 1n);
    const rw = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
    const map = (iova: bigint, vaddr: bigint, size: bigint) =>
      env.vcall(env.iommufd, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, { flags: rw, vaddr, size, iova });
    const unmap = (iova: bigint, size: bigint, flags = 0) =>
      env.vcall(env.iommufd, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { flags, iova, size }).size;
    map(START, buffer, BUFFER_SIZE);
    assert.equal(unmap(START, BUFFER_SIZE), BUFFER_SIZE);
    // Unmap of empty is success (newest kernels).
    assert.equal(unmap(START, BUFFER_SIZE), 0n);
    map(START, buffer, BUFFER_SIZE);
    assert.equal(
      outcome(() => unmap(START, BUFFER_SIZE, VFIO_DMA_UNMAP_FLAG_ALL)),
      'EINVAL',
    );
    assert.equal(unmap(0n, 0n, VFIO_DMA_UNMAP_FLAG_ALL), BUFFER_SIZE);
    for (let i = 0n; i < 16n; i++) map(START + i * P, buffer + i * P, P);
    for (const i of [5n, 0n, 15n, 9n, 1n, 14n, 2n, 13n, 3n, 12n, 4n, 11n, 6n, 10n, 7n, 8n]) {
      assert.equal(unmap(START + i * P, P), P);
    }
    // huge_map: a 4 MiB mapping cut in 16 pieces - only TYPE1 (huge pages off) can.
    const size = 4n << 20n;
    const huge = env.buffer(size);
    map(START, huge, size);
    for (const i of [3n, 0n, 15n, 7n]) {
      const r = outcome(() => unmap(START + (i * size) / 16n, size / 16n));
      assert.equal(r, version === VFIO_TYPE1_IOMMU ? 'ok' : 'ENOENT');
    }
    env.leakCheck();
  });
}
