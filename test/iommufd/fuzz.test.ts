// Seeded model-based test of the io_pagetable through /dev/iommu: random MAP (fixed and
// automatic), UNMAP, COPY and attach/detach sequences checked against a reference model of the
// areas after every step - the IOMMU domain mirrors exactly the areas, charges match the pinned
// pages, and each failure carries the errno the model predicts. Then random garbage on the iommufd
// and cdev fds: only SyscallError, no oops, nothing leaks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SyscallError } from '../../src/uapi/errno.js';
import { outcome } from '../support/process-env.js';
import { IommufdFile } from '../../src/kernel/iommufd/main.js';
import type { Ioas } from '../../src/kernel/iommufd/ioas.js';
import { IOMMU_IOAS_COPY, iommu_ioas_copy, iommufdIoctlOps } from '../../src/uapi/iommufd.js';
import * as v from '../../src/uapi/vfio.js';
import { Env, MAP_RW, PAGE, U64_MAX } from './helpers.js';

/** xorshift32: deterministic and small. */
class Rng {
  constructor(private s: number) {
    if (!this.s) this.s = 1;
  }
  next(): number {
    let x = this.s;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.s = x >>> 0;
    return this.s;
  }
  int(n: number): number {
    return this.next() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
}

interface Area {
  iova: bigint;
  length: bigint;
}

const BASE = 0x100000n;
const SLOTS = 64;

/** The kernel's view of one IOAS, for comparing with the model. */
function kernelAreas(env: Env, ioasId: number): Area[] {
  const file = env.proc.task.files.get(env.iommufd) as IommufdFile;
  const ioas = file.ctx.getObject(ioasId, 'IOAS') as Ioas;
  return [...ioas.iopt.areas].map((e) => ({ iova: e.start, length: e.last - e.start + 1n }));
}

/** Unmap in the kernel's way: whole areas in order, ENOENT at the first one cut (not atomic). */
function modelUnmap(areas: Area[], iova: bigint, length: bigint): { code: string; removed: bigint } {
  const last = iova + length - 1n;
  let removed = 0n;
  for (const a of [...areas].sort((x, y) => (x.iova < y.iova ? -1 : 1))) {
    const aLast = a.iova + a.length - 1n;
    if (aLast < iova || a.iova > last) continue;
    if (a.iova < iova || aLast > last) return { code: 'ENOENT', removed };
    areas.splice(areas.indexOf(a), 1);
    removed += a.length;
  }
  return { code: removed ? 'ok' : 'ENOENT', removed };
}

function overlaps(areas: Area[], iova: bigint, length: bigint): boolean {
  return areas.some((a) => a.iova < iova + length && iova < a.iova + a.length);
}

function checkMirror(env: Env, model: Area[], ioas: number, attached: boolean): void {
  const sorted = [...model].sort((x, y) => (x.iova < y.iova ? -1 : 1));
  assert.deepEqual(kernelAreas(env, ioas), sorted);
  const bytes = sorted.reduce((n, a) => n + a.length, 0n);
  const domains = env.host.machine.iommu.snapshot().domains;
  if (attached) {
    assert.equal(domains.length, 1);
    assert.equal(domains[0]!.mappedBytes, bytes);
  } else {
    assert.equal(domains.length, 0);
  }
}

for (const seed of [1, 7, 0xc0ffee]) {
  test(`io_pagetable model, seed ${seed}: MAP/UNMAP/COPY/attach sequences match the model`, () => {
    const rng = new Rng(seed);
    const env = Env.create();
    const cdev = env.openCdev(0);
    env.bind(cdev);
    const ioas = env.ioasAlloc();
    const src = env.ioasAlloc();
    const buf = env.buffer(SLOTS * PAGE);
    env.map(src, { iova: BASE, length: SLOTS * PAGE, va: buf });
    const model: Area[] = [];
    let attached = false;
    let attachedSteps = 0;
    for (let step = 0; step < 600; step++) {
      const op = rng.int(10);
      const iova = BASE + BigInt(rng.int(SLOTS)) * BigInt(PAGE);
      const length = BigInt(1 + rng.int(8)) * BigInt(PAGE);
      const what = `seed ${seed} step ${step} op ${op} iova ${iova.toString(16)} len ${length.toString(16)}`;
      if (op < 4) {
        const expect = overlaps(model, iova, length) ? 'EEXIST' : 'ok';
        assert.equal(
          outcome(() => env.map(ioas, { iova, length, va: buf + BigInt(rng.int(SLOTS - 8) * PAGE) })),
          expect,
          what,
        );
        if (expect === 'ok') model.push({ iova, length });
      } else if (op < 7) {
        const expected = modelUnmap(model, iova, length);
        let got = 'ok';
        let removed = 0n;
        try {
          removed = env.unmap(ioas, iova, length);
        } catch (err) {
          got = (err as SyscallError).code;
        }
        assert.equal(got, expected.code, what);
        if (got === 'ok') assert.equal(removed, expected.removed, what);
      } else if (op === 7) {
        // COPY a random sub-range of the source IOAS to a kernel-chosen IOVA far above BASE.
        const start = BASE + BigInt(rng.int(SLOTS * PAGE - 0x3000));
        const out = env.call(IOMMU_IOAS_COPY, iommu_ioas_copy, {
          flags: MAP_RW,
          src_ioas_id: src,
          dst_ioas_id: ioas,
          src_iova: attached || rng.int(4) ? start & ~0xfffn : start,
          length: 0x2000n,
        });
        model.push({ iova: out.dst_iova, length: 0x2000n });
      } else if (op === 8) {
        if (attached) env.detach(cdev);
        else
          assert.equal(
            outcome(() => env.attach(cdev, ioas)),
            model.every((a) => !(a.iova & 0xfffn) && !(a.length & 0xfffn)) ? 'ok' : 'EADDRINUSE',
            what,
          );
        attached = env.host.usage().iommuAttachments > 0;
      } else {
        if (rng.int(3) === 0) {
          assert.equal(
            env.unmap(ioas, 0n, U64_MAX),
            model.reduce((n, a) => n + a.length, 0n),
          );
          model.length = 0;
        }
      }
      checkMirror(env, model, ioas, attached);
      assert.equal(env.host.kernel.oopses.length, 0, what);
      if (attached) attachedSteps++;
    }
    // The sequence must have spent time both with and without a domain.
    assert.ok(attachedSteps > 100 && attachedSteps < 500, `${attachedSteps} steps attached`);
    env.leakCheck();
  });
}

test('random bytes on /dev/iommu and cdev fds: only SyscallError, no oops, nothing leaks', () => {
  const rng = new Rng(0x5eed);
  const env = Env.create();
  const { proc } = env;
  const requests = [
    ...Object.values(iommufdIoctlOps).map((o) => o.ioctl),
    v.VFIO_DEVICE_BIND_IOMMUFD,
    v.VFIO_DEVICE_ATTACH_IOMMUFD_PT,
    v.VFIO_DEVICE_DETACH_IOMMUFD_PT,
    v.VFIO_IOMMU_MAP_DMA,
    v.VFIO_IOMMU_UNMAP_DMA,
    v.VFIO_IOMMU_GET_INFO,
    v.VFIO_CHECK_EXTENSION,
    v.VFIO_SET_IOMMU,
  ];
  const fds = [
    env.iommufd,
    proc.open('/dev/iommu'),
    env.openCdev(0),
    env.openCdev(1),
    env.openCdev(2),
    env.openCdev(3),
  ];
  const bufs = [env.buffer(16 * PAGE), env.buffer(PAGE)];
  const arg = env.scratch;
  for (let step = 0; step < 4000; step++) {
    const bytes = new Uint8Array(64);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < 64; i += 4) view.setUint32(i, rng.next(), true);
    // Plausible sizes, ids, fds and addresses get past the first checks more often.
    view.setUint32(0, rng.pick([8, 12, 16, 24, 32, 40, 48, rng.next() & 0xff]), true);
    for (const at of [4, 8, 12]) if (rng.int(2)) view.setUint32(at, rng.int(8), true);
    for (const at of [16, 24, 32])
      if (rng.int(2))
        view.setBigUint64(at, rng.pick([0n, 0x100000n, 0x1000n, BigInt(PAGE), rng.pick(bufs), U64_MAX]), true);
    if (rng.int(4) === 0) view.setInt32(8, rng.pick(fds), true);
    proc.memory.write(arg, bytes);
    const fd = rng.pick(fds);
    const request = rng.pick(requests);
    try {
      proc.ioctl(fd, request, rng.int(16) ? arg : BigInt(rng.next()));
    } catch (err) {
      assert.ok(err instanceof SyscallError, `step ${step}: ${String(err)}`);
    }
    assert.deepEqual(env.host.kernel.oopses, [], `step ${step} request ${request.toString(16)}`);
  }
  env.leakCheck();
});
