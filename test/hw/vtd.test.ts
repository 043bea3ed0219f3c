import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FaultLog } from '../../src/hw/iommu/fault-log.js';
import { VtdIommu } from '../../src/hw/iommu/vtd.js';
import { RamObject } from '../../src/hw/memory.js';

function le32(value: number): Uint8Array {
  return new Uint8Array([value, value >>> 8, value >>> 16, value >>> 24]);
}

test('defaults: 39-bit aperture, 4K|2M|1G, dirty tracking, MSI window reserved', () => {
  const iommu = new VtdIommu();
  assert.equal(iommu.addressWidth, 39);
  assert.equal(iommu.aperture.last, (1n << 39n) - 1n);
  assert.equal(iommu.pageSizes, 0x40201000n);
  assert.ok(iommu.supportsDirtyTracking);
  assert.deepEqual(iommu.reservedRegions, [{ start: 0xfee00000n, last: 0xfeefffffn, kind: 'msi' }]);
});

test('capability registers follow the options', () => {
  const cap = (iommu: VtdIommu) => ({
    nd: Number(iommu.capReg & 7n),
    sagaw: Number((iommu.capReg >> 8n) & 0x1fn),
    mgaw: Number((iommu.capReg >> 16n) & 0x3fn) + 1,
    sllps: Number((iommu.capReg >> 34n) & 0xfn),
    psi: Number((iommu.capReg >> 39n) & 1n),
    slads: Number((iommu.ecapReg >> 45n) & 1n),
    smts: Number((iommu.ecapReg >> 43n) & 1n),
    ir: Number((iommu.ecapReg >> 3n) & 1n),
  });
  assert.deepEqual(cap(new VtdIommu()), { nd: 6, sagaw: 0x2, mgaw: 39, sllps: 3, psi: 1, slads: 1, smts: 1, ir: 1 });
  assert.deepEqual(cap(new VtdIommu({ addressWidth: 48, pageSizes: 0x201000, dirtyTracking: false })), {
    nd: 6,
    sagaw: 0x6,
    mgaw: 48,
    sllps: 1,
    psi: 1,
    slads: 0,
    smts: 0,
    ir: 1,
  });
  // Without dirty tracking the extended capabilities are those of the reference guest.
  assert.equal(new VtdIommu({ dirtyTracking: false }).ecapReg, 0xf00f4an);
  assert.throws(() => new VtdIommu({ addressWidth: 64 }), RangeError);
  assert.throws(() => new VtdIommu({ pageSizes: 0x200000 }), /4 KiB/);
  assert.throws(() => new VtdIommu({ pageSizes: 0x11000 }), RangeError);
});

test('interrupt remapping delivers matching MSI writes', () => {
  const iommu = new VtdIommu();
  const hits: string[] = [];
  const a = iommu.irqRemap.allocate(() => hits.push('a'));
  const b = iommu.irqRemap.allocate(() => hits.push('b'), { requesterId: 0x18 });
  assert.ok(a.address >= 0xfee00000n && a.address <= 0xfeefffffn);
  assert.notEqual(a.address, b.address);

  assert.ok(iommu.dmaWrite(0x18, a.address, le32(a.data)));
  assert.ok(iommu.dmaWrite(0x18, b.address, le32(b.data)));
  assert.deepEqual(hits, ['a', 'b']);
  assert.equal(iommu.faults.count, 0, 'interrupts are not DMA, even with no domain attached');

  // Wrong data selects another (absent) entry; wrong requester fails source-id validation.
  assert.equal(iommu.dmaWrite(0x18, a.address, le32(a.data + 7)), false);
  assert.equal(iommu.faults.last?.reason, 'interrupt-remap');
  assert.equal(iommu.dmaWrite(0x20, b.address, le32(b.data)), false);
  assert.equal(iommu.faults.last?.reason, 'interrupt-remap');
  // Compatibility-format (non-remappable) message, wrong size, read of the window.
  assert.equal(iommu.dmaWrite(0x18, 0xfee00000n, le32(0)), false);
  assert.equal(iommu.dmaWrite(0x18, a.address, new Uint8Array(8)), false);
  assert.equal(iommu.dmaRead(0x18, a.address, new Uint8Array(4)), false);
  assert.equal(iommu.faults.last?.reason, 'interrupt-read');
  assert.deepEqual(hits, ['a', 'b']);

  iommu.irqRemap.free(a.index);
  assert.equal(iommu.dmaWrite(0x18, a.address, le32(a.data)), false);
  assert.equal(iommu.irqRemap.allocated, 1);
  assert.equal(iommu.irqRemap.deliveries(b.index), 1);
  assert.throws(() => iommu.irqRemap.free(a.index));
  const again = iommu.irqRemap.allocate(() => hits.push('c'));
  assert.equal(again.index, a.index, 'lowest free entry is reused');
});

test('memory mapped in a domain never shadows the interrupt window', () => {
  const iommu = new VtdIommu();
  const domain = iommu.allocDomain();
  iommu.attachDevice(0x18, domain);
  assert.equal(iommu.dmaWrite(0x18, 0xfedffffcn, new Uint8Array(8)), false);
  assert.equal(iommu.faults.last?.reason, 'interrupt-remap');
});

