/**
 * QEMU's educational PCI device ("edu"), as /work/shared/reference/edu.md describes it and as the
 * reference transcripts show it through a real kernel's vfio-pci.
 *
 * Identity: 1234:11e8 rev 0x10, class 0x00ff00, subsystem 1af4:1100, header type 0, conventional
 * config space; BAR0 is 1 MiB of 32-bit non-prefetchable memory; INTA; one MSI capability at 0x40
 * (64-bit address, 1 vector, no per-vector masking). No FLR and no PM reset: it cannot be reset.
 *
 * Timing choice: the real device computes factorials on a thread and runs DMA from a timer; here
 * a factorial completes inside the register write that starts it, and a DMA as soon as the CPU
 * store carrying the DMA_CMD write has landed (mmioStoreDone). The computing bit and the DMA run
 * bit therefore always read 0 afterwards, and device work is visible no later than the next
 * access, which is what drivers (and CONTRACT.md) rely on.
 *
 * Errors: a transfer whose device side leaves the 4 KiB buffer is a device error (QEMU 7.2 would
 * abort the VM; we count it and move nothing). A transfer the IOMMU refuses moves nothing (the
 * IOMMU records the fault) and one issued with bus mastering off never leaves the device. In
 * every case the command completes as the real device's does after a failed pci_dma_* call: the
 * run bit clears and, if asked for, the DMA interrupt is raised, so no driver waits forever.
 */
import type { MmioHandler } from '../memory.js';
import { type DmaBus, PciFunction } from '../pci/function.js';
import { MsiCapability } from '../pci/msi.js';
import {
  PCI_CACHE_LINE_SIZE,
  PCI_CLASS_DEVICE,
  PCI_CLASS_PROG,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_COMMAND_SERR,
  PCI_DEVICE_ID,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_REVISION_ID,
  PCI_STD_HEADER_SIZEOF,
  PCI_SUBSYSTEM_ID,
  PCI_SUBSYSTEM_VENDOR_ID,
  PCI_VENDOR_ID,
} from '../pci/regs.js';

export const EDU_VENDOR_ID = 0x1234;
export const EDU_DEVICE_ID = 0x11e8;
export const EDU_REVISION = 0x10;
export const EDU_CLASS_CODE = 0x00ff00;
export const EDU_SUBSYSTEM_VENDOR_ID = 0x1af4;
export const EDU_SUBSYSTEM_ID = 0x1100;
export const EDU_BAR0_SIZE = 1 << 20;
export const EDU_MSI_OFFSET = 0x40;
export const EDU_ID_VALUE = 0x010000ed;

/** BAR0 register offsets. */
export const EduReg = {
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
} as const;

export const EDU_STATUS_COMPUTING = 0x01;
export const EDU_STATUS_IRQ_FACTORIAL = 0x80;
export const EDU_DMA_RUN = 0x1;
/** Direction bit: 0 = RAM to device buffer, 1 = device buffer to RAM. */
export const EDU_DMA_TO_RAM = 0x2;
export const EDU_DMA_IRQ = 0x4;
export const EDU_IRQ_FACTORIAL = 0x1;
export const EDU_IRQ_DMA = 0x100;
export const EDU_DMA_BUFFER_ADDRESS = 0x40000;
export const EDU_DMA_BUFFER_SIZE = 4096;
export const EDU_DEFAULT_DMA_MASK_BITS = 28;

/**
 * COMMAND at power-on of the reference machine as the host left it before vfio-pci took over
 * (the transcript's first config read shows 0x0103: I/O, memory, SERR).
 */
const INITIAL_COMMAND = PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_SERR;
/** COMMAND bits the hardware implements (QEMU's generic PCI write mask). */
const COMMAND_WRITABLE =
  PCI_COMMAND_IO | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE;

export interface EduOptions {
  /** Width in bits of the DMA mask applied to bus addresses (default 28), 1 to 64. */
  readonly dmaMask?: number;
}

/** Checks topology options (plain data) for edu; unknown keys and bad values throw. */
export function parseEduOptions(options: Readonly<Record<string, unknown>> = {}): EduOptions {
  const unknown = Object.keys(options).filter((key) => key !== 'dmaMask');
  if (unknown.length > 0) throw new Error(`edu: unknown option(s) ${unknown.join(', ')} (known: dmaMask)`);
  const dmaMask = options['dmaMask'];
  if (dmaMask === undefined) return {};
  if (typeof dmaMask !== 'number' || !Number.isInteger(dmaMask) || dmaMask < 1 || dmaMask > 64) {
    throw new Error(`edu: option dmaMask must be an integer number of bits in [1, 64], got ${String(dmaMask)}`);
  }
  return { dmaMask };
}

