/**
 * A PCI function: what every device model shares. Its config space (config-space.ts), its BARs
 * (memory windows whose register accesses reach the model), its interrupt outputs (the INTx line
 * and MSI messages) and its DMA port onto the bus (through the IOMMU).
 *
 * Hardware rules modelled here:
 * - COMMAND.MEMORY / COMMAND.IO gate BAR decode: while clear, BAR reads return all-ones and
 *   writes are dropped (the access ends in a master abort).
 * - COMMAND.MASTER gates every request the function initiates: DMA and MSI messages (an MSI is
 *   a memory write). While clear the request never reaches the bus: it fails, and nothing is
 *   recorded anywhere (the IOMMU never sees it).
 * - INTx: the model asserts or deasserts its interrupt; STATUS.INTERRUPT reflects that; the pin
 *   itself is driven only while COMMAND.INTX_DISABLE is clear and MSI is not enabled (a function
 *   using MSI must not use its pin). Listeners see changes of the pin.
 * - MSI: when the capability's enable bit is set in the hardware config space, each raise sends
 *   one message: a 4-byte write of the message data to the message address, through the IOMMU,
 *   whose interrupt remapping turns it into a call of the kernel's handler.
 */
import { MmioObject, type MmioHandler } from '../memory.js';
import { type PciAddress, formatBdf, parseBdf, requesterIdOf } from './bdf.js';
import { type BarKind, type BarLayout, ConfigSpace } from './config-space.js';
import { MsiCapability } from './msi.js';
import {
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
} from './regs.js';

/**
 * What a function's requests travel on: the IOMMU (VtdIommu implements it). `iovaNumber` is
 * `safeNumber(iova)` from a caller that already has it (a device holding its address registers
 * as 32-bit halves does), sparing the bus the conversion.
 */
export interface DmaBus {
  dmaRead(requesterId: number, iova: bigint, dst: Uint8Array, iovaNumber?: number): boolean;
  dmaWrite(requesterId: number, iova: bigint, src: Uint8Array, iovaNumber?: number): boolean;
}

export interface BarSpec {
  readonly index: number;
  readonly size: number;
  readonly kind: BarKind;
  readonly prefetchable?: boolean;
  /** Receives the register accesses of this BAR (offsets are relative to the BAR). */
  readonly handler: MmioHandler;
}

export interface PciBar extends BarLayout {
  /** The BAR window; accesses go to the device model while decode is enabled. */
  readonly region: MmioObject;
  /** Address currently programmed in the BAR register. */
  readonly address: bigint;
}

/** Reset methods the function supports; vfio-pci offers VFIO_DEVICE_RESET only if one exists. */
export interface ResetMethods {
  /** Function-level reset (PCIe DEVCAP.FLR or the AF capability). */
  readonly flr: boolean;
  /** Reset by a D3hot -> D0 transition (PM capability without No_Soft_Reset). */
  readonly pm: boolean;
}

export interface PciFunctionInit {
  readonly bdf: string;
  readonly model: string;
  readonly bus: DmaBus;
  readonly configSize?: 256 | 4096;
}

export type IntxListener = (level: boolean) => void;

/** The function's bus-master port: DMA as the device issues it. */
export class DmaPort {
  /** The function's config bytes, for the COMMAND.MASTER test each request makes. */
  private readonly config: Uint8Array;

  constructor(private readonly fn: PciFunction) {
    this.config = fn.config.bytes;
  }

  /** Reads `length` bytes at bus address `iova`; null if the request fails. */
  read(iova: bigint, length: number): Uint8Array | null {
    const data = new Uint8Array(length);
    return this.readInto(iova, data) ? data : null;
  }

  /** Reads `dst.length` bytes at `iova` into `dst` (no allocation); false if the request fails. */
  readInto(iova: bigint, dst: Uint8Array, iovaNumber?: number): boolean {
    if (!(this.config[PCI_COMMAND]! & PCI_COMMAND_MASTER)) return false;
    return this.fn.bus.dmaRead(this.fn.requesterId, iova, dst, iovaNumber);
  }

  /** Writes `data` at `iova`; false if the request fails. */
  write(iova: bigint, data: Uint8Array, iovaNumber?: number): boolean {
    if (!(this.config[PCI_COMMAND]! & PCI_COMMAND_MASTER)) return false;
    return this.fn.bus.dmaWrite(this.fn.requesterId, iova, data, iovaNumber);
  }
}

