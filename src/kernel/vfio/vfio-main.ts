/**
 * The VFIO device core (drivers/vfio/vfio_main.c): the vfio_device a driver registers, the
 * device fd it hands out, and the VFIO_DEVICE_FEATURE framework.
 */
import { fail } from '../../uapi/errno.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  VFIO_DEVICE_FEATURE,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_START,
  VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP,
  VFIO_DEVICE_FEATURE_GET,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_MIG_DATA_SIZE,
  VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE,
  VFIO_DEVICE_FEATURE_MIGRATION,
  VFIO_DEVICE_FEATURE_PROBE,
  VFIO_DEVICE_FEATURE_SET,
  vfio_device_feature,
} from '../../uapi/vfio.js';
import { File, type FileMapping, type MmapRequest } from '../vfs/file.js';
import type { Task } from '../vfs/task.js';
import type { PciDev } from '../pci.js';
import type { VfioGroup } from './group.js';
import { copyArgszIn } from './argsz.js';
import * as cdev from './device-cdev.js';

/** What a VFIO bus driver (vfio-pci) provides: struct vfio_device_ops. */
export interface VfioDeviceOps {
  readonly name: string;
  openDevice(device: VfioDevice): void;
  closeDevice(device: VfioDevice): void;
  ioctl(device: VfioDevice, task: Task, request: number, arg: bigint): number;
  read(device: VfioDevice, task: Task, length: number, offset: bigint): Uint8Array;
  write(device: VfioDevice, task: Task, data: Uint8Array, offset: bigint): number;
  mmap(device: VfioDevice, task: Task, request: MmapRequest): FileMapping;
  /** Driver features; `data` is the user address of the payload after the 8-byte header. */
  deviceFeature(device: VfioDevice, task: Task, flags: number, data: bigint, dataLength: number): number;
  /** GET_DEVICE_FD name matching; throws for a malformed option string. */
  match(device: VfioDevice, buf: string): boolean;
  /**
   * BIND_IOMMUFD's VF token check (match_token_uuid): `uuid` is the 16-byte token, or null
   * without VFIO_DEVICE_BIND_FLAG_TOKEN; throws EACCES/EINVAL. Optional: a driver without it
   * refuses the token flag (EINVAL).
   */
  matchTokenUuid?(device: VfioDevice, uuid: Uint8Array | null): void;
  /**
   * The runtime-PM bracket (pm_runtime_resume_and_get ... pm_runtime_put) the core puts around
   * every device ioctl once access is granted (vfio_device_pm_runtime_get). Optional: a driver
   * without runtime PM runs the ioctl as is.
   */
  runtimePm?<T>(device: VfioDevice, access: () => T): T;
}

export class VfioDevice {
  /** Number of open device files (group path) or bound cdev files. */
  openCount = 0;
  /** Device files open on this device, for teardown and tests. */
  readonly files = new Set<VfioDeviceFile>();
  /** Driver state (vfio-pci keeps its vfio_pci_core_device here). */
  driverData: unknown;
  /** Set while bound to an iommufd through the cdev or the compat group path. */
  iommufdBinding: cdev.IommufdBinding | null = null;
  /** device->group: the VFIO group it belongs to, set when it is registered (vfio.ts). */
  group: VfioGroup | null = null;

  constructor(
    readonly pdev: PciDev,
    readonly ops: VfioDeviceOps,
    /** N of /dev/vfio/devices/vfioN. */
    readonly cdevIndex: number,
  ) {}

  get name(): string {
    return this.pdev.bdf;
  }

  /** vfio_df_open(): the first open runs the driver's open_device. */
  open(): void {
    if (this.openCount === 0) this.ops.openDevice(this);
    this.openCount++;
  }

  /** vfio_df_close(): the last close runs the driver's close_device. */
  close(): void {
    if (this.openCount === 0) return;
    if (--this.openCount === 0) this.ops.closeDevice(this);
  }
}

/** How the file was obtained: through a group (GET_DEVICE_FD) or by opening the cdev. */
export type DeviceFileOrigin = { kind: 'group'; release: () => void } | { kind: 'cdev' };

/** struct vfio_device_file: one open device fd. */
export class VfioDeviceFile extends File {
  readonly path: string;
  /** Group fds are usable at once; a cdev fd only after BIND_IOMMUFD. */
  accessGranted: boolean;
  /** f_pos: where read()/write() (not pread/pwrite) access the device. */
  private position = 0n;

  constructor(
    readonly device: VfioDevice,
    readonly origin: DeviceFileOrigin,
  ) {
    super();
    this.accessGranted = origin.kind === 'group';
    // anon_inode_getfile_fmode(..., FMODE_PREAD | FMODE_PWRITE) for group fds; open() for cdevs.
    this.positional = true;
    this.path = origin.kind === 'group' ? 'anon_inode:[vfio-device]' : `/dev/vfio/devices/vfio${device.cdevIndex}`;
    device.files.add(this);
  }

