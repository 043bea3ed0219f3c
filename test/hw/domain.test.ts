import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RamObject } from '../../src/hw/memory.js';
import { VtdIommu } from '../../src/hw/iommu/vtd.js';

const RW = { read: true, write: true };
const RO = { read: true, write: false };
const WO = { read: false, write: true };
const RID = 0x18; // 00:03.0

function setup() {
  const iommu = new VtdIommu();
  const domain = iommu.allocDomain();
  iommu.attachDevice(RID, domain);
  const ram = new RamObject(1 << 24);
  return { iommu, domain, ram };
}

test('map, lookup and unmap', () => {
  const { domain, ram } = setup();
  domain.map(0x100000n, 0x3000n, { object: ram, offset: 0x5000 }, RW);
  assert.equal(domain.mappingCount, 1);
  assert.equal(domain.mappedBytes, 0x3000n);
  const hit = domain.lookup(0x102fffn)!;
  assert.equal(hit.iova, 0x100000n);
  assert.equal(hit.length, 0x3000n);
  assert.equal(hit.offset, 0x5000);
  assert.equal(domain.lookup(0x103000n), undefined);
  assert.equal(domain.unmap(0x100000n, 0x3000n), 0x3000n);
  assert.equal(domain.unmap(0x100000n, 0x3000n), 0n);
  assert.equal(domain.mappingCount, 0);
  assert.equal(domain.mappedBytes, 0n);
});

test('programming errors throw', () => {
  const { domain, ram } = setup();
  domain.map(0x100000n, 0x2000n, { object: ram, offset: 0 }, RW);
  assert.throws(() => domain.map(0x101000n, 0x1000n, { object: ram, offset: 0 }, RW), /overlaps/);
  assert.throws(() => domain.map(0x200800n, 0x1000n, { object: ram, offset: 0 }, RW), RangeError);
  assert.throws(() => domain.map(0x200000n, 0x800n, { object: ram, offset: 0 }, RW), RangeError);
  assert.throws(() => domain.map(0x200000n, 0x1000n, { object: ram, offset: 0x10 }, RW), RangeError);
  assert.throws(() => domain.map(1n << 39n, 0x1000n, { object: ram, offset: 0 }, RW), /aperture/);
  assert.throws(() => domain.map((1n << 39n) - 0x1000n, 0x2000n, { object: ram, offset: 0 }, RW), /aperture/);
  assert.throws(() => domain.map(0x300000n, 0x1000n, { object: ram, offset: 0 }, { read: false, write: false }));
  assert.throws(() => domain.map(0x300000n, 0x2000n, { object: ram, offset: (1 << 24) - 0x1000 }, RW), /past the end/);
});

test('a 1 GiB mapping is one entry', () => {
  const { domain } = setup();
  const big = new RamObject(1 << 30);
  domain.map(0x40000000n, 1n << 30n, { object: big, offset: 0 }, RW);
  assert.equal(domain.mappingCount, 1);
  assert.equal(domain.lookup(0x7fffffffn)?.iova, 0x40000000n);
});

test('partial unmap splits mappings and keeps offsets', () => {
  const { iommu, domain, ram } = setup();
  domain.map(0x100000n, 0x4000n, { object: ram, offset: 0x10000 }, RW);
  assert.equal(domain.unmap(0x101000n, 0x2000n), 0x2000n);
  assert.deepEqual(
    [...domain.mappings()].map((m) => [m.iova, m.length, m.offset]),
    [
      [0x100000n, 0x1000n, 0x10000],
      [0x103000n, 0x1000n, 0x13000],
    ],
  );
  ram.write(0x13000, new Uint8Array([9, 8, 7]));
  const dst = new Uint8Array(3);
  assert.ok(iommu.dmaRead(RID, 0x103000n, dst));
  assert.deepEqual([...dst], [9, 8, 7]);
  assert.equal(iommu.dmaRead(RID, 0x101000n, dst), false);
  assert.equal(iommu.faults.last?.reason, 'unmapped');
});

test('unmap over several mappings returns the bytes that were mapped', () => {
  const { domain, ram } = setup();
  domain.map(0x0n, 0x1000n, { object: ram, offset: 0 }, RW);
  domain.map(0x2000n, 0x2000n, { object: ram, offset: 0 }, RW);
  domain.map(0x10000n, 0x1000n, { object: ram, offset: 0 }, RW);
  assert.equal(domain.unmap(0x0n, 0x10000n), 0x3000n);
  assert.equal(domain.mappingCount, 1);
});

