/**
 * The benchmark harness: named cases, each measured beside a baseline in the same run (so a
 * slow machine slows both), with a target printed next to the result.
 *
 * A case module (bench/vfio.ts, bench/iommufd.ts) exports an array of `BenchCase`. Only `name`,
 * `baselineName`, `run` and `baseline` are required; everything else has a default.
 */
import { performance } from 'node:perf_hooks';

/** What a result is compared against. */
export type BenchTarget =
  /** At least `min` iterations per second (or MB/s when the case moves bytes). */
  | { readonly kind: 'rate'; readonly min: number }
  /** A 'total' case finishing within `maxMs` milliseconds. */
  | { readonly kind: 'time'; readonly maxMs: number }
  /** At least `fraction` of the baseline's rate. */
  | { readonly kind: 'ratio'; readonly fraction: number };

export interface BenchCase {
  /** Shown in the report and matched by `--filter`. */
  readonly name: string;
  /** What the baseline does, e.g. 'plain function call'. */
  readonly baselineName: string;
  /** Performs `iterations` units of the measured work. Must be callable many times. */
  run(iterations: number): void;
  /** Performs `iterations` units of the baseline work. */
  baseline(iterations: number): void;
  /**
   * 'rate' (default): iterations per second, calibrated to a fixed measuring time.
   * 'total': the time of one call with `iterations` (the best of a few repeats).
   */
  readonly kind?: 'rate' | 'total';
  /** For 'total' cases: the fixed iteration count. */
  readonly iterations?: number;
  /** When set, rates are reported in MB/s (10^6 bytes) instead of ops/s. */
  readonly bytesPerIteration?: number;
  readonly target?: BenchTarget;
  /** Called once before measuring (open fds, map buffers) and once after. */
  setup?(): void;
  teardown?(): void;
}

export interface BenchOptions {
  /** Minimum measuring time per sample, in ms. */
  readonly sampleMs: number;
  /** Samples per side; the best one is reported. */
  readonly samples: number;
  readonly log: (line: string) => void;
}

export interface BenchResult {
  readonly name: string;
  /** ops/s or MB/s for rate cases; milliseconds for total cases. */
  readonly value: number;
  readonly baselineValue: number;
  readonly unit: string;
  /** undefined when the case has no target. */
  readonly met: boolean | undefined;
}

export const DEFAULT_OPTIONS: BenchOptions = { sampleMs: 300, samples: 5, log: (line) => console.log(line) };

/** Runs every case whose name contains `filter` (case-insensitive); returns their results. */
export function runBenchmarks(
  cases: readonly BenchCase[],
  filter = '',
  options: Partial<BenchOptions> = {},
): BenchResult[] {
  const opts = { ...DEFAULT_OPTIONS, ...options };
  const selected = cases.filter((c) => c.name.toLowerCase().includes(filter.toLowerCase()));
  if (selected.length === 0) {
    opts.log(`no benchmark matches "${filter}"; cases: ${cases.map((c) => c.name).join(', ')}`);
    return [];
  }
  const results: BenchResult[] = [];
  for (const c of selected) {
    c.setup?.();
    try {
      const result = c.kind === 'total' ? measureTotal(c, opts) : measureRate(c, opts);
      results.push(result);
      opts.log(formatResult(c, result));
    } finally {
      c.teardown?.();
    }
  }
  return results;
}

function measureRate(c: BenchCase, opts: BenchOptions): BenchResult {
  const rate = (fn: (n: number) => void): number => {
    const n = calibrate(fn, opts.sampleMs);
    let best = 0;
    for (let s = 0; s < opts.samples; s++) best = Math.max(best, n / (timeMs(fn, n) / 1000));
    return best;
  };
  const perUnit = c.bytesPerIteration ? c.bytesPerIteration / 1e6 : 1;
  const value = rate((n) => c.run(n)) * perUnit;
  const baselineValue = rate((n) => c.baseline(n)) * perUnit;
  return {
    name: c.name,
    value,
    baselineValue,
    unit: c.bytesPerIteration ? 'MB/s' : 'ops/s',
    met: judge(c, value, baselineValue),
  };
}

function measureTotal(c: BenchCase, opts: BenchOptions): BenchResult {
  const n = c.iterations ?? 1;
  const best = (fn: (n: number) => void): number => {
    let ms = Infinity;
    for (let s = 0; s < opts.samples; s++) ms = Math.min(ms, timeMs(fn, n));
    return ms;
  };
  const value = best((k) => c.run(k));
  const baselineValue = best((k) => c.baseline(k));
  return { name: c.name, value, baselineValue, unit: 'ms', met: judge(c, value, baselineValue) };
}

/** Doubles the iteration count until one call takes at least a fifth of the sample time. */
function calibrate(fn: (n: number) => void, sampleMs: number): number {
  let n = 1;
  for (;;) {
    const ms = timeMs(fn, n);
    if (ms >= sampleMs / 5 || n >= 1 << 30) {
      return Math.max(1, Math.round((n * sampleMs) / Math.max(ms, 0.001)));
    }
    n *= 2;
  }
}

function timeMs(fn: (n: number) => void, n: number): number {
  const start = performance.now();
  fn(n);
  return performance.now() - start;
}

function judge(c: BenchCase, value: number, baselineValue: number): boolean | undefined {
  const t = c.target;
  if (!t) return undefined;
  switch (t.kind) {
    case 'rate':
      return value >= t.min;
    case 'time':
      return value <= t.maxMs;
    case 'ratio':
      return value >= baselineValue * t.fraction;
  }
}

export function formatNumber(v: number): string {
  if (v >= 100) return Math.round(v).toLocaleString('en-US');
  return v.toPrecision(3);
}

function formatTarget(t: BenchTarget | undefined, unit: string): string {
  if (!t) return '';
  switch (t.kind) {
    case 'rate':
      return `target >= ${formatNumber(t.min)} ${unit}`;
    case 'time':
      return `target < ${formatNumber(t.maxMs)} ms`;
    case 'ratio':
      return `target >= ${Math.round(t.fraction * 100)}% of baseline`;
  }
}

export function formatResult(c: BenchCase, r: BenchResult): string {
  const ratio = r.unit === 'ms' ? r.baselineValue / r.value : r.value / r.baselineValue;
  const verdict = r.met === undefined ? '' : r.met ? '  [ok]' : '  [BELOW TARGET]';
  const target = formatTarget(c.target, r.unit);
  return [
    `${c.name}`,
    `    ${formatNumber(r.value).padStart(14)} ${r.unit.padEnd(6)} ${target}${verdict}`,
    `    ${formatNumber(r.baselineValue).padStart(14)} ${r.unit.padEnd(6)} baseline: ${c.baselineName} (${(ratio * 100).toPrecision(3)}% of baseline speed)`,
  ].join('\n');
}