/**
 * A BAR's window: accesses reach the model while the matching COMMAND decode bit is set, and
 * end in a master abort otherwise (reads all-ones, writes dropped). Checked once per access: no
 * register write of a model changes its own COMMAND register, so the bit cannot change midway.
 */
class BarWindow extends MmioObject {
  /** The function's config bytes: the decode bit is in COMMAND's low byte. */
  private readonly config: Uint8Array;

  constructor(
    size: number,
    handler: MmioHandler,
    fn: PciFunction,
    private readonly decodeBit: number,
  ) {
    super(size, handler);
    this.config = fn.config.bytes;
  }

  override read(offset: number, dst: Uint8Array): void {
    if (this.config[PCI_COMMAND]! & this.decodeBit) super.read(offset, dst);
    else dst.fill(0xff);
  }

  override write(offset: number, src: Uint8Array): void {
    if (this.config[PCI_COMMAND]! & this.decodeBit) super.write(offset, src);
  }
}

export abstract class PciFunction {
  readonly bdf: string;
  readonly address: PciAddress;
  readonly requesterId: number;
  readonly model: string;
  readonly config: ConfigSpace;
  readonly bus: DmaBus;
  readonly dma: DmaPort;
  /** The MSI capability, once the model installed one. */
  msi: MsiCapability | null = null;

  private readonly barsByIndex: (PciBar | undefined)[] = [];
  private readonly intxListeners = new Set<IntxListener>();
  private intxAsserted = false;
  private intxPin = false;
  private readonly msiMessage = new Uint8Array(4);
  private powerOnConfig: Uint8Array | null = null;

  constructor(init: PciFunctionInit) {
    this.address = parseBdf(init.bdf);
    this.bdf = formatBdf(this.address);
    this.requesterId = requesterIdOf(this.address);
    this.model = init.model;
    this.bus = init.bus;
    this.config = new ConfigSpace(init.configSize ?? 256);
    this.config.onWrite = (offset, width) => this.configWritten(offset, width);
    this.dma = new DmaPort(this);
  }

  /** Reset methods of this function; none unless a model says otherwise. */
  get resetMethods(): ResetMethods {
    return { flr: false, pm: false };
  }

  get canReset(): boolean {
    const methods = this.resetMethods;
    return methods.flr || methods.pm;
  }

  /**
   * Resets the function (FLR semantics: config space back to its power-on contents, device state
   * cleared, interrupt deasserted). Throws when the function has no reset method.
   */
  reset(): void {
    if (!this.canReset) throw new Error(`${this.bdf} (${this.model}) has no reset method`);
    if (this.powerOnConfig) this.config.restore(this.powerOnConfig);
    this.intxAsserted = false;
    this.config.setBits16(PCI_STATUS, PCI_STATUS_INTERRUPT, false);
    this.resetDevice();
    this.updateIntxPin();
  }

  /**
   * Secondary bus reset, asserted by the bridge above the function's bus (a PCI hot reset): the
   * same effect as a function reset, for every function on the bus whatever reset methods it
   * has. Software saves and restores config state around it, as pci_reset_bus() does.
   */
  busReset(): void {
    if (this.powerOnConfig) this.config.restore(this.powerOnConfig);
    this.intxAsserted = false;
    this.config.setBits16(PCI_STATUS, PCI_STATUS_INTERRUPT, false);
    this.resetDevice();
    this.updateIntxPin();
  }

  // --- config space as software sees it ---

  configRead(offset: number, width: number): number {
    return this.config.read(offset, width);
  }

  configWrite(offset: number, width: number, value: number): void {
    this.config.write(offset, width, value);
  }

  get command(): number {
    return this.config.get16(PCI_COMMAND);
  }

  get memoryEnabled(): boolean {
    return (this.command & PCI_COMMAND_MEMORY) !== 0;
  }

  get busMasterEnabled(): boolean {
    return (this.command & PCI_COMMAND_MASTER) !== 0;
  }

  // --- BARs ---

  get bars(): readonly PciBar[] {
    return this.barsByIndex.filter((bar): bar is PciBar => bar !== undefined);
  }

  bar(index: number): PciBar | undefined {
    return this.barsByIndex[index];
  }

