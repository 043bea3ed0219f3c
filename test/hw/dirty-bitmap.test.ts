import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DirtyBitmap } from '../../src/hw/iommu/dirty-bitmap.js';

function collect(bitmap: DirtyBitmap, first: number, count: number, clear = false): number[] {
  const pages: number[] = [];
  bitmap.forEachSet(first, count, clear, (page) => pages.push(page));
  return pages;
}

test('setRange across word and chunk boundaries', () => {
  const bitmap = new DirtyBitmap(100_000);
  bitmap.setRange(30, 5); // crosses a word
  bitmap.setRange(32_766, 4); // crosses a chunk
  bitmap.setRange(64, 64); // two whole words
  const expected = [
    30,
    31,
    32,
    33,
    34,
    ...Array.from({ length: 64 }, (_, i) => 64 + i),
    32_766,
    32_767,
    32_768,
    32_769,
  ];
  assert.deepEqual(collect(bitmap, 0, 100_000), expected);
  assert.equal(bitmap.countSet(), expected.length);
  assert.ok(bitmap.isSet(32_768));
  assert.ok(!bitmap.isSet(35));
});

test('forEachSet honours partial first and last words', () => {
  const bitmap = new DirtyBitmap(256);
  bitmap.setRange(0, 256);
  assert.deepEqual(collect(bitmap, 33, 3), [33, 34, 35]);
  assert.deepEqual(collect(bitmap, 31, 2), [31, 32]);
  assert.equal(collect(bitmap, 5, 200).length, 200);
});

test('clearing reports once and frees empty chunks', () => {
  const bitmap = new DirtyBitmap(70_000);
  bitmap.setRange(40_000, 3);
  bitmap.setRange(10, 1);
  assert.deepEqual(collect(bitmap, 0, 70_000, true), [10, 40_000, 40_001, 40_002]);
  assert.deepEqual(collect(bitmap, 0, 70_000), []);
  assert.ok(bitmap.empty);
});

test('clearing a sub-range keeps the rest', () => {
  const bitmap = new DirtyBitmap(64);
  bitmap.setRange(0, 64);
  assert.equal(collect(bitmap, 8, 8, true).length, 8);
  assert.equal(bitmap.countSet(), 56);
  assert.ok(!bitmap.isSet(8) && bitmap.isSet(7) && bitmap.isSet(16));
});

test('slice copies the bits of a sub-range', () => {
  const bitmap = new DirtyBitmap(1000);
  bitmap.setRange(100, 2);
  bitmap.setRange(500, 1);
  const part = bitmap.slice(99, 10);
  assert.deepEqual(collect(part, 0, 10), [1, 2]);
  assert.throws(() => bitmap.slice(990, 20), RangeError);
});

test('1 GiB (262,144 pages) with 1% dirty reports in under 5 ms', () => {
  const pages = 262_144;
  const bitmap = new DirtyBitmap(pages);
  let best = Infinity;
  let reported = 0;
  for (let round = 0; round < 7; round++) {
    for (let p = 0; p < pages; p += 100) bitmap.setRange(p, 1);
    reported = 0;
    const started = performance.now();
    bitmap.forEachSet(0, pages, true, () => reported++);
    best = Math.min(best, performance.now() - started);
  }
  assert.equal(reported, Math.ceil(pages / 100));
  assert.ok(best < 5, `best of 7 took ${best.toFixed(2)} ms`);
});
