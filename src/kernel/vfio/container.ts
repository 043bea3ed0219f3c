/**
 * The legacy VFIO container, /dev/vfio/vfio (drivers/vfio/container.c; semantics.md §1).
 *
 * Every open is a new container. Groups join it with VFIO_GROUP_SET_CONTAINER and hold a
 * reference, so the container outlives its fd while groups use it. VFIO_SET_IOMMU picks an
 * IOMMU backend ("driver") by extension number once at least one group is attached; the backend
 * then answers every other container ioctl, and goes away when the last group leaves (the
 * container returns to the unset state - there is no unset ioctl).
 */
import { fail } from '../../uapi/errno.js';
import { VFIO_API_VERSION, VFIO_CHECK_EXTENSION, VFIO_GET_API_VERSION, VFIO_SET_IOMMU } from '../../uapi/vfio.js';
import type { IommuGroup } from '../iommu/group.js';
import { File } from '../vfs/file.js';
import type { Task } from '../vfs/task.js';
import type { VfioGroup } from './group.js';

/** struct vfio_iommu_driver_ops, the part a container uses before a backend instance exists. */
export interface VfioIommuDriver {
  readonly name: string;
  /** The noiommu driver serves only noiommu containers and vice versa (vfio_iommu_driver_allowed). */
  readonly noiommu: boolean;
  /** ops->ioctl(NULL, VFIO_CHECK_EXTENSION, arg): > 0 when the driver supports `arg`. */
  checkExtension(arg: bigint): number;
  /** ops->open(arg): a backend instance for the extension `arg`, or throws its errno. */
  open(arg: bigint): VfioIommuBackend;
}

/** A backend instance (the driver's iommu_data) and the rest of its ops. */
export interface VfioIommuBackend {
  checkExtension(arg: bigint): number;
  /** Every container ioctl other than the three the container handles itself. */
  ioctl(task: Task, request: number, arg: bigint): number;
  attachGroup(group: IommuGroup): void;
  detachGroup(group: IommuGroup): void;
  release(): void;
}

/** struct vfio_container. */
export class VfioContainer {
  /** Attached groups, most recent first (list_add at the head, as the kernel does). */
  readonly groups: VfioGroup[] = [];
  driver: VfioIommuDriver | null = null;
  backend: VfioIommuBackend | null = null;
  noiommu = false;
  private refs = 1;

  constructor(private readonly drivers: readonly VfioIommuDriver[]) {}

  get refCount(): number {
    return this.refs;
  }

  get(): this {
    this.refs++;
    return this;
  }

  /** vfio_container_put(); the backend is already gone once no group remains. */
  put(): void {
    if (this.refs > 0) this.refs--;
  }

  /** vfio_ioctl_check_extension(). Unknown extensions answer 0, never an error. */
  checkExtension(arg: bigint): number {
    if (this.backend) return this.backend.checkExtension(arg);
    for (const driver of this.drivers) {
      if (this.groups.length && !this.driverAllowed(driver)) continue;
      const ret = driver.checkExtension(arg);
      if (ret > 0) return ret;
    }
    return 0;
  }

  /**
   * vfio_ioctl_set_iommu(): EINVAL without a group or once set; otherwise the first allowed
   * driver that claims the extension, opens, and takes every attached group wins. ENODEV when
   * no driver claims it; a claiming driver's open or attach error otherwise (e.g. EINVAL for
   * VFIO_UNMAP_ALL, which type1 claims but cannot open).
   */
  setIommu(arg: bigint): number {
    if (this.groups.length === 0 || this.driver) return fail('EINVAL');
    let error: unknown = null;
    for (const driver of this.drivers) {
      if (!this.driverAllowed(driver)) continue;
      if (driver.checkExtension(arg) <= 0) continue;
      let backend: VfioIommuBackend;
      try {
        backend = driver.open(arg);
      } catch (err) {
        error = err;
        continue;
      }
      try {
        this.attachAllGroups(backend);
      } catch (err) {
        backend.release();
        error = err;
        continue;
      }
      this.driver = driver;
      this.backend = backend;
      return 0;
    }
    if (error) throw error;
    return fail('ENODEV');
  }

  /** Any other ioctl: EINVAL until a backend is set, then the backend's (ENOTTY for unknown). */
  ioctl(task: Task, request: number, arg: bigint): number {
    if (!this.backend) return fail('EINVAL');
    return this.backend.ioctl(task, request, arg);
  }

  /**
   * vfio_container_attach_group(): claims the group's DMA ownership (EPERM: a host driver uses
   * the group; EBUSY: someone else owns it) and, if a backend is set, attaches the group to it
   * at once. On success the group holds a container reference.
   */
  attachGroup(group: VfioGroup): void {
    // Noiommu groups (CAP_SYS_RAWIO, no mixing with real groups: EPERM) come first in the
    // kernel; no noiommu group exists here.
    const iommuGroup = group.iommuGroup;
    iommuGroup.claimDmaOwner(group);
    if (this.backend) {
      try {
        this.backend.attachGroup(iommuGroup);
      } catch (err) {
        iommuGroup.releaseDmaOwner(group);
        throw err;
      }
    }
    this.groups.unshift(group);
    this.get();
  }

  /**
   * vfio_group_detach_container(): the backend lets the group go and the DMA ownership is
   * released; the last group takes the backend with it.
   */
  detachGroup(group: VfioGroup): void {
    const index = this.groups.indexOf(group);
    if (index < 0) return;
    this.backend?.detachGroup(group.iommuGroup);
    group.iommuGroup.releaseDmaOwner(group);
    this.groups.splice(index, 1);
    if (this.backend && this.groups.length === 0) {
      this.backend.release();
      this.backend = null;
      this.driver = null;
    }
    this.put();
  }

  private driverAllowed(driver: VfioIommuDriver): boolean {
    return driver.noiommu === this.noiommu;
  }

  /** __vfio_container_attach_groups(): all or nothing. */
  private attachAllGroups(backend: VfioIommuBackend): void {
    const done: VfioGroup[] = [];
    try {
      for (const group of this.groups) {
        backend.attachGroup(group.iommuGroup);
        done.push(group);
      }
    } catch (err) {
      for (const group of done) backend.detachGroup(group.iommuGroup);
      throw err;
    }
  }
}

/** An open /dev/vfio/vfio: the fd's reference on its container. */
export class VfioContainerFile extends File {
  readonly path = '/dev/vfio/vfio';

  constructor(readonly container: VfioContainer) {
    super();
  }

  override ioctl(task: Task, request: number, arg: bigint): number {
    switch (request) {
      case VFIO_GET_API_VERSION:
        return VFIO_API_VERSION;
      case VFIO_CHECK_EXTENSION:
        return this.container.checkExtension(arg);
      case VFIO_SET_IOMMU:
        return this.container.setIommu(arg);
      default:
        return this.container.ioctl(task, request, arg);
    }
  }

  protected override release(): void {
    this.container.put();
  }
}
