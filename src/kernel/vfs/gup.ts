/**
 * Pinning user memory for DMA and charging it as locked memory.
 *
 * - `pinUserPages`: pin_user_pages_remote(FOLL_LONGTERM) over a user range (mm/gup.c), with the
 *   VM_PFNMAP fallback VFIO uses for device memory (an mmap'ed BAR): the range is walked VMA by
 *   VMA in address order and handed to the caller piece by piece, so the caller can charge each
 *   piece before the walk reaches the next one - errors then surface in address order, as they
 *   do when the kernel pins batch after batch. Pinning itself is a reference, not a copy: the
 *   pieces name the memory objects behind the range, which stay alive while the caller holds
 *   them even if the process unmaps the range.
 * - `accountLockedVm`: __account_locked_vm() (mm/util.c), the charge against mm->locked_vm and
 *   RLIMIT_MEMLOCK that VFIO type1 makes.
 * - `incUserLockedVm` / `decUserLockedVm`: the per-user charge (user->locked_vm) iommufd makes
 *   (iommufd/pages.c incr_user_locked_vm / decr_user_locked_vm).
 */
import { fail } from '../../uapi/errno.js';
import { PAGE_SIZE, type MemoryObject } from '../../hw/memory.js';
import type { UserStruct } from './cred.js';
import { PROT_READ, PROT_WRITE, TASK_SIZE, type Mm, type Vma } from './mm.js';
import type { Task } from './task.js';

/**
 * Receives one pinned piece: `length` bytes (whole pages) of `object` from `offset`, mapped at
 * user address `addr`. `pfnmap` is true for VM_PFNMAP-like memory (a device window): it has no
 * struct page, so it is neither pinned nor charged as locked memory. May throw to abort the walk.
 */
export type PinVisitor = (object: MemoryObject, offset: number, length: number, pfnmap: boolean, addr: number) => void;

/**
 * Walks [addr, addr + length) for a long-term pin. `write` asks for FOLL_WRITE: the VMA must be
 * writable; otherwise it must be readable (check_vma_flags: a write pin looks at VM_WRITE only).
 * EFAULT at the first page with no VMA, without the needed permission, or past the end of the
 * object behind the mapping (a truncated memfd). `addr` and `length` must be page aligned; a
 * range reaching outside user space faults without walking.
 */
export function pinUserPages(mm: Mm, addr: number, length: number, write: boolean, visit: PinVisitor): void {
  if (!(addr >= 0 && length >= 0 && addr + length <= TASK_SIZE)) return fail('EFAULT');
  if (addr % PAGE_SIZE || length % PAGE_SIZE)
    throw new RangeError(`pinUserPages: unaligned range 0x${addr.toString(16)}+0x${length.toString(16)}`);
  const need = write ? PROT_WRITE : PROT_READ;
  const end = addr + length;
  let at = addr;
  while (at < end) {
    const vma = mm.find(at);
    if (!vma || !(vma.prot & need)) return fail('EFAULT');
    const n = Math.min(vma.end, end) - at;
    const offset = vma.offset + (at - vma.start);
    if (offset + n > vma.object.size) {
      // Only the pages inside the object can be pinned; the first one past it faults (SIGBUS).
      const inside = Math.max(0, Math.floor((vma.object.size - offset) / PAGE_SIZE) * PAGE_SIZE);
      if (inside > 0) visit(vma.object, offset, inside, vma.object.kind === 'mmio', at);
      return fail('EFAULT');
    }
    visit(vma.object, offset, n, vma.object.kind === 'mmio', at);
    at += n;
  }
}

/**
 * The common case of a pin, without a walk: the whole range lies inside one VMA that allows the
 * access, within the object behind it. Returns that VMA, or undefined when the range needs the
 * general walk of `pinUserPages` (which also finds the right error).
 */
export function pinnableVma(mm: Mm, addr: number, length: number, write: boolean): Vma | undefined {
  const vma = mm.find(addr);
  if (!vma || addr + length > vma.end) return undefined;
  if (!(vma.prot & (write ? PROT_WRITE : PROT_READ))) return undefined;
  if (vma.offset + (addr - vma.start) + length > vma.object.size) return undefined;
  return vma;
}

/**
 * __account_locked_vm(): charges (`pages` > 0) or uncharges (`pages` < 0) mm->locked_vm. A
 * charge that would take locked_vm over the task's RLIMIT_MEMLOCK fails with ENOMEM unless
 * `bypassRlimit` (the caller holds CAP_IPC_LOCK); the charge is made either way.
 */
export function accountLockedVm(mm: Mm, pages: number, task: Task, bypassRlimit: boolean): void {
  if (pages >= 0) {
    const locked = mm.lockedVm + pages;
    if (!bypassRlimit && locked > task.memlockLimitPages) return fail('ENOMEM');
    mm.lockedVm = locked;
    return;
  }
  const drop = -pages;
  mm.lockedVm = mm.lockedVm > drop ? mm.lockedVm - drop : 0;
}

/** Whether charging `pages` more to mm->locked_vm would exceed the task's RLIMIT_MEMLOCK. */
export function lockedVmWouldExceed(mm: Mm, pages: number, task: Task): boolean {
  return mm.lockedVm + pages > task.memlockLimitPages;
}

/** incr_user_locked_vm(): charges user->locked_vm; ENOMEM past `limitPages` (RLIMIT_MEMLOCK). */
export function incUserLockedVm(user: UserStruct, pages: number, limitPages: number): void {
  const locked = user.lockedVm + pages;
  if (locked > limitPages) return fail('ENOMEM');
  user.lockedVm = locked;
}

/** decr_user_locked_vm(). */
export function decUserLockedVm(user: UserStruct, pages: number): void {
  user.lockedVm = user.lockedVm > pages ? user.lockedVm - pages : 0;
}
