/**
 * A userspace driver for QEMU's edu device (shared/reference/edu.md), programming it through
 * its BAR0 mapped into the process (mmap of the VFIO device fd), as a VFIO user driver does.
 * Register accesses use the widths the device honours: 4 bytes below 0x80, 8 for the DMA block.
 */
import type { Process } from '../sys/process.js';
import { LITTLE_ENDIAN_HOST } from '../uapi/u64.js';

/** BAR0 register offsets (edu.md "MMIO registers"). */
export const EDU = Object.freeze({
  ID: 0x00,
  LIVENESS: 0x04,
  FACTORIAL: 0x08,
  STATUS: 0x20,
  IRQ_STATUS: 0x24,
  IRQ_RAISE: 0x60,
  IRQ_ACK: 0x64,
  DMA_SRC: 0x80,
  DMA_DST: 0x88,
  DMA_COUNT: 0x90,
  DMA_CMD: 0x98,
});

export const EDU_ID_VALUE = 0x010000ed;
export const EDU_DMA_CMD_START = 0x1;
/** Direction bit: set = device buffer to RAM. */
export const EDU_DMA_CMD_TO_RAM = 0x2;
export const EDU_DMA_CMD_IRQ = 0x4;
/** The interrupt-status bit a DMA completion with EDU_DMA_CMD_IRQ raises. */
export const EDU_IRQ_DMA = 0x100;
/** The device's own 4 KiB DMA buffer, in the device's address space. */
export const EDU_DMA_BUFFER = 0x40000n;
export const EDU_DMA_BUFFER_SIZE = 4096;
export const EDU_VENDOR_ID = 0x1234;
export const EDU_DEVICE_ID = 0x11e8;

/** Polls of DMA_CMD before giving up; the contract makes work visible at the next access. */
const DMA_POLL_LIMIT = 1000;

/** Register block size: the addresses of all registers are computed once. */
const REGISTER_SPAN = 0x100;

export class EduDriver {
  private readonly b4 = new Uint8Array(4);
  private readonly b8 = new Uint8Array(8);
  private readonly v4 = new DataView(this.b4.buffer);
  private readonly v8 = new DataView(this.b8.buffer);
  private readonly addresses: bigint[] = [];
  /**
   * The DMA register block (src, dst, count, cmd as four little-endian u64), written with one
   * 32-byte store. Filled through typed-array views (a few instructions, where DataView's u64
   * setters are calls) on little-endian hosts, through a DataView on the others.
   */
  private readonly dmaBlockBytes = new Uint8Array(32);
  private readonly dmaWords = new BigUint64Array(this.dmaBlockBytes.buffer);
  private readonly dmaDwords = new Uint32Array(this.dmaBlockBytes.buffer);
  private readonly dmaBlockView = new DataView(this.dmaBlockBytes.buffer);

  /** `bar0` is the address where BAR0 is mapped in `proc`. */
  constructor(
    readonly proc: Process,
    readonly bar0: bigint,
  ) {
    for (let offset = 0; offset < REGISTER_SPAN; offset += 4) this.addresses.push(bar0 + BigInt(offset));
  }

  private at(offset: number): bigint {
    return this.addresses[offset >>> 2] ?? this.bar0 + BigInt(offset);
  }

  read32(offset: number): number {
    // Decoded in place: the read already returns a fresh array, no need to copy it again.
    const b = this.proc.memory.read(this.at(offset), 4);
    return (b[0]! | (b[1]! << 8) | (b[2]! << 16) | (b[3]! << 24)) >>> 0;
  }

  write32(offset: number, value: number): void {
    this.v4.setUint32(0, value >>> 0, true);
    this.proc.memory.write(this.at(offset), this.b4);
  }

  read64(offset: number): bigint {
    this.b8.set(this.proc.memory.read(this.at(offset), 8));
    return this.v8.getBigUint64(0, true);
  }

  write64(offset: number, value: bigint): void {
    this.v8.setBigUint64(0, value, true);
    this.proc.memory.write(this.at(offset), this.b8);
  }

  id(): number {
    return this.read32(EDU.ID);
  }

  /** Writes `value` to the liveness register and returns what it reads back (its complement). */
  liveness(value: number): number {
    this.write32(EDU.LIVENESS, value);
    return this.read32(EDU.LIVENESS);
  }

  /**
   * Starts a transfer of `count` bytes and waits for it. `toRam` false: RAM (`ramIova`) to the
   * device buffer at `deviceAddr`; true: the other way. Returns the polls it took.
   */
  dma(ramIova: bigint, deviceAddr: bigint, count: number, toRam: boolean, irq = false): number {
    // The four registers are contiguous: one copy to the BAR reaches them as four 8-byte
    // stores in address order, so DMA_CMD (the one that starts the engine) is written last.
    const src = toRam ? deviceAddr : ramIova;
    const dst = toRam ? ramIova : deviceAddr;
    const cmd = EDU_DMA_CMD_START | (toRam ? EDU_DMA_CMD_TO_RAM : 0) | (irq ? EDU_DMA_CMD_IRQ : 0);
    if (LITTLE_ENDIAN_HOST) {
      const words = this.dmaWords;
      const dwords = this.dmaDwords;
      words[0] = src;
      words[1] = dst;
      dwords[4] = count; // dwords 5 and 7, the high halves, stay 0
      dwords[6] = cmd;
    } else {
      this.encodeDmaBlock(src, dst, count, cmd);
    }
    this.proc.memory.write(this.at(EDU.DMA_SRC), this.dmaBlockBytes);
    return this.waitDma();
  }

  private encodeDmaBlock(src: bigint, dst: bigint, count: number, cmd: number): void {
    const view = this.dmaBlockView;
    view.setBigUint64(0, src, true);
    view.setBigUint64(8, dst, true);
    view.setUint32(16, count, true);
    view.setUint32(24, cmd, true);
  }

  /** Polls DMA_CMD (its low dword holds the start bit) until the start bit clears. */
  waitDma(): number {
    for (let polls = 1; polls <= DMA_POLL_LIMIT; polls++) {
      if (!(this.read32(EDU.DMA_CMD) & EDU_DMA_CMD_START)) return polls;
    }
    throw new Error(`edu DMA still running after ${DMA_POLL_LIMIT} polls`);
  }

  irqStatus(): number {
    return this.read32(EDU.IRQ_STATUS);
  }

  raiseIrq(bits: number): void {
    this.write32(EDU.IRQ_RAISE, bits);
  }

  ackIrq(bits: number): void {
    this.write32(EDU.IRQ_ACK, bits);
  }
}
