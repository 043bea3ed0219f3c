/**
 * The configuration space of one PCI function as the hardware holds it: 256 bytes (conventional)
 * or 4096 (PCIe), little-endian, with per-bit hardware write masks.
 *
 * A write changes only the bits set in `writeMask`; bits in `clearMask` are write-1-to-clear;
 * everything else (vendor/device id, class, capability headers, BAR type bits) is read-only.
 * BAR sizing falls out of the masks, as on real hardware: a BAR's address bits below its size
 * are read-only zero, so writing all-ones reads back the size mask with the type bits.
 *
 * Device models build the space with the raw setters (`set8/16/32`, `setWriteMask*`) and the
 * capability helpers; software reaches it only through `read`/`write`.
 */
import {
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_CAPABILITY_LIST,
  PCI_CFG_SPACE_EXP_START,
  PCI_CONFIG_SPACE_SIZE,
  PCIE_CONFIG_SPACE_SIZE,
  PCI_NUM_BARS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
} from './regs.js';

export type BarKind = 'mem32' | 'mem64' | 'io';

export interface BarLayout {
  readonly index: number;
  /** Power of two; at least 16 for memory BARs and 4 for I/O BARs. */
  readonly size: number;
  readonly kind: BarKind;
  readonly prefetchable: boolean;
}

export interface CapabilityRef {
  readonly id: number;
  readonly offset: number;
}

export interface ExtendedCapabilityRef extends CapabilityRef {
  readonly version: number;
}

/** Called after every software write (`read`/`write` path only, not the raw setters). */
export type ConfigWriteObserver = (offset: number, width: number) => void;

export class ConfigSpace {
  readonly bytes: Uint8Array;
  readonly writeMask: Uint8Array;
  readonly clearMask: Uint8Array;
  /** Set by the owning function to react to COMMAND, MSI enable and the like. */
  onWrite: ConfigWriteObserver | null = null;

  constructor(readonly size: 256 | 4096 = PCI_CONFIG_SPACE_SIZE) {
    if (size !== PCI_CONFIG_SPACE_SIZE && size !== PCIE_CONFIG_SPACE_SIZE) {
      throw new RangeError(`config space size ${size} is neither 256 nor 4096`);
    }
    this.bytes = new Uint8Array(size);
    this.writeMask = new Uint8Array(size);
    this.clearMask = new Uint8Array(size);
  }

  /** A software read of 1, 2 or 4 bytes; the value is unsigned. */
  read(offset: number, width: number): number {
    this.checkAccess(offset, width);
    let value = 0;
    for (let i = width - 1; i >= 0; i--) value = value * 256 + this.bytes[offset + i]!;
    return value;
  }

  /** A software write of 1, 2 or 4 bytes through the hardware masks. */
  write(offset: number, width: number, value: number): void {
    this.checkAccess(offset, width);
    let v = value >>> 0;
    for (let i = 0; i < width; i++) {
      const at = offset + i;
      const byte = v & 0xff;
      const mask = this.writeMask[at]!;
      const clear = this.clearMask[at]! & byte;
      this.bytes[at] = ((this.bytes[at]! & ~mask) | (byte & mask)) & ~clear;
      v >>>= 8;
    }
    this.onWrite?.(offset, width);
  }

  // --- raw access for the device model (no masks, no observer) ---

  get8(offset: number): number {
    return this.bytes[offset]!;
  }

  get16(offset: number): number {
    return this.bytes[offset]! | (this.bytes[offset + 1]! << 8);
  }

  get32(offset: number): number {
    return (this.get16(offset) | (this.get16(offset + 2) << 16)) >>> 0;
  }

  set8(offset: number, value: number): void {
    this.bytes[offset] = value;
  }

  set16(offset: number, value: number): void {
    this.bytes[offset] = value;
    this.bytes[offset + 1] = value >>> 8;
  }

  set32(offset: number, value: number): void {
    this.set16(offset, value & 0xffff);
    this.set16(offset + 2, value >>> 16);
  }

  setWriteMask8(offset: number, mask: number): void {
    this.writeMask[offset] = mask;
  }

