/**
 * struct iopt_pages (drivers/iommu/iommufd/pages.c): the memory behind one IOAS_MAP or MAP_FILE,
 * as page indexes counted from its page-aligned start, and the pins and locked-memory charges
 * held on it.
 *
 * - Pinning is lazy: nothing is pinned until an area using these pages is loaded into an IOMMU
 *   domain (semantics.md 7.6 rule 10). Areas made by IOAS_COPY share the pages object, so a page
 *   used by several areas is pinned - and charged - once (the kernel keeps one pin per page in
 *   its domains_itree / access_itree spans).
 * - A pin is a reference to the memory object behind the page, not a copy: once pinned, a page
 *   keeps reaching the same memory even if the process unmaps or remaps the user range, as a
 *   pinned struct page does.
 * - Charges follow the account mode chosen when the pages were created (iopt_alloc_pages):
 *   none for CAP_IPC_LOCK holders, else user->locked_vm (the default, per uid), or mm->locked_vm
 *   when the context uses IOMMU_OPTION_RLIMIT_MODE 1 (the VFIO-compatible mode). mm->pinned_vm
 *   follows every pin in all modes (do_update_pinned).
 */
import { fail } from '../../uapi/errno.js';
import { PAGE_SIZE, type MemoryObject } from '../../hw/memory.js';
import type { File } from '../vfs/file.js';
import { accountLockedVm, decUserLockedVm, incUserLockedVm, pinUserPages } from '../vfs/gup.js';
import type { UserStruct } from '../vfs/cred.js';
import { MemfdFile } from '../vfs/memfd.js';
import { TASK_SIZE, type Mm } from '../vfs/mm.js';
import type { Task } from '../vfs/task.js';

/** enum iopt_pages_account_mode. */
export const IOPT_PAGES_ACCOUNT_NONE = 0;
export const IOPT_PAGES_ACCOUNT_USER = 1;
export const IOPT_PAGES_ACCOUNT_MM = 2;
export type AccountMode =
  typeof IOPT_PAGES_ACCOUNT_NONE | typeof IOPT_PAGES_ACCOUNT_USER | typeof IOPT_PAGES_ACCOUNT_MM;

const PAGE = BigInt(PAGE_SIZE);

/** Where the pages come from: a user VA range (IOAS_MAP) or a file (IOAS_MAP_FILE). */
export type PagesSource =
  | { readonly kind: 'user'; readonly uptr: bigint }
  | { readonly kind: 'file'; readonly file: File; readonly start: bigint };

/** A run of pinned pages backed by one memory object: pages [first, last] start at `offset`. */
interface PinnedRun {
  first: number;
  last: number;
  readonly object: MemoryObject;
  offset: number;
}

export class IoptPages {
  private refs = 1;
  /** Pinned runs, sorted by `first`, covering exactly the union of `users`. */
  private readonly runs: PinnedRun[] = [];
  /** Page ranges that need pins: one entry per area loaded into a domain (a multiset). */
  private readonly users: Array<readonly [number, number]> = [];
  /** pages->npinned: pages currently pinned (and charged). */
  npinned = 0;
  sourceTask: Task;
  sourceMm: Mm;
  sourceUser: UserStruct;

  private constructor(
    readonly source: PagesSource,
    /** Number of pages spanned (DIV_ROUND_UP(start_byte + length, PAGE_SIZE)). */
    readonly npages: number,
    /** Whether the pages may be mapped writable (the first mapping asked for WRITEABLE). */
    readonly writable: boolean,
    public accountMode: AccountMode,
    task: Task,
  ) {
    this.sourceTask = task;
    this.sourceMm = task.mm;
    this.sourceUser = task.user;
  }

  /**
   * iopt_alloc_user_pages(): the pages under [uptr, uptr + length). Returns the pages and the
   * byte offset of `uptr` in them. EOVERFLOW if the range wraps, EINVAL for length 0.
   */
  static allocUser(
    task: Task,
    uptr: bigint,
    length: bigint,
    writable: boolean,
  ): { pages: IoptPages; startByte: bigint } {
    if (uptr + length > 0xffffffffffffffffn) return fail('EOVERFLOW');
    const base = uptr - (uptr % PAGE);
    const startByte = uptr - base;
    const npages = checkLength(startByte, length);
    const pages = new IoptPages({ kind: 'user', uptr: base }, npages, writable, initialMode(task), task);
    return { pages, startByte };
  }

  /**
   * iopt_alloc_file_pages(): the pages of `file` under [start, start + length). The file's type
   * and size are only checked when the pages are pinned, as memfd_pin_folios does.
   */
  static allocFile(
    task: Task,
    file: File,
    start: bigint,
    length: bigint,
    writable: boolean,
  ): { pages: IoptPages; startByte: bigint } {
    const base = start - (start % PAGE);
    const startByte = start - base;
    const npages = checkLength(startByte, length);
    const pages = new IoptPages(
      { kind: 'file', file: file.get(), start: base },
      npages,
      writable,
      initialMode(task),
      task,
    );
    return { pages, startByte };
  }

