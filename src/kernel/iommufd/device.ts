/**
 * iommufd device objects (drivers/iommu/iommufd/device.c): a physical device bound to a context
 * by a VFIO driver, its attachment to a HW page table - directly, or through an IOAS with an
 * automatic HWPT - and IOMMU_GET_HW_INFO. Rules: semantics.md 4 and 7.11.
 *
 * Devices of one IOMMU group share an iommufd_group: the group is attached to a domain when its
 * first device attaches and blocked when its last one detaches. Each attached device's reserved
 * regions (the VT-d interrupt window) are reserved in the IOAS, owned by that device.
 */
import { type ErrnoCode, fail, SyscallError } from '../../uapi/errno.js';
import {
  IOMMU_HW_CAP_DIRTY_TRACKING,
  IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED,
  IOMMU_HW_INFO_FLAG_INPUT_TYPE,
  IOMMU_HW_INFO_TYPE_DEFAULT,
  IOMMU_HW_INFO_TYPE_INTEL_VTD,
  IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
  iommu_hw_info_vtd,
  type IommuHwInfo,
} from '../../uapi/iommufd.js';
import type { VtdIommu } from '../../hw/iommu/vtd.js';
import type { IommuGroup } from '../iommu/group.js';
import type { PciDev } from '../pci.js';
import { PROT_WRITE } from '../vfs/mm.js';
import { userAddress } from '../vfs/task.js';
import { hwptPagingAlloc, type HwptPaging } from './hw-pagetable.js';
import type { Ioas } from './ioas.js';
import { type IommufdCtx, IommufdObject, type Ucmd } from './object.js';

/** ECAP_REG.IR (bit 3): interrupt remapping, which makes MSIs isolated. */
const ECAP_IR = 1n << 3n;
/** ECAP_REG.DT (bit 2): device TLBs, without which intel-iommu never enables ATS. */
const ECAP_DT = 1n << 2n;

/** struct iommufd_group: per context, per IOMMU group. */
export class IommufdGroup {
  refs = 1;
  hwpt: HwptPaging | null = null;
  /** Attached devices, in attach order (igroup->device_list). */
  readonly devices: IommufdDevice[] = [];

  constructor(
    readonly ctx: IommufdCtx,
    readonly group: IommuGroup,
  ) {}

  put(): void {
    if (--this.refs > 0) return;
    if (this.hwpt || this.devices.length) throw new Error('iommufd_group released while attached');
    if (this.ctx.groups.get(this.group.id) === this) this.ctx.groups.delete(this.group.id);
  }
}

export class IommufdDevice extends IommufdObject {
  readonly type = 'DEVICE' as const;
  /** IOMMU_CAP_ENFORCE_CACHE_COHERENCY: VT-d ECAP.SC, which the model does not have. */
  readonly enforceCacheCoherency = false;

  constructor(
    ctx: IommufdCtx,
    readonly pdev: PciDev,
    readonly igroup: IommufdGroup,
  ) {
    super(ctx);
  }

  get iommu(): VtdIommu {
    return this.pdev.group.iommu;
  }

  /** iommufd_device_destroy(): DMA ownership, the iommufd_group and the context reference go. */
  destroy(): void {
    this.pdev.group.releaseDmaOwner(this.ctx);
    this.igroup.put();
    this.ctx.file.put();
  }
}

/** iommufd_get_device(). */
export function getDevice(ctx: IommufdCtx, id: number): IommufdDevice {
  return ctx.getObject(id, 'DEVICE') as IommufdDevice;
}

/** iommufd_get_group(): the context's iommufd_group for the device's IOMMU group. */
function getGroup(ctx: IommufdCtx, group: IommuGroup): IommufdGroup {
  const existing = ctx.groups.get(group.id);
  if (existing) {
    existing.refs++;
    return existing;
  }
  const igroup = new IommufdGroup(ctx, group);
  ctx.groups.set(group.id, igroup);
  return igroup;
}

