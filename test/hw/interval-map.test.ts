import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IntervalMap } from '../../src/hw/iommu/interval-map.js';

/** Small seeded PRNG (mulberry32) so failures reproduce. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Naive {
  start: bigint;
  last: bigint;
  value: number;
}

function naiveOverlapping(model: Naive[], start: bigint, last: bigint): Naive[] {
  return model.filter((iv) => iv.start <= last && iv.last >= start).sort((a, b) => (a.start < b.start ? -1 : 1));
}

test('random inserts and removes agree with a naive model', () => {
  for (const seed of [1, 2, 3, 42, 1234]) {
    const random = prng(seed);
    const map = new IntervalMap<number>();
    let model: Naive[] = [];
    for (let step = 0; step < 3000; step++) {
      const start = BigInt(Math.floor(random() * 4000));
      const last = start + BigInt(Math.floor(random() * 40));
      const op = random();
      if (op < 0.55) {
        const clash = naiveOverlapping(model, start, last).length > 0;
        if (clash) {
          assert.throws(() => map.insert(start, last, step));
        } else {
          map.insert(start, last, step);
          model.push({ start, last, value: step });
        }
      } else if (op < 0.8 && model.length > 0) {
        const victim = model[Math.floor(random() * model.length)]!;
        const removed = map.remove(victim.start);
        assert.equal(removed?.value, victim.value);
        model = model.filter((iv) => iv !== victim);
        assert.equal(map.remove(victim.start), undefined);
      } else {
        const point = BigInt(Math.floor(random() * 4100));
        const expected = model.find((iv) => iv.start <= point && iv.last >= point);
        assert.equal(map.find(point)?.value, expected?.value);
        const overlapping = naiveOverlapping(model, start, last);
        assert.equal(map.firstOverlapping(start, last)?.value, overlapping[0]?.value);
        assert.deepEqual(
          [...map.overlapping(start, last)].map((e) => e.value),
          overlapping.map((iv) => iv.value),
        );
      }
      if (step % 500 === 0) map.checkInvariants();
      assert.equal(map.size, model.length);
    }
    map.checkInvariants();
    const sorted = [...model].sort((a, b) => (a.start < b.start ? -1 : 1));
    assert.deepEqual(
      [...map].map((e) => [e.start, e.last, e.value]),
      sorted.map((iv) => [iv.start, iv.last, iv.value]),
    );
  }
});

test('insert rejects overlaps and inverted intervals', () => {
  const map = new IntervalMap<string>();
  map.insert(0x1000n, 0x1fffn, 'a');
  assert.throws(() => map.insert(0x1fffn, 0x2fffn, 'b'), /overlaps/);
  assert.throws(() => map.insert(0x0n, 0x1000n, 'b'), /overlaps/);
  assert.throws(() => map.insert(0x0n, 0x3000n, 'b'), /overlaps/);
  assert.throws(() => map.insert(0x5000n, 0x4000n, 'b'), RangeError);
  map.insert(0x2000n, 0x2fffn, 'c');
  map.insert(0x0n, 0xfffn, 'd');
  assert.deepEqual(
    [...map].map((e) => e.value),
    ['d', 'a', 'c'],
  );
});

test('lookups at the edges and beyond', () => {
  const map = new IntervalMap<number>();
  map.insert(10n, 19n, 1);
  map.insert(30n, 39n, 2);
  assert.equal(map.find(9n), undefined);
  assert.equal(map.find(10n)?.value, 1);
  assert.equal(map.find(19n)?.value, 1);
  assert.equal(map.find(20n), undefined);
  assert.equal(map.firstEndingAtOrAfter(20n)?.value, 2);
  assert.equal(map.firstEndingAtOrAfter(40n), undefined);
  assert.equal(map.firstOverlapping(20n, 29n), undefined);
  assert.equal(map.firstOverlapping(20n, 30n)?.value, 2);
  assert.equal(map.first()?.value, 1);
  assert.equal(map.lastEntry()?.value, 2);
  assert.equal(map.next(map.first()!)?.value, 2);
  assert.deepEqual(
    [...map.entries(25n)].map((e) => e.value),
    [2],
  );
  assert.deepEqual(
    [...map.entries(15n)].map((e) => e.value),
    [1, 2],
  );
});

test('removing the visited entry during iteration is safe', () => {
  const map = new IntervalMap<number>();
  for (let i = 0; i < 100; i++) map.insert(BigInt(i * 10), BigInt(i * 10 + 4), i);
  const seen: number[] = [];
  for (const entry of map.overlapping(0n, 1000n)) {
    seen.push(entry.value);
    map.remove(entry.start);
  }
  assert.equal(seen.length, 100);
  assert.equal(map.size, 0);
  map.checkInvariants();
});

test('huge intervals cost the same as small ones', () => {
  const map = new IntervalMap<number>();
  map.insert(0n, (1n << 39n) - 1n, 1);
  assert.equal(map.find((1n << 38n) + 12345n)?.value, 1);
  assert.equal(map.size, 1);
});

test('65,535 random-order inserts and removes take well under 0.5 s', () => {
  const random = prng(7);
  const order = Array.from({ length: 65535 }, (_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  const map = new IntervalMap<number>();
  const started = performance.now();
  for (const i of order) map.insert(BigInt(i) * 0x2000n, BigInt(i) * 0x2000n + 0xfffn, i);
  for (const i of order) map.remove(BigInt(i) * 0x2000n);
  const elapsed = performance.now() - started;
  assert.equal(map.size, 0);
  assert.ok(elapsed < 500, `took ${elapsed.toFixed(1)} ms`);
});
