/**
 * PCI hot reset through vfio-pci (drivers/vfio/pci/vfio_pci_core.c: the dev_set, hot reset
 * info, VFIO_DEVICE_PCI_HOT_RESET, and the reset owed at last close; semantics.md §6.10).
 *
 * Reset topology (kernel/pci.ts PciBus): there are no hotplug slots, a root bus (bus 0) has no
 * bridge above it and so no bus reset, and every other bus sits below a bridge whose secondary
 * bus reset resets all functions on it. The vfio "device set" of a function on a non-root bus
 * is every function of that bus bound to vfio-pci; on a root bus it is the function alone.
 */
import type { PciDev } from '../../pci.js';
import { fail } from '../../../uapi/errno.js';
import {
  VFIO_PCI_DEVID_NOT_OWNED,
  VFIO_PCI_DEVID_OWNED,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID,
  VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED,
  vfio_pci_dependent_device,
  vfio_pci_hot_reset,
  vfio_pci_hot_reset_info,
  vfioMinsz,
} from '../../../uapi/vfio.js';
import { encodeArray } from '../../../uapi/layout.js';
import type { Task } from '../../vfs/task.js';
import type { IommufdCtx } from '../../iommufd/object.js';
import { copyArgszIn } from '../argsz.js';
import { VfioIommufdBinding } from '../device-cdev.js';
import { VfioGroupFile, type VfioGroup } from '../group.js';
import { restoreConfigState, type VfioPciCoreDevice } from './vfio-pci-core.js';
import { PCI_D0 } from './vfio-pci-config.js';

/**
 * The functions a reset of `pdev`'s bus reaches (vfio_pci_for_each_slot_or_bus), or ENODEV
 * when neither a slot nor a bus reset is possible (pci_probe_reset_slot/_bus).
 */
function resetScope(pdev: PciDev): readonly PciDev[] {
  const bus = pdev.bus;
  if (!bus || bus.isRoot) return fail('ENODEV');
  return bus.devices;
}

/** vdev->vdev.dev_set: the vfio-pci devices that share the reset. */
function devSet(pdev: PciDev): readonly PciDev[] {
  const bus = pdev.bus;
  if (!bus || bus.isRoot) return [pdev];
  return bus.devices.filter((d) => d.driver === 'vfio-pci');
}

const coreOf = (pdev: PciDev): VfioPciCoreDevice | null => (pdev.drvdata as VfioPciCoreDevice | null) ?? null;

/**
 * vfio_pci_dev_set_resettable(): a bus reset exists and every function it reaches is in the
 * device set (bound to vfio-pci), so every driver involved coordinates with it.
 */
function devSetResettable(pdev: PciDev): readonly PciDev[] | null {
  const bus = pdev.bus;
  if (!bus || bus.isRoot) return null;
  const set = devSet(pdev);
  return bus.devices.every((d) => set.includes(d)) ? bus.devices : null;
}

/** pci_reset_bus(): saves each function's config state, resets the bus, restores. */
export function pciResetBus(scope: readonly PciDev[]): void {
  const saved = scope.map((d) => d.fn.config.snapshot());
  for (const d of scope) d.fn.busReset();
  scope.forEach((d, i) => restoreConfigState(d.fn, saved[i]!));
}

/** vfio_device_cdev_opened(): the device was opened by binding its cdev. */
function cdevOpened(vdev: VfioPciCoreDevice): boolean {
  for (const file of vdev.device.files) if (file.origin.kind === 'cdev' && file.accessGranted) return true;
  return false;
}

function iommufdCtxOf(vdev: VfioPciCoreDevice): IommufdCtx | null {
  const binding = vdev.device.iommufdBinding;
  return binding instanceof VfioIommufdBinding ? binding.ctx : null;
}

/**
 * vfio_iommufd_get_dev_id(): the device's id if bound to `ictx`; ENOENT (reported as
 * VFIO_PCI_DEVID_OWNED) if not bound but its IOMMU group is owned by `ictx`; else not owned.
 */
function devIdFor(pdev: PciDev, ictx: IommufdCtx | null): number {
  const binding = coreOf(pdev)?.device.iommufdBinding;
  if (ictx && binding instanceof VfioIommufdBinding && binding.ctx === ictx) return binding.devId;
  if (ictx && pdev.group.dmaOwner === ictx) return VFIO_PCI_DEVID_OWNED;
  return VFIO_PCI_DEVID_NOT_OWNED;
}

const devfnOf = (pdev: PciDev): number => (pdev.fn.address.device << 3) | pdev.fn.address.function;

/**
 * vfio_pci_ioctl_get_pci_hot_reset_info(): ENODEV without a reset; ENOSPC with the header
 * (count = functions affected) copied back when the array is too small; otherwise the affected
 * functions, by IOMMU group (group-opened device) or by iommufd device id (cdev-opened).
 */
