/**
 * A process address space (mm_struct): an ordered list of VMAs over memory objects, user-memory
 * access with the protection checks a CPU makes, and the page walk that pinning (GUP) uses.
 *
 * User addresses are plain numbers: x86-64 user space ends below 2^47.
 */
import { fail } from '../../uapi/errno.js';
import { PAGE_SIZE, RamObject, type MemoryObject } from '../../hw/memory.js';
import type { File } from './file.js';

export const TASK_SIZE = 0x7ffffffff000;
/** Where top-down placement of new mappings starts (mmap_base). */
const MMAP_BASE = 0x7f0000000000;

export const PROT_NONE = 0;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const PROT_EXEC = 4;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_FIXED = 0x10;
export const MAP_ANONYMOUS = 0x20;

export interface Vma {
  start: number;
  end: number;
  prot: number;
  flags: number;
  object: MemoryObject;
  /** Offset into `object` of `start`. */
  offset: number;
  /** The mapped file: each VMA holds a reference, so the file outlives its fd (vm_file). */
  file: File | null;
}

/** One piece of a user range resolved to the memory object behind it. */
export interface UserSegment {
  object: MemoryObject;
  offset: number;
  length: number;
  vma: Vma;
}

export const pageAlignUp = (n: number): number => Math.ceil(n / PAGE_SIZE) * PAGE_SIZE;

export class Mm {
  /** Sorted by start, non-overlapping. */
  private vmas: Vma[] = [];
  private lastHit: Vma | undefined;
  /** mm->locked_vm / pinned_vm, in pages. */
  lockedVm = 0;
  pinnedVm = 0;

  get mappingCount(): number {
    return this.vmas.length;
  }

  *mappings(): IterableIterator<Readonly<Vma>> {
    yield* this.vmas;
  }

  /** find_vma(): the VMA containing `addr`. */
  find(addr: number): Vma | undefined {
    const hit = this.lastHit;
    if (hit && addr >= hit.start && addr < hit.end) return hit;
    const i = this.indexAtOrAfter(addr);
    const vma = this.vmas[i];
    if (vma && vma.start <= addr) {
      this.lastHit = vma;
      return vma;
    }
    return undefined;
  }

  /**
   * Maps `length` bytes of `object` from `offset`. `addr` is a hint, or the exact place with
   * MAP_FIXED (replacing what was there). Returns the address.
   */
  map(
    addr: number,
    length: number,
    prot: number,
    flags: number,
    object: MemoryObject,
    offset: number,
    file: File | null = null,
  ): number {
    const len = pageAlignUp(length);
    let start: number;
    if (flags & MAP_FIXED) {
      if (addr % PAGE_SIZE || addr + len > TASK_SIZE || addr < PAGE_SIZE) return fail('EINVAL');
      this.unmap(addr, len);
      start = addr;
    } else {
      start = this.findGap(len);
    }
    const vma: Vma = { start, end: start + len, prot, flags, object, offset, file: file?.get() ?? null };
    this.vmas.splice(this.indexAtOrAfter(start), 0, vma);
    return start;
  }

  /** munmap(): removes [addr, addr+length), splitting VMAs at the edges. */
  unmap(addr: number, length: number): void {
    const end = addr + pageAlignUp(length);
    const kept: Vma[] = [];
    for (const vma of this.vmas) {
      if (vma.end <= addr || vma.start >= end) {
        kept.push(vma);
        continue;
      }
      const head = vma.start < addr;
      const tail = vma.end > end;
      if (head) kept.push({ ...vma, end: addr });
      if (tail) kept.push({ ...vma, start: end, offset: vma.offset + (end - vma.start) });
      // Each remaining piece holds its own reference on the file.
      if (head && tail) vma.file?.get();
      else if (!head && !tail) vma.file?.put();
    }
    this.vmas = kept;
    this.lastHit = undefined;
  }

  unmapAll(): void {
    const vmas = this.vmas;
    this.vmas = [];
    this.lastHit = undefined;
    for (const vma of vmas) vma.file?.put();
  }

  /**
   * Walks [addr, addr+length) VMA by VMA. EFAULT on a hole, or on a VMA lacking `prot`
   * (the CPU's page fault that finds no usable mapping).
   */
  resolve(addr: number, length: number, prot: number): UserSegment[] {
    if (!(addr >= 0 && length >= 0 && addr + length <= TASK_SIZE)) return fail('EFAULT');
    const out: UserSegment[] = [];
    let at = addr;
    const end = addr + length;
    while (at < end) {
      const vma = this.find(at);
      if (!vma || (vma.prot & prot) !== prot) return fail('EFAULT');
      const n = Math.min(vma.end, end) - at;
      // Past the end of the object behind the mapping (a truncated memfd): SIGBUS.
      if (!inObject(vma, at, n)) return fail('EFAULT');
      out.push({ object: vma.object, offset: vma.offset + (at - vma.start), length: n, vma });
      at += n;
    }
    return out;
  }

  read(addr: number, length: number): Uint8Array {
    const vma = this.lastHit;
    // Fast path: the whole access inside the VMA the last access used, readable.
    if (vma && addr >= vma.start && addr + length <= vma.end && vma.prot & PROT_READ && inObject(vma, addr, length)) {
      const out = new Uint8Array(length);
      vma.object.read(vma.offset + (addr - vma.start), out);
      return out;
    }
    return this.readSlow(addr, length);
  }

  private readSlow(addr: number, length: number): Uint8Array {
    // Resolve before allocating: a bad huge length faults without costing memory.
    const segments = this.resolve(addr, length, PROT_READ);
    const out = new Uint8Array(length);
    let done = 0;
    for (const seg of segments) {
      seg.object.read(seg.offset, out.subarray(done, done + seg.length));
      done += seg.length;
    }
    return out;
  }

  write(addr: number, data: Uint8Array): void {
    const vma = this.lastHit;
    const length = data.length;
    if (vma && addr >= vma.start && addr + length <= vma.end && vma.prot & PROT_WRITE && inObject(vma, addr, length)) {
      vma.object.write(vma.offset + (addr - vma.start), data);
      return;
    }
    this.writeSlow(addr, data);
  }

  private writeSlow(addr: number, data: Uint8Array): void {
    let done = 0;
    for (const seg of this.resolve(addr, data.length, PROT_WRITE)) {
      seg.object.write(seg.offset, data.subarray(done, done + seg.length));
      done += seg.length;
    }
  }

  /** Top-down search for a free range of `len` bytes below MMAP_BASE. */
  private findGap(len: number): number {
    let ceiling = MMAP_BASE;
    for (let i = this.vmas.length - 1; i >= 0; i--) {
      const vma = this.vmas[i]!;
      if (vma.start >= ceiling) continue;
      if (vma.end <= ceiling - len) return ceiling - len;
      ceiling = vma.start;
    }
    if (ceiling - len < PAGE_SIZE * 16) return fail('ENOMEM');
    return ceiling - len;
  }

  private indexAtOrAfter(addr: number): number {
    // First VMA whose end is above addr.
    let lo = 0;
    let hi = this.vmas.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.vmas[mid]!.end <= addr) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function inObject(vma: Vma, addr: number, length: number): boolean {
  return vma.offset + (addr - vma.start) + length <= vma.object.size;
}

/** An anonymous mapping's backing: private zero-filled RAM of the mapping's size. */
export function anonymousMemory(length: number): RamObject {
  return new RamObject(pageAlignUp(length));
}