  override ioctl(task: Task, request: number, arg: bigint): number {
    if (request === VFIO_DEVICE_BIND_IOMMUFD) return cdev.bindIommufd(this, task, arg);
    if (!this.accessGranted) return fail('EINVAL');
    // vfio_device_fops_unl_ioctl(): every other ioctl - core ones and failing ones included -
    // resumes the device first (semantics.md §3), which may end low power (§3.4).
    const { device } = this;
    if (device.ops.runtimePm) return device.ops.runtimePm(device, () => this.dispatchIoctl(task, request, arg));
    return this.dispatchIoctl(task, request, arg);
  }

  private dispatchIoctl(task: Task, request: number, arg: bigint): number {
    if (this.origin.kind === 'cdev') {
      if (request === VFIO_DEVICE_ATTACH_IOMMUFD_PT) return cdev.attachIommufdPt(this, task, arg);
      if (request === VFIO_DEVICE_DETACH_IOMMUFD_PT) return cdev.detachIommufdPt(this, task, arg);
    }
    if (request === VFIO_DEVICE_FEATURE) return deviceFeature(this.device, task, arg);
    return this.device.ops.ioctl(this.device, task, request, arg);
  }

  override pread(task: Task, length: number, offset: bigint): Uint8Array {
    if (!this.accessGranted) return fail('EINVAL');
    return this.device.ops.read(this.device, task, length, offset);
  }

  override pwrite(task: Task, data: Uint8Array, offset: bigint): number {
    if (!this.accessGranted) return fail('EINVAL');
    return this.device.ops.write(this.device, task, data, offset);
  }

  /**
   * read()/write() go through the file position (f_pos, 0 at open), which the driver moves by
   * the bytes it transferred (vfio_pci_rw: *ppos += done), as for any seekable file.
   */
  override read(task: Task, length: number): Uint8Array {
    const data = this.pread(task, length, this.position);
    this.position += BigInt(data.length);
    return data;
  }

  override write(task: Task, data: Uint8Array): number {
    const done = this.pwrite(task, data, this.position);
    this.position += BigInt(done);
    return done;
  }

  override mmap(task: Task, request: MmapRequest): FileMapping {
    if (!this.accessGranted) return fail('EINVAL');
    return this.device.ops.mmap(this.device, task, request);
  }

  protected override release(): void {
    this.device.files.delete(this);
    if (this.origin.kind === 'cdev') {
      cdev.releaseCdev(this);
      return;
    }
    this.device.close();
    this.origin.release();
  }
}

const FEATURE_MINSZ = 8;

/** vfio_ioctl_device_feature(): the checks every feature shares, then dispatch by index. */
function deviceFeature(device: VfioDevice, task: Task, arg: bigint): number {
  const feature = copyArgszIn(task, arg, vfio_device_feature, FEATURE_MINSZ);
  const { flags } = feature;
  const known =
    VFIO_DEVICE_FEATURE_MASK | VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET | VFIO_DEVICE_FEATURE_PROBE;
  if (flags & ~known) return fail('EINVAL');
  const getAndSet = VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET;
  if (!(flags & VFIO_DEVICE_FEATURE_PROBE) && (flags & getAndSet) === getAndSet) return fail('EINVAL');

  switch (flags & VFIO_DEVICE_FEATURE_MASK) {
    // No driver in the emulation has migration or DMA-logging ops yet.
    case VFIO_DEVICE_FEATURE_MIGRATION:
    case VFIO_DEVICE_FEATURE_MIG_DEVICE_STATE:
    case VFIO_DEVICE_FEATURE_MIG_DATA_SIZE:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_START:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_STOP:
    case VFIO_DEVICE_FEATURE_DMA_LOGGING_REPORT:
      return fail('ENOTTY');
    default:
      return device.ops.deviceFeature(device, task, flags, arg + BigInt(FEATURE_MINSZ), feature.argsz - FEATURE_MINSZ);
  }
}

/**
 * vfio_check_feature(): whether the requested ops are supported and the payload is big
 * enough. Returns false for a successful PROBE (nothing more to do), true to go on.
 */
export function checkFeature(flags: number, dataLength: number, supportedOps: number, minsz: number): boolean {
  const ops = flags & (VFIO_DEVICE_FEATURE_GET | VFIO_DEVICE_FEATURE_SET);
  if (ops & ~supportedOps) return fail('EINVAL');
  if (flags & VFIO_DEVICE_FEATURE_PROBE) return false;
  if (!ops) return fail('EINVAL');
  if (dataLength < minsz) return fail('EINVAL');
  return true;
}