test('DMA spanning contiguous mappings to different places', () => {
  const { iommu, domain, ram } = setup();
  const other = new RamObject(0x10000);
  domain.map(0x200000n, 0x1000n, { object: ram, offset: 0x8000 }, RW);
  domain.map(0x201000n, 0x1000n, { object: other, offset: 0x2000 }, RW);
  const data = Uint8Array.from({ length: 0x100 }, (_, i) => i);
  assert.ok(iommu.dmaWrite(RID, 0x200f80n, data));
  const a = new Uint8Array(0x80);
  const b = new Uint8Array(0x80);
  ram.read(0x8f80, a);
  other.read(0x2000, b);
  assert.deepEqual([...a, ...b], [...data]);
  const back = new Uint8Array(0x100);
  assert.ok(iommu.dmaRead(RID, 0x200f80n, back));
  assert.deepEqual(back, data);
  const result = iommu.translate(RID, 0x200f80n, 0x100, false);
  assert.ok(result.ok);
  assert.deepEqual(
    result.segments.map((s) => [s.object === ram ? 'ram' : 'other', s.offset, s.length]),
    [
      ['ram', 0x8f80, 0x80],
      ['other', 0x2000, 0x80],
    ],
  );
});

test('faults: gap, permission, blocked, aperture; nothing moves', () => {
  const { iommu, domain, ram } = setup();
  domain.map(0x100000n, 0x1000n, { object: ram, offset: 0 }, RW);
  domain.map(0x102000n, 0x1000n, { object: ram, offset: 0x1000 }, RO);
  domain.map(0x103000n, 0x1000n, { object: ram, offset: 0x2000 }, WO);
  const page = new Uint8Array(0x2000).fill(0xaa);

  assert.equal(iommu.dmaWrite(RID, 0x100000n, page), false);
  assert.deepEqual(iommu.faults.last, {
    sequence: 1,
    requesterId: RID,
    iova: 0x101000n,
    write: true,
    reason: 'unmapped',
    domainId: domain.id,
  });
  assert.equal(ram.residentPages, 0, 'nothing was written before the gap');

  assert.equal(iommu.dmaWrite(RID, 0x102000n, new Uint8Array(4)), false);
  assert.equal(iommu.faults.last?.reason, 'permission');
  assert.equal(iommu.dmaRead(RID, 0x103000n, new Uint8Array(4)), false);
  assert.equal(iommu.faults.last?.reason, 'permission');
  assert.equal(iommu.faults.last?.write, false);
  assert.ok(iommu.dmaWrite(RID, 0x103000n, new Uint8Array(4)));

  assert.equal(iommu.dmaRead(0x20, 0x100000n, new Uint8Array(4)), false);
  assert.equal(iommu.faults.last?.reason, 'blocked');
  assert.equal(iommu.faults.last?.domainId, null);

  assert.equal(iommu.dmaRead(RID, 1n << 39n, new Uint8Array(4)), false);
  assert.equal(iommu.faults.last?.reason, 'aperture');

  const failed = iommu.translate(RID, 0x105000n, 4, false);
  assert.ok(!failed.ok && failed.fault.reason === 'unmapped');
  assert.equal(iommu.faults.count, 6);

  iommu.attachDevice(RID, null);
  assert.equal(iommu.dmaRead(RID, 0x100000n, new Uint8Array(4)), false);
  assert.equal(iommu.faults.last?.reason, 'blocked');
});

