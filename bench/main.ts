/**
 * `npm run bench`: runs the benchmark cases (bench/vfio.ts, and bench/iommufd.ts when it was
 * built), each beside its in-run baseline and its target, each case in a process of its own.
 *
 *   node dist/bench/main.js [--filter <substring>] [--sample-ms <ms>] [--samples <n>] [--list]
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_OPTIONS, runBenchmarks, type BenchCase } from './harness.js';
import { vfioCases } from './vfio.js';

const SCRIPT = fileURLToPath(import.meta.url);

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
      'sample-ms': { type: 'string', default: String(DEFAULT_OPTIONS.sampleMs) },
      samples: { type: 'string', default: String(DEFAULT_OPTIONS.samples) },
      list: { type: 'boolean', default: false },
      /** Runs the one case of this exact name in this process (what each child below does). */
      case: { type: 'string' },
    },
  });
  const iommufdModule = './iommufd.js';
  const cases = [...vfioCases, ...(await optionalCases(iommufdModule))];
  if (values.list) {
    for (const c of cases) console.log(c.name);
    return;
  }
  const measuring = ['--sample-ms', values['sample-ms'], '--samples', values.samples];
  if (values.case !== undefined) {
    const only = cases.filter((c) => c.name === values.case);
    const [result] = runBenchmarks(only, '', {
      sampleMs: Number(values['sample-ms']),
      samples: Number(values.samples),
    });
    process.exitCode = result === undefined ? 2 : result.met === false ? 1 : 0;
    return;
  }
  const selected = cases.filter((c) => c.name.toLowerCase().includes(values.filter.toLowerCase()));
  if (selected.length === 0) {
    console.log(`no benchmark matches "${values.filter}"; cases: ${cases.map((c) => c.name).join(', ')}`);
    return;
  }
  console.log(`vfio-ts benchmarks (node ${process.version}); each result is followed by its in-run baseline`);
  console.log('');
  let below = 0;
  for (const c of selected) {
    // Each case runs in a fresh Node process: the JIT profiles and the heap one case leaves
    // behind would otherwise slow the cases after it, and results would depend on their order.
    const child = spawnSync(process.execPath, [...process.execArgv, SCRIPT, '--case', c.name, ...measuring], {
      stdio: 'inherit',
    });
    if (child.status === 1) below++;
    else if (child.status !== 0) throw new Error(`benchmark "${c.name}" failed (${child.status ?? child.signal})`);
  }
  console.log('');
  console.log(`${selected.length} case(s) run, ${below} below target`);
}

await main();