export interface EduInit {
  readonly bdf: string;
  readonly bus: DmaBus;
  readonly options?: EduOptions;
}

/**
 * The DMA registers in the register file, in BAR order: slot i holds the low half of a 64-bit
 * register, slot i + 1 its high half.
 */
const SRC = 0;
const DST = 2;
const COUNT = 4;
const CMD = 6;

/** A masked bus address, kept in both forms the bus takes. */
interface BusAddress {
  lo: number;
  hi: number;
  address: bigint;
  number: number;
}

export interface EduSnapshot {
  readonly liveness: number;
  readonly factorial: number;
  readonly status: number;
  readonly irqStatus: number;
  readonly dmaSrc: bigint;
  readonly dmaDst: bigint;
  readonly dmaCount: bigint;
  readonly dmaCmd: bigint;
  /** Transfers that moved their bytes. */
  readonly dmaTransfers: number;
  /** Transfers refused by the bus (IOMMU fault or bus mastering off). */
  readonly dmaFailures: number;
  /** Transfers whose device side left the buffer. */
  readonly deviceErrors: number;
}

export class EduDevice extends PciFunction implements MmioHandler {
  readonly dmaMaskBits: number;
  private readonly maskLo: number;
  private readonly maskHi: number;
  private readonly buffer = new Uint8Array(EDU_DMA_BUFFER_SIZE);
  private lastWindow = this.buffer.subarray(0, 0);
  private lastWindowStart = 0;
  private readonly lastBusAddress: BusAddress = { lo: 0, hi: 0, address: 0n, number: 0 };

  private liveness = 0;
  private factorial = 0;
  private status = 0;
  private irqStatus = 0;
  /** DMA_SRC, DMA_DST, DMA_COUNT and DMA_CMD as 32-bit halves (see SRC..CMD). */
  private readonly dmaRegs = new Uint32Array(8);
  /** DMA_CMD was written with the run bit during the current store. */
  private dmaStarted = false;
  private transfers = 0;
  private failures = 0;
  private errors = 0;

  constructor(init: EduInit) {
    super({ bdf: init.bdf, model: 'edu', bus: init.bus, configSize: 256 });
    const bits = init.options?.dmaMask ?? EDU_DEFAULT_DMA_MASK_BITS;
    if (!Number.isInteger(bits) || bits < 1 || bits > 64) throw new RangeError(`edu dmaMask ${bits} is not 1..64 bits`);
    this.dmaMaskBits = bits;
    this.maskLo = bits >= 32 ? 0xffffffff : 2 ** bits - 1;
    this.maskHi = bits <= 32 ? 0 : bits >= 64 ? 0xffffffff : 2 ** (bits - 32) - 1;
    this.buildConfigSpace();
    this.addBar({ index: 0, size: EDU_BAR0_SIZE, kind: 'mem32', prefetchable: false, handler: this });
    this.msi = MsiCapability.install(this.config, EDU_MSI_OFFSET, {
      vectors: 1,
      address64: true,
      perVectorMask: false,
    });
    this.capturePowerOnState();
  }

  /** The device's DMA buffer (device addresses 0x40000-0x40fff); a live view, for tests. */
  get dmaBuffer(): Uint8Array {
    return this.buffer;
  }

  snapshot(): EduSnapshot {
    return {
      liveness: this.liveness,
      factorial: this.factorial,
      status: this.status,
      irqStatus: this.irqStatus,
      dmaSrc: this.dmaRegister64(SRC),
      dmaDst: this.dmaRegister64(DST),
      dmaCount: this.dmaRegister64(COUNT),
      dmaCmd: this.dmaRegister64(CMD),
      dmaTransfers: this.transfers,
      dmaFailures: this.failures,
      deviceErrors: this.errors,
    };
  }

  // --- BAR0 registers ---