/**
 * iommufd_device_bind(): the device joins the context. EPERM when the IOMMU cannot isolate MSIs
 * (allow_unsafe_interrupts is 0) or when its IOMMU group is owned by anyone else: a host driver
 * or another context (iommu_device_claim_dma_owner answers EPERM for a different owner).
 */
export function iommufdDeviceBind(ctx: IommufdCtx, pdev: PciDev): IommufdDevice {
  const group = pdev.group;
  const igroup = getGroup(ctx, group);
  try {
    if (!(group.iommu.ecapReg & ECAP_IR)) return fail('EPERM');
    if (group.dmaOwner !== null && group.dmaOwner !== ctx) return fail('EPERM');
    group.claimDmaOwner(ctx);
  } catch (err) {
    igroup.put();
    throw err;
  }
  const idev = ctx.allocObject(new IommufdDevice(ctx, pdev, igroup));
  ctx.file.get();
  // The binding driver is a user until iommufd_device_unbind().
  idev.users++;
  ctx.finalize(idev);
  return idev;
}

/** iommufd_device_unbind(). */
export function iommufdDeviceUnbind(idev: IommufdDevice): void {
  idev.ctx.destroyUser(idev);
}

/**
 * iommufd_device_attach(): attaches to a HWPT, or to an IOAS through a compatible automatic HWPT
 * (reused or created). Returns the HWPT id.
 */
export function iommufdDeviceAttach(idev: IommufdDevice, ptId: number): number {
  const id = changePt(idev, ptId, false);
  // Pairs with iommufd_device_detach().
  idev.users++;
  return id;
}

/** iommufd_device_replace(): like detach + attach, but no change at all on failure. */
export function iommufdDeviceReplace(idev: IommufdDevice, ptId: number): number {
  return changePt(idev, ptId, true);
}

/** iommufd_device_detach(): back to blocked DMA; an automatic HWPT goes with its last device. */
export function iommufdDeviceDetach(idev: IommufdDevice): void {
  const hwpt = hwPagetableDetach(idev);
  hwPagetablePut(idev.ctx, hwpt);
  idev.users--;
}

/** iommufd_device_change_pt(). */
function changePt(idev: IommufdDevice, ptId: number, replace: boolean): number {
  const ctx = idev.ctx;
  const pt = ctx.getObject(ptId);
  let result: { destroy: HwptPaging | null; id: number };
  switch (pt.type) {
    case 'HWPT_PAGING':
      result = { destroy: replace ? doReplace(idev, pt as HwptPaging) : doAttach(idev, pt as HwptPaging), id: ptId };
      break;
    case 'IOAS':
      result = autoGetDomain(idev, pt as Ioas, replace);
      break;
    default:
      return fail('EINVAL');
  }
  if (result.destroy) hwPagetablePut(ctx, result.destroy);
  return result.id;
}

/**
 * iommufd_device_auto_get_domain(): any automatic HWPT of the IOAS that accepts the device
 * (EINVAL means incompatible: try the next), else a new one. A new one is attached before it
 * is filled when attaching, after when replacing.
 */
function autoGetDomain(idev: IommufdDevice, ioas: Ioas, replace: boolean): { destroy: HwptPaging | null; id: number } {
  for (const hwpt of [...ioas.hwptList]) {
    if (!hwpt.autoDomain) continue;
    try {
      return { destroy: replace ? doReplace(idev, hwpt) : doAttach(idev, hwpt), id: hwpt.id };
    } catch (err) {
      if (errnoOf(err) === 'EINVAL') continue;
      throw err;
    }
  }
  const ctx = idev.ctx;
  const hwpt = hwptPagingAlloc(ctx, ioas, idev, 0, !replace, false);
  let destroy: HwptPaging | null = null;
  if (replace) {
    try {
      destroy = doReplace(idev, hwpt);
    } catch (err) {
      ctx.abortAndDestroy(hwpt);
      throw err;
    }
  }
  hwpt.autoDomain = true;
  ctx.finalize(hwpt);
  return { destroy, id: hwpt.id };
}