  get kind(): PagesSource['kind'] {
    return this.source.kind;
  }

  /**
   * The address `startByte` stands for: a user VA, or a file offset. Automatic IOVA allocation
   * keeps its alignment (iopt_alloc_area_pages uses uptr or start the same way).
   */
  addressOf(startByte: bigint): bigint {
    return (this.source.kind === 'user' ? this.source.uptr : this.source.start) + startByte;
  }

  get(): this {
    this.refs++;
    return this;
  }

  /** iopt_put_pages(): the last put drops the file reference. Every pin must be gone by then. */
  put(): void {
    if (--this.refs > 0) return;
    if (this.users.length || this.npinned) throw new Error('iopt_pages released while pages are still pinned');
    if (this.source.kind === 'file') this.source.file.put();
  }

  /**
   * Adds a user of pages [first, last] and pins whatever part of it is not pinned yet, charging
   * the new pins. On failure nothing changes: EFAULT (unmapped, wrong protection, device
   * memory), EINVAL (file that cannot be pinned, range past its end), ENOMEM (RLIMIT_MEMLOCK).
   */
  pin(first: number, last: number): void {
    // New runs are collected first and inserted only once everything succeeded: on a failure,
    // dropping them is the unpin. Faults are found before the charge, as pinning precedes
    // pfn_reader_update_pinned() in the kernel.
    const added: PinnedRun[] = [];
    let count = 0;
    for (const [gapFirst, gapLast] of this.gaps(first, last)) {
      this.pinSource(gapFirst, gapLast, added);
      count += gapLast - gapFirst + 1;
    }
    if (count) this.updatePinned(count, true);
    for (const run of added) this.insertRun(run);
    this.npinned += count;
    this.users.push([first, last]);
  }

  /** Removes one user of pages [first, last]; pages no other user needs are unpinned. */
  unpin(first: number, last: number): void {
    const i = this.users.findIndex(([f, l]) => f === first && l === last);
    if (i < 0) throw new Error(`iopt_pages: unpin of [${first}, ${last}] that was never pinned`);
    this.users.splice(i, 1);
    let count = 0;
    for (const [gapFirst, gapLast] of this.uncovered(first, last)) {
      this.cutRuns(gapFirst, gapLast);
      count += gapLast - gapFirst + 1;
    }
    if (count) {
      this.npinned -= count;
      this.updatePinned(count, false);
    }
  }

  /**
   * Calls `visit` for each pinned run overlapping pages [first, last], clipped to it, in order:
   * the memory object, the byte offset of page `pageFirst` in it, and the number of pages.
   */
  forEachRun(
    first: number,
    last: number,
    visit: (object: MemoryObject, offset: number, pageFirst: number, pages: number) => void,
  ): void {
    for (const run of this.runs) {
      if (run.last < first) continue;
      if (run.first > last) break;
      const from = Math.max(first, run.first);
      const to = Math.min(last, run.last);
      visit(run.object, run.offset + (from - run.first) * PAGE_SIZE, from, to - from + 1);
    }
  }

  /**
   * need_charge_update() of IOMMU_IOAS_CHANGE_PROCESS: whether the charge of these pages
   * belongs to someone other than `task`.
   */
  needChargeUpdate(task: Task): boolean {
    switch (this.accountMode) {
      case IOPT_PAGES_ACCOUNT_NONE:
        return false;
      case IOPT_PAGES_ACCOUNT_MM:
        return this.sourceMm !== task.mm;
      default:
        return this.sourceUser !== task.user || this.sourceMm !== task.mm;
    }
  }

  /** change_mm(): from now on the pages belong to `task` (its mm, its user). */
  changeSource(task: Task): void {
    this.sourceTask = task;
    this.sourceMm = task.mm;
    this.sourceUser = task.user;
  }

  /** do_update_pinned(): charge or uncharge `npages` by the account mode, then mm->pinned_vm. */
  updatePinned(npages: number, inc: boolean): void {
    chargePages(this.accountMode, this.sourceTask, this.sourceMm, this.sourceUser, npages, inc);
  }

  /** Pins pages [first, last] from the source into `out`; throws with nothing pinned. */
  private pinSource(first: number, last: number, out: PinnedRun[]): void {
    const count = last - first + 1;
    if (this.source.kind === 'user') {
      const addr = this.source.uptr + BigInt(first) * PAGE;
      const length = count * PAGE_SIZE;
      if (addr + BigInt(length) > BigInt(TASK_SIZE)) return fail('EFAULT');
      // The mm of an exited process cannot be pinned from (mmget_not_zero fails).
      if (this.sourceTask.exited) return fail('EFAULT');
      let page = first;
      pinUserPages(this.sourceMm, Number(addr), length, this.writable, (object, offset, bytes, pfnmap) => {
        // iommufd pins struct pages only: VM_PFNMAP (an mmap'ed BAR) cannot be mapped (7.6 rule 10).
        if (pfnmap) return fail('EFAULT');
        const pages = bytes / PAGE_SIZE;
        out.push({ first: page, last: page + pages - 1, object, offset });
        page += pages;
      });
      return;
    }
    // memfd_pin_folios(): only shmem/hugetlbfs files, and only pages inside the file.
    const file = this.source.file;
    if (!(file instanceof MemfdFile)) return fail('EINVAL');
    const offset = this.source.start + BigInt(first) * PAGE;
    const end = offset + BigInt(count) * PAGE;
    if (end > BigInt(file.size)) return fail('EINVAL');
    out.push({ first, last, object: file.pages, offset: Number(offset) });
  }

