/**
 * The device cdev path (drivers/vfio/device_cdev.c): /dev/vfio/devices/vfioN, bound to an
 * iommufd with BIND_IOMMUFD before anything else works.
 *
 * The iommufd side is not built yet: BIND fails as the kernel does for a group-obtained fd,
 * and with ENODEV for a cdev fd, until the iommufd work lands.
 */
import { fail } from '../../uapi/errno.js';
import type { Task } from '../vfs/task.js';
import type { VfioDeviceFile } from './vfio-main.js';

/** The device's iommufd binding (the iommufd device object and its attachment). */
export interface IommufdBinding {
  readonly devId: number;
  release(): void;
}

export function bindIommufd(df: VfioDeviceFile, _task: Task, _arg: bigint): number {
  if (df.origin.kind === 'group') return fail('EINVAL');
  return fail('ENODEV');
}

export function attachIommufdPt(_df: VfioDeviceFile, _task: Task, _arg: bigint): number {
  return fail('EINVAL');
}

export function detachIommufdPt(_df: VfioDeviceFile, _task: Task, _arg: bigint): number {
  return fail('EINVAL');
}

export function releaseCdev(df: VfioDeviceFile): void {
  if (df.accessGranted) df.device.close();
}
