/**
 * The `vfio-ts` command line: argument parsing (node:util parseArgs) and dispatch to the
 * subcommands. Kept apart from main.ts so tests can run commands in-process.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Topology } from '../topology.js';
import { SyscallError } from '../uapi/errno.js';
import { runDemo } from './demo.js';
import { runLs } from './ls.js';

export interface CliIo {
  readonly out: (line: string) => void;
  readonly err: (line: string) => void;
}

export const USAGE = `usage: vfio-ts <command> [options]

commands:
  demo [--iommufd] [--trace]        drive an edu device end to end as a VFIO user driver does
  ls [--topology file.json] [--trace]
                                    show the IOMMU, IOMMU groups, devices, regions and IRQs
  help                              this text

options:
  --topology <file.json>  the machine to build (CONTRACT.md Topology); default: 4 edu devices
  --iommufd               demo: use /dev/iommu and the device cdev instead of container + group
  --trace                 print every system call and ioctl, decoded, strace-style`;

const OPTIONS = {
  topology: { type: 'string' },
  trace: { type: 'boolean', default: false },
  iommufd: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** Runs one command line; returns the exit status. */
export function runCli(argv: readonly string[], io: CliIo): number {
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    io.err(`vfio-ts: ${(err as Error).message}`);
    io.err(USAGE);
    return 2;
  }
  const { values, positionals } = parsed;
  const [command = 'help', ...extra] = positionals;
  if (values.help || command === 'help') {
    io.out(USAGE);
    return 0;
  }
  if (extra.length) {
    io.err(`vfio-ts: unexpected argument ${JSON.stringify(extra[0])}`);
    return 2;
  }
  try {
    const topology = values.topology === undefined ? undefined : loadTopology(values.topology);
    switch (command) {
      case 'demo': {
        const report = runDemo({ iommufd: values.iommufd, trace: values.trace, topology, out: io.out });
        return report.dmaVerified && report.interrupts > 0n && report.faultStopped ? 0 : 1;
      }
      case 'ls':
        runLs({ topology, trace: values.trace, out: io.out });
        return 0;
      default:
        io.err(`vfio-ts: unknown command ${JSON.stringify(command)}`);
        io.err(USAGE);
        return 2;
    }
  } catch (err) {
    if (err instanceof SyscallError || err instanceof TopologyError) {
      io.err(`vfio-ts: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

class TopologyError extends Error {}

function loadTopology(file: string): Topology {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TopologyError(`cannot read topology ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as Topology;
  } catch (err) {
    throw new TopologyError(`topology ${file} is not valid JSON: ${(err as Error).message}`);
  }
}