  setWriteMask16(offset: number, mask: number): void {
    this.writeMask[offset] = mask;
    this.writeMask[offset + 1] = mask >>> 8;
  }

  setWriteMask32(offset: number, mask: number): void {
    this.setWriteMask16(offset, mask & 0xffff);
    this.setWriteMask16(offset + 2, mask >>> 16);
  }

  setClearMask16(offset: number, mask: number): void {
    this.clearMask[offset] = mask;
    this.clearMask[offset + 1] = mask >>> 8;
  }

  /** Sets or clears read-only status bits the hardware drives (e.g. STATUS.INTERRUPT). */
  setBits16(offset: number, bits: number, on: boolean): void {
    const old = this.get16(offset);
    this.set16(offset, on ? old | bits : old & ~bits);
  }

  /** A copy of the current bytes (for reset and tests). */
  snapshot(): Uint8Array {
    return this.bytes.slice();
  }

  restore(bytes: Uint8Array): void {
    this.bytes.set(bytes.subarray(0, this.size));
  }

  // --- BAR registers ---

  /** Declares a BAR: type bits read-only, address bits below its size read-only zero. */
  defineBar(bar: BarLayout): void {
    checkBarLayout(bar);
    const offset = PCI_BASE_ADDRESS_0 + 4 * bar.index;
    if (bar.kind === 'io') {
      this.set32(offset, PCI_BASE_ADDRESS_SPACE_IO);
      this.setWriteMask32(offset, ~(bar.size - 1) & ~0x3);
      return;
    }
    const type =
      (bar.kind === 'mem64' ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0) |
      (bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0);
    this.set32(offset, type);
    const sizeMask = BigInt.asUintN(64, ~(BigInt(bar.size) - 1n));
    this.setWriteMask32(offset, Number(sizeMask & 0xfffffff0n));
    if (bar.kind === 'mem64') {
      this.set32(offset + 4, 0);
      this.setWriteMask32(offset + 4, Number(sizeMask >> 32n));
    }
  }

  /** The address programmed in a BAR (type bits stripped). */
  barAddress(bar: BarLayout): bigint {
    const offset = PCI_BASE_ADDRESS_0 + 4 * bar.index;
    if (bar.kind === 'io') return BigInt(this.get32(offset) & ~0x3);
    const low = BigInt((this.get32(offset) & ~0xf) >>> 0);
    return bar.kind === 'mem64' ? (BigInt(this.get32(offset + 4)) << 32n) | low : low;
  }

  /** Programs a BAR's address as firmware does (through the masks, so it stays size aligned). */
  setBarAddress(bar: BarLayout, address: bigint): void {
    if (address % BigInt(bar.size) !== 0n) {
      throw new RangeError(
        `BAR${bar.index} address 0x${address.toString(16)} not aligned to its size 0x${bar.size.toString(16)}`,
      );
    }
    const offset = PCI_BASE_ADDRESS_0 + 4 * bar.index;
    const limit = bar.kind === 'mem64' ? 1n << 64n : 1n << 32n;
    if (address < 0n || address + BigInt(bar.size) > limit) {
      throw new RangeError(`BAR${bar.index} address 0x${address.toString(16)} does not fit a ${bar.kind} BAR`);
    }
    this.writeMasked(offset, Number(address & 0xffffffffn));
    if (bar.kind === 'mem64') this.writeMasked(offset + 4, Number(address >> 32n));
  }

  // --- capability lists ---

  /**
   * Links a standard capability of `length` bytes at `offset` into the list (appended at the
   * end), writes its id, and sets STATUS.CAP_LIST. Its bytes start read-only; the caller fills
   * the body and opens the writable fields.
   */
  addCapability(id: number, offset: number, length: number): number {
    if (offset < PCI_STD_HEADER_SIZEOF || offset + length > PCI_CFG_SPACE_EXP_START || offset % 4 !== 0 || length < 2) {
      throw new RangeError(`capability 0x${id.toString(16)} at 0x${offset.toString(16)} (+${length}) misplaced`);
    }
    this.writeMask.fill(0, offset, offset + length);
    this.clearMask.fill(0, offset, offset + length);
    this.set8(offset, id);
    this.set8(offset + 1, 0);
    const existing = this.capabilities();
    if (existing.length === 0) this.set8(PCI_CAPABILITY_LIST, offset);
    else this.set8(existing[existing.length - 1]!.offset + 1, offset);
    this.setBits16(PCI_STATUS, PCI_STATUS_CAP_LIST, true);
    return offset;
  }

