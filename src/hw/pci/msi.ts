/**
 * The MSI capability (PCI Local Bus spec 6.8.1) in a function's hardware config space: where the
 * function reads the message address and data it sends when it signals an interrupt.
 *
 * Layout: id, next, control (16 bits: enable bit 0, multiple-message-capable 3:1 read-only,
 * multiple-message-enable 6:4, 64-bit 7, per-vector masking 8), address low, [address high],
 * data, [mask bits, pending bits].
 * Hardware write masks follow QEMU's MSI model: enable and the enable-count field are writable
 * (the count is clamped to what the function is capable of), address bits 31:2, the upper
 * address, the 16-bit data, and the mask bits of existing vectors; pending bits are read-only.
 */
import type { ConfigSpace } from './config-space.js';
import {
  PCI_CAP_ID_MSI,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_MASK_32,
  PCI_MSI_MASK_64,
  PCI_MSI_PENDING_32,
  PCI_MSI_PENDING_64,
} from './regs.js';

export interface MsiCapabilityOptions {
  /** Vectors the function can use: 1, 2, 4, 8, 16 or 32. */
  readonly vectors: number;
  readonly address64: boolean;
  readonly perVectorMask: boolean;
}

export class MsiCapability {
  private constructor(
    private readonly config: ConfigSpace,
    /** Offset of the capability header in config space. */
    readonly offset: number,
  ) {}

  /** Length in bytes of an MSI capability with these options. */
  static length(options: MsiCapabilityOptions): number {
    return (options.address64 ? 14 : 10) + (options.perVectorMask ? 10 : 0);
  }

  /** Adds the capability at `offset` to the config space's list and sets up its masks. */
  static install(config: ConfigSpace, offset: number, options: MsiCapabilityOptions): MsiCapability {
    const log2 = Math.log2(options.vectors);
    if (!Number.isInteger(log2) || log2 < 0 || log2 > 5) throw new RangeError(`MSI vector count ${options.vectors}`);
    const length = MsiCapability.length(options);
    config.addCapability(PCI_CAP_ID_MSI, offset, length);
    const control =
      (log2 << 1) | (options.address64 ? PCI_MSI_FLAGS_64BIT : 0) | (options.perVectorMask ? PCI_MSI_FLAGS_MASKBIT : 0);
    config.set16(offset + PCI_MSI_FLAGS, control);
    config.setWriteMask16(offset + PCI_MSI_FLAGS, PCI_MSI_FLAGS_ENABLE | PCI_MSI_FLAGS_QSIZE);
    config.setWriteMask32(offset + PCI_MSI_ADDRESS_LO, 0xfffffffc);
    if (options.address64) config.setWriteMask32(offset + PCI_MSI_ADDRESS_HI, 0xffffffff);
    const cap = new MsiCapability(config, offset);
    config.setWriteMask16(cap.dataOffset, 0xffff);
    if (options.perVectorMask)
      config.setWriteMask32(cap.maskOffset, options.vectors === 32 ? 0xffffffff : (1 << options.vectors) - 1);
    return cap;
  }

  /** Wraps an MSI capability already present at `offset`. */
  static at(config: ConfigSpace, offset: number): MsiCapability {
    if (config.get8(offset) !== PCI_CAP_ID_MSI) throw new Error(`no MSI capability at 0x${offset.toString(16)}`);
    return new MsiCapability(config, offset);
  }

  get control(): number {
    return this.config.get16(this.offset + PCI_MSI_FLAGS);
  }

  get enabled(): boolean {
    return (this.control & PCI_MSI_FLAGS_ENABLE) !== 0;
  }

  get address64(): boolean {
    return (this.control & PCI_MSI_FLAGS_64BIT) !== 0;
  }

  get perVectorMask(): boolean {
    return (this.control & PCI_MSI_FLAGS_MASKBIT) !== 0;
  }

  /** Vectors the function is capable of (multiple message capable). */
  get vectorsCapable(): number {
    return 1 << ((this.control & PCI_MSI_FLAGS_QMASK) >>> 1);
  }

  /** Vectors software enabled (multiple message enable), clamped to the capable count. */
  get vectorsEnabled(): number {
    return Math.min(1 << ((this.control & PCI_MSI_FLAGS_QSIZE) >>> 4), this.vectorsCapable);
  }

  get address(): bigint {
    const low = BigInt(this.config.get32(this.offset + PCI_MSI_ADDRESS_LO));
    if (!this.address64) return low;
    return (BigInt(this.config.get32(this.offset + PCI_MSI_ADDRESS_HI)) << 32n) | low;
  }

  get data(): number {
    return this.config.get16(this.dataOffset);
  }

  get dataOffset(): number {
    return this.offset + (this.address64 ? PCI_MSI_DATA_64 : PCI_MSI_DATA_32);
  }

  get maskOffset(): number {
    return this.offset + (this.address64 ? PCI_MSI_MASK_64 : PCI_MSI_MASK_32);
  }

  get pendingOffset(): number {
    return this.offset + (this.address64 ? PCI_MSI_PENDING_64 : PCI_MSI_PENDING_32);
  }

  /** Whether the control register lies in [offset, offset + width) (the function watches it). */
  controlTouched(offset: number, width: number): boolean {
    const control = this.offset + PCI_MSI_FLAGS;
    return offset < control + 2 && offset + width > control;
  }

  masked(vector: number): boolean {
    return this.perVectorMask && ((this.config.get32(this.maskOffset) >>> vector) & 1) === 1;
  }

  setPending(vector: number, pending: boolean): void {
    if (!this.perVectorMask) return;
    const bits = this.config.get32(this.pendingOffset);
    const bit = (1 << vector) >>> 0;
    this.config.set32(this.pendingOffset, pending ? (bits | bit) >>> 0 : (bits & ~bit) >>> 0);
  }

  pending(vector: number): boolean {
    return this.perVectorMask && ((this.config.get32(this.pendingOffset) >>> vector) & 1) === 1;
  }

  /** The data the function writes for `vector`: the low bits of data select the vector. */
  messageData(vector: number): number {
    const n = this.vectorsEnabled;
    return ((this.data & ~(n - 1)) | (vector & (n - 1))) & 0xffff;
  }
}
