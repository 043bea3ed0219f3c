/**
 * QEMU's educational PCI device ("edu"), as /work/shared/reference/edu.md describes it and as the
 * reference transcripts show it through a real kernel's vfio-pci.
 *
 * Identity: 1234:11e8 rev 0x10, class 0x00ff00, subsystem 1af4:1100, header type 0, conventional
 * config space; BAR0 is 1 MiB of 32-bit non-prefetchable memory; INTA; one MSI capability at 0x40
 * (64-bit address, 1 vector, no per-vector masking). No FLR and no PM reset: it cannot be reset.
 *
 * Timing choice: the real device computes factorials on a thread and runs DMA from a timer; here
 * all work completes synchronously inside the register write that starts it. The computing bit
 * and the DMA run bit therefore always read 0 afterwards, and device work is visible no later
 * than the next access, which is what drivers (and CONTRACT.md) rely on.
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

/** A 64-bit register as two unsigned 32-bit halves. */
interface Reg64 {
  lo: number;
  hi: number;
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
  private readonly scratch = new Uint32Array(2);
  private lastWindow = this.buffer.subarray(0, 0);

  private liveness = 0;
  private factorial = 0;
  private status = 0;
  private irqStatus = 0;
  private readonly src: Reg64 = { lo: 0, hi: 0 };
  private readonly dst: Reg64 = { lo: 0, hi: 0 };
  private readonly count: Reg64 = { lo: 0, hi: 0 };
  private readonly cmd: Reg64 = { lo: 0, hi: 0 };
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
      dmaSrc: toBigInt(this.src),
      dmaDst: toBigInt(this.dst),
      dmaCount: toBigInt(this.count),
      dmaCmd: toBigInt(this.cmd),
      dmaTransfers: this.transfers,
      dmaFailures: this.failures,
      deviceErrors: this.errors,
    };
  }

  // --- BAR0 registers ---

  mmioReadHalves(offset: number, width: number, out: Uint32Array): void {
    if (width < 4) {
      // QEMU's memory core refuses 1- and 2-byte accesses before edu sees them (edu_mmio_ops
      // .valid.min_access_size = 4): the read completes with the unassigned value, 0.
      out[0] = 0;
      out[1] = 0;
      return;
    }
    out[0] = 0xffffffff;
    out[1] = width === 8 ? 0xffffffff : 0;
    // edu_mmio_read() answers ~0 for an 8-byte read below 0x80 and for unassigned offsets.
    if (!accessAllowed(offset, width)) return;
    let reg: Reg64;
    switch (offset) {
      case EduReg.ID:
        out[0] = EDU_ID_VALUE;
        return;
      case EduReg.LIVENESS:
        out[0] = this.liveness;
        return;
      case EduReg.FACTORIAL:
        out[0] = this.factorial;
        return;
      case EduReg.STATUS:
        out[0] = this.status;
        return;
      case EduReg.IRQ_STATUS:
        out[0] = this.irqStatus;
        return;
      case EduReg.DMA_SRC:
        reg = this.src;
        break;
      case EduReg.DMA_DST:
        reg = this.dst;
        break;
      case EduReg.DMA_COUNT:
        reg = this.count;
        break;
      case EduReg.DMA_CMD:
        reg = this.cmd;
        break;
      default:
        return; // unassigned: all-ones, like QEMU's default
    }
    out[0] = reg.lo;
    out[1] = width === 8 ? reg.hi : 0;
  }

  mmioWriteHalves(offset: number, width: number, lo: number, hi: number): void {
    if (!accessAllowed(offset, width)) return;
    // A 4-byte write to a 64-bit register sets it to the zero-extended value, as on the device.
    const high = width === 8 ? hi >>> 0 : 0;
    switch (offset) {
      case EduReg.LIVENESS:
        this.liveness = ~lo >>> 0;
        return;
      case EduReg.FACTORIAL:
        if (this.status & EDU_STATUS_COMPUTING) return;
        this.computeFactorial(lo >>> 0);
        return;
      case EduReg.STATUS:
        this.status =
          lo & EDU_STATUS_IRQ_FACTORIAL
            ? this.status | EDU_STATUS_IRQ_FACTORIAL
            : this.status & ~EDU_STATUS_IRQ_FACTORIAL;
        return;
      case EduReg.IRQ_RAISE:
        this.raiseIrq(lo >>> 0);
        return;
      case EduReg.IRQ_ACK:
        this.lowerIrq(lo >>> 0);
        return;
      case EduReg.DMA_SRC:
        this.setDmaRegister(this.src, lo, high);
        return;
      case EduReg.DMA_DST:
        this.setDmaRegister(this.dst, lo, high);
        return;
      case EduReg.DMA_COUNT:
        this.setDmaRegister(this.count, lo, high);
        return;
      case EduReg.DMA_CMD:
        // Writes without the run bit are ignored; with it they start a transfer.
        if ((lo & EDU_DMA_RUN) === 0 || this.cmd.lo & EDU_DMA_RUN) return;
        this.cmd.lo = lo >>> 0;
        this.cmd.hi = high;
        this.runDma();
        return;
      default:
        return;
    }
  }

  mmioRead(offset: number, width: number): bigint {
    const out = this.scratch;
    this.mmioReadHalves(offset, width, out);
    return (BigInt(out[1]!) << 32n) | BigInt(out[0]!);
  }

  mmioWrite(offset: number, width: number, value: bigint): void {
    this.mmioWriteHalves(offset, width, Number(value & 0xffffffffn), Number((value >> 32n) & 0xffffffffn));
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

  private setDmaRegister(reg: Reg64, lo: number, hi: number): void {
    if (this.cmd.lo & EDU_DMA_RUN) return; // registers are frozen while a transfer runs
    reg.lo = lo >>> 0;
    reg.hi = hi;
  }

  private runDma(): void {
    const toRam = (this.cmd.lo & EDU_DMA_TO_RAM) !== 0;
    const device = toRam ? this.src : this.dst;
    const busSide = toRam ? this.dst : this.src;
    const count = this.count;
    const inBuffer =
      device.hi === 0 &&
      count.hi === 0 &&
      device.lo >= EDU_DMA_BUFFER_ADDRESS &&
      device.lo + count.lo <= EDU_DMA_BUFFER_ADDRESS + EDU_DMA_BUFFER_SIZE;
    if (!inBuffer) {
      this.errors++;
    } else if (count.lo > 0) {
      const window = this.bufferWindow(device.lo - EDU_DMA_BUFFER_ADDRESS, count.lo);
      const iova = this.maskedBusAddress(busSide);
      const ok = toRam ? this.dma.write(iova, window) : this.dma.readInto(iova, window);
      if (ok) this.transfers++;
      else this.failures++;
    }
    this.cmd.lo = (this.cmd.lo & ~EDU_DMA_RUN) >>> 0;
    if (this.cmd.lo & EDU_DMA_IRQ) this.raiseIrq(EDU_IRQ_DMA);
  }

  /** A view of buffer[start, start + count); drivers repeat the same window, so the last one is kept. */
  private bufferWindow(start: number, count: number): Uint8Array {
    const last = this.lastWindow;
    if (last.byteOffset === start && last.length === count) return last;
    this.lastWindow = this.buffer.subarray(start, start + count);
    return this.lastWindow;
  }

  private maskedBusAddress(reg: Reg64): bigint {
    const lo = (reg.lo & this.maskLo) >>> 0;
    const hi = (reg.hi & this.maskHi) >>> 0;
    if (hi === 0) return BigInt(lo);
    if (hi < 0x200000) return BigInt(hi * 0x100000000 + lo); // exact below 2^53
    return (BigInt(hi) << 32n) | BigInt(lo);
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

/** Below 0x80 only 4-byte accesses; from 0x80 up 4 or 8 bytes. Others are ignored. */
function accessAllowed(offset: number, width: number): boolean {
  return offset < 0x80 ? width === 4 : width === 4 || width === 8;
}

function toBigInt(reg: Reg64): bigint {
  return (BigInt(reg.hi) << 32n) | BigInt(reg.lo);
}
