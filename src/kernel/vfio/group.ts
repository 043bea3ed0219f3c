/**
 * VFIO groups, /dev/vfio/<N> (drivers/vfio/group.c; semantics.md §2).
 *
 * A `VfioGroup` exists for every IOMMU group with a device bound to vfio-pci. Its node opens
 * once at a time; the open file sets a container (or an iommufd) with SET_CONTAINER and hands
 * out device fds with GET_DEVICE_FD. Device fds keep the group file referenced, so the group is
 * released - and leaves its container - only after the last of them is closed. The group path
 * and the device cdev path exclude each other: a device bound through its cdev keeps the group
 * from opening (EBUSY), and an open group keeps cdevs from binding (`blockGroup`).
 */
import { fail } from '../../uapi/errno.js';
import {
  VFIO_GROUP_FLAGS_CONTAINER_SET,
  VFIO_GROUP_FLAGS_VIABLE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_GET_STATUS,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_GROUP_UNSET_CONTAINER,
  vfio_group_status,
} from '../../uapi/vfio.js';
import { PAGE_SIZE } from '../../hw/memory.js';
import type { IommuGroup } from '../iommu/group.js';
import { File } from '../vfs/file.js';
import { O_CLOEXEC, O_RDWR } from '../vfs/syscalls.js';
import type { Task } from '../vfs/task.js';
import { copyArgszIn, ioctlTable } from './argsz.js';
import { VfioContainerFile, type VfioContainer } from './container.js';
import type { IommufdBinding } from './device-cdev.js';
import { VfioDeviceFile, type VfioDevice } from './vfio-main.js';

/**
 * What a group needs from an iommufd context given to VFIO_GROUP_SET_CONTAINER (the iommufd
 * side of vfio_group_ioctl_set_container / vfio_df_group_open; implemented by iommufd).
 */
export interface VfioGroupIommufd {
  /**
   * iommufd_vfio_compat_ioas_create(): makes sure the context has its compat IOAS (errors
   * propagate to SET_CONTAINER) and takes a context reference for the group.
   */
  attachGroup(group: VfioGroup): void;
  /** iommufd_ctx_put(): drops the group's reference (UNSET_CONTAINER, group release). */
  detachGroup(group: VfioGroup): void;
  /**
   * First open of a device through the group: vfio_df_iommufd_bind() (DMA ownership of the
   * IOMMU group: EPERM/EBUSY) and vfio_iommufd_compat_attach_ioas(). Released on the last close.
   */
  bindGroupDevice(group: VfioGroup, device: VfioDevice): IommufdBinding;
}

/**
 * A File that is an iommufd context exposes its VfioGroupIommufd under this key; that is how
 * SET_CONTAINER recognises it (iommufd_ctx_from_file()).
 */
export const VFIO_GROUP_IOMMUFD: unique symbol = Symbol.for('vfio-ts.VfioGroupIommufd') as never;

export interface VfioGroupIommufdFile {
  readonly [VFIO_GROUP_IOMMUFD]: VfioGroupIommufd;
}

function iommufdFromFile(file: File): VfioGroupIommufd | null {
  const ctx = (file as Partial<VfioGroupIommufdFile>)[VFIO_GROUP_IOMMUFD];
  return ctx ?? null;
}

/** struct vfio_group. */
export class VfioGroup {
  /** Devices registered to this group, in registration order (group->device_list). */
  readonly devices: VfioDevice[] = [];
  openedFile: VfioGroupFile | null = null;
  container: VfioContainer | null = null;
  iommufd: VfioGroupIommufd | null = null;
  /** 1 for the SET_CONTAINER itself, +1 per device opened through this group. */
  containerUsers = 0;
  /** Devices of this group bound through their cdev (group->cdev_device_open_cnt). */
  cdevDeviceOpenCount = 0;

  constructor(readonly iommuGroup: IommuGroup) {}

  get id(): number {
    return this.iommuGroup.id;
  }