  mmioRead(offset: number, width: number, out: Uint32Array): void {
    if (width < 4) {
      // QEMU's memory core refuses 1- and 2-byte accesses before edu sees them (edu_mmio_ops
      // .valid.min_access_size = 4): the read completes with the unassigned value, 0.
      out[0] = 0;
      out[1] = 0;
      return;
    }
    // edu_mmio_read() answers ~0 for an 8-byte read below 0x80 and for unassigned offsets.
    out[0] = 0xffffffff;
    out[1] = width === 8 ? 0xffffffff : 0;
    if (offset < EduReg.DMA_SRC) {
      if (width === 4) out[0] = this.controlRegister(offset);
      return;
    }
    const slot = dmaSlot(offset);
    if (slot < 0) return;
    out[0] = this.dmaRegs[slot]!;
    out[1] = width === 8 ? this.dmaRegs[slot + 1]! : 0;
  }

  mmioWrite(offset: number, width: number, lo: number, hi: number): void {
    if (offset < EduReg.DMA_SRC) {
      if (width === 4) this.writeControlRegister(offset, lo >>> 0);
      return;
    }
    const regs = this.dmaRegs;
    const slot = width === 4 || width === 8 ? dmaSlot(offset) : -1;
    if (slot < 0 || regs[CMD]! & EDU_DMA_RUN) return; // frozen while a transfer runs
    // Writes to DMA_CMD without the run bit are ignored; with it they start a transfer.
    if (slot === CMD && !(lo & EDU_DMA_RUN)) return;
    regs[slot] = lo;
    // A 4-byte write to a 64-bit register sets it to the zero-extended value, as on the device.
    regs[slot + 1] = width === 8 ? hi : 0;
    if (slot === CMD) this.dmaStarted = true;
  }

  /** The transfer a DMA_CMD write started runs once the store that carried it has landed. */
  mmioStoreDone(): void {
    if (!this.dmaStarted) return;
    this.dmaStarted = false;
    this.runDma();
  }

  /** The 32-bit registers below 0x80; unassigned offsets read as all-ones. */
  private controlRegister(offset: number): number {
    switch (offset) {
      case EduReg.ID:
        return EDU_ID_VALUE;
      case EduReg.LIVENESS:
        return this.liveness;
      case EduReg.FACTORIAL:
        return this.factorial;
      case EduReg.STATUS:
        return this.status;
      case EduReg.IRQ_STATUS:
        return this.irqStatus;
      default:
        return 0xffffffff;
    }
  }

  private writeControlRegister(offset: number, value: number): void {
    switch (offset) {
      case EduReg.LIVENESS:
        this.liveness = ~value >>> 0;
        return;
      case EduReg.FACTORIAL:
        if (!(this.status & EDU_STATUS_COMPUTING)) this.computeFactorial(value);
        return;
      case EduReg.STATUS:
        this.status =
          value & EDU_STATUS_IRQ_FACTORIAL
            ? this.status | EDU_STATUS_IRQ_FACTORIAL
            : this.status & ~EDU_STATUS_IRQ_FACTORIAL;
        return;
      case EduReg.IRQ_RAISE:
        this.raiseIrq(value);
        return;
      case EduReg.IRQ_ACK:
        this.lowerIrq(value);
        return;
    }
  }

  private dmaRegister64(slot: number): bigint {
    return (BigInt(this.dmaRegs[slot + 1]!) << 32n) | BigInt(this.dmaRegs[slot]!);
  }

  // --- device behaviour ---

  private computeFactorial(n: number): void {
    // n! mod 2^32: from 34! on the product holds at least 32 factors of two, so it is 0.
    let result = 1;
    if (n >= 34) result = 0;
    else for (let i = 2; i <= n; i++) result = Math.imul(result, i) >>> 0;
    this.factorial = result >>> 0;
    this.status &= ~EDU_STATUS_COMPUTING;
    if (this.status & EDU_STATUS_IRQ_FACTORIAL) this.raiseIrq(EDU_IRQ_FACTORIAL);
  }

  private raiseIrq(value: number): void {
    this.irqStatus = (this.irqStatus | value) >>> 0;
    if (this.irqStatus === 0) return;
    if (this.msiEnabled) this.sendMsi(0);
    else this.setIntx(true);
  }

  private lowerIrq(value: number): void {
    this.irqStatus = (this.irqStatus & ~value) >>> 0;
    if (this.irqStatus === 0 && !this.msiEnabled) this.setIntx(false);
  }