export function vfioPciGetPciHotResetInfo(vdev: VfioPciCoreDevice, task: Task, arg: bigint): number {
  const minsz = vfioMinsz.vfio_pci_hot_reset_info.minsz;
  const hdr = copyArgszIn(task, arg, vfio_pci_hot_reset_info, minsz);
  hdr.flags = 0;
  const scope = resetScope(vdev.device.pdev);
  const entrySize = vfio_pci_dependent_device.size;
  if (scope.length > Math.floor((hdr.argsz - minsz) / entrySize)) {
    hdr.count = scope.length;
    task.copyToUser(arg, vfio_pci_hot_reset_info.encode(hdr).subarray(0, minsz));
    return fail('ENOSPC');
  }
  let flags = 0;
  const ictx = cdevOpened(vdev) ? iommufdCtxOf(vdev) : null;
  if (cdevOpened(vdev)) flags = VFIO_PCI_HOT_RESET_FLAG_DEV_ID | VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
  const set = devSet(vdev.device.pdev);
  const entries = scope.map((pdev) => {
    const where = { segment: pdev.fn.address.segment, bus: pdev.fn.address.bus, devfn: devfnOf(pdev) };
    if (!(flags & VFIO_PCI_HOT_RESET_FLAG_DEV_ID)) return { ...where, group_id: pdev.group.id };
    // Every function reset must be in the device set; one outside it is never owned.
    const devid = set.includes(pdev) ? devIdFor(pdev, ictx) : VFIO_PCI_DEVID_NOT_OWNED;
    if (devid === VFIO_PCI_DEVID_NOT_OWNED) flags &= ~VFIO_PCI_HOT_RESET_FLAG_DEV_ID_OWNED;
    return { ...where, devid };
  });
  task.copyToUser(arg + BigInt(minsz), encodeArray(vfio_pci_dependent_device, entries));
  hdr.count = entries.length;
  hdr.flags = flags;
  task.copyToUser(arg, vfio_pci_hot_reset_info.encode(hdr).subarray(0, minsz));
  return 0;
}

/** Who may reset: the holder of these group fds, or of this iommufd context. */
type ResetOwner = { readonly groups: readonly VfioGroup[] } | { readonly ictx: IommufdCtx | null };

/**
 * vfio_pci_dev_set_hot_reset(): EINVAL unless the whole reset domain is in the device set and
 * every device of the set is owned by the caller; then the bus reset.
 */
function devSetHotReset(vdev: VfioPciCoreDevice, owner: ResetOwner): number {
  const scope = devSetResettable(vdev.device.pdev);
  if (!scope) return fail('EINVAL');
  for (const member of devSet(vdev.device.pdev)) {
    const owned =
      'groups' in owner
        ? owner.groups.some((g) => g.devices.some((d) => d.pdev === member))
        : devIdFor(member, owner.ictx) !== VFIO_PCI_DEVID_NOT_OWNED;
    if (!owned) return fail('EINVAL');
  }
  for (const member of devSet(vdev.device.pdev)) coreOf(member)?.setPowerState(PCI_D0);
  pciResetBus(scope);
  return 0;
}

/**
 * vfio_pci_ioctl_pci_hot_reset(): flags must be 0; group-opened devices pass group fds
 * (count > 0), cdev-opened ones an empty array (count 0) - the wrong form is EINVAL.
 */
export function vfioPciPciHotReset(vdev: VfioPciCoreDevice, task: Task, arg: bigint): number {
  const minsz = vfioMinsz.vfio_pci_hot_reset.minsz;
  const hdr = copyArgszIn(task, arg, vfio_pci_hot_reset, minsz);
  if (hdr.flags) return fail('EINVAL');
  const cdev = cdevOpened(vdev);
  if ((hdr.count !== 0) === cdev) return fail('EINVAL');
  const scope = resetScope(vdev.device.pdev);
  if (!hdr.count) return devSetHotReset(vdev, { ictx: iommufdCtxOf(vdev) });
  // One group per affected device at most: a longer array is refused before it is read.
  if (hdr.count > scope.length) return fail('EINVAL');
  const raw = task.copyFromUser(arg + BigInt(minsz), hdr.count * 4);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const groups: VfioGroup[] = [];
  for (let i = 0; i < hdr.count; i++) {
    const file = task.files.lookup(view.getInt32(4 * i, true));
    if (!file) return fail('EBADF');
    if (!(file instanceof VfioGroupFile)) return fail('EINVAL');
    groups.push(file.group);
  }
  return devSetHotReset(vdev, { groups });
}

/**
 * vfio_pci_dev_set_try_reset(), at a device's last close: when no other device of the set is
 * open and one of them owes a reset, and the bus can be reset, reset it now.
 */
export function vfioPciDevSetTryReset(vdev: VfioPciCoreDevice): void {
  const members = devSet(vdev.device.pdev).map(coreOf);
  if (members.some((m) => m && m !== vdev && m.device.openCount > 0)) return;
  if (!members.some((m) => m?.needsReset)) return;
  const scope = devSetResettable(vdev.device.pdev);
  if (!scope) return;
  pciResetBus(scope);
  for (const m of members) if (m) m.needsReset = false;
}
