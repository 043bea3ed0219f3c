/**
 * vfio-pci core (drivers/vfio/pci/vfio_pci_core.c; semantics.md §3.1, §3.4, §6): the driver
 * behind every vfio-pci device fd. `vfioPciOps` is the struct vfio_device_ops the host
 * registers for each function bound to vfio-pci; its per-device state (struct
 * vfio_pci_core_device) is a `VfioPciCoreDevice` kept in the VfioDevice's driverData.
 *
 * Open enables the function (bus mastering off, decode on, INTx unmasked at the device, the
 * config shadow built); close disables every interrupt and ioeventfd, restores the config state
 * saved at open and, when the whole reset domain is idle, resets it.
 */
import { VtdIommu } from '../../../hw/iommu/vtd.js';
import type { InterruptRemapTable } from '../../../hw/iommu/irq-remap.js';
import { type MemoryObject, type MmioObject, PAGE_SIZE } from '../../../hw/memory.js';
import type { PciBar, PciFunction } from '../../../hw/pci/function.js';
import {
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_INTERRUPT_PIN,
  PCI_MSIX_TABLE,
  PCI_MSIX_TABLE_BIR,
  PCI_PM_CTRL,
  PCI_PM_CTRL_STATE_MASK,
  PCI_STD_HEADER_SIZEOF,
} from '../../../hw/pci/regs.js';
import { CapChainBuilder } from '../../../uapi/capability.js';
import { fail } from '../../../uapi/errno.js';
import {
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY,
  VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP,
  VFIO_DEVICE_FEATURE_LOW_POWER_EXIT,
  VFIO_DEVICE_FEATURE_MASK,
  VFIO_DEVICE_FEATURE_PCI_VF_TOKEN,
  VFIO_DEVICE_FEATURE_SET,
  VFIO_DEVICE_FLAGS_PCI,
  VFIO_DEVICE_FLAGS_RESET,
  VFIO_DEVICE_GET_INFO,
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_IOEVENTFD,
  VFIO_DEVICE_PCI_HOT_RESET,
  VFIO_DEVICE_RESET,
  VFIO_DEVICE_SET_IRQS,
  VFIO_IRQ_INFO_AUTOMASKED,
  VFIO_IRQ_INFO_EVENTFD,
  VFIO_IRQ_INFO_MASKABLE,
  VFIO_IRQ_INFO_NORESIZE,
  VFIO_PCI_BAR5_REGION_INDEX,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_INDEX_TO_OFFSET,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_NUM_REGIONS,
  VFIO_PCI_OFFSET_MASK,
  VFIO_PCI_OFFSET_SHIFT,
  VFIO_PCI_ROM_REGION_INDEX,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_FLAG_CAPS,
  VFIO_REGION_INFO_FLAG_MMAP,
  VFIO_REGION_INFO_FLAG_READ,
  VFIO_REGION_INFO_FLAG_WRITE,
  vfio_device_info,
  vfio_device_low_power_entry_with_wakeup,
  vfio_irq_info,
  vfio_region_info,
  vfioMinsz,
} from '../../../uapi/vfio.js';
import type { EventFd } from '../../vfs/eventfd.js';
import type { FileMapping, MmapRequest } from '../../vfs/file.js';
import { MAP_SHARED } from '../../vfs/mm.js';
import type { Task } from '../../vfs/task.js';
import { copyArgszIn, copyArgszOut, ioctlTable } from '../argsz.js';
import { checkFeature, type VfioDevice, type VfioDeviceOps } from '../vfio-main.js';
import { memoryEnabled, PCI_D0, vfioConfigInit, type VfioPciConfigState } from './vfio-pci-config.js';
import { vfioPciDevSetTryReset, vfioPciGetPciHotResetInfo, vfioPciPciHotReset } from './vfio-pci-reset.js';
import {
  eventfdCtxFdget,
  IRQ_NONE,
  type IrqState,
  pciIrqCount,
  vfioPciGetIrqCount,
  vfioPciIntxMask,
  vfioPciIntxUnmask,
  vfioPciIoctlSetIrqs,
  vfioPciIrqsRelease,
} from './vfio-pci-intrs.js';
import {
  type VfioPciIoeventfd,
  vfioPciIoctlIoeventfd,
  vfioPciIoeventfdsRelease,
  vfioPciRead,
  vfioPciWrite,
} from './vfio-pci-rdwr.js';

