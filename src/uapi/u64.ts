/**
 * u64 values (addresses, IOVAs, offsets) crossing from bigint into plain numbers.
 *
 * `Number(bigint)` is a runtime call in V8 (~25 ns), paid on every user memory access and every
 * DMA, while a store into a BigUint64Array and two 32-bit loads of the same bytes compile to a
 * few instructions. The range is checked first, so the aliasing never wraps.
 */

const word = new BigUint64Array(1);
const halves = new Uint32Array(word.buffer);
/** Whether typed arrays store numbers little-endian here, as the uAPI and PCI registers do. */
export const LITTLE_ENDIAN_HOST = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;
/** Which half holds the low 32 bits, for the host's byte order. */
const LO = LITTLE_ENDIAN_HOST ? 0 : 1;
const HI = 1 - LO;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** `value` as a number when it is in [0, 2^53 - 1] (where numbers are exact), else -1. */
export function safeNumber(value: bigint): number {
  if (value < 0n || value > MAX_SAFE) return -1;
  word[0] = value;
  return halves[HI]! * 0x1_0000_0000 + halves[LO]!;
}
