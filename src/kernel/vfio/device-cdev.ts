/**
 * The device cdev path (drivers/vfio/device_cdev.c): /dev/vfio/devices/vfioN is bound to an
 * iommufd with BIND_IOMMUFD before anything else works, then attached to an IOAS or a HWPT
 * (semantics.md 4); plus the physical-device glue of drivers/vfio/iommufd.c that both the cdev
 * and the iommufd-backed group path use (bind, attach/replace, detach, unbind).
 *
 * The group path and the cdev path exclude each other: a bind blocks the device's group from
 * opening, and an open group makes the bind fail with EBUSY (group.ts blockGroup).
 */
import { fail } from '../../uapi/errno.js';
import {
  VFIO_DEVICE_ATTACH_PASID,
  VFIO_DEVICE_BIND_FLAG_TOKEN,
  VFIO_DEVICE_DETACH_PASID,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
} from '../../uapi/vfio.js';
import {
  iommufdDeviceAttach,
  iommufdDeviceBind,
  iommufdDeviceDetach,
  iommufdDeviceReplace,
  iommufdDeviceUnbind,
  type IommufdDevice,
} from '../iommufd/device.js';
import { copyStructFromUser, type IommufdCtx } from '../iommufd/object.js';
import { IommufdVfioHandle } from '../iommufd/vfio-compat.js';
import type { Task } from '../vfs/task.js';
import { VFIO_GROUP_IOMMUFD, type VfioGroupIommufdFile } from './group.js';
import type { VfioDevice, VfioDeviceFile } from './vfio-main.js';

/** The device's iommufd binding (the iommufd device object and its attachment). */
export interface IommufdBinding {
  readonly devId: number;
  release(): void;
}

const BIND_MINSZ = vfio_device_bind_iommufd.offsetofend('out_devid');
const ATTACH_MINSZ = vfio_device_attach_iommufd_pt.offsetofend('pt_id');
const DETACH_MINSZ = vfio_device_detach_iommufd_pt.offsetofend('flags');
const UUID_SIZE = 16;

/**
 * vdev->iommufd_device and vdev->iommufd_attached: a device bound to an iommufd context, through
 * its cdev or through an iommufd-backed group.
 */
export class VfioIommufdBinding implements IommufdBinding {
  /** Attached to a page table (vdev->iommufd_attached). */
  attached = false;
  private released = false;

  constructor(
    readonly idev: IommufdDevice,
    private readonly onRelease: (() => void) | null,
  ) {}

  get devId(): number {
    return this.idev.id;
  }

  get ctx(): IommufdCtx {
    return this.idev.ctx;
  }

  /** vfio_iommufd_physical_unbind(): detach if attached, then the device object goes. */
  release(): void {
    if (this.released) return;
    this.released = true;
    detachIoas(this);
    iommufdDeviceUnbind(this.idev);
    this.onRelease?.();
  }
}

/** vfio_iommufd_physical_bind(): iommufd_device_bind() for the device's PCI function. */
export function vfioIommufdPhysicalBind(
  ctx: IommufdCtx,
  device: VfioDevice,
  onRelease: (() => void) | null,
): VfioIommufdBinding {
  return new VfioIommufdBinding(iommufdDeviceBind(ctx, device.pdev), onRelease);
}

/** vfio_iommufd_physical_attach_ioas(): attach, or replace when already attached. */
export function attachIoas(binding: VfioIommufdBinding, ptId: number): number {
  const id = binding.attached ? iommufdDeviceReplace(binding.idev, ptId) : iommufdDeviceAttach(binding.idev, ptId);
  binding.attached = true;
  return id;
}

/** vfio_iommufd_physical_detach_ioas(): a no-op when not attached. */
export function detachIoas(binding: VfioIommufdBinding): void {
  if (!binding.attached) return;
  iommufdDeviceDetach(binding.idev);
  binding.attached = false;
}

/** iommufd_ctx_from_fd(): EBADF for no such fd, EBADFD for a file that is not an iommufd. */
function iommufdCtxFromFd(task: Task, fd: number): IommufdCtx {
  const file = task.files.lookup(fd) ?? fail('EBADF');
  const handle = (file as Partial<VfioGroupIommufdFile>)[VFIO_GROUP_IOMMUFD];
  if (!(handle instanceof IommufdVfioHandle)) return fail('EBADFD');
  return handle.ctx;
}

/**
 * vfio_df_ioctl_bind_iommufd(): argsz >= 16, larger structs through copy_struct_from_user
 * (E2BIG for unknown non-zero bytes past the 24-byte struct, 6.18 behaviour); then, in the
 * kernel's order: bad fd number or flags (EINVAL), a group-obtained fd (EINVAL), the group open
 * (EBUSY), already bound (EINVAL), the VF token, the iommufd (EBADF/EBADFD), the device bound
 * by another cdev fd (EINVAL), the iommufd bind (EPERM), the driver's open_device.
 */