function doAttach(idev: IommufdDevice, hwpt: HwptPaging): null {
  hwPagetableAttach(hwpt, idev);
  return null;
}

/** The device's reserved regions as intel-iommu reports them: the interrupt window. */
function resvRegions(idev: IommufdDevice): { start: bigint; last: bigint }[] {
  return idev.iommu.reservedRegions.map((r) => ({ start: r.start, last: r.last }));
}

/**
 * iommu_attach_group() / iommu_group_replace_domain(), as intel_iommu_attach_device() answers:
 * a domain with dirty tracking on an IOMMU without it is EINVAL (paging_domain_compatible);
 * then a HWPT with a fault queue needs page requests, which need PRI, which no device here has
 * (iopf_for_domain_set -> intel_iommu_enable_iopf: ENODEV). Attach and replace alike.
 */
function attachGroupDomain(igroup: IommufdGroup, hwpt: HwptPaging): void {
  if (hwpt.dirtyOps && !igroup.group.iommu.supportsDirtyTracking) return fail('EINVAL');
  if (hwpt.fault) return fail('ENODEV');
  igroup.group.attachDomain(hwpt.domain.hw);
}

/**
 * iommufd_hw_pagetable_attach(): EINVAL if the group is attached elsewhere; the device's
 * reserved regions must fit the IOAS (EADDRINUSE); the first device attaches the whole group.
 */
export function hwPagetableAttach(hwpt: HwptPaging, idev: IommufdDevice): void {
  const igroup = idev.igroup;
  if (igroup.hwpt !== null && igroup.hwpt !== hwpt) return fail('EINVAL');
  hwpt.ioas.iopt.enforceDevResvRegions(resvRegions(idev), idev);
  if (igroup.devices.length === 0) {
    try {
      attachGroupDomain(igroup, hwpt);
    } catch (err) {
      hwpt.ioas.iopt.removeReservedIova(idev);
      throw err;
    }
    igroup.hwpt = hwpt;
  }
  hwpt.users++;
  igroup.devices.push(idev);
}

/** iommufd_hw_pagetable_detach(): returns the HWPT, whose reference the caller drops. */
export function hwPagetableDetach(idev: IommufdDevice): HwptPaging {
  const igroup = idev.igroup;
  const hwpt = igroup.hwpt!;
  igroup.devices.splice(igroup.devices.indexOf(idev), 1);
  if (igroup.devices.length === 0) {
    // Still owned by this context: the group goes to the blocking domain.
    igroup.group.attachDomain(null);
    igroup.hwpt = null;
  }
  hwpt.ioas.iopt.removeReservedIova(idev);
  return hwpt;
}

/** iommufd_hw_pagetable_put(): an automatic HWPT is destroyed when nothing else holds it. */
function hwPagetablePut(ctx: IommufdCtx, hwpt: HwptPaging): void {
  if (hwpt.autoDomain) ctx.putAndTryDestroy(hwpt);
  else hwpt.users--;
}

/**
 * iommufd_device_do_replace(): moves the whole group to `hwpt`. EINVAL when not attached; a
 * no-op for the current HWPT. Returns the old HWPT for the caller to drop.
 */
function doReplace(idev: IommufdDevice, hwpt: HwptPaging): HwptPaging | null {
  const igroup = idev.igroup;
  const old = igroup.hwpt;
  if (!old) return fail('EINVAL');
  if (hwpt === old) return null;
  const newIoas = hwpt.ioas !== old.ioas;
  try {
    if (newIoas) for (const cur of igroup.devices) hwpt.ioas.iopt.enforceDevResvRegions(resvRegions(cur), cur);
    attachGroupDomain(igroup, hwpt);
  } catch (err) {
    if (newIoas) for (const cur of igroup.devices) hwpt.ioas.iopt.removeReservedIova(cur);
    throw err;
  }
  if (newIoas) for (const cur of igroup.devices) old.ioas.iopt.removeReservedIova(cur);
  igroup.hwpt = hwpt;
  // The device list's references move to the new HWPT; one stays on the old for the caller.
  const n = igroup.devices.length;
  hwpt.users += n;
  old.users -= n - 1;
  return old;
}

