/**
 * struct file: what an fd points at. Several fds (dup, or the same object handed out twice)
 * share one File; the last reference going away runs `release`, the kernel's ->release().
 */
import { fail } from '../../uapi/errno.js';
import type { MemoryObject } from '../../hw/memory.js';
import type { Task } from './task.js';

const O_ACCMODE = 3;

/** What mmap of a file hands to the process's address space. */
export interface FileMapping {
  object: MemoryObject;
  /** Byte offset into `object` of the first mapped byte. */
  offset: number;
  /** Called when the mapping is removed (munmap, exit). */
  unmap?: () => void;
}

export interface MmapRequest {
  length: number;
  prot: number;
  flags: number;
  /** File offset, as given to mmap (page aligned). */
  offset: bigint;
}

export abstract class File {
  private refs = 1;
  private readonly readableWaiters = new Set<() => void>();

  /** What /proc/self/fd/N would link to: a device path or `anon_inode:[name]`. */
  abstract readonly path: string;

  /** Status flags given at open (O_NONBLOCK and friends). */
  flags = 0;

  /**
   * FMODE_PREAD | FMODE_PWRITE: the file has positions, so pread/pwrite reach it. open() of a
   * device node sets them (do_dentry_open), as do device and memfd files; eventfds and the
   * other anon-inode or stream files lack them, and pread/pwrite fail with ESPIPE.
   */
  positional = false;

  /** FMODE_READ: the open access mode allows reading (OPEN_FMODE of O_RDONLY or O_RDWR). */
  get fmodeRead(): boolean {
    return (((this.flags & O_ACCMODE) + 1) & 1) !== 0;
  }

  /** FMODE_WRITE: the open access mode allows writing (O_WRONLY or O_RDWR). */
  get fmodeWrite(): boolean {
    return (((this.flags & O_ACCMODE) + 1) & 2) !== 0;
  }

  get released(): boolean {
    return this.refs === 0;
  }

  get(): this {
    this.refs++;
    return this;
  }

  put(): void {
    if (this.refs <= 0) return;
    if (--this.refs === 0) {
      this.readableWaiters.clear();
      this.release();
    }
  }

  ioctl(_task: Task, _request: number, _arg: bigint): number {
    return fail('ENOTTY');
  }

  read(_task: Task, _length: number): Uint8Array {
    return fail('EINVAL');
  }

  write(_task: Task, _data: Uint8Array): number {
    return fail('EINVAL');
  }

  /** Only reached for a positional file without a ->read (FMODE_CAN_READ unset): EINVAL. */
  pread(_task: Task, _length: number, _offset: bigint): Uint8Array {
    return fail('EINVAL');
  }

  pwrite(_task: Task, _data: Uint8Array, _offset: bigint): number {
    return fail('EINVAL');
  }

  mmap(_task: Task, _request: MmapRequest): FileMapping {
    return fail('ENODEV');
  }

  ftruncate(_task: Task, _length: bigint): void {
    fail('EINVAL');
  }

  /** poll(): would a read succeed now? */
  readable(): boolean {
    return false;
  }

  /** Registers a one-shot wake-up for when the file may have become readable. */
  onReadable(waiter: () => void): () => void {
    this.readableWaiters.add(waiter);
    return () => this.readableWaiters.delete(waiter);
  }

  /** wake_up(): lets waiters re-check `readable()`. */
  protected wakeReaders(): void {
    if (this.readableWaiters.size === 0) return;
    const waiters = [...this.readableWaiters];
    this.readableWaiters.clear();
    for (const w of waiters) w();
  }

  protected release(): void {}
}