export function bindIommufd(df: VfioDeviceFile, task: Task, arg: bigint): number {
  const device = df.device;
  const userSize = task.getU32(arg);
  if (userSize < BIND_MINSZ) return fail('EINVAL');
  const bind = vfio_device_bind_iommufd.decode(copyStructFromUser(task, arg, vfio_device_bind_iommufd.size, userSize));
  if (bind.iommufd < 0 || bind.flags & ~VFIO_DEVICE_BIND_FLAG_TOKEN) return fail('EINVAL');
  if (df.origin.kind === 'group') return fail('EINVAL');

  const group = device.group;
  group?.blockGroup();
  let binding: VfioIommufdBinding | null = null;
  try {
    if (df.accessGranted) return fail('EINVAL');
    checkToken(device, task, bind.flags, bind.token_uuid_ptr);
    const ctx = iommufdCtxFromFd(task, bind.iommufd);
    // Only the group path may open a device several times (vfio_df_open).
    if (device.openCount !== 0) return fail('EINVAL');
    binding = vfioIommufdPhysicalBind(ctx, device, () => group?.unblockGroup());
    device.open();
  } catch (err) {
    if (binding) binding.release();
    else group?.unblockGroup();
    throw err;
  }
  try {
    const devid = new Uint8Array(4);
    new DataView(devid.buffer).setUint32(0, binding.devId, true);
    task.copyToUser(arg + BigInt(vfio_device_bind_iommufd.offsetof('out_devid')), devid);
  } catch (err) {
    device.close();
    binding.release();
    throw err;
  }
  device.iommufdBinding = binding;
  df.accessGranted = true;
  return 0;
}

/**
 * vfio_df_check_token(): a driver without token support refuses FLAG_TOKEN (EINVAL); otherwise
 * the driver judges the token (or its absence). A bad token pointer is EFAULT.
 */
function checkToken(device: VfioDevice, task: Task, flags: number, uuidPtr: bigint): void {
  const match = device.ops.matchTokenUuid;
  if (!match) {
    if (flags & VFIO_DEVICE_BIND_FLAG_TOKEN) fail('EINVAL');
    return;
  }
  if (!(flags & VFIO_DEVICE_BIND_FLAG_TOKEN)) return match.call(device.ops, device, null);
  const uuid = task.copyFromUser(uuidPtr, UUID_SIZE);
  match.call(device.ops, device, uuid);
}

function bindingOf(df: VfioDeviceFile): VfioIommufdBinding {
  const binding = df.device.iommufdBinding;
  if (!(binding instanceof VfioIommufdBinding)) return fail('EINVAL');
  return binding;
}

/**
 * vfio_df_ioctl_attach_pt(): argsz >= 12; only the PASID flag is known (EINVAL), and it is
 * EOPNOTSUPP: vfio-pci's edu devices have no PASID capability and the VT-d model no PASID
 * support, so the driver offers no pasid_attach_ioas. pt_id is written back (the automatic HWPT
 * when attaching to an IOAS); attaching again replaces.
 */
export function attachIommufdPt(df: VfioDeviceFile, task: Task, arg: bigint): number {
  const attach = vfio_device_attach_iommufd_pt.decode(task.copyFromUser(arg, ATTACH_MINSZ));
  if (attach.argsz < ATTACH_MINSZ) return fail('EINVAL');
  if (attach.flags & ~VFIO_DEVICE_ATTACH_PASID) return fail('EINVAL');
  if (attach.flags & VFIO_DEVICE_ATTACH_PASID) return fail('EOPNOTSUPP');
  const binding = bindingOf(df);
  const ptId = attachIoas(binding, attach.pt_id);
  try {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, ptId, true);
    task.copyToUser(arg + BigInt(vfio_device_attach_iommufd_pt.offsetof('pt_id')), out);
  } catch (err) {
    // out_detach: the kernel detaches even if this call replaced an earlier attachment.
    detachIoas(binding);
    throw err;
  }
  return 0;
}

/** vfio_df_ioctl_detach_pt(): argsz >= 8; PASID is EOPNOTSUPP as for attach; idempotent. */
export function detachIommufdPt(df: VfioDeviceFile, task: Task, arg: bigint): number {
  const detach = vfio_device_detach_iommufd_pt.decode(task.copyFromUser(arg, DETACH_MINSZ));
  if (detach.argsz < DETACH_MINSZ) return fail('EINVAL');
  if (detach.flags & ~VFIO_DEVICE_DETACH_PASID) return fail('EINVAL');
  if (detach.flags & VFIO_DEVICE_DETACH_PASID) return fail('EOPNOTSUPP');
  detachIoas(bindingOf(df));
  return 0;
}

/**
 * Release of a cdev fd (vfio_df_unbind_iommufd): when it was the bound one, the driver's
 * close_device runs first, then the device is detached and unbound, and the group unblocked.
 */
export function releaseCdev(df: VfioDeviceFile): void {
  if (!df.accessGranted) return;
  df.accessGranted = false;
  const device = df.device;
  const binding = device.iommufdBinding;
  device.close();
  device.iommufdBinding = null;
  binding?.release();
}
