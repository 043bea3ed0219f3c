/**
 * What every scenario test needs: a process with scratch memory for ioctl structs, structs
 * encoded into and decoded from that memory, and the end-of-test check that the host holds
 * nothing any more.
 */
import assert from 'node:assert/strict';
import type { Host } from '../../src/host.js';
import type { Process } from '../../src/sys/process.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../../src/kernel/vfs/mm.js';
import { SyscallError } from '../../src/uapi/errno.js';
import type { EncodeValue, Struct } from '../../src/uapi/layout.js';

export const RW = PROT_READ | PROT_WRITE;
export const ANON = MAP_PRIVATE | MAP_ANONYMOUS;
export const PAGE = 4096;

export class ProcessEnv {
  /** Four pages for ioctl arguments. */
  readonly scratch: bigint;

  constructor(
    readonly host: Host,
    readonly proc: Process,
  ) {
    this.scratch = proc.mmap(4 * PAGE, RW, ANON);
  }

  /** Writes `value` encoded as `struct` at `at` (default: the scratch page); returns the address. */
  put<T extends object>(struct: Struct<T>, value: EncodeValue<T>, at = this.scratch): bigint {
    this.proc.memory.write(at, struct.encode(value));
    return at;
  }

  get<T extends object>(struct: Struct<T>, at = this.scratch): T {
    return struct.decode(this.proc.memory.read(at, struct.size));
  }

  /** Writes a NUL-terminated string; returns its address. */
  putString(text: string, at = this.scratch): bigint {
    this.proc.memory.write(at, new Uint8Array([...Buffer.from(text, 'latin1'), 0]));
    return at;
  }

  /** Writes one s32 (an `int *` argument); returns its address. */
  putS32(value: number, at = this.scratch): bigint {
    const bytes = new Uint8Array(4);
    new DataView(bytes.buffer).setInt32(0, value, true);
    this.proc.memory.write(at, bytes);
    return at;
  }
}

/** After every process exited: nothing open, pinned, charged, mapped, attached or remapped; no oops. */
export function assertHostClean(host: Host): void {
  assert.deepEqual(host.kernel.oopses, []);
  const usage = host.usage() as unknown as Record<string, number>;
  for (const [what, count] of Object.entries(usage)) assert.equal(count, 0, `host still holds ${count} ${what}`);
  assert.equal(host.machine.iommu.irqRemap.allocated, 0, 'interrupt remapping entries left');
}

/** Exits the env's process and checks the host returned to empty. */
export function exitAndCheck(env: ProcessEnv): void {
  env.proc.exit();
  assertHostClean(env.host);
}

/** 'ok' when `fn` succeeds, else the errno code of the SyscallError it threw. */
export function outcome(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    if (err instanceof SyscallError) return err.code;
    throw err;
  }
}
