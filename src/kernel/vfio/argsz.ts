/**
 * The VFIO ioctl convention: userspace passes a struct whose first field `argsz` says how big
 * it is. The kernel copies in `minsz` bytes (EFAULT if it cannot), rejects argsz < minsz with
 * EINVAL, and copies back at most min(argsz, sizeof(struct)) bytes. Handlers use these two
 * helpers instead of repeating that arithmetic.
 */
import { fail } from '../../uapi/errno.js';
import type { Struct } from '../../uapi/layout.js';
import type { Task } from '../vfs/task.js';

export function copyArgszIn<T extends { argsz: number }>(task: Task, arg: bigint, struct: Struct<T>, minsz: number): T {
  const bytes = task.copyFromUser(arg, minsz);
  const value = struct.decode(bytes);
  if (value.argsz < minsz) return fail('EINVAL');
  return value;
}

/** copy_to_user(arg, &info, min(argsz, sizeof(info))). */
export function copyArgszOut<T extends object>(
  task: Task,
  arg: bigint,
  struct: Struct<T>,
  value: T,
  argsz: number,
): void {
  const bytes = struct.encode(value);
  task.copyToUser(arg, bytes.subarray(0, Math.min(argsz, struct.size)));
}

/** One entry of a per-file-type ioctl table. */
export interface IoctlHandler<C> {
  readonly name: string;
  (ctx: C, task: Task, arg: bigint): number;
}

/** Builds a frozen request -> handler table; `name` is kept for tracing and errors. */
export function ioctlTable<C>(
  entries: ReadonlyArray<readonly [number, string, (ctx: C, task: Task, arg: bigint) => number]>,
): ReadonlyMap<number, IoctlHandler<C>> {
  const table = new Map<number, IoctlHandler<C>>();
  for (const [request, name, fn] of entries) {
    if (table.has(request)) throw new Error(`duplicate ioctl ${name} (0x${request.toString(16)})`);
    Object.defineProperty(fn, 'name', { value: name });
    table.set(request, fn as IoctlHandler<C>);
  }
  return table;
}
