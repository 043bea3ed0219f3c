/**
 * How the CLI's userspace code calls ioctls, like a C program would: the argument struct is
 * encoded into the process's own memory (a scratch page it mmap'ed), the ioctl gets its address,
 * and the struct is read back afterwards.
 */
import type { Process } from '../sys/process.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../kernel/vfs/mm.js';
import type { EncodeValue, Struct } from '../uapi/layout.js';

export interface StructCall<T> {
  /** The ioctl's return value. */
  readonly ret: number;
  /** The struct as the kernel left it. */
  readonly value: T;
  /** The whole argument buffer after the call (struct plus tail / capability chain). */
  readonly bytes: Uint8Array;
}

export class IoctlCaller {
  private readonly base: bigint;

  constructor(
    readonly proc: Process,
    readonly scratchSize = 0x10000,
  ) {
    this.base = proc.mmap(scratchSize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  }

  /** The scratch buffer's address: where struct arguments are placed. */
  get address(): bigint {
    return this.base;
  }

  /**
   * Encodes `value` (plus `tail`, a flexible array, right after the struct) at the scratch
   * address, calls the ioctl, and decodes the result. `size` is the buffer length to read back
   * (default: struct plus tail), e.g. the argsz of an INFO call with capabilities.
   */
  struct<T extends object>(
    fd: number,
    request: number,
    s: Struct<T>,
    value: EncodeValue<T>,
    opts: { tail?: Uint8Array; size?: number } = {},
  ): StructCall<T> {
    const tail = opts.tail ?? new Uint8Array(0);
    const size = Math.max(opts.size ?? 0, s.size + tail.length);
    if (size > this.scratchSize) throw new RangeError(`argument of ${size} bytes exceeds the scratch buffer`);
    const buf = new Uint8Array(size);
    s.encode(value, buf);
    buf.set(tail, s.size);
    this.proc.memory.write(this.base, buf);
    const ret = this.proc.ioctl(fd, request, this.base);
    const bytes = this.proc.memory.read(this.base, size);
    return { ret, value: s.decode(bytes), bytes };
  }

  /** An ioctl whose argument is a pointer to one s32 (VFIO_GROUP_SET_CONTAINER). */
  s32ptr(fd: number, request: number, v: number): number {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, v, true);
    this.proc.memory.write(this.base, b);
    return this.proc.ioctl(fd, request, this.base);
  }

  /** An ioctl whose argument is a NUL-terminated string (VFIO_GROUP_GET_DEVICE_FD). */
  string(fd: number, request: number, text: string): number {
    const bytes = new Uint8Array(Buffer.byteLength(text, 'latin1') + 1);
    bytes.set(Buffer.from(text, 'latin1'));
    this.proc.memory.write(this.base, bytes);
    return this.proc.ioctl(fd, request, this.base);
  }

  /** Releases the scratch buffer. */
  dispose(): void {
    this.proc.munmap(this.base, this.scratchSize);
  }
}
