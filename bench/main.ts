/**
 * `npm run bench`: runs the benchmark cases (bench/vfio.ts, and bench/iommufd.ts when it was
 * built), each beside its in-run baseline and its target.
 *
 *   node dist/bench/main.js [--filter <substring>] [--sample-ms <ms>] [--samples <n>] [--list]
 */
import { parseArgs } from 'node:util';
import { runBenchmarks, type BenchCase } from './harness.js';
import { vfioCases } from './vfio.js';

async function optionalCases(module: string): Promise<readonly BenchCase[]> {
  try {
    // A variable specifier: the module is optional and may not exist at build time.
    const mod = (await import(module)) as Record<string, unknown>;
    const found = Object.values(mod).find(
      (x): x is BenchCase[] => Array.isArray(x) && x.every((c) => typeof c?.run === 'function'),
    );
    return found ?? [];
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return [];
    throw err;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      filter: { type: 'string', default: '' },
      'sample-ms': { type: 'string', default: '300' },
      samples: { type: 'string', default: '3' },
      list: { type: 'boolean', default: false },
    },
  });
  const iommufdModule = './iommufd.js';
  const cases = [...vfioCases, ...(await optionalCases(iommufdModule))];
  if (values.list) {
    for (const c of cases) console.log(c.name);
    return;
  }
  console.log(`vfio-ts benchmarks (node ${process.version}); each result is followed by its in-run baseline`);
  console.log('');
  const results = runBenchmarks(cases, values.filter, {
    sampleMs: Number(values['sample-ms']),
    samples: Number(values.samples),
  });
  const below = results.filter((r) => r.met === false).length;
  console.log('');
  console.log(`${results.length} case(s) run, ${below} below target`);
}

await main();
