/**
 * struct iommu_group: the unit of DMA isolation. Userspace may own a group's DMA only when no
 * device in it is driven by a host driver (viability), and only one owner at a time
 * (iommu_group_claim_dma_owner). Attaching a domain attaches every device of the group.
 */
import { fail } from '../../uapi/errno.js';
import type { IommuDomain } from '../../hw/iommu/domain.js';
import type { VtdIommu } from '../../hw/iommu/vtd.js';
import type { PciDev } from '../pci.js';

export class IommuGroup {
  readonly devices: PciDev[] = [];
  private owner: object | null = null;
  private ownerCount = 0;
  private attached: IommuDomain | null = null;

  constructor(
    readonly id: number,
    readonly iommu: VtdIommu,
  ) {}

  /** No device of the group is bound to a regular host driver. */
  get viable(): boolean {
    return this.devices.every((d) => d.driver !== 'host');
  }

  get dmaOwner(): object | null {
    return this.owner;
  }

  get domain(): IommuDomain | null {
    return this.attached;
  }

  /**
   * iommu_group_claim_dma_owner() / iommu_device_claim_dma_owner(): EPERM when a host driver
   * uses the group or another owner holds it (owner_cnt != 0 with a different owner). The same
   * owner may claim again (counted), as iommufd devices of one context do.
   */
  claimDmaOwner(owner: object): void {
    if (!this.viable) fail('EPERM');
    if (this.owner && this.owner !== owner) fail('EPERM');
    this.owner = owner;
    this.ownerCount++;
  }

  releaseDmaOwner(owner: object): void {
    if (this.owner !== owner) return;
    if (--this.ownerCount === 0) {
      this.owner = null;
      this.attachDomain(null);
    }
  }

  /** Points every device of the group at `domain`; null blocks all DMA. */
  attachDomain(domain: IommuDomain | null): void {
    this.attached = domain;
    for (const dev of this.devices) this.iommu.attachDevice(dev.fn.requesterId, domain);
  }
}
