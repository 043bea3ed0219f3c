/**
 * The iommufd context and its object table (drivers/iommu/iommufd/main.c, iommufd_private.h).
 *
 * Each open of /dev/iommu is one context. Every object (IOAS, DEVICE, HWPT_PAGING, ...) has an
 * id from one table shared by all types: ids start at 1, the lowest free id is taken first and
 * freed ids are reused (xarray XA_FLAGS_ALLOC1, 31-bit limit) - semantics.md 7.1.
 *
 * Lifetimes are counted as the kernel counts obj->users: the table holds one reference, and
 * every link from another object or a driver holds one more. IOMMU_DESTROY only succeeds when
 * the table's reference is the last (else EBUSY); closing the context destroys leaves first.
 *
 * This module has no dependency on the object kinds, so that each kind's module can extend
 * IommufdObject while main.ts imports them all for the ioctl table.
 */
import { fail } from '../../uapi/errno.js';
import type { Struct } from '../../uapi/layout.js';
import type { Kernel } from '../kernel.js';
import type { File } from '../vfs/file.js';
import { PROT_READ } from '../vfs/mm.js';
import { type Task, userAddress } from '../vfs/task.js';
import type { Ioas } from './ioas.js';
import type { IommufdGroup } from './device.js';
import { codecOf } from './codec.js';
import { IOPT_PAGES_ACCOUNT_USER, type AccountMode } from './pages.js';

export type IommufdObjectType =
  | 'IOAS'
  | 'DEVICE'
  | 'HWPT_PAGING'
  | 'HWPT_NESTED'
  | 'FAULT'
  | 'VIOMMU'
  | 'VDEVICE'
  | 'VEVENTQ'
  | 'HW_QUEUE'
  | 'ACCESS';

/** xa_limit_31b. */
const MAX_ID = 0x7fffffff;

export abstract class IommufdObject {
  /** 0 until the table gives it one. */
  id = 0;
  /** obj->users. */
  users = 1;
  abstract readonly type: IommufdObjectType;

  constructor(readonly ctx: IommufdCtx) {}

  /** ->destroy(): releases everything the object holds. */
  abstract destroy(): void;

  /** ->abort(): undoes a half-built object; by default the same as destroy. */
  abort(): void {
    this.destroy();
  }
}

export class IommufdCtx {
  /** id -> object; null marks an id reserved for an object not finalized yet (XA_ZERO_ENTRY). */
  private readonly objects = new Map<number, IommufdObject | null>();
  private readonly freeIds: number[] = [];
  private nextId = 1;
  /** ictx->account_mode: how new pages are charged (IOMMU_OPTION_RLIMIT_MODE). */
  accountMode: AccountMode;
  /** The IOAS that VFIO compat ioctls and group SET_CONTAINER use (ictx->vfio_ioas). */
  vfioIoas: Ioas | null = null;
  /** iommufd_group per IOMMU group id (ictx->groups). */
  readonly groups = new Map<number, IommufdGroup>();
  private released = false;

  constructor(
    readonly kernel: Kernel,
    /** The file of this context: drivers that bind hold references to it (iommufd_ctx_get). */
    readonly file: File,
    accountMode: AccountMode = IOPT_PAGES_ACCOUNT_USER,
  ) {
    this.accountMode = accountMode;
  }

  /** Number of ids in use, reserved ones included (xa_empty() is size === 0). */
  get size(): number {
    return this.objects.size;
  }

  /** Objects in id order (finalized only). */
  *entries(): IterableIterator<IommufdObject> {
    const ids = [...this.objects.keys()].sort((a, b) => a - b);
    for (const id of ids) {
      const obj = this.objects.get(id);
      if (obj) yield obj;
    }
  }

  /** iommufd_object_alloc(): reserves the lowest free id for `obj`, not yet visible to lookups. */
  allocObject<T extends IommufdObject>(obj: T): T {
    let id: number;
    if (this.freeIds.length) {
      id = heapPop(this.freeIds);
    } else {
      if (this.nextId > MAX_ID) return fail('EBUSY');
      id = this.nextId++;
    }
    obj.id = id;
    this.objects.set(id, null);
    return obj;
  }

  /** iommufd_object_finalize(): makes the object visible. */
  finalize(obj: IommufdObject): void {
    this.objects.set(obj.id, obj);
  }

  /** iommufd_object_abort_and_destroy(): drops a never-finalized object and frees its id. */
  abortAndDestroy(obj: IommufdObject): void {
    obj.abort();
    this.freeId(obj.id);
  }

  /** iommufd_get_object(): ENOENT if missing, reserved, or of the wrong type (7.1). */
  getObject(id: number, type?: IommufdObjectType): IommufdObject {
    const obj = this.objects.get(id);
    if (!obj || (type !== undefined && obj.type !== type)) return fail('ENOENT');
    return obj;
  }

  /** Whether `id` names a finalized object of any type. */
  hasObject(id: number): boolean {
    return !!this.objects.get(id);
  }

