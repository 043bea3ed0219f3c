/**
 * The machine: an IOMMU and the PCI functions behind it, built from topology data, with BARs
 * assigned and interrupt lines routed the way firmware and the host kernel leave them before a
 * driver takes over. Linux (the kernel side) then drives it like hardware.
 *
 * Resource assignment (deterministic, in topology order then BAR index order):
 * - 32-bit memory BARs go downward from 0xfeb00000, each aligned to its size, so the first edu's
 *   BAR0 lands at 0xfea00000 as on the reference machine; the floor is 0xc0000000.
 * - 64-bit memory BARs go upward from 0x80_0000_0000 (512 GiB), aligned to their size.
 * - I/O BARs go upward from 0xc000.
 * - Functions with an interrupt pin get interrupt line 11 (what the reference firmware chose).
 */
import { DeviceModelRegistry, defaultDeviceModels } from './devices/registry.js';
import { formatBdf, parseBdf } from './pci/bdf.js';
import type { PciFunction } from './pci/function.js';
import { PCI_INTERRUPT_LINE, PCI_INTERRUPT_PIN } from './pci/regs.js';
import { type IommuSnapshot, VtdIommu } from './iommu/vtd.js';

export interface MachineIommuTopology {
  readonly model?: 'vtd';
  readonly addressWidth?: number;
  readonly pageSizes?: number | bigint;
  readonly dirtyTracking?: boolean;
}

export interface MachineDeviceTopology {
  readonly bdf: string;
  readonly model: string;
  readonly options?: Readonly<Record<string, unknown>>;
}

/** The hardware part of the host topology (other fields of a topology entry are ignored here). */
export interface MachineTopology {
  readonly iommu?: MachineIommuTopology;
  readonly devices: readonly MachineDeviceTopology[];
}

export interface MachineOptions {
  /** Device models to build from (default: the built-in ones). */
  readonly models?: DeviceModelRegistry;
}

export interface MachineSnapshot {
  readonly functions: readonly { readonly bdf: string; readonly model: string; readonly bars: readonly bigint[] }[];
  readonly iommu: IommuSnapshot;
}

const MEM32_TOP = 0xfeb00000n;
const MEM32_FLOOR = 0xc0000000n;
const MEM64_BASE = 0x80_0000_0000n;
const IO_BASE = 0xc000n;
const IO_LIMIT = 0x10000n;
const FIRMWARE_INTERRUPT_LINE = 11;
/** Upper bound of settle rounds: work that keeps producing work is a model bug, not a hang. */
const MAX_SETTLE_ROUNDS = 100_000;

export class Machine {
  readonly iommu: VtdIommu;
  readonly functions: readonly PciFunction[];
  private readonly byBdf = new Map<string, PciFunction>();
  private readonly byRequesterId = new Map<number, PciFunction>();

  constructor(topology: MachineTopology, options: MachineOptions = {}) {
    const iommuTopology = topology.iommu ?? {};
    if (iommuTopology.model !== undefined && iommuTopology.model !== 'vtd') {
      throw new Error(`unknown IOMMU model '${String(iommuTopology.model)}' (known: vtd)`);
    }
    this.iommu = new VtdIommu({
      addressWidth: iommuTopology.addressWidth,
      pageSizes: iommuTopology.pageSizes,
      dirtyTracking: iommuTopology.dirtyTracking,
    });
    const models = options.models ?? defaultDeviceModels();
    const functions: PciFunction[] = [];
    for (const device of topology.devices) {
      const bdf = formatBdf(parseBdf(device.bdf));
      if (this.byBdf.has(bdf)) throw new Error(`two devices at ${bdf}`);
      const fn = models.create(device.model, { bdf, bus: this.iommu, options: device.options ?? {} });
      const clash = this.byRequesterId.get(fn.requesterId);
      if (clash) throw new Error(`${bdf} and ${clash.bdf} share requester id 0x${fn.requesterId.toString(16)}`);
      this.byBdf.set(bdf, fn);
      this.byRequesterId.set(fn.requesterId, fn);
      functions.push(fn);
    }
    this.functions = Object.freeze(functions);
    assignResources(functions);
  }

  /** The function at `bdf` ('0000:00:03.0' or '00:03.0'); throws when there is none. */
  function(bdf: string): PciFunction {
    const fn = this.findFunction(bdf);
    if (!fn) throw new Error(`no PCI function at ${bdf}`);
    return fn;
  }

  /** The function at `bdf`, or undefined (also for a malformed address). */
  findFunction(bdf: string): PciFunction | undefined {
    let canonical: string;
    try {
      canonical = formatBdf(parseBdf(bdf));
    } catch {
      return undefined;
    }
    return this.byBdf.get(canonical);
  }

  functionByRequesterId(requesterId: number): PciFunction | undefined {
    return this.byRequesterId.get(requesterId);
  }

  /** Runs pending device work until every function is idle. */
  settle(): void {
    for (let round = 0; round < MAX_SETTLE_ROUNDS; round++) {
      let ran = false;
      for (const fn of this.functions) if (fn.runPendingWork()) ran = true;
      if (!ran) return;
    }
    throw new Error(`device work did not settle after ${MAX_SETTLE_ROUNDS} rounds`);
  }

  snapshot(): MachineSnapshot {
    return {
      functions: this.functions.map((fn) => ({
        bdf: fn.bdf,
        model: fn.model,
        bars: fn.bars.map((bar) => bar.address),
      })),
      iommu: this.iommu.snapshot(),
    };
  }
}

function assignResources(functions: readonly PciFunction[]): void {
  let mem32 = MEM32_TOP;
  let mem64 = MEM64_BASE;
  let io = IO_BASE;
  for (const fn of functions) {
    for (const bar of fn.bars) {
      const size = BigInt(bar.size);
      let address: bigint;
      if (bar.kind === 'mem32') {
        address = ((mem32 - size) / size) * size;
        if (address < MEM32_FLOOR) throw new Error(`${fn.bdf}: no room for BAR${bar.index} below 4 GiB`);
        mem32 = address;
      } else if (bar.kind === 'mem64') {
        address = ((mem64 + size - 1n) / size) * size;
        mem64 = address + size;
      } else {
        address = ((io + size - 1n) / size) * size;
        if (address + size > IO_LIMIT) throw new Error(`${fn.bdf}: no room for I/O BAR${bar.index}`);
        io = address + size;
      }
      fn.setBarAddress(bar.index, address);
    }
    if (fn.config.get8(PCI_INTERRUPT_PIN) !== 0) fn.config.set8(PCI_INTERRUPT_LINE, FIRMWARE_INTERRUPT_LINE);
  }
}
