/**
 * The observer a Process calls around every system call (what strace sees).
 */
import type { SyscallError } from '../uapi/errno.js';
import type { Process } from './process.js';

export interface SyscallTracer {
  enter(proc: Process, name: string, args: readonly unknown[]): void;
  exit(proc: Process, name: string, args: readonly unknown[], result: unknown, error: SyscallError | undefined): void;
}
