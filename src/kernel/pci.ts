/**
 * struct pci_dev, as far as the kernel side needs it: the hardware function, which driver is
 * bound to it, and its IOMMU group.
 */
import type { PciFunction } from '../hw/pci/function.js';
import type { IommuGroup } from './iommu/group.js';

export type DriverName = 'vfio-pci' | 'host' | null;

/**
 * struct pci_bus: the functions on one bus number of a segment. Bus 0 is a root bus: no bridge
 * sits above it, so it has no secondary bus reset. Every other bus hangs below a bridge that
 * can reset it, which resets every function on it (there are no hotplug slots).
 */
export class PciBus {
  readonly devices: PciDev[] = [];

  constructor(
    readonly segment: number,
    readonly number: number,
  ) {}

  get isRoot(): boolean {
    return this.number === 0;
  }
}

export class PciDev {
  group!: IommuGroup;
  /** pdev->bus, set when the host enumerates its functions. */
  bus: PciBus | null = null;
  /** dev_get_drvdata(): the bound driver's per-device state. */
  drvdata: unknown = null;

  constructor(
    readonly fn: PciFunction,
    public driver: DriverName,
  ) {}

  get bdf(): string {
    return this.fn.bdf;
  }
}
