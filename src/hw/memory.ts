/**
 * The machine's memory as devices and the IOMMU see it: objects that hold bytes at offsets.
 *
 * - `RamObject`: sparse RAM (the pages behind an anonymous mapping or a memfd). Pages come into
 *   existence on first write; unwritten pages read as zero, so a 64 GiB object costs nothing
 *   until touched.
 * - `MmioObject`: a device window (a BAR). Every access is a register access of a given width.
 *
 * Offsets are plain numbers: objects are bounded far below 2^53 bytes.
 */

export const PAGE_SHIFT = 12;
export const PAGE_SIZE = 1 << PAGE_SHIFT;
const PAGE_MASK = PAGE_SIZE - 1;

export interface MemoryObject {
  readonly kind: 'ram' | 'mmio';
  /** Size in bytes; accesses past it fail (SIGBUS for a CPU, a fault for DMA). */
  readonly size: number;
  /** Copies `dst.length` bytes starting at `offset` into `dst`. */
  read(offset: number, dst: Uint8Array): void;
  /** Copies `src` into the object at `offset`. */
  write(offset: number, src: Uint8Array): void;
}

const ZERO_PAGE = new Uint8Array(PAGE_SIZE);

export class RamObject implements MemoryObject {
  readonly kind = 'ram';
  private readonly pages = new Map<number, Uint8Array>();

  constructor(public size: number) {}

  /** Number of pages that have been materialized (touched by a write). */
  get residentPages(): number {
    return this.pages.size;
  }

  /** The page holding `index`, created on demand, or the shared zero page for reads. */
  page(index: number, forWrite: boolean): Uint8Array {
    let page = this.pages.get(index);
    if (!page) {
      if (!forWrite) return ZERO_PAGE;
      page = new Uint8Array(PAGE_SIZE);
      this.pages.set(index, page);
    }
    return page;
  }

  read(offset: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const at = offset + done;
      const inPage = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - inPage, dst.length - done);
      const page = this.pages.get(Math.floor(at / PAGE_SIZE));
      // Whole pages are copied without a subarray view (DMA of full pages is the common case).
      if (page) dst.set(n === PAGE_SIZE ? page : page.subarray(inPage, inPage + n), done);
      else dst.fill(0, done, done + n);
      done += n;
    }
  }

  write(offset: number, src: Uint8Array): void {
    let done = 0;
    while (done < src.length) {
      const at = offset + done;
      const inPage = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - inPage, src.length - done);
      this.page(Math.floor(at / PAGE_SIZE), true).set(n === src.length ? src : src.subarray(done, done + n), inPage);
      done += n;
    }
  }

  /** Shrinks or grows the object (ftruncate); pages past the new end are dropped. */
  resize(size: number): void {
    if (size < this.size) {
      const firstGone = Math.ceil(size / PAGE_SIZE);
      for (const index of [...this.pages.keys()]) if (index >= firstGone) this.pages.delete(index);
      const tail = size & PAGE_MASK;
      if (tail) this.pages.get(Math.floor(size / PAGE_SIZE))?.fill(0, tail);
    }
    this.size = size;
  }
}

/** Register-level access to a device window; widths are 1, 2, 4 or 8 bytes. */
export interface MmioHandler {
  mmioRead(offset: number, width: number): bigint;
  mmioWrite(offset: number, width: number, value: bigint): void;
  /**
   * Optional allocation-free forms of the same accesses, preferred by MmioObject when present
   * (register access is a hot path and a bigint per access allocates): the value travels as two
   * unsigned 32-bit halves; `hi` is 0 for widths below 8. A handler that has one has both.
   */
  mmioReadHalves?(offset: number, width: number, out: Uint32Array): void;
  mmioWriteHalves?(offset: number, width: number, lo: number, hi: number): void;
}

export class MmioObject implements MemoryObject {
  readonly kind = 'mmio';
  /** Scratch for the halves fast path: [lo, hi] of the register value. */
  private readonly halves = new Uint32Array(2);

  constructor(
    readonly size: number,
    readonly handler: MmioHandler,
  ) {}