  /** Sub-ranges of [first, last] not covered by pinned runs. */
  private gaps(first: number, last: number): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    let at = first;
    for (const run of this.runs) {
      if (run.last < at) continue;
      if (run.first > last) break;
      if (run.first > at) out.push([at, run.first - 1]);
      at = run.last + 1;
      if (at > last) return out;
    }
    if (at <= last) out.push([at, last]);
    return out;
  }

  /** Sub-ranges of [first, last] that no remaining user covers. */
  private uncovered(first: number, last: number): Array<[number, number]> {
    const others = this.users.filter(([f, l]) => l >= first && f <= last).sort((a, b) => a[0] - b[0]);
    const out: Array<[number, number]> = [];
    let at = first;
    for (const [f, l] of others) {
      if (l < at) continue;
      if (f > at) out.push([at, Math.min(f - 1, last)]);
      at = Math.max(at, l + 1);
      if (at > last) return out;
    }
    if (at <= last) out.push([at, last]);
    return out;
  }

  private insertRun(run: PinnedRun): void {
    let i = this.runs.findIndex((r) => r.first > run.first);
    if (i < 0) i = this.runs.length;
    this.runs.splice(i, 0, run);
    // Merge with neighbours that continue the same object, to keep the run list short.
    const merge = (a: PinnedRun, b: PinnedRun): boolean =>
      a.object === b.object && a.last + 1 === b.first && a.offset + (a.last - a.first + 1) * PAGE_SIZE === b.offset;
    if (i + 1 < this.runs.length && merge(run, this.runs[i + 1]!)) {
      run.last = this.runs[i + 1]!.last;
      this.runs.splice(i + 1, 1);
    }
    if (i > 0 && merge(this.runs[i - 1]!, run)) {
      this.runs[i - 1]!.last = run.last;
      this.runs.splice(i, 1);
    }
  }

  /** Drops pages [first, last] from the pinned runs, splitting runs at the edges. */
  private cutRuns(first: number, last: number): void {
    for (let i = 0; i < this.runs.length; i++) {
      const run = this.runs[i]!;
      if (run.last < first) continue;
      if (run.first > last) break;
      const pieces: PinnedRun[] = [];
      if (run.first < first) pieces.push({ first: run.first, last: first - 1, object: run.object, offset: run.offset });
      if (run.last > last) {
        pieces.push({
          first: last + 1,
          last: run.last,
          object: run.object,
          offset: run.offset + (last + 1 - run.first) * PAGE_SIZE,
        });
      }
      this.runs.splice(i, 1, ...pieces);
      i += pieces.length - 1;
    }
  }
}

/**
 * Charges (`inc`) or uncharges `npages` for one account mode: user->locked_vm checked against
 * the task's RLIMIT_MEMLOCK (USER), mm->locked_vm (MM, __account_locked_vm without the
 * CAP_IPC_LOCK bypass, as iommufd calls it), nothing (NONE); then mm->pinned_vm.
 */
export function chargePages(
  mode: AccountMode,
  task: Task,
  mm: Mm,
  user: UserStruct,
  npages: number,
  inc: boolean,
): void {
  if (mode === IOPT_PAGES_ACCOUNT_USER) {
    if (inc) incUserLockedVm(user, npages, task.memlockLimitPages);
    else decUserLockedVm(user, npages);
  } else if (mode === IOPT_PAGES_ACCOUNT_MM) {
    accountLockedVm(mm, inc ? npages : -npages, task, false);
  }
  mm.pinnedVm = inc ? mm.pinnedVm + npages : Math.max(0, mm.pinnedVm - npages);
}

/** iopt_alloc_pages(): CAP_IPC_LOCK holders are not charged; everyone else per user. */
function initialMode(task: Task): AccountMode {
  return task.capable('CAP_IPC_LOCK') ? IOPT_PAGES_ACCOUNT_NONE : IOPT_PAGES_ACCOUNT_USER;
}

/** EINVAL for length 0 or beyond SIZE_MAX - PAGE_SIZE; returns the page count. */
function checkLength(startByte: bigint, length: bigint): number {
  if (length === 0n || length > 0xffffffffffffffffn - PAGE) return fail('EINVAL');
  return Number((startByte + length + PAGE - 1n) / PAGE);
}
