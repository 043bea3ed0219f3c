#!/usr/bin/env node
/** The `vfio-ts` bin: see cli.ts for the commands. */
import { runCli } from './cli.js';

// `vfio-ts ls | head`: a closed pipe ends the output quietly, as for any Unix tool.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = runCli(process.argv.slice(2), {
  out: (line) => process.stdout.write(line + '\n'),
  err: (line) => process.stderr.write(line + '\n'),
});