  read(offset: number, dst: Uint8Array): void {
    if (this.handler.mmioReadHalves) {
      this.readHalves(offset, dst);
      return;
    }
    const view = new DataView(dst.buffer, dst.byteOffset, dst.byteLength);
    forEachAccess(offset, dst.length, (at, width, i) => {
      const v = this.handler.mmioRead(at, width);
      if (width === 8) view.setBigUint64(i, BigInt.asUintN(64, v), true);
      else if (width === 4) view.setUint32(i, Number(v & 0xffffffffn), true);
      else if (width === 2) view.setUint16(i, Number(v & 0xffffn), true);
      else view.setUint8(i, Number(v & 0xffn));
    });
  }

  write(offset: number, src: Uint8Array): void {
    if (this.handler.mmioWriteHalves) {
      this.writeHalves(offset, src);
      return;
    }
    const view = new DataView(src.buffer, src.byteOffset, src.byteLength);
    forEachAccess(offset, src.length, (at, width, i) => {
      const v =
        width === 8
          ? view.getBigUint64(i, true)
          : BigInt(width === 4 ? view.getUint32(i, true) : width === 2 ? view.getUint16(i, true) : view.getUint8(i));
      this.handler.mmioWrite(at, width, v);
    });
  }

  /** Same access splitting as forEachAccess, without a closure, a DataView or a bigint per access. */
  private readHalves(offset: number, dst: Uint8Array): void {
    const out = this.halves;
    const length = dst.length;
    let i = 0;
    while (i < length) {
      const at = offset + i;
      const width = accessWidth(at, length - i);
      out[0] = 0;
      out[1] = 0;
      this.handler.mmioReadHalves!(at, width, out);
      const lo = out[0]!;
      dst[i] = lo;
      if (width >= 2) dst[i + 1] = lo >>> 8;
      if (width >= 4) {
        dst[i + 2] = lo >>> 16;
        dst[i + 3] = lo >>> 24;
      }
      if (width === 8) {
        const hi = out[1]!;
        dst[i + 4] = hi;
        dst[i + 5] = hi >>> 8;
        dst[i + 6] = hi >>> 16;
        dst[i + 7] = hi >>> 24;
      }
      i += width;
    }
  }

  private writeHalves(offset: number, src: Uint8Array): void {
    const length = src.length;
    let i = 0;
    while (i < length) {
      const at = offset + i;
      const width = accessWidth(at, length - i);
      let lo: number;
      let hi = 0;
      if (width >= 4) {
        lo = (src[i]! | (src[i + 1]! << 8) | (src[i + 2]! << 16) | (src[i + 3]! << 24)) >>> 0;
        if (width === 8) hi = (src[i + 4]! | (src[i + 5]! << 8) | (src[i + 6]! << 16) | (src[i + 7]! << 24)) >>> 0;
      } else {
        lo = width === 2 ? src[i]! | (src[i + 1]! << 8) : src[i]!;
      }
      this.handler.mmioWriteHalves!(at, width, lo, hi);
      i += width;
    }
  }
}

/**
 * The widest naturally aligned access (8/4/2/1) at `at` with `left` bytes to go. Alignment is
 * tested on the low bits (exact for any offset below 2^53): `%` on an offset that is not a small
 * integer is a floating-point remainder, a slow call on the register hot path.
 */
function accessWidth(at: number, left: number): number {
  const low = at & 7;
  return left >= 8 && low === 0 ? 8 : left >= 4 && (low & 3) === 0 ? 4 : left >= 2 && (low & 1) === 0 ? 2 : 1;
}

/**
 * Splits [offset, offset+length) into the widest naturally aligned accesses (8/4/2/1), the way
 * a CPU copy loop or vfio-pci's rdwr path reaches a device: a 4-byte access stays one 4-byte
 * register access.
 */
export function forEachAccess(
  offset: number,
  length: number,
  visit: (at: number, width: number, index: number) => void,
): void {
  let i = 0;
  while (i < length) {
    const at = offset + i;
    const width = accessWidth(at, length - i);
    visit(at, width, i);
    i += width;
  }
}
