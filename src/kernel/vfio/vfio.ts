/**
 * The VFIO subsystem of one host (the registries of drivers/vfio/vfio_main.c and group.c): the
 * groups and devices bound to VFIO, the IOMMU backend drivers a container can choose from, and
 * the device nodes they answer to:
 *
 * - /dev/vfio/<N>                for each group with a vfio-bound device (group.ts),
 * - /dev/vfio/devices/vfio<M>    for each device, M counting registrations from 0 (cdev path),
 * - /dev/vfio/vfio               the legacy container (container.ts), when the host uses it
 *                                rather than iommufd's compat container.
 */
import { fail } from '../../uapi/errno.js';
import type { IommuGroup } from '../iommu/group.js';
import type { Kernel } from '../kernel.js';
import type { PciDev } from '../pci.js';
import { VfioContainer, VfioContainerFile, type VfioIommuDriver } from './container.js';
import { VfioGroup } from './group.js';
import { DEFAULT_TYPE1_PARAMS, type1Driver, type Type1Params } from './type1.js';
import { VfioDevice, VfioDeviceFile, type VfioDeviceOps } from './vfio-main.js';

export const VFIO_CONTAINER_PATH = '/dev/vfio/vfio';

export class Vfio {
  /**
   * vfio_iommu_type1's module parameters, as /sys/module/vfio_iommu_type1/parameters/* would
   * set them: dma_entry_limit applies to backends opened afterwards, allow_unsafe_interrupts to
   * every later group attach.
   */
  readonly type1Params: Type1Params = { ...DEFAULT_TYPE1_PARAMS };
  /** vfio.iommu_drivers_list: the backends SET_IOMMU may pick, in the order they are tried. */
  readonly iommuDrivers: readonly VfioIommuDriver[] = [type1Driver(this.type1Params)];
  private readonly groupsById = new Map<number, VfioGroup>();
  private readonly deviceList: VfioDevice[] = [];
  private readonly groupOfDevice = new Map<VfioDevice, VfioGroup>();
  private readonly unregistered = new Set<VfioDevice>();

  constructor(readonly kernel: Kernel) {}

  /** The VfioGroup of an IOMMU group, created with its /dev/vfio/<N> node on first use. */
  registerGroup(iommuGroup: IommuGroup): VfioGroup {
    let group = this.groupsById.get(iommuGroup.id);
    if (group) return group;
    group = new VfioGroup(iommuGroup);
    this.groupsById.set(iommuGroup.id, group);
    const g = group;
    this.kernel.registerNode(group.path, () => g.open());
    return group;
  }

  /**
   * vfio_register_group_dev(): the device joins its group (registered on demand) and gets
   * /dev/vfio/devices/vfio<N>, N counting registrations from 0.
   */
  registerDevice(pdev: PciDev, ops: VfioDeviceOps): VfioDevice {
    const group = this.registerGroup(pdev.group);
    const device = new VfioDevice(pdev, ops, this.deviceList.length);
    this.deviceList.push(device);
    this.groupOfDevice.set(device, group);
    device.group = group;
    group.devices.push(device);
    this.kernel.registerNode(cdevPath(device), () => {
      if (this.unregistered.has(device)) return fail('ENODEV');
      return new VfioDeviceFile(device, { kind: 'cdev' });
    });
    return device;
  }

  /** Registers /dev/vfio/vfio as the legacy container: every open is a new container. */
  registerContainerNode(): void {
    this.kernel.registerNode(VFIO_CONTAINER_PATH, () => new VfioContainerFile(new VfioContainer(this.iommuDrivers)));
  }

  /**
   * vfio_unregister_group_dev() for a device nobody has open: it leaves its group (whose node
   * then fails to open with ENODEV once empty) and its cdev node answers ENODEV.
   */
  unregisterDevice(device: VfioDevice): void {
    if (device.openCount > 0 || device.files.size > 0) throw new Error(`device ${device.name} is still in use`);
    const group = this.groupOf(device);
    group.devices.splice(group.devices.indexOf(device), 1);
    this.unregistered.add(device);
  }

  group(id: number): VfioGroup | undefined {
    return this.groupsById.get(id);
  }

  groups(): VfioGroup[] {
    return [...this.groupsById.values()].sort((a, b) => a.id - b.id);
  }

  /** The vfio group a device belongs to (device->group). */
  groupOf(device: VfioDevice): VfioGroup {
    const group = this.groupOfDevice.get(device);
    if (!group) throw new Error(`device ${device.name} is not registered with this VFIO instance`);
    return group;
  }

  deviceByName(name: string): VfioDevice | undefined {
    return this.deviceList.find((d) => d.name === name);
  }

  /** Every registered device, in registration (cdev index) order. */
  devices(): readonly VfioDevice[] {
    return this.deviceList;
  }
}

export function cdevPath(device: VfioDevice): string {
  return `/dev/vfio/devices/vfio${device.cdevIndex}`;
}