  private runDma(): void {
    const regs = this.dmaRegs;
    const toRam = (regs[CMD]! & EDU_DMA_TO_RAM) !== 0;
    const window = this.deviceWindow(toRam ? SRC : DST);
    if (window === null) this.errors++;
    else if (window.length > 0) this.transfer(toRam, window, toRam ? DST : SRC);
    regs[CMD] = regs[CMD]! & ~EDU_DMA_RUN;
    if (regs[CMD]! & EDU_DMA_IRQ) this.raiseIrq(EDU_IRQ_DMA);
  }

  /** The part of the DMA buffer a transfer uses (device address in `slot`); null if it leaves the buffer. */
  private deviceWindow(slot: number): Uint8Array | null {
    const regs = this.dmaRegs;
    const device = regs[slot]!;
    const count = regs[COUNT]!;
    const inBuffer =
      regs[slot + 1] === 0 &&
      regs[COUNT + 1] === 0 &&
      device >= EDU_DMA_BUFFER_ADDRESS &&
      device + count <= EDU_DMA_BUFFER_ADDRESS + EDU_DMA_BUFFER_SIZE;
    return inBuffer ? this.bufferWindow(device - EDU_DMA_BUFFER_ADDRESS, count) : null;
  }

  private transfer(toRam: boolean, window: Uint8Array, busSlot: number): void {
    const bus = this.busAddress(busSlot);
    const ok = toRam
      ? this.dma.write(bus.address, window, bus.number)
      : this.dma.readInto(bus.address, window, bus.number);
    if (ok) this.transfers++;
    else this.failures++;
  }

  /** A view of buffer[start, start + count); drivers repeat the same window, so the last one is kept. */
  private bufferWindow(start: number, count: number): Uint8Array {
    // Compared as numbers kept beside the view: reading a view's byteOffset is a call.
    if (start !== this.lastWindowStart || count !== this.lastWindow.length) {
      this.lastWindow = this.buffer.subarray(start, start + count);
      this.lastWindowStart = start;
    }
    return this.lastWindow;
  }

  /** The bus address in `slot` under the DMA mask, as a bigint and as a number (-1 past 2^53). */
  private busAddress(slot: number): BusAddress {
    const lo = (this.dmaRegs[slot]! & this.maskLo) >>> 0;
    const hi = (this.dmaRegs[slot + 1]! & this.maskHi) >>> 0;
    // Drivers reuse their DMA addresses, and building a bigint allocates: keep the last one.
    const last = this.lastBusAddress;
    return lo === last.lo && hi === last.hi ? last : this.newBusAddress(lo, hi);
  }

  private newBusAddress(lo: number, hi: number): BusAddress {
    const last = this.lastBusAddress;
    last.lo = lo;
    last.hi = hi;
    last.number = hi < 0x200000 ? hi * 0x1_0000_0000 + lo : -1;
    last.address = last.number >= 0 ? BigInt(last.number) : (BigInt(hi) << 32n) | BigInt(lo);
    return last;
  }

  private buildConfigSpace(): void {
    const config = this.config;
    config.set16(PCI_VENDOR_ID, EDU_VENDOR_ID);
    config.set16(PCI_DEVICE_ID, EDU_DEVICE_ID);
    config.set16(PCI_COMMAND, INITIAL_COMMAND);
    config.setWriteMask16(PCI_COMMAND, COMMAND_WRITABLE);
    config.set8(PCI_REVISION_ID, EDU_REVISION);
    config.set8(PCI_CLASS_PROG, EDU_CLASS_CODE & 0xff);
    config.set16(PCI_CLASS_DEVICE, EDU_CLASS_CODE >>> 8);
    config.setWriteMask8(PCI_CACHE_LINE_SIZE, 0xff);
    config.set16(PCI_SUBSYSTEM_VENDOR_ID, EDU_SUBSYSTEM_VENDOR_ID);
    config.set16(PCI_SUBSYSTEM_ID, EDU_SUBSYSTEM_ID);
    config.setWriteMask8(PCI_INTERRUPT_LINE, 0xff);
    config.set8(PCI_INTERRUPT_PIN, 1);
    // QEMU leaves the device-specific area writable scratch; capabilities carve out their own masks.
    config.writeMask.fill(0xff, PCI_STD_HEADER_SIZEOF, config.size);
  }
}

/** The register-file slot of the DMA register starting at `offset` (0x80 and up), or -1. */
function dmaSlot(offset: number): number {
  return offset > EduReg.DMA_CMD || (offset & 7) !== 0 ? -1 : (offset - EduReg.DMA_SRC) >>> 2;
}