  get path(): string {
    return `/dev/vfio/${this.id}`;
  }

  /** vfio_group_has_iommu(). */
  get hasIommu(): boolean {
    return this.container !== null || this.iommufd !== null;
  }

  /**
   * vfio_group_fops_open(): ENODEV once no device is registered; EBUSY while a device is bound
   * through its cdev, or while the group is already open.
   */
  open(): VfioGroupFile {
    if (this.devices.length === 0) return fail('ENODEV');
    // Noiommu groups would need CAP_SYS_RAWIO here (EPERM); none exist.
    if (this.cdevDeviceOpenCount) return fail('EBUSY');
    if (this.openedFile) return fail('EBUSY');
    this.openedFile = new VfioGroupFile(this);
    return this.openedFile;
  }

  /** vfio_device_block_group(): a cdev bind; EBUSY while the group node is open. */
  blockGroup(): void {
    if (this.openedFile) return fail('EBUSY');
    this.cdevDeviceOpenCount++;
  }

  /** vfio_device_unblock_group(): the cdev bind went away. */
  unblockGroup(): void {
    if (this.cdevDeviceOpenCount > 0) this.cdevDeviceOpenCount--;
  }

  /** The VFIO_GROUP_FLAGS_* GET_STATUS reports. */
  statusFlags(): number {
    // With an iommufd the ownership claim happens at GET_DEVICE_FD, so VIABLE is reported
    // with CONTAINER_SET even if that claim would fail later.
    if (this.hasIommu) return VFIO_GROUP_FLAGS_CONTAINER_SET | VFIO_GROUP_FLAGS_VIABLE;
    const claimed = !this.iommuGroup.viable || this.iommuGroup.dmaOwner !== null;
    return claimed ? 0 : VFIO_GROUP_FLAGS_VIABLE;
  }

  /** vfio_group_ioctl_set_container(): `fd` is an open container or iommufd. */
  setContainer(file: File): void {
    if (this.hasIommu) return fail('EINVAL');
    if (file instanceof VfioContainerFile) {
      file.container.attachGroup(this);
      this.container = file.container;
      this.containerUsers = 1;
      return;
    }
    const iommufd = iommufdFromFile(file);
    if (!iommufd) return fail('EBADFD');
    iommufd.attachGroup(this);
    this.iommufd = iommufd;
  }

  /** vfio_group_ioctl_unset_container(): EINVAL without one; EBUSY while device fds are open. */
  unsetContainer(): void {
    if (!this.hasIommu) return fail('EINVAL');
    if (this.container) {
      if (this.containerUsers !== 1) return fail('EBUSY');
      this.detachContainer();
    }
    this.dropIommufd();
  }

  /**
   * vfio_group_ioctl_get_device_fd() up to the new file: name matching (the driver's matcher;
   * ENODEV when nothing matches), then vfio_df_group_open(): EINVAL without a container or
   * iommufd; the first open of the device uses the container (EINVAL before SET_IOMMU) or binds
   * it to the iommufd, then runs the driver's open_device.
   */
  openDeviceFile(name: string): VfioDeviceFile {
    const device = this.deviceByName(name);
    if (!this.hasIommu) return fail('EINVAL');
    const first = device.openCount === 0;
    let binding: IommufdBinding | null = null;
    if (first) {
      if (this.iommufd) binding = this.iommufd.bindGroupDevice(this, device);
      else this.useContainer();
    }
    try {
      device.open();
    } catch (err) {
      if (first) {
        if (binding) binding.release();
        else this.unuseContainer();
      }
      throw err;
    }
    if (first) device.iommufdBinding = binding;
    const file = new VfioDeviceFile(device, { kind: 'group', release: () => this.deviceFileReleased(device) });
    file.flags = O_RDWR | O_CLOEXEC;
    return file;
  }

  /** vfio_device_get_from_name(): the first device whose matcher accepts `name`. */
  private deviceByName(name: string): VfioDevice {
    for (const device of this.devices) {
      if (device.ops.match(device, name)) return device;
    }
    return fail('ENODEV');
  }