/**
 * IOMMU_GET_HW_INFO (7.11): the VT-d registers (struct iommu_hw_info_vtd), truncated to
 * data_len with the rest of the user buffer zeroed, data_len set to the full size; and the
 * generic capabilities. Newest-kernel behaviour: ATS_NOT_SUPPORTED is reported for devices
 * that cannot use ATS (6.12 in custom-iommufd-vtd.txt predates that bit and shows 0).
 */
export function iommufdGetHwInfo(ucmd: Ucmd<IommuHwInfo>): number {
  const { ctx, task, cmd } = ucmd;
  if (cmd.flags & ~IOMMU_HW_INFO_FLAG_INPUT_TYPE) return fail('EOPNOTSUPP');
  if (cmd.__reserved.some((b) => b !== 0)) return fail('EOPNOTSUPP');
  if (!(cmd.flags & IOMMU_HW_INFO_FLAG_INPUT_TYPE)) cmd.in_data_type = IOMMU_HW_INFO_TYPE_DEFAULT;
  const idev = getDevice(ctx, cmd.dev_id);
  const iommu = idev.iommu;
  // intel_iommu_hw_info(): only its own type may be asked for.
  if (cmd.in_data_type !== IOMMU_HW_INFO_TYPE_DEFAULT && cmd.in_data_type !== IOMMU_HW_INFO_TYPE_INTEL_VTD) {
    return fail('EOPNOTSUPP');
  }
  const data = iommu_hw_info_vtd.encode({
    flags: IOMMU_HW_INFO_VTD_ERRATA_772415_SPR17,
    cap_reg: iommu.capReg,
    ecap_reg: iommu.ecapReg,
  });
  const copyLen = Math.min(cmd.data_len, data.length);
  if (copyLen) task.copyToUser(cmd.data_uptr, data.subarray(0, copyLen));
  if (copyLen < cmd.data_len) zeroUser(ucmd, cmd.data_uptr + BigInt(copyLen), cmd.data_len - copyLen);
  cmd.out_data_type = IOMMU_HW_INFO_TYPE_INTEL_VTD;
  cmd.in_data_type = IOMMU_HW_INFO_TYPE_INTEL_VTD;
  cmd.data_len = data.length;
  let caps = 0n;
  if (iommu.supportsDirtyTracking) caps |= BigInt(IOMMU_HW_CAP_DIRTY_TRACKING);
  if (!(iommu.ecapReg & ECAP_DT)) caps |= BigInt(IOMMU_HW_CAP_PCI_ATS_NOT_SUPPORTED);
  cmd.out_capabilities = caps;
  // No PASID support in the model (ECAP.PASID clear): max_pasids is 0.
  cmd.out_max_pasid_log2 = 0;
  ucmd.respond();
  return 0;
}

/**
 * clear_user(): EFAULT unless the whole range is writable; then zeros, a page at a time. Pages
 * already reading as zero are left alone, so a huge lazily backed buffer stays unmaterialized.
 */
function zeroUser(ucmd: Ucmd<object>, addr: bigint, length: number): void {
  const task = ucmd.task;
  task.mm.resolve(userAddress(addr, length), length, PROT_WRITE);
  const zeros = new Uint8Array(Math.min(length, 4096));
  for (let done = 0; done < length; done += zeros.length) {
    const n = Math.min(zeros.length, length - done);
    const at = addr + BigInt(done);
    if (task.copyFromUser(at, n).every((b) => b === 0)) continue;
    task.copyToUser(at, n === zeros.length ? zeros : zeros.subarray(0, n));
  }
}

function errnoOf(err: unknown): ErrnoCode | null {
  return err instanceof SyscallError ? (err.code as ErrnoCode) : null;
}