const MSIX_ENTRY_SIZE = 16;
const NO_MSIX_BAR = 0xff;

/** struct vfio_pci_core_device: the driver's state for one function. */
export class VfioPciCoreDevice {
  /** The config shadow while the device is open (vdev->vconfig and friends). */
  config: VfioPciConfigState | null = null;
  irq: IrqState = IRQ_NONE;
  /** COMMAND.INTX_DISABLE as the user set it. */
  virqDisabled = false;
  /** The function masks INTx with COMMAND.INTX_DISABLE (PCI 2.3). */
  pci23 = false;
  /** INTx hidden (no host IRQ or broken masking). */
  nointx = false;
  /** log2 of the MSI vectors last enabled: the virtual multiple-message-capable field. */
  msiQmax = 0;
  errTrigger: EventFd | null = null;
  reqTrigger: EventFd | null = null;
  readonly ioeventfds: VfioPciIoeventfd[] = [];
  /** Current PCI power state (PCI_D0 .. PCI_D3HOT). */
  powerState = PCI_D0;
  resetWorks = false;
  /** Set at close unless a function reset cleaned the device: a bus reset is owed. */
  needsReset = false;
  /** LOW_POWER_ENTRY engaged (vdev->pm_runtime_engaged) and its wake-up eventfd. */
  pmRuntimeEngaged = false;
  pmWakeEventfd: EventFd | null = null;
  /** Runtime-suspended between device accesses while low power is engaged. */
  private suspended = false;
  private pmIntxMasked = false;
  msixBar = NO_MSIX_BAR;
  msixOffset = 0;
  msixSize = 0;
  readonly barMmapSupported: boolean[] = [];
  /** Config state saved at enable (pci_store_saved_state), restored at disable. */
  private savedState: Uint8Array | null = null;

  constructor(readonly device: VfioDevice) {}

  get fn(): PciFunction {
    return this.device.pdev.fn;
  }

  get isPcie(): boolean {
    return pciIrqCount(this.fn, VFIO_PCI_ERR_IRQ_INDEX, 0) !== 0;
  }

  /** The interrupt remapping table of the IOMMU the function's requests go through. */
  get irqRemap(): InterruptRemapTable {
    const bus = this.fn.bus;
    if (!(bus instanceof VtdIommu)) throw new Error(`${this.fn.bdf} is not behind an interrupt-remapping IOMMU`);
    return bus.irqRemap;
  }

  /**
   * vfio_pci_set_power_state() -> pci_set_power_state(): the kernel moves the function through
   * the PMCSR of its PM capability; a function without one stays in D0.
   */
  setPowerState(state: number): void {
    const pm = this.fn.config.findCapability(PCI_CAP_ID_PM);
    if (pm === null) return;
    const pmcsr = pm + PCI_PM_CTRL;
    const now = this.fn.configRead(pmcsr, 2);
    if ((now & PCI_PM_CTRL_STATE_MASK) !== state)
      this.fn.configWrite(pmcsr, 2, (now & ~PCI_PM_CTRL_STATE_MASK) | state);
    this.powerState = state;
  }

  /**
   * pci_try_reset_function(): save the config state, reset the function, restore. No-op
   * (false) for a function without a reset method.
   */
  tryResetFunction(): boolean {
    const fn = this.fn;
    if (!fn.canReset) return false;
    const saved = fn.config.snapshot();
    fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
    fn.reset();
    restoreConfigState(fn, saved);
    return true;
  }

