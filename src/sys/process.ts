/**
 * `Process`: the system-call surface of CONTRACT.md over one emulated task. Every call either
 * returns or throws SyscallError carrying the syscall's name; nothing else escapes.
 */
import { SyscallError, Errno } from '../uapi/errno.js';
import { safeNumber } from '../uapi/u64.js';
import type { Task } from '../kernel/vfs/task.js';
import * as sys from '../kernel/vfs/syscalls.js';
import type { SyscallTracer } from './trace-hook.js';

export interface ProcessMemory {
  read(addr: bigint, length: number): Uint8Array;
  write(addr: bigint, data: Uint8Array): void;
}

export class Process {
  /** Set to observe every call (the CLI's --trace). */
  tracer: SyscallTracer | undefined;
  readonly memory: ProcessMemory;

  constructor(readonly task: Task) {
    this.memory = new UserMemory(task);
  }

  get pid(): number {
    return this.task.pid;
  }

  open(path: string, flags = sys.O_RDWR): number {
    return this.call('open', [path, flags], () => sys.sysOpen(this.task, String(path), int(flags)));
  }

  close(fd: number): void {
    this.call('close', [fd], () => sys.sysClose(this.task, fdOf(fd)));
  }

  dup(fd: number): number {
    return this.call('dup', [fd], () => sys.sysDup(this.task, fdOf(fd)));
  }

  ioctl(fd: number, request: number, arg: number | bigint = 0): number {
    return this.call('ioctl', [fd, request, arg], () =>
      sys.sysIoctl(this.task, fdOf(fd), int(request), BigInt.asUintN(64, big(arg))),
    );
  }

  read(fd: number, length: number): Uint8Array {
    return this.call('read', [fd, length], () => sys.sysRead(this.task, fdOf(fd), count(length)));
  }

  write(fd: number, data: Uint8Array): number {
    return this.call('write', [fd, data], () => sys.sysWrite(this.task, fdOf(fd), bytesOf(data)));
  }

  pread(fd: number, length: number, offset: number | bigint): Uint8Array {
    return this.call('pread', [fd, length, offset], () =>
      sys.sysPread(this.task, fdOf(fd), count(length), big(offset)),
    );
  }

  pwrite(fd: number, data: Uint8Array, offset: number | bigint): number {
    return this.call('pwrite', [fd, data, offset], () =>
      sys.sysPwrite(this.task, fdOf(fd), bytesOf(data), big(offset)),
    );
  }

  mmap(length: number | bigint, prot: number, flags: number, fd = -1, offset: number | bigint = 0): bigint {
    return this.call('mmap', [length, prot, flags, fd, offset], () =>
      sys.sysMmap(this.task, 0n, big(length), int(prot), int(flags), int(fd), big(offset)),
    );
  }

  /** mmap with an address: MAP_FIXED placement, or a hint (ignored) without it. */
  mmapAt(
    addr: bigint,
    length: number | bigint,
    prot: number,
    flags: number,
    fd = -1,
    offset: number | bigint = 0,
  ): bigint {
    return this.call('mmap', [addr, length, prot, flags, fd, offset], () =>
      sys.sysMmap(this.task, big(addr), big(length), int(prot), int(flags), int(fd), big(offset)),
    );
  }

  munmap(addr: bigint, length: number | bigint): void {
    this.call('munmap', [addr, length], () => sys.sysMunmap(this.task, big(addr), big(length)));
  }

  eventfd(initval = 0, flags = 0): number {
    return this.call('eventfd', [initval, flags], () => sys.sysEventfd(this.task, int(initval), int(flags)));
  }

  memfdCreate(name: string, flags = 0): number {
    return this.call('memfd_create', [name, flags], () => sys.sysMemfdCreate(this.task, String(name), int(flags)));
  }

  ftruncate(fd: number, length: number | bigint): void {
    this.call('ftruncate', [fd, length], () => sys.sysFtruncate(this.task, fdOf(fd), big(length)));
  }

  readlink(path: string): string {
    return this.call('readlink', [path], () => sys.sysReadlink(this.task, String(path)));
  }