  /** Programs a BAR's address (firmware / host resource assignment). */
  setBarAddress(index: number, address: bigint): void {
    const bar = this.barsByIndex[index];
    if (!bar) throw new Error(`${this.bdf}: BAR${index} is not implemented`);
    this.config.setBarAddress(bar, address);
  }

  // --- interrupts ---

  /** Calls `listener(level)` whenever the INTx pin changes; returns the unsubscribe function. */
  onIntx(listener: IntxListener): () => void {
    this.intxListeners.add(listener);
    return () => this.intxListeners.delete(listener);
  }

  /** The level of the INTx pin as the interrupt controller sees it. */
  get intxLevel(): boolean {
    return this.intxPin;
  }

  /** Whether the function has its interrupt asserted internally (STATUS.INTERRUPT). */
  get interruptStatus(): boolean {
    return this.intxAsserted;
  }

  get msiEnabled(): boolean {
    return this.msi !== null && this.msi.enabled;
  }

  /** Model side: assert or deassert the function's INTx interrupt. */
  protected setIntx(asserted: boolean): void {
    if (this.intxAsserted === asserted) return;
    this.intxAsserted = asserted;
    this.config.setBits16(PCI_STATUS, PCI_STATUS_INTERRUPT, asserted);
    this.updateIntxPin();
  }

  /**
   * Model side: send the MSI message for `vector`. Returns true if the message reached the bus
   * (the IOMMU then delivers it or records a remapping fault); false if MSI is disabled, the
   * vector is masked (its pending bit is set instead) or bus mastering is off.
   */
  protected sendMsi(vector = 0): boolean {
    const msi = this.msi;
    if (!msi || !msi.enabled || vector >= msi.vectorsEnabled) return false;
    if (msi.masked(vector)) {
      msi.setPending(vector, true);
      return false;
    }
    const data = msi.messageData(vector);
    const message = this.msiMessage;
    message[0] = data;
    message[1] = data >>> 8;
    message[2] = 0;
    message[3] = 0;
    return this.dma.write(msi.address, message);
  }

  // --- model construction ---

  /** Declares a BAR and its window. */
  protected addBar(spec: BarSpec): PciBar {
    if (this.barsByIndex[spec.index] || (spec.index > 0 && this.barsByIndex[spec.index - 1]?.kind === 'mem64')) {
      throw new Error(`${this.bdf}: BAR${spec.index} overlaps a BAR already defined`);
    }
    const layout: BarLayout = {
      index: spec.index,
      size: spec.size,
      kind: spec.kind,
      prefetchable: spec.prefetchable ?? false,
    };
    this.config.defineBar(layout);
    const decodeBit = spec.kind === 'io' ? PCI_COMMAND_IO : PCI_COMMAND_MEMORY;
    const region = new BarWindow(spec.size, spec.handler, this, decodeBit);
    const config = this.config;
    const bar: PciBar = {
      ...layout,
      region,
      get address() {
        return config.barAddress(layout);
      },
    };
    this.barsByIndex[spec.index] = bar;
    return bar;
  }

  /** Records the config space as the state a reset returns to; models call it at the end of setup. */
  protected capturePowerOnState(): void {
    this.powerOnConfig = this.config.snapshot();
  }

  /**
   * Runs device work that is still pending (a model with timers or queues completes it here);
   * returns true if anything ran. Machine#settle calls it until every function is idle.
   */
  runPendingWork(): boolean {
    return false;
  }

  /** Model-specific part of a reset (registers, buffers). */
  protected resetDevice(): void {}

  /** Model hook after a software config write (e.g. to react to MSI being enabled). */
  protected configChanged(_offset: number, _width: number): void {}

  private configWritten(offset: number, width: number): void {
    const commandTouched = offset < PCI_COMMAND + 2 && offset + width > PCI_COMMAND;
    if (commandTouched || this.msi?.controlTouched(offset, width)) this.updateIntxPin();
    this.configChanged(offset, width);
  }

  private updateIntxPin(): void {
    const disabled = (this.config.get16(PCI_COMMAND) & PCI_COMMAND_INTX_DISABLE) !== 0;
    const level = this.intxAsserted && !disabled && !this.msiEnabled;
    if (level === this.intxPin) return;
    this.intxPin = level;
    for (const listener of this.intxListeners) listener(level);
  }
}
