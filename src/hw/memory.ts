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
/**
 * 1 / PAGE_SIZE: page indexes of offsets (which may pass 2^32, so no shifts) come from an exact
 * multiplication of the page-aligned offset, with neither Math.floor nor a division.
 */
const PAGE_FRACTION = 1 / PAGE_SIZE;

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
/** Up to this many bytes, a loop copies faster than a subarray view plus set(). */
const SMALL_COPY = 64;
/**
 * Uint8Array.prototype.set, held directly: DMA destinations come in many shapes (views,
 * buffers), and looking `set` up on each costs V8 a generic property load per copy.
 */
const copyInto = Uint8Array.prototype.set;

export class RamObject implements MemoryObject {
  readonly kind = 'ram';
  private readonly pages = new Map<number, Uint8Array>();
  /** The page the last access found: DMA and drivers revisit the same page. */
  private cachedIndex = -1;
  private cachedPage: Uint8Array | undefined;

  constructor(public size: number) {}

  /** Number of pages that have been materialized (touched by a write). */
  get residentPages(): number {
    return this.pages.size;
  }

  /** The page holding `index`, created on demand, or the shared zero page for reads. */
  page(index: number, forWrite: boolean): Uint8Array {
    let page = this.lookup(index);
    if (!page) {
      if (!forWrite) return ZERO_PAGE;
      page = new Uint8Array(PAGE_SIZE);
      this.pages.set(index, page);
    }
    return page;
  }

  private lookup(index: number): Uint8Array | undefined {
    if (index === this.cachedIndex) return this.cachedPage;
    const page = this.pages.get(index);
    if (page) {
      this.cachedIndex = index;
      this.cachedPage = page;
    }
    return page;
  }

  read(offset: number, dst: Uint8Array): void {
    if (dst.length === PAGE_SIZE && (offset & PAGE_MASK) === 0) {
      // One whole page, the usual DMA.
      const page = this.lookup(offset * PAGE_FRACTION);
      if (page) copyInto.call(dst, page);
      else dst.fill(0);
      return;
    }
    this.readPieces(offset, dst);
  }

  private readPieces(offset: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const at = offset + done;
      const inPage = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - inPage, dst.length - done);
      const page = this.lookup((at - inPage) * PAGE_FRACTION);
      // Whole pages are copied without a subarray view, small pieces byte by byte (a view costs
      // more than copying a struct or a register).
      if (!page) dst.fill(0, done, done + n);
      else if (n === PAGE_SIZE) dst.set(page, done);
      else if (n <= SMALL_COPY) for (let k = 0; k < n; k++) dst[done + k] = page[inPage + k]!;
      else dst.set(page.subarray(inPage, inPage + n), done);
      done += n;
    }
  }

  write(offset: number, src: Uint8Array): void {
    let done = 0;
    while (done < src.length) {
      const at = offset + done;
      const inPage = at & PAGE_MASK;
      const n = Math.min(PAGE_SIZE - inPage, src.length - done);
      this.page((at - inPage) * PAGE_FRACTION, true).set(n === src.length ? src : src.subarray(done, done + n), inPage);
      done += n;
    }
  }

  /** Shrinks or grows the object (ftruncate); pages past the new end are dropped. */
  resize(size: number): void {
    if (size < this.size) {
      this.cachedIndex = -1;
      this.cachedPage = undefined;
      const firstGone = Math.ceil(size / PAGE_SIZE);
      for (const index of [...this.pages.keys()]) if (index >= firstGone) this.pages.delete(index);
      const tail = size & PAGE_MASK;
      if (tail) this.pages.get(Math.floor(size / PAGE_SIZE))?.fill(0, tail);
    }
    this.size = size;
  }
}

/**
 * Register-level access to a device window; widths are 1, 2, 4 or 8 bytes. A register value
 * travels as two unsigned 32-bit halves (register access is a hot path, and a bigint per access
 * allocates); the high half is 0 for widths below 8.
 */
export interface MmioHandler {
  /** Reads the register at `offset` into out[0] (low half) and out[1] (high half). */
  mmioRead(offset: number, width: number, out: Uint32Array): void;
  mmioWrite(offset: number, width: number, lo: number, hi: number): void;
  /**
   * Called once a CPU store (every register write of one copy) has landed: the device runs the
   * work a write started. Until then that work is in progress, as on hardware, where a device
   * acts on a posted write after it arrives.
   */
  mmioStoreDone?(): void;
}

/**
 * Largest device window: offsets inside one fit in 31 bits, so register decode runs in integer
 * arithmetic (callers compute offsets from user addresses, which are floating-point numbers).
 */
export const MMIO_MAX_SIZE = 2 ** 31;

export class MmioObject implements MemoryObject {
  readonly kind = 'mmio';
  /** Scratch for one register value: [lo, hi]. */
  private readonly halves = new Uint32Array(2);

  /** Accesses must lie inside [0, size): every caller clamps to the window first. */
  constructor(
    readonly size: number,
    readonly handler: MmioHandler,
  ) {
    if (!Number.isInteger(size) || size < 0 || size > MMIO_MAX_SIZE) {
      throw new RangeError(`MMIO window of ${size} bytes (at most ${MMIO_MAX_SIZE})`);
    }
  }

  /** Reads as a CPU copy loop does: the widest naturally aligned access at each step. */
  read(offset: number, dst: Uint8Array): void {
    offset |= 0; // exact inside the window; see MMIO_MAX_SIZE
    const out = this.halves;
    const length = dst.length;
    if (length === 4 && (offset & 3) === 0) {
      // One 32-bit register, the usual driver read.
      out[0] = 0;
      this.handler.mmioRead(offset, 4, out);
      const lo = out[0]!;
      dst[0] = lo;
      dst[1] = lo >>> 8;
      dst[2] = lo >>> 16;
      dst[3] = lo >>> 24;
      return;
    }
    this.readAccesses(offset, dst);
  }

  private readAccesses(offset: number, dst: Uint8Array): void {
    const out = this.halves;
    const length = dst.length;
    let i = 0;
    while (i < length) {
      const at = offset + i;
      const width = accessWidth(at, length - i);
      out[0] = 0;
      out[1] = 0;
      this.handler.mmioRead(at, width, out);
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

  /** Writes as a CPU copy loop does: a 4-byte store stays one 4-byte register write. */
  write(offset: number, src: Uint8Array): void {
    offset |= 0; // as in read()
    const length = src.length;
    if (((offset | length) & 7) === 0) {
      const handler = this.handler;
      for (let i = 0; i < length; i += 8) {
        handler.mmioWrite(offset + i, 8, le32(src, i), le32(src, i + 4));
      }
    } else {
      this.writeAccesses(offset, src);
    }
    this.handler.mmioStoreDone?.();
  }

  private writeAccesses(offset: number, src: Uint8Array): void {
    const length = src.length;
    let i = 0;
    while (i < length) {
      const at = offset + i;
      const width = accessWidth(at, length - i);
      let lo: number;
      let hi = 0;
      if (width >= 4) {
        lo = le32(src, i);
        if (width === 8) hi = le32(src, i + 4);
      } else {
        lo = width === 2 ? src[i]! | (src[i + 1]! << 8) : src[i]!;
      }
      this.handler.mmioWrite(at, width, lo, hi);
      i += width;
    }
  }
}

/** The little-endian 32-bit value at bytes[at..at+3], unsigned. */
function le32(bytes: Uint8Array, at: number): number {
  return (bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24)) >>> 0;
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