  /**
   * The runtime-PM bracket around every device access (pm_runtime_resume_and_get / put): a
   * suspended device resumes first (signalling the wake-up eventfd, if any, which also ends
   * low power) and suspends again afterwards while low power stays engaged.
   */
  withRuntimePm<T>(access: () => T): T {
    if (this.suspended) this.runtimeResume();
    try {
      return access();
    } finally {
      if (this.pmRuntimeEngaged && !this.suspended && this.config) this.runtimeSuspend();
    }
  }

  /** vfio_pci_core_runtime_suspend(): INTx masked while suspended. */
  private runtimeSuspend(): void {
    this.suspended = true;
    this.pmIntxMasked = this.irq.type === 'intx' && vfioPciIntxMask(this);
  }

  /** vfio_pci_core_runtime_resume(). */
  private runtimeResume(): void {
    this.suspended = false;
    if (this.pmWakeEventfd) {
      this.pmWakeEventfd.signal();
      this.runtimePmExit();
    }
    if (this.pmIntxMasked) {
      this.pmIntxMasked = false;
      vfioPciIntxUnmask(this);
    }
  }

  /** vfio_pci_runtime_pm_entry(): EINVAL when already engaged. */
  runtimePmEntry(wake: EventFd | null): void {
    if (this.pmRuntimeEngaged) return fail('EINVAL');
    this.pmRuntimeEngaged = true;
    this.pmWakeEventfd = wake;
  }

  /** __vfio_pci_runtime_pm_exit(). */
  runtimePmExit(): void {
    if (!this.pmRuntimeEngaged) return;
    this.pmRuntimeEngaged = false;
    this.pmWakeEventfd = null;
  }

  /** vfio_pci_core_enable() + vfio_pci_core_finish_enable(). */
  enable(): void {
    const fn = this.fn;
    this.setPowerState(PCI_D0);
    // Our saved state must not include bus mastering; pci_enable_device() turns decode on.
    let cmd = fn.configRead(PCI_COMMAND, 2) & ~PCI_COMMAND_MASTER;
    if (fn.bars.some((b) => b.kind !== 'io')) cmd |= PCI_COMMAND_MEMORY;
    if (fn.bars.some((b) => b.kind === 'io')) cmd |= PCI_COMMAND_IO;
    fn.configWrite(PCI_COMMAND, 2, cmd);
    this.resetWorks = this.tryResetFunction();
    this.savedState = fn.config.snapshot();
    this.pci23 = intxMaskSupported(fn);
    this.nointx = !fn.configRead(PCI_INTERRUPT_PIN, 1);
    const now = fn.configRead(PCI_COMMAND, 2);
    if (this.pci23 && now & PCI_COMMAND_INTX_DISABLE) fn.configWrite(PCI_COMMAND, 2, now & ~PCI_COMMAND_INTX_DISABLE);
    this.config = vfioConfigInit(this);
    this.probeMsix();
    this.probeMmaps();
  }

  private probeMsix(): void {
    this.msixBar = msixBarOf(this.fn);
    if (this.msixBar === NO_MSIX_BAR) return;
    const pos = this.fn.config.findCapability(PCI_CAP_ID_MSIX)!;
    this.msixOffset = this.fn.configRead(pos + PCI_MSIX_TABLE, 4) & ~PCI_MSIX_TABLE_BIR;
    this.msixSize = pciIrqCount(this.fn, VFIO_PCI_MSIX_IRQ_INDEX, 0) * MSIX_ENTRY_SIZE;
  }

  /** vfio_pci_probe_mmaps(). */
  private probeMmaps(): void {
    for (let i = 0; i <= VFIO_PCI_BAR5_REGION_INDEX; i++) {
      const bar = this.fn.bar(i);
      this.barMmapSupported[i] = !!bar && barMmapable(bar);
    }
  }