  /**
   * iommufd_object_remove() as IOMMU_DESTROY uses it: ENOENT for an unknown id, EBUSY while
   * anything but the table holds the object.
   */
  destroyId(id: number): void {
    const obj = this.objects.get(id);
    if (!obj) return fail('ENOENT');
    if (obj.users !== 1) return fail('EBUSY');
    this.removeAndDestroy(obj);
  }

  /**
   * iommufd_object_put_and_try_destroy(): drops the caller's reference and destroys the object
   * if only the table's is left (an automatic HWPT whose last device detached).
   */
  putAndTryDestroy(obj: IommufdObject): void {
    obj.users--;
    if (obj.users === 1 && this.objects.get(obj.id) === obj) this.removeAndDestroy(obj);
  }

  /**
   * iommufd_object_destroy_user(): a driver removing the object it created (a device on unbind).
   * The driver's reference is dropped; nothing else may hold the object by then.
   */
  destroyUser(obj: IommufdObject): void {
    obj.users--;
    if (obj.users !== 1)
      throw new Error(`iommufd ${obj.type} ${obj.id} destroyed while still in use (${obj.users} users)`);
    this.removeAndDestroy(obj);
  }

  /**
   * iommufd_fops_release(): destroys every object whose only user is the table, over and over,
   * so leaves go before the objects they hold.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    while (this.objects.size) {
      let destroyed = 0;
      for (const obj of this.entries()) {
        if (obj.users !== 1) continue;
        this.removeAndDestroy(obj);
        destroyed++;
      }
      if (!destroyed) throw new Error(`iommufd context released with ${this.objects.size} objects still referenced`);
    }
    if (this.groups.size) throw new Error('iommufd context released with iommufd_groups left');
  }

  private removeAndDestroy(obj: IommufdObject): void {
    this.objects.delete(obj.id);
    if (this.vfioIoas === obj) this.vfioIoas = null;
    this.freeId(obj.id);
    obj.users = 0;
    obj.destroy();
  }

  private freeId(id: number): void {
    this.objects.delete(id);
    heapPush(this.freeIds, id);
  }
}

/**
 * struct iommufd_ucmd: one ioctl in flight - the caller, the user buffer and its declared size,
 * and the command copied in (zero-filled past what the user supplied).
 */
export class Ucmd<T extends object> {
  constructor(
    readonly ctx: IommufdCtx,
    readonly task: Task,
    readonly arg: bigint,
    readonly userSize: number,
    readonly struct: Struct<T>,
    readonly cmd: T,
  ) {}

  /** iommufd_ucmd_respond(): copies back min(user size, struct size) bytes of `cmd`. */
  respond(): void {
    const bytes = codecOf(this.struct).encode(this.cmd);
    this.task.copyToUser(this.arg, this.userSize < bytes.length ? bytes.subarray(0, this.userSize) : bytes);
  }
}

/**
 * copy_struct_from_user(): `ksize` bytes for the kernel, from a user struct of `usize` bytes.
 * Bytes the kernel does not know must be zero (E2BIG); bytes the user did not supply read as
 * zero (the returned buffer may be shorter than ksize: decoders zero-fill).
 */
export function copyStructFromUser(task: Task, arg: bigint, ksize: number, usize: number): Uint8Array {
  if (usize > ksize) checkZeroedUser(task, arg + BigInt(ksize), usize - ksize);
  return task.copyFromUser(arg, Math.min(ksize, usize));
}

/** check_zeroed_user(): E2BIG at the first non-zero byte; a page at a time, so no huge buffer. */
export function checkZeroedUser(task: Task, addr: bigint, length: number): void {
  for (let at = 0; at < length;) {
    const n = Math.min(length - at, 4096);
    const tail = task.copyFromUser(addr + BigInt(at), n);
    for (let i = 0; i < n; i++) if (tail[i] !== 0) return fail('E2BIG');
    at += n;
  }
}

/**
 * copy_from_user() into a caller's buffer: the common case (one readable mapping) copies
 * straight from the memory object without allocating; anything else takes Task.copyFromUser.
 */
export function copyFromUserInto(task: Task, addr: bigint, dst: Uint8Array): void {
  const at = userAddress(addr, dst.length);
  const vma = task.mm.find(at);
  if (vma && at + dst.length <= vma.end && vma.prot & PROT_READ) {
    const offset = vma.offset + (at - vma.start);
    if (offset + dst.length <= vma.object.size) {
      vma.object.read(offset, dst);
      return;
    }
  }
  dst.set(task.copyFromUser(addr, dst.length));
}

// A binary min-heap of freed ids: the lowest free id is always reused first.
function heapPush(heap: number[], value: number): void {
  heap.push(value);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (heap[parent]! <= value) break;
    heap[i] = heap[parent]!;
    i = parent;
  }
  heap[i] = value;
}

function heapPop(heap: number[]): number {
  const top = heap[0]!;
  const last = heap.pop()!;
  if (heap.length === 0) return top;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    if (l >= heap.length) break;
    const r = l + 1;
    const c = r < heap.length && heap[r]! < heap[l]! ? r : l;
    if (heap[c]! >= last) break;
    heap[i] = heap[c]!;
    i = c;
  }
  heap[i] = last;
  return top;
}