  /**
   * vfio_group_use_container(): the open device keeps the group file - and so the group's
   * container - until its last close. Only the container path pins the file: with an iommufd
   * the group fd may be closed (and the group reopened) while its devices stay open.
   */
  private useContainer(): void {
    if (!this.container!.backend) return fail('EINVAL');
    this.containerUsers++;
    this.openedFile!.get();
  }

  /** vfio_group_unuse_container(). */
  private unuseContainer(): void {
    this.containerUsers--;
    this.openedFile!.put();
  }

  /** A group-obtained device fd went away (after the device's close_device on its last close). */
  private deviceFileReleased(device: VfioDevice): void {
    if (device.openCount > 0) return;
    if (device.iommufdBinding) {
      device.iommufdBinding.release();
      device.iommufdBinding = null;
    } else {
      this.unuseContainer();
    }
  }

  private detachContainer(): void {
    const container = this.container!;
    container.detachGroup(this);
    this.container = null;
    this.containerUsers = 0;
  }

  private dropIommufd(): void {
    if (!this.iommufd) return;
    const iommufd = this.iommufd;
    this.iommufd = null;
    iommufd.detachGroup(this);
  }

  /** vfio_group_fops_release(): device fds are gone by now (they hold this file). */
  released(file: VfioGroupFile): void {
    if (this.openedFile !== file) return;
    if (this.container) this.detachContainer();
    this.dropIommufd();
    this.openedFile = null;
  }
}

/** An open /dev/vfio/<N>. */
export class VfioGroupFile extends File {
  constructor(readonly group: VfioGroup) {
    super();
  }

  get path(): string {
    return this.group.path;
  }

  override ioctl(task: Task, request: number, arg: bigint): number {
    const handler = GROUP_IOCTLS.get(request);
    if (!handler) return fail('ENOTTY');
    return handler(this, task, arg);
  }

  protected override release(): void {
    this.group.released(this);
  }
}

const STATUS_MINSZ = vfio_group_status.offsetofend('flags');

/** vfio_group_ioctl_get_status(): argsz < 8 is EINVAL; copies back exactly minsz bytes. */
function getStatus(file: VfioGroupFile, task: Task, arg: bigint): number {
  const status = copyArgszIn(task, arg, vfio_group_status, STATUS_MINSZ);
  status.flags = file.group.statusFlags();
  task.copyToUser(arg, vfio_group_status.encode(status).subarray(0, STATUS_MINSZ));
  return 0;
}

/** vfio_group_ioctl_set_container(): `arg` points at an int fd (EFAULT; EBADF for no such fd). */
function setContainer(file: VfioGroupFile, task: Task, arg: bigint): number {
  const fd = task.getS32(arg);
  const target = task.files.get(fd);
  file.group.setContainer(target);
  return 0;
}

function unsetContainer(file: VfioGroupFile): number {
  file.group.unsetContainer();
  return 0;
}

/** vfio_group_ioctl_get_device_fd(): a NUL-terminated name of at most PAGE_SIZE bytes. */
function getDeviceFd(file: VfioGroupFile, task: Task, arg: bigint): number {
  const name = task.strndupUser(arg, PAGE_SIZE);
  const deviceFile = file.group.openDeviceFile(name);
  return task.files.install(deviceFile);
}

const GROUP_IOCTLS = ioctlTable<VfioGroupFile>([
  [VFIO_GROUP_GET_STATUS, 'VFIO_GROUP_GET_STATUS', getStatus],
  [VFIO_GROUP_SET_CONTAINER, 'VFIO_GROUP_SET_CONTAINER', setContainer],
  [VFIO_GROUP_UNSET_CONTAINER, 'VFIO_GROUP_UNSET_CONTAINER', unsetContainer],
  [VFIO_GROUP_GET_DEVICE_FD, 'VFIO_GROUP_GET_DEVICE_FD', getDeviceFd],
]);
