/**
 * eventfd(2): a 64-bit counter. Kernel code signals it (eventfd_signal) and can subscribe to
 * writes (the irqfd/virqfd and ioeventfd pattern: a userspace write makes the kernel act).
 *
 * Kernel users hold the counter (struct eventfd_ctx), not the file: an EventFd they keep goes on
 * counting after the user closed its last fd. That last close is the file's release, which
 * wakes pollers with EPOLLHUP (eventfd_release); virqfds listen for it and tear themselves down.
 */
import { fail } from '../../uapi/errno.js';
import { File } from './file.js';
import type { Task } from './task.js';

export const EFD_SEMAPHORE = 1;
export const EFD_NONBLOCK = 0x800;
export const EFD_CLOEXEC = 0x80000;

const ULLONG_MAX = 0xffffffffffffffffn;
const COUNTER_MAX = ULLONG_MAX - 1n;

export class EventFd extends File {
  readonly path = 'anon_inode:[eventfd]';
  private count: bigint;
  private readonly listeners = new Set<(value: bigint) => void>();
  private readonly hangupListeners = new Set<() => void>();

  constructor(
    initval: number,
    private readonly semaphore: boolean,
  ) {
    super();
    this.count = BigInt(initval);
  }

  get counter(): bigint {
    return this.count;
  }

  /**
   * eventfd_signal(): adds `n`, saturating just below overflow as the kernel does, then runs
   * kernel-side listeners and wakes readers.
   */
  signal(n = 1n): void {
    this.count = this.count + n > COUNTER_MAX ? COUNTER_MAX : this.count + n;
    this.notify(n);
  }

  /** Kernel-side consumers of writes (virqfd unmask, ioeventfd). Returns the unsubscribe. */
  subscribe(listener: (value: bigint) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** EPOLLHUP at the file's release (the user's last fd closed). Returns the unsubscribe. */
  onHangup(listener: () => void): () => void {
    this.hangupListeners.add(listener);
    return () => this.hangupListeners.delete(listener);
  }

  /**
   * eventfd_ctx_do_read(): a kernel consumer (virqfd) takes the count as a read would, without
   * waking anyone. Returns what was taken (0 when the count was 0).
   */
  doRead(): bigint {
    const value = this.semaphore && this.count > 0n ? 1n : this.count;
    this.count -= value;
    return value;
  }

  override readable(): boolean {
    return this.count > 0n;
  }

  override read(_task: Task, length: number): Uint8Array {
    if (length < 8) return fail('EINVAL');
    // Nothing blocks in the emulation: a read that would wait is EAGAIN.
    if (this.count === 0n) return fail('EAGAIN');
    const value = this.semaphore ? 1n : this.count;
    this.count -= value;
    const out = new Uint8Array(8);
    new DataView(out.buffer).setBigUint64(0, value, true);
    return out;
  }

  override write(_task: Task, data: Uint8Array): number {
    if (data.length < 8) return fail('EINVAL');
    const value = new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0, true);
    if (value === ULLONG_MAX) return fail('EINVAL');
    if (this.count + value > COUNTER_MAX) return fail('EAGAIN');
    this.count += value;
    this.notify(value);
    return 8;
  }

  private notify(value: bigint): void {
    for (const listener of [...this.listeners]) listener(value);
    if (this.count > 0n) this.wakeReaders();
  }

  /** eventfd_release(): wake_up_poll(EPOLLHUP); kernel holders of the counter keep it. */
  protected override release(): void {
    const hangup = [...this.hangupListeners];
    this.hangupListeners.clear();
    for (const listener of hangup) listener();
    this.listeners.clear();
  }
}