  /** The standard capabilities in list order (stops at a loop or a pointer into the header). */
  capabilities(): CapabilityRef[] {
    const out: CapabilityRef[] = [];
    if ((this.get16(PCI_STATUS) & PCI_STATUS_CAP_LIST) === 0) return out;
    let offset = this.get8(PCI_CAPABILITY_LIST) & ~0x3;
    const seen = new Set<number>();
    while (offset >= PCI_STD_HEADER_SIZEOF && !seen.has(offset)) {
      seen.add(offset);
      out.push({ id: this.get8(offset), offset });
      offset = this.get8(offset + 1) & ~0x3;
    }
    return out;
  }

  /** Offset of the first standard capability with `id`, or null. */
  findCapability(id: number): number | null {
    for (const cap of this.capabilities()) if (cap.id === id) return cap.offset;
    return null;
  }

  /** PCIe extended capabilities from 0x100 (none in a 256-byte space or when the header is 0). */
  extendedCapabilities(): ExtendedCapabilityRef[] {
    const out: ExtendedCapabilityRef[] = [];
    if (this.size < PCIE_CONFIG_SPACE_SIZE) return out;
    let offset = PCI_CFG_SPACE_EXP_START;
    const seen = new Set<number>();
    while (offset >= PCI_CFG_SPACE_EXP_START && !seen.has(offset)) {
      seen.add(offset);
      const header = this.get32(offset);
      if (header === 0) break;
      out.push({ id: header & 0xffff, version: (header >>> 16) & 0xf, offset });
      offset = (header >>> 20) & ~0x3;
    }
    return out;
  }

  findExtendedCapability(id: number): number | null {
    for (const cap of this.extendedCapabilities()) if (cap.id === id) return cap.offset;
    return null;
  }

  /** Merges a 32-bit value through the write mask without notifying (firmware-style setup). */
  private writeMasked(offset: number, value: number): void {
    for (let i = 0; i < 4; i++) {
      const mask = this.writeMask[offset + i]!;
      this.bytes[offset + i] = (this.bytes[offset + i]! & ~mask) | ((value >>> (8 * i)) & mask);
    }
  }

  private checkAccess(offset: number, width: number): void {
    if (width !== 1 && width !== 2 && width !== 4) throw new RangeError(`config access width ${width}`);
    if (!Number.isInteger(offset) || offset < 0 || offset + width > this.size) {
      throw new RangeError(`config access at 0x${offset.toString(16)} (+${width}) outside ${this.size} bytes`);
    }
  }
}

function checkBarLayout(bar: BarLayout): void {
  const maxIndex = bar.kind === 'mem64' ? PCI_NUM_BARS - 2 : PCI_NUM_BARS - 1;
  if (!Number.isInteger(bar.index) || bar.index < 0 || bar.index > maxIndex) {
    throw new RangeError(`BAR index ${bar.index} invalid for a ${bar.kind} BAR`);
  }
  const min = bar.kind === 'io' ? 4 : 16;
  const max = bar.kind === 'io' ? 256 : bar.kind === 'mem32' ? 2 ** 31 : 2 ** 52;
  if (!Number.isInteger(bar.size) || bar.size < min || bar.size > max || !isPowerOfTwo(bar.size)) {
    throw new RangeError(`BAR${bar.index} size ${bar.size} is not a power of two in [${min}, ${max}]`);
  }
  if (bar.kind === 'io' && bar.prefetchable) throw new RangeError(`I/O BAR${bar.index} cannot be prefetchable`);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && 2 ** Math.round(Math.log2(n)) === n;
}
