/**
 * The kernel's view of a process (task_struct + files + mm + creds), and the user-copy
 * primitives every ioctl handler uses.
 */
import { fail } from '../../uapi/errno.js';
import type { Cred, UserStruct } from './cred.js';
import { FdTable } from './fdtable.js';
import { Mm, TASK_SIZE } from './mm.js';
import { NullFile } from './null.js';
import type { Kernel } from '../kernel.js';

export const RLIM_INFINITY = 0xffffffffffffffffn;

export class Task {
  readonly files = new FdTable();
  readonly mm = new Mm();
  exited = false;

  constructor(
    readonly kernel: Kernel,
    readonly pid: number,
    readonly cred: Cred,
    readonly user: UserStruct,
    /** RLIMIT_MEMLOCK in bytes. */
    readonly rlimitMemlock: bigint,
  ) {
    this.files.installStdio(() => new NullFile());
  }

  capable(cap: string): boolean {
    return this.cred.caps.has(cap);
  }

  /** RLIMIT_MEMLOCK in pages, or Infinity. */
  get memlockLimitPages(): number {
    return this.rlimitMemlock >= RLIM_INFINITY ? Infinity : Number(this.rlimitMemlock >> 12n);
  }

  /** copy_from_user(): EFAULT when any byte is unmapped or unreadable. */
  copyFromUser(addr: bigint | number, length: number): Uint8Array {
    return this.mm.read(userAddress(addr, length), length);
  }

  /** copy_to_user(): EFAULT when any byte is unmapped or not writable. */
  copyToUser(addr: bigint | number, data: Uint8Array): void {
    this.mm.write(userAddress(addr, data.length), data);
  }

  getU32(addr: bigint | number): number {
    const b = this.copyFromUser(addr, 4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  getS32(addr: bigint | number): number {
    return this.getU32(addr) | 0;
  }

  /**
   * strndup_user(): a NUL-terminated string of at most `max` bytes including the NUL;
   * EFAULT if unreadable, EINVAL if no NUL within `max`.
   */
  strndupUser(addr: bigint | number, max: number): string {
    const bytes: number[] = [];
    const base = userAddress(addr, 1);
    for (let i = 0; i < max; i++) {
      const b = this.mm.read(base + i, 1)[0]!;
      if (b === 0) return Buffer.from(bytes).toString('latin1');
      bytes.push(b);
    }
    return fail('EINVAL');
  }
}

/** A user pointer as a number; anything outside user space faults. */
export function userAddress(addr: bigint | number, length = 0): number {
  let a: number;
  if (typeof addr === 'bigint') {
    if (addr < 0n || addr >= TASK_SIZE_BIG) return fail('EFAULT');
    a = Number(addr);
  } else {
    a = addr;
  }
  if (!(a >= 0 && a + length <= TASK_SIZE)) return fail('EFAULT');
  return a;
}

const TASK_SIZE_BIG = BigInt(TASK_SIZE);