test('fault log is a ring with a running count', () => {
  const log = new FaultLog(3);
  for (let i = 0; i < 5; i++) log.record(1, BigInt(i), false, 'unmapped', null);
  assert.equal(log.count, 5);
  assert.ok(log.overflowed);
  assert.deepEqual(
    log.entries().map((f) => [f.sequence, f.iova]),
    [
      [3, 2n],
      [4, 3n],
      [5, 4n],
    ],
  );
  const seen: number[] = [];
  const unsubscribe = log.subscribe((f) => seen.push(f.sequence));
  log.clear();
  assert.deepEqual(log.entries(), []);
  assert.equal(log.last, undefined);
  log.record(1, 9n, true, 'permission', 4);
  unsubscribe();
  log.record(1, 10n, true, 'permission', 4);
  assert.deepEqual(seen, [6]);
  assert.equal(log.entries().length, 2);
  assert.equal(log.count, 7);
});

test('attachments and snapshot', () => {
  const iommu = new VtdIommu();
  const d1 = iommu.allocDomain();
  const d2 = iommu.allocDomain();
  assert.notEqual(d1.id, d2.id);
  iommu.attachDevice(0x20, d1);
  iommu.attachDevice(0x18, d1);
  iommu.attachDevice(0x18, d2);
  assert.equal(iommu.attachedDomain(0x18), d2);
  assert.deepEqual(iommu.devicesAttachedTo(d1), [0x20]);
  const snap = iommu.snapshot();
  assert.deepEqual(snap.attachments, [
    { requesterId: 0x18, domainId: d2.id },
    { requesterId: 0x20, domainId: d1.id },
  ]);
  assert.equal(snap.domains.length, 2);
  assert.throws(() => iommu.attachDevice(0x10000, d1), RangeError);
  const foreign = new VtdIommu().allocDomain();
  assert.throws(() => iommu.attachDevice(0x18, foreign), /does not belong/);
});

test('IOVAs above 2^53 translate exactly (57-bit IOMMU)', () => {
  const iommu = new VtdIommu({ addressWidth: 57 });
  const domain = iommu.allocDomain();
  iommu.attachDevice(0x18, domain);
  const ram = new RamObject(0x3000);
  const base = (1n << 55n) + 0x1000n;
  domain.map(base, 0x2000n, { object: ram, offset: 0x1000 }, { read: true, write: true });
  assert.ok(iommu.dmaWrite(0x18, base + 0x0ffen, Uint8Array.of(1, 2, 3, 4)));
  assert.ok(iommu.dmaWrite(0x18, base + 0x10n, Uint8Array.of(5)));
  const check = new Uint8Array(4);
  ram.read(0x1ffe, check);
  assert.deepEqual([...check], [1, 2, 3, 4]);
  ram.read(0x1010, check.subarray(0, 1));
  assert.equal(check[0], 5);
  assert.equal(iommu.dmaRead(0x18, base + 0x2000n, new Uint8Array(1)), false);
  assert.equal(iommu.faults.last?.iova, base + 0x2000n);
  assert.equal(iommu.dmaRead(0x18, 1n << 57n, new Uint8Array(1)), false);
  assert.equal(iommu.faults.last?.reason, 'aperture');
});

test('requests that hit the IOTLB entry keep every rule: window, permission, dirty bits, unmap', () => {
  const iommu = new VtdIommu();
  const domain = iommu.allocDomain();
  iommu.attachDevice(0x18, domain);
  const ram = new RamObject(0x4000);
  // One mapping straddling the interrupt window, one read-only mapping, one ordinary one.
  domain.map(0xfedff000n, 0x2000n, { object: ram, offset: 0 }, { read: true, write: true });
  domain.map(0x200000n, 0x1000n, { object: ram, offset: 0x2000 }, { read: true, write: false });
  domain.map(0x100000n, 0x1000n, { object: ram, offset: 0x3000 }, { read: true, write: true });
  const page = new Uint8Array(4096).fill(7);

  assert.ok(iommu.dmaWrite(0x18, 0xfedff000n, page), 'below the window: memory');
  assert.equal(iommu.dmaRead(0x18, 0xfee00000n, new Uint8Array(4)), false, 'same entry, inside the window');
  assert.equal(iommu.faults.last?.reason, 'interrupt-read');

  assert.ok(iommu.dmaRead(0x18, 0x200000n, new Uint8Array(16)));
  assert.ok(iommu.dmaRead(0x18, 0x200010n, new Uint8Array(16)), 'a hit');
  assert.equal(iommu.dmaWrite(0x18, 0x200000n, Uint8Array.of(1)), false, 'a hit never widens permission');
  assert.equal(iommu.faults.last?.reason, 'permission');

  domain.setDirtyTracking(true);
  assert.ok(iommu.dmaWrite(0x18, 0x100000n, Uint8Array.of(1)));
  assert.ok(iommu.dmaWrite(0x18, 0x100ff0n, Uint8Array.of(2)), 'a hit');
  const dirty: number[] = [];
  domain.forEachDirty(0x100000n, 0x1000n, true, (index) => dirty.push(index));
  assert.deepEqual(dirty, [0]);
  assert.ok(iommu.dmaWrite(0x18, 0x100800n, Uint8Array.of(3)), 'a hit after the bits were cleared');
  domain.forEachDirty(0x100000n, 0x1000n, false, (index) => dirty.push(index));
  assert.deepEqual(dirty, [0, 0]);
  const bytes = new Uint8Array(1);
  ram.read(0x3ff0, bytes);
  assert.equal(bytes[0], 2);

  domain.unmap(0x100000n, 0x1000n);
  assert.equal(iommu.dmaRead(0x18, 0x100000n, new Uint8Array(4)), false, 'no stale entry after unmap');
  assert.equal(iommu.faults.last?.reason, 'unmapped');
});
