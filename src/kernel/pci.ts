/**
 * struct pci_dev, as far as the kernel side needs it: the hardware function, which driver is
 * bound to it, and its IOMMU group.
 */
import type { PciFunction } from '../hw/pci/function.js';
import type { IommuGroup } from './iommu/group.js';

export type DriverName = 'vfio-pci' | 'host' | null;

export class PciDev {
  group!: IommuGroup;

  constructor(
    readonly fn: PciFunction,
    public driver: DriverName,
  ) {}

  get bdf(): string {
    return this.fn.bdf;
  }
}
