/**
 * Span iteration over sets of IOVA intervals (lib/interval_tree.c interval_tree_span_iter and
 * iommufd's double_span.h): walking [first, last], intervals that overlap or touch merge into one
 * "used" span, and the gaps between them are "holes". Spans are clipped to [first, last].
 *
 * The io_pagetable uses holes of (reserved ∪ areas) to allocate IOVA, holes of the reserved set
 * to report IOMMU_IOAS_IOVA_RANGES, and used spans of the allowed set to bound allocation.
 */

export interface Span {
  readonly start: bigint;
  /** Inclusive end. */
  readonly last: bigint;
}

/** The merged, clipped used spans of `sources` (each sorted by start) inside [first, last]. */
export function usedSpans(first: bigint, last: bigint, ...sources: Iterable<Span>[]): Span[] {
  const out: Span[] = [];
  let current: { start: bigint; last: bigint } | null = null;
  for (const span of mergeSorted(sources)) {
    if (span.last < first) continue;
    if (span.start > last) break;
    const start = span.start < first ? first : span.start;
    const end = span.last > last ? last : span.last;
    if (current && start <= current.last + 1n) {
      if (end > current.last) current.last = end;
      continue;
    }
    if (current) out.push(current);
    current = { start, last: end };
  }
  if (current) out.push(current);
  return out;
}

/**
 * The holes of the union of `sources` (each sorted by start) inside [first, last], lowest first.
 * Lazy, so a first-fit search stops at the first hole that fits.
 */
export function* holes(first: bigint, last: bigint, ...sources: Iterable<Span>[]): Generator<Span> {
  let cursor = first;
  for (const span of mergeSorted(sources)) {
    if (span.last < cursor) continue;
    if (span.start > last) break;
    if (span.start > cursor) yield { start: cursor, last: span.start - 1n };
    cursor = span.last + 1n;
    if (cursor > last) return;
  }
  if (cursor <= last) yield { start: cursor, last };
}

/** Whether any span of the sorted, non-overlapping `spans` intersects [start, last]. */
export function intersectsSorted(spans: readonly Span[], start: bigint, last: bigint): boolean {
  // Binary search for the first span ending at or after `start`.
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (spans[mid]!.last < start) lo = mid + 1;
    else hi = mid;
  }
  return lo < spans.length && spans[lo]!.start <= last;
}

/** Yields the spans of several sorted sources in order of start. */
function* mergeSorted(sources: Iterable<Span>[]): Generator<Span> {
  if (sources.length === 1) {
    yield* sources[0]!;
    return;
  }
  const iterators = sources.map((s) => s[Symbol.iterator]());
  const heads = iterators.map((it) => it.next());
  for (;;) {
    let pick = -1;
    for (let i = 0; i < heads.length; i++) {
      const head = heads[i]!;
      if (head.done) continue;
      if (pick < 0 || head.value.start < (heads[pick]!.value as Span).start) pick = i;
    }
    if (pick < 0) return;
    yield heads[pick]!.value as Span;
    heads[pick] = iterators[pick]!.next();
  }
}