  /** vfio_pci_core_disable() + the eventfd part of vfio_pci_core_close_device(). */
  disable(): void {
    const fn = this.fn;
    this.runtimePmExit();
    this.suspended = false;
    this.pmIntxMasked = false;
    this.setPowerState(PCI_D0);
    fn.configWrite(PCI_COMMAND, 2, fn.configRead(PCI_COMMAND, 2) & ~PCI_COMMAND_MASTER);
    vfioPciIrqsRelease(this);
    vfioPciIoeventfdsRelease(this);
    this.virqDisabled = false;
    this.config = null;
    this.needsReset = true;
    if (this.savedState) {
      // Interrupts off at the device across the reset, as pci_reset_function() does.
      fn.configWrite(PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
      if (this.resetWorks && fn.canReset) {
        fn.reset();
        this.needsReset = false;
      }
      restoreConfigState(fn, this.savedState);
      this.savedState = null;
    }
    fn.configWrite(PCI_COMMAND, 2, fn.configRead(PCI_COMMAND, 2) & ~PCI_COMMAND_MASTER);
    vfioPciDevSetTryReset(this);
  }
}

/** pci_intx_mask_supported(): the function implements COMMAND.INTX_DISABLE. */
function intxMaskSupported(fn: PciFunction): boolean {
  const cmd = fn.configRead(PCI_COMMAND, 2);
  fn.configWrite(PCI_COMMAND, 2, cmd ^ PCI_COMMAND_INTX_DISABLE);
  const toggled = fn.configRead(PCI_COMMAND, 2);
  fn.configWrite(PCI_COMMAND, 2, cmd);
  return ((toggled ^ cmd) & PCI_COMMAND_INTX_DISABLE) !== 0;
}

/**
 * pci_restore_state(): writes back saved config dwords that differ: the device-specific part
 * and capabilities, then header dwords 10-15, the BARs (4-9), and COMMAND/STATUS last.
 */
export function restoreConfigState(fn: PciFunction, saved: Uint8Array): void {
  const order: number[] = [];
  for (let at = fn.config.size - 4; at >= PCI_STD_HEADER_SIZEOF; at -= 4) order.push(at);
  for (let dw = 15; dw >= 10; dw--) order.push(4 * dw);
  for (let dw = 9; dw >= 4; dw--) order.push(4 * dw);
  for (let dw = 3; dw >= 0; dw--) order.push(4 * dw);
  for (const at of order) {
    const value = (saved[at]! | (saved[at + 1]! << 8) | (saved[at + 2]! << 16) | (saved[at + 3]! << 24)) >>> 0;
    if (fn.configRead(at, 4) !== value) fn.configWrite(at, 4, value);
  }
}

/** The driver state of `device`, created when the driver first sees it. */
export function coreDevice(device: VfioDevice): VfioPciCoreDevice {
  let vdev = device.driverData;
  if (!(vdev instanceof VfioPciCoreDevice)) {
    vdev = new VfioPciCoreDevice(device);
    device.driverData = vdev;
    device.pdev.drvdata = vdev;
  }
  return vdev as VfioPciCoreDevice;
}

// --- VFIO_DEVICE_GET_INFO / GET_REGION_INFO / GET_IRQ_INFO ---

/** vfio_pci_ioctl_get_info(): no device capabilities (no zPCI, no PCIe atomics). */
function vfioPciIoctlGetInfo(vdev: VfioPciCoreDevice, task: Task, arg: bigint): number {
  const info = copyArgszIn(task, arg, vfio_device_info, vfioMinsz.vfio_device_info.minsz);
  const out = {
    argsz: info.argsz,
    flags: VFIO_DEVICE_FLAGS_PCI | (vdev.resetWorks ? VFIO_DEVICE_FLAGS_RESET : 0),
    num_regions: VFIO_PCI_NUM_REGIONS,
    num_irqs: VFIO_PCI_NUM_IRQS,
    cap_offset: 0,
    pad: 0,
  };
  copyArgszOut(task, arg, vfio_device_info, out, info.argsz);
  return 0;
}

export interface RegionDescription {
  readonly flags: number;
  readonly size: bigint;
  readonly offset: bigint;
  /** Capability ids in the region's chain (MSIX_MAPPABLE for the MSI-X BAR). */
  readonly caps: readonly number[];
}

/** vfio_pci_ioctl_get_region_info() without the copying; null for a region that does not exist. */
export function vfioPciRegionInfo(fn: PciFunction, index: number, msixBar = msixBarOf(fn)): RegionDescription | null {
  const offset = index < VFIO_PCI_NUM_REGIONS ? VFIO_PCI_INDEX_TO_OFFSET(index) : 0n;
  if (index === VFIO_PCI_CONFIG_REGION_INDEX) {
    return {
      flags: VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE,
      size: BigInt(fn.config.size),
      offset,
      caps: [],
    };
  }
  if (index <= VFIO_PCI_BAR5_REGION_INDEX) {
    const bar = fn.bar(index);
    if (!bar || bar.address === 0n) return { flags: 0, size: 0n, offset, caps: [] };
    let flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
    const caps: number[] = [];
    if (barMmapable(bar)) {
      flags |= VFIO_REGION_INFO_FLAG_MMAP;
      if (index === msixBar) caps.push(VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
    }
    return { flags, size: BigInt(bar.size), offset, caps };
  }
  // No model has an expansion ROM or a shadow ROM: flags 0, size 0.
  if (index === VFIO_PCI_ROM_REGION_INDEX) return { flags: 0, size: 0n, offset, caps: [] };
  // VGA exists only for VGA-class devices with CONFIG_VFIO_PCI_VGA; device-specific regions: none.
  return null;
}

/** Memory BARs of a page or more, or sub-page but page aligned (vfio_pci_probe_mmaps). */
function barMmapable(bar: PciBar): boolean {
  return bar.kind !== 'io' && bar.size > 0 && (bar.size >= PAGE_SIZE || bar.address % BigInt(PAGE_SIZE) === 0n);
}

function msixBarOf(fn: PciFunction): number {
  const pos = fn.config.findCapability(PCI_CAP_ID_MSIX);
  return pos === null ? NO_MSIX_BAR : fn.configRead(pos + PCI_MSIX_TABLE, 4) & PCI_MSIX_TABLE_BIR;
}

/**
 * vfio_get_region_info() + the driver part: the chain goes after the struct when argsz has
 * room, otherwise argsz grows and cap_offset is 0. Without caps the user's cap_offset is
 * copied back as given.
 */
function vfioPciIoctlGetRegionInfo(vdev: VfioPciCoreDevice, task: Task, arg: bigint): number {
  const info = copyArgszIn(task, arg, vfio_region_info, vfioMinsz.vfio_region_info.minsz);
  const region = vfioPciRegionInfo(vdev.fn, info.index, vdev.msixBar) ?? fail('EINVAL');
  const out = { ...info, flags: region.flags, size: region.size, offset: region.offset };
  if (region.caps.length) {
    const chain = new CapChainBuilder(vfio_region_info.size);
    for (const id of region.caps) chain.addBytes(id, 1);
    const built = chain.build();
    out.flags |= VFIO_REGION_INFO_FLAG_CAPS;
    if (info.argsz < built.totalSize) {
      out.argsz = built.totalSize;
      out.cap_offset = 0;
    } else {
      task.copyToUser(arg + BigInt(vfio_region_info.size), built.bytes);
      out.cap_offset = built.capOffset;
    }
  }
  task.copyToUser(arg, vfio_region_info.encode(out));
  return 0;
}

/** GET_IRQ_INFO flags per index. */
function irqInfoFlags(index: number): number {
  if (index === VFIO_PCI_INTX_IRQ_INDEX)
    return VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
  // MSI-X is resizable only with dynamic MSI-X allocation, which the machine has not.
  return VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
}

/** vfio_pci_ioctl_get_irq_info(): ERR exists on PCIe functions only. */
function vfioPciIoctlGetIrqInfo(vdev: VfioPciCoreDevice, task: Task, arg: bigint): number {
  const minsz = vfioMinsz.vfio_irq_info.minsz;
  const info = vfio_irq_info.decode(task.copyFromUser(arg, minsz));
  if (info.argsz < minsz || info.index >= VFIO_PCI_NUM_IRQS) return fail('EINVAL');
  if (info.index === VFIO_PCI_ERR_IRQ_INDEX && !vdev.isPcie) return fail('EINVAL');
  const out = { ...info, flags: irqInfoFlags(info.index), count: vfioPciGetIrqCount(vdev, info.index) };
  task.copyToUser(arg, vfio_irq_info.encode(out).subarray(0, minsz));
  return 0;
}

/** vfio_pci_ioctl_reset(): EINVAL for a function without a reset method (edu). */
function vfioPciIoctlReset(vdev: VfioPciCoreDevice): number {
  if (!vdev.resetWorks) return fail('EINVAL');
  vdev.setPowerState(PCI_D0);
  vdev.tryResetFunction();
  return 0;
}

const DEVICE_IOCTLS = ioctlTable<VfioPciCoreDevice>([
  [VFIO_DEVICE_GET_INFO, 'vfio_pci_ioctl_get_info', vfioPciIoctlGetInfo],
  [VFIO_DEVICE_GET_IRQ_INFO, 'vfio_pci_ioctl_get_irq_info', vfioPciIoctlGetIrqInfo],
  [VFIO_DEVICE_GET_PCI_HOT_RESET_INFO, 'vfio_pci_ioctl_get_pci_hot_reset_info', vfioPciGetPciHotResetInfo],
  [VFIO_DEVICE_GET_REGION_INFO, 'vfio_pci_ioctl_get_region_info', vfioPciIoctlGetRegionInfo],
  [VFIO_DEVICE_IOEVENTFD, 'vfio_pci_ioctl_ioeventfd', vfioPciIoctlIoeventfd],
  [VFIO_DEVICE_PCI_HOT_RESET, 'vfio_pci_ioctl_pci_hot_reset', vfioPciPciHotReset],
  [VFIO_DEVICE_RESET, 'vfio_pci_ioctl_reset', (vdev) => vfioPciIoctlReset(vdev)],
  [VFIO_DEVICE_SET_IRQS, 'vfio_pci_ioctl_set_irqs', vfioPciIoctlSetIrqs],
]);

// --- VFIO_DEVICE_FEATURE (driver part) ---

/** vfio_pci_core_pm_entry_with_wakeup(). */
function pmEntryWithWakeup(
  vdev: VfioPciCoreDevice,
  task: Task,
  flags: number,
  data: bigint,
  dataLength: number,
): number {
  const payload = vfio_device_low_power_entry_with_wakeup;
  if (!checkFeature(flags, dataLength, VFIO_DEVICE_FEATURE_SET, payload.size)) return 0;
  const entry = payload.decode(task.copyFromUser(data, payload.size));
  if (entry.wakeup_eventfd < 0) return fail('EINVAL');
  vdev.runtimePmEntry(eventfdCtxFdget(task, entry.wakeup_eventfd));
  return 0;
}

/** vfio_pci_core_ioctl_feature(). */
function vfioPciCoreIoctlFeature(
  vdev: VfioPciCoreDevice,
  task: Task,
  flags: number,
  data: bigint,
  dataLength: number,
): number {
  switch (flags & VFIO_DEVICE_FEATURE_MASK) {
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY:
      if (checkFeature(flags, dataLength, VFIO_DEVICE_FEATURE_SET, 0)) vdev.runtimePmEntry(null);
      return 0;
    case VFIO_DEVICE_FEATURE_LOW_POWER_ENTRY_WITH_WAKEUP:
      return pmEntryWithWakeup(vdev, task, flags, data, dataLength);
    case VFIO_DEVICE_FEATURE_LOW_POWER_EXIT:
      if (checkFeature(flags, dataLength, VFIO_DEVICE_FEATURE_SET, 0)) vdev.runtimePmExit();
      return 0;
    case VFIO_DEVICE_FEATURE_PCI_VF_TOKEN:
      // Only an SR-IOV PF has a VF token; no model has SR-IOV.
      return fail('ENOTTY');
    default:
      // Including DMA_BUF (6.19+): BAR dma-buf export is not modelled, as in a kernel built
      // without CONFIG_VFIO_PCI_DMABUF.
      return fail('ENOTTY');
  }
}

// --- GET_DEVICE_FD name matching (vfio_pci_core_match) ---

const VF_TOKEN_ARG = 'vf_token=';
const UUID_STRING_LEN = 36;
const UUID_PATTERN = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * vfio_pci_core_match(): the PCI name, optionally followed by a space and options; the only
 * option is one `vf_token=<uuid>`. A non-space right after the name is simply no match.
 */
export function vfioPciCoreMatch(name: string, buf: string): { match: boolean; token: boolean } {
  if (!buf.startsWith(name)) return { match: false, token: false };
  let rest = buf.slice(name.length);
  if (rest.length === 0) return { match: true, token: false };
  if (rest[0] !== ' ') return { match: false, token: false };
  let token = false;
  while (rest.length) {
    if (rest[0] === ' ') {
      rest = rest.slice(1);
      continue;
    }
    if (token || !rest.startsWith(VF_TOKEN_ARG)) return fail('EINVAL'); // unknown or repeated option
    rest = rest.slice(VF_TOKEN_ARG.length);
    if (rest.length < UUID_STRING_LEN || !UUID_PATTERN.test(rest.slice(0, UUID_STRING_LEN))) return fail('EINVAL');
    token = true;
    rest = rest.slice(UUID_STRING_LEN);
  }
  return { match: true, token };
}

/**
 * vfio_pci_core_match_token_uuid(): neither an SR-IOV PF nor a VF (no model has SR-IOV), so
 * any token is an error.
 */
function matchTokenUuid(_device: VfioDevice, uuid: Uint8Array | null): void {
  if (uuid) fail('EINVAL');
}

// --- mmap ---

/**
 * A BAR as a user mapping: register accesses of the width the process uses, refused (SIGBUS,
 * reported as EFAULT) while memory decode is off, the device is in D3 or in low power
 * (vfio_pci_mmap_huge_fault). The page-rounded tail past a sub-page BAR reads all-ones.
 */
class VfioPciBarMapping implements MemoryObject {
  readonly kind = 'mmio';
  private readonly region: MmioObject;
  private readonly barSize: number;

  constructor(
    private readonly vdev: VfioPciCoreDevice,
    bar: PciBar,
    readonly size: number,
  ) {
    this.region = bar.region;
    this.barSize = bar.size;
  }

  private check(): void {
    if (!memoryEnabled(this.vdev) || this.vdev.pmRuntimeEngaged) fail('EFAULT');
  }

  read(offset: number, dst: Uint8Array): void {
    this.check();
    if (offset + dst.length <= this.barSize) this.region.read(offset, dst);
    else this.readPastBar(offset, dst);
  }

  write(offset: number, src: Uint8Array): void {
    this.check();
    if (offset + src.length <= this.barSize) this.region.write(offset, src);
    else if (offset < this.barSize) this.region.write(offset, src.subarray(0, this.barSize - offset));
  }

  private readPastBar(offset: number, dst: Uint8Array): void {
    const n = Math.max(0, this.barSize - offset);
    if (n) this.region.read(offset, dst.subarray(0, n));
    dst.fill(0xff, n);
  }
}

/** vfio_pci_core_mmap(): shared mappings of mmap-capable BARs, within the page-rounded BAR. */
function vfioPciCoreMmap(vdev: VfioPciCoreDevice, request: MmapRequest): FileMapping {
  const index = request.offset >> BigInt(VFIO_PCI_OFFSET_SHIFT);
  if (index >= BigInt(VFIO_PCI_NUM_REGIONS)) return fail('EINVAL');
  if (!(request.flags & MAP_SHARED)) return fail('EINVAL');
  if (index >= BigInt(VFIO_PCI_ROM_REGION_INDEX)) return fail('EINVAL');
  const bar = vdev.fn.bar(Number(index));
  if (!bar || !vdev.barMmapSupported[Number(index)]) return fail('EINVAL');
  const physLen = Math.ceil(bar.size / PAGE_SIZE) * PAGE_SIZE;
  const start = request.offset & VFIO_PCI_OFFSET_MASK;
  if (start + BigInt(request.length) > BigInt(physLen)) return fail('EINVAL');
  return { object: new VfioPciBarMapping(vdev, bar, physLen), offset: Number(start) };
}

// --- the ops ---

/** struct vfio_device_ops vfio_pci_ops. */
export const vfioPciOps: VfioDeviceOps = Object.freeze({
  name: 'vfio-pci',
  openDevice(device: VfioDevice): void {
    coreDevice(device).enable();
  },
  closeDevice(device: VfioDevice): void {
    coreDevice(device).disable();
  },
  ioctl(device: VfioDevice, task: Task, request: number, arg: bigint): number {
    const vdev = coreDevice(device);
    const handler = DEVICE_IOCTLS.get(request);
    if (!handler) return fail('ENOTTY');
    return handler(vdev, task, arg);
  },
  read(device: VfioDevice, _task: Task, length: number, offset: bigint): Uint8Array {
    return vfioPciRead(coreDevice(device), length, offset);
  },
  write(device: VfioDevice, _task: Task, data: Uint8Array, offset: bigint): number {
    return vfioPciWrite(coreDevice(device), data, offset);
  },
  mmap(device: VfioDevice, _task: Task, request: MmapRequest): FileMapping {
    return vfioPciCoreMmap(coreDevice(device), request);
  },
  deviceFeature(device: VfioDevice, task: Task, flags: number, data: bigint, dataLength: number): number {
    return vfioPciCoreIoctlFeature(coreDevice(device), task, flags, data, dataLength);
  },
  match(device: VfioDevice, buf: string): boolean {
    const { match, token } = vfioPciCoreMatch(device.pdev.bdf, buf);
    if (match) matchTokenUuid(device, token ? new Uint8Array(16) : null);
    return match;
  },
  matchTokenUuid,
  runtimePm<T>(device: VfioDevice, access: () => T): T {
    return coreDevice(device).withRuntimePm(access);
  },
});

// --- descriptions for tools (the CLI's `ls`) ---

const REGION_NAMES = ['BAR0', 'BAR1', 'BAR2', 'BAR3', 'BAR4', 'BAR5', 'ROM', 'CONFIG', 'VGA'] as const;
const IRQ_NAMES = ['INTX', 'MSI', 'MSIX', 'ERR', 'REQ'] as const;

export interface VfioPciDescription {
  readonly regions: ReadonlyArray<{ readonly index: number; readonly name: string } & RegionDescription>;
  readonly irqs: ReadonlyArray<{
    readonly index: number;
    readonly name: string;
    readonly flags: number;
    readonly count: number;
  }>;
}

/**
 * What GET_REGION_INFO and GET_IRQ_INFO answer for a function bound to vfio-pci, computed
 * from the hardware as an open would see it; regions that are EINVAL (VGA) and IRQ indexes that
 * are EINVAL (ERR on conventional PCI) are left out.
 */
export function describeVfioPciFunction(fn: PciFunction): VfioPciDescription {
  const regions = REGION_NAMES.flatMap((name, index) => {
    const info = vfioPciRegionInfo(fn, index);
    return info ? [{ index, name, ...info }] : [];
  });
  const pin = fn.configRead(PCI_INTERRUPT_PIN, 1);
  const irqs = IRQ_NAMES.flatMap((name, index) => {
    const count = pciIrqCount(fn, index, pin);
    // ERR exists on PCIe functions only (EINVAL otherwise).
    if (index === VFIO_PCI_ERR_IRQ_INDEX && !count) return [];
    return [{ index, name, flags: irqInfoFlags(index), count }];
  });
  return { regions, irqs };
}
