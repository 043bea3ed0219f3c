/**
 * Dirty bits of one mapping, one bit per 4 KiB page, as the IOMMU's second-level page tables keep
 * them (the D bit of each leaf entry), gathered into 32-bit words so that reports skip clean words
 * whole instead of testing bit after bit.
 *
 * Words are grouped in chunks that come into existence on the first dirty page inside them: a
 * 512 GiB mapping with one dirty page costs one chunk, not a 16 MiB bitmap.
 */

const WORD_BITS = 32;
/** Pages covered by one chunk: 32 Ki pages = 128 MiB of IOVA in 4 KiB of bits. */
const CHUNK_WORDS = 1024;
const CHUNK_PAGES = CHUNK_WORDS * WORD_BITS;

export class DirtyBitmap {
  private readonly chunks = new Map<number, Uint32Array>();

  /** @param pages number of 4 KiB pages the mapping spans. */
  constructor(readonly pages: number) {}

  /** True when no page is dirty (no chunk was ever materialized or all were cleared away). */
  get empty(): boolean {
    return this.chunks.size === 0;
  }

  /** Marks pages [first, first + count) dirty. */
  setRange(first: number, count: number): void {
    this.checkRange(first, count);
    let page = first;
    const end = first + count;
    while (page < end) {
      const chunkIndex = Math.floor(page / CHUNK_PAGES);
      let chunk = this.chunks.get(chunkIndex);
      if (!chunk) {
        chunk = new Uint32Array(CHUNK_WORDS);
        this.chunks.set(chunkIndex, chunk);
      }
      const chunkEnd = Math.min(end, (chunkIndex + 1) * CHUNK_PAGES);
      let bit = page - chunkIndex * CHUNK_PAGES;
      const stop = chunkEnd - chunkIndex * CHUNK_PAGES;
      while (bit < stop) {
        const word = bit >>> 5;
        const from = bit & 31;
        const n = Math.min(WORD_BITS - from, stop - bit);
        chunk[word] = chunk[word]! | (n === WORD_BITS ? 0xffffffff : ((1 << n) - 1) << from);
        bit += n;
      }
      page = chunkEnd;
    }
  }

  isSet(page: number): boolean {
    const chunk = this.chunks.get(Math.floor(page / CHUNK_PAGES));
    if (!chunk) return false;
    const bit = page % CHUNK_PAGES;
    return ((chunk[bit >>> 5]! >>> (bit & 31)) & 1) === 1;
  }

  /**
   * Calls `visit(page)` for every dirty page in [first, first + count), in ascending order;
   * with `clear` the reported bits are cleared. Clean words are skipped whole.
   */
  forEachSet(first: number, count: number, clear: boolean, visit: (page: number) => void): void {
    this.checkRange(first, count);
    if (count === 0 || this.chunks.size === 0) return;
    const end = first + count;
    const lastChunk = Math.floor((end - 1) / CHUNK_PAGES);
    for (let chunkIndex = Math.floor(first / CHUNK_PAGES); chunkIndex <= lastChunk; chunkIndex++) {
      const chunk = this.chunks.get(chunkIndex);
      if (!chunk) continue;
      const base = chunkIndex * CHUNK_PAGES;
      const from = Math.max(first, base) - base;
      const to = Math.min(end, base + CHUNK_PAGES) - base; // exclusive
      const firstWord = from >>> 5;
      const lastWord = (to - 1) >>> 5;
      for (let w = firstWord; w <= lastWord; w++) {
        let word = chunk[w]!;
        if (word === 0) continue;
        // Keep only the bits inside [from, to) for the edge words.
        if (w === firstWord && (from & 31) !== 0) word &= ~0 << (from & 31);
        if (w === lastWord && (to & 31) !== 0) word &= (1 << (to & 31)) - 1;
        word >>>= 0;
        if (word === 0) continue;
        if (clear) chunk[w] = chunk[w]! & ~word;
        const wordBase = base + w * WORD_BITS;
        while (word !== 0) {
          const low = word & -word;
          visit(wordBase + 31 - Math.clz32(low));
          word = (word ^ low) >>> 0;
        }
      }
      if (clear && isZero(chunk)) this.chunks.delete(chunkIndex);
    }
  }

  /** Number of dirty pages in [first, first + count). */
  countSet(first = 0, count = this.pages - first): number {
    let n = 0;
    this.forEachSet(first, count, false, () => n++);
    return n;
  }

  /** A new bitmap for pages [first, first + count) of this one (used when a mapping is split). */
  slice(first: number, count: number): DirtyBitmap {
    const part = new DirtyBitmap(count);
    this.forEachSet(first, count, false, (page) => part.setRange(page - first, 1));
    return part;
  }

  private checkRange(first: number, count: number): void {
    if (!(first >= 0 && count >= 0 && first + count <= this.pages)) {
      throw new RangeError(`dirty page range [${first}, ${first + count}) outside a ${this.pages}-page mapping`);
    }
  }
}

function isZero(words: Uint32Array): boolean {
  for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false;
  return true;
}