test('dirty bits: only DMA writes while tracking, at 4 KiB granularity', () => {
  const { iommu, domain, ram } = setup();
  domain.map(0x100000n, 0x10000n, { object: ram, offset: 0 }, RW);
  assert.ok(iommu.dmaWrite(RID, 0x100000n, new Uint8Array(8)));
  const pages = (iova: bigint, length: bigint, clear = false) => {
    const out: number[] = [];
    domain.forEachDirty(iova, length, clear, (p) => out.push(p));
    return out;
  };
  assert.deepEqual(pages(0x100000n, 0x10000n), [], 'not tracking yet');

  domain.setDirtyTracking(true);
  assert.ok(iommu.dmaWrite(RID, 0x101ff0n, new Uint8Array(0x20))); // pages 1 and 2
  assert.ok(iommu.dmaRead(RID, 0x105000n, new Uint8Array(0x20))); // reads do not dirty
  assert.ok(iommu.dmaWrite(RID, 0x10f000n, new Uint8Array(1))); // page 15
  assert.deepEqual(pages(0x100000n, 0x10000n), [1, 2, 15]);
  assert.deepEqual(pages(0x102000n, 0x2000n), [0], 'indexes count from the query iova');
  assert.deepEqual(pages(0x0n, 0x200000n), [0x101, 0x102, 0x10f]);

  const bitmap = new Uint8Array(1);
  domain.readDirtyBitmap(0x100000n, 0x10000n, 0x2000, bitmap, false);
  assert.equal(bitmap[0], 0b1000_0011);

  assert.deepEqual(pages(0x100000n, 0x2000n, true), [1]);
  assert.deepEqual(pages(0x100000n, 0x10000n), [2, 15]);
  domain.setDirtyTracking(false);
  assert.ok(iommu.dmaWrite(RID, 0x104000n, new Uint8Array(1)));
  assert.deepEqual(pages(0x100000n, 0x10000n, true), [2, 15], 'bits persist, no new ones');
  assert.deepEqual(pages(0x100000n, 0x10000n), []);
});

test('dirty bits survive a split and report with 2 MiB user pages', () => {
  const { iommu, domain } = setup();
  const big = new RamObject(1 << 23);
  domain.map(0x0n, 0x800000n, { object: big, offset: 0 }, RW);
  domain.setDirtyTracking(true);
  assert.ok(iommu.dmaWrite(RID, 0x1000n, new Uint8Array(1)));
  assert.ok(iommu.dmaWrite(RID, 0x600000n, new Uint8Array(1)));
  domain.unmap(0x200000n, 0x200000n);
  const bitmap = new Uint8Array(1);
  domain.readDirtyBitmap(0x0n, 0x800000n, 0x200000, bitmap, true);
  assert.equal(bitmap[0], 0b0000_1001);
  assert.equal(domain.snapshot().dirtyPages, 0);
});

test('dirty tracking requires hardware support', () => {
  const iommu = new VtdIommu({ dirtyTracking: false });
  const domain = iommu.allocDomain();
  assert.throws(() => domain.setDirtyTracking(true), /not supported/);
  domain.setDirtyTracking(false);
});

test('1 GiB with 1% dirty pages is reported in under 5 ms', () => {
  const { iommu, domain } = setup();
  const big = new RamObject(1 << 30);
  domain.map(0x40000000n, 1n << 30n, { object: big, offset: 0 }, RW);
  domain.setDirtyTracking(true);
  const one = new Uint8Array(1);
  let best = Infinity;
  let reported = 0;
  for (let round = 0; round < 5; round++) {
    for (let page = 0; page < 262_144; page += 100) iommu.dmaWrite(RID, 0x40000000n + BigInt(page) * 4096n, one);
    reported = 0;
    const started = performance.now();
    domain.forEachDirty(0x40000000n, 1n << 30n, true, () => reported++);
    best = Math.min(best, performance.now() - started);
  }
  assert.equal(reported, 2622);
  assert.ok(best < 5, `best of 5 took ${best.toFixed(2)} ms`);
});

test('freed domains refuse use; attached domains refuse to be freed', () => {
  const { iommu, domain } = setup();
  assert.throws(() => iommu.freeDomain(domain), /attached/);
  iommu.attachDevice(RID, null);
  iommu.freeDomain(domain);
  assert.ok(domain.freed);
  assert.throws(() => domain.map(0n, 0x1000n, { object: new RamObject(0x1000), offset: 0 }, RW), /freed/);
  assert.throws(() => iommu.attachDevice(RID, domain), /freed/);
  assert.equal(iommu.domainCount, 0);
});

test('65,535 single-page mappings map and unmap quickly', () => {
  const { domain, ram } = setup();
  const started = performance.now();
  for (let i = 0; i < 65535; i++) domain.map(BigInt(i) * 0x2000n, 0x1000n, { object: ram, offset: 0 }, RW);
  assert.equal(domain.mappingCount, 65535);
  for (let i = 0; i < 65535; i++) domain.unmap(BigInt(i) * 0x2000n, 0x1000n);
  const elapsed = performance.now() - started;
  assert.equal(domain.mappingCount, 0);
  assert.ok(elapsed < 1000, `took ${elapsed.toFixed(1)} ms`);
});