  readdir(path: string): string[] {
    return this.call('readdir', [path], () => sys.sysReaddir(this.task, String(path)));
  }

  exit(): void {
    this.call('exit', [], () => sys.sysExit(this.task));
  }

  /** Resolves when a read of `fd` would not fail with EAGAIN (poll for POLLIN). */
  waitReadable(fd: number): Promise<void> {
    let file;
    try {
      file = this.task.files.get(fdOf(fd));
    } catch (err) {
      return Promise.reject(this.normalize('poll', err));
    }
    if (file.readable()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (file.released || file.readable()) resolve();
        else file.onReadable(check);
      };
      file.onReadable(check);
    });
  }

  private call<T>(name: string, args: unknown[], body: () => T): T {
    const tracer = this.tracer;
    tracer?.enter(this, name, args);
    try {
      if (this.task.exited && name !== 'exit') throw new SyscallError(Errno.ESRCH, name);
      const result = body();
      tracer?.exit(this, name, args, result, undefined);
      return result;
    } catch (err) {
      const error = this.normalize(name, err);
      tracer?.exit(this, name, args, undefined, error);
      throw error;
    }
  }

  private normalize(name: string, err: unknown): SyscallError {
    return syscallError(this.task, name, err);
  }
}

/**
 * The process touching its own memory: the hot path of every userspace driver (MMIO through a
 * mapped BAR). No tracing and no argument arrays; methods on a class rather than closures per
 * process, so every process's accesses share one V8 profile.
 */
class UserMemory implements ProcessMemory {
  constructor(private readonly task: Task) {
    // Bound, so `const { read } = proc.memory` and callbacks keep working.
    this.read = this.read.bind(this);
    this.write = this.write.bind(this);
  }

  read(addr: bigint, length: number): Uint8Array {
    try {
      if (this.task.exited) noProcess();
      return this.task.mm.read(addrOf(addr), count(length));
    } catch (err) {
      throw syscallError(this.task, 'memory.read', err);
    }
  }

  write(addr: bigint, data: Uint8Array): void {
    try {
      if (this.task.exited) noProcess();
      this.task.mm.write(addrOf(addr), bytesOf(data));
    } catch (err) {
      throw syscallError(this.task, 'memory.write', err);
    }
  }
}

/** What a call throws: its SyscallError, or EFAULT for anything else (recorded as an oops). */
function syscallError(task: Task, name: string, err: unknown): SyscallError {
  if (err instanceof SyscallError) return err.syscall === name ? err : new SyscallError(err.errno, name);
  // An emulation bug surfaced as a fault, as a kernel oops would; kept for tests to see.
  task.kernel.oopses.push(err instanceof Error ? err : new Error(String(err)));
  return new SyscallError(Errno.EFAULT, name, 'internal error');
}

/** Bad argument types from JavaScript callers are EINVAL/EFAULT, never TypeError. */
function int(v: unknown): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  if (typeof v === 'bigint') return Number(BigInt.asIntN(64, v));
  throw new SyscallError(Errno.EINVAL);
}

function fdOf(v: unknown): number {
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw new SyscallError(Errno.EBADF);
}

function big(v: unknown): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v);
  throw new SyscallError(Errno.EINVAL);
}

function count(v: unknown): number {
  if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v;
  return countOfOther(v);
}

function countOfOther(v: unknown): number {
  if (typeof v === 'bigint' && v >= 0n) return v > 0x7ffff000n ? 0x7ffff000 : Number(v);
  throw new SyscallError(Errno.EINVAL);
}

function bytesOf(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  throw new SyscallError(Errno.EFAULT);
}

/** A user address as a number; anything that cannot be one faults (mm checks the range). */
function addrOf(addr: unknown): number {
  const n = typeof addr === 'bigint' ? safeNumber(addr) : numberAddress(addr);
  return n >= 0 ? n : fault();
}

function numberAddress(addr: unknown): number {
  return typeof addr === 'number' && Number.isSafeInteger(addr) ? addr : -1;
}

function fault(): never {
  throw new SyscallError(Errno.EFAULT);
}

function noProcess(): never {
  throw new SyscallError(Errno.ESRCH);
}
