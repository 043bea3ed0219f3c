/**
 * vfio-pci interrupts (drivers/vfio/pci/vfio_pci_intrs.c; semantics.md §6.7-6.8) and the
 * eventfd plumbing they use (drivers/vfio/virqfd.c).
 *
 * - INTx is level-triggered and auto-masked: the host handler masks the line with the function's
 *   COMMAND.INTX_DISABLE when it fires and signals the trigger eventfd; UNMASK re-enables it
 *   unless the function still asserts, in which case the eventfd is signalled again instead.
 * - MSI vectors are routed through the IOMMU's interrupt remapping: one remapping entry per
 *   vector, its address/data programmed into the function's MSI capability, so the message the
 *   device sends calls the handler that signals the vector's eventfd.
 * - ERR and REQ are plain eventfds the kernel signals on AER errors / release requests.
 * The kernel holds eventfd counters (eventfd_ctx), not files: a trigger keeps being signalled
 * after the user closed its fd, while a virqfd goes away with the file (EPOLLHUP).
 */
import type { RemappedInterrupt } from '../../../hw/iommu/irq-remap.js';
import type { PciFunction } from '../../../hw/pci/function.js';
import {
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MSIX,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_INTERRUPT_PIN,
  PCI_MSIX_FLAGS,
  PCI_MSIX_FLAGS_QSIZE,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_QSIZE,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
} from '../../../hw/pci/regs.js';
import { fail } from '../../../uapi/errno.js';
import {
  VFIO_IRQ_SET_ACTION_MASK,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_ACTION_TYPE_MASK,
  VFIO_IRQ_SET_ACTION_UNMASK,
  VFIO_IRQ_SET_DATA_BOOL,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_IRQ_SET_DATA_NONE,
  VFIO_IRQ_SET_DATA_TYPE_MASK,
  VFIO_PCI_ERR_IRQ_INDEX,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  VFIO_PCI_MSIX_IRQ_INDEX,
  VFIO_PCI_NUM_IRQS,
  VFIO_PCI_REQ_IRQ_INDEX,
  vfio_irq_set,
  vfioMinsz,
} from '../../../uapi/vfio.js';
import { EventFd } from '../../vfs/eventfd.js';
import type { Task } from '../../vfs/task.js';
import type { VfioPciCoreDevice } from './vfio-pci-core.js';
import { virtualInterruptPin } from './vfio-pci-config.js';

const U32_MAX = 0xffffffff;

// --- eventfds held by the kernel ---

/**
 * eventfd_ctx_fdget(): the counter behind `fd` (EBADF if `fd` is not open, EINVAL if it is not
 * an eventfd). The kernel holds the eventfd_ctx, not the file: closing the user's fd does not
 * stop it from being signalled, and nothing keeps the file open on the kernel's behalf.
 */
export function eventfdCtxFdget(task: Task, fd: number): EventFd {
  const file = task.files.get(fd);
  if (!(file instanceof EventFd)) return fail('EINVAL');
  return file;
}

/**
 * struct virqfd: the kernel acting on writes to an eventfd (INTx unmask eventfd, ioeventfds).
 * Each signal consumes the count and runs `handler`; a true result asks for `thread` as well.
 * When the user closes the eventfd (EPOLLHUP at its release) the virqfd deactivates itself and
 * frees its slot (virqfd_wakeup), so a new one can be registered there.
 */
export class Virqfd {
  private readonly unsubscribe: () => void;
  private readonly unsubscribeHangup: () => void;

  private constructor(
    readonly eventfd: EventFd,
    slot: { virqfd: Virqfd | null },
    private readonly handler: () => boolean,
    private readonly thread: (() => void) | null,
  ) {
    this.unsubscribe = eventfd.subscribe(() => {
      eventfd.doRead();
      if (this.handler() && this.thread) this.thread();
    });
    this.unsubscribeHangup = eventfd.onHangup(() => {
      if (slot.virqfd === this) Virqfd.disable(slot);
    });
  }

  /**
   * vfio_virqfd_enable(): EBUSY if `slot` already holds one; a count already pending when it
   * is registered runs the handler at once, as if the signal had just arrived.
   */
  static enable(
    task: Task,
    fd: number,
    slot: { virqfd: Virqfd | null },
    handler: () => boolean,
    thread: (() => void) | null,
  ): Virqfd {
    const file = task.files.get(fd);
    if (!(file instanceof EventFd)) return fail('EINVAL');
    if (slot.virqfd) return fail('EBUSY');
    const virqfd = new Virqfd(file, slot, handler, thread);
    slot.virqfd = virqfd;
    if (file.readable() && handler() && thread) thread();
    return virqfd;
  }

  /** vfio_virqfd_disable(). */
  static disable(slot: { virqfd: Virqfd | null }): void {
    const virqfd = slot.virqfd;
    if (!virqfd) return;
    slot.virqfd = null;
    virqfd.unsubscribe();
    virqfd.unsubscribeHangup();
  }
}

// --- interrupt state ---

export interface IntxContext {
  trigger: EventFd | null;
  /** Masked by the handler, MASK, or the virtual INTx disable. */
  masked: boolean;
  /** The unmask eventfd (irqfd) slot. */
  virqfd: Virqfd | null;
  /** free_irq(): stops listening to the function's INTx pin. */
  releaseLine: () => void;
  /** Non-PCI 2.3 functions cannot mask at the device: the host IRQ line is disabled instead. */
  lineDisabled: boolean;
}

export interface MsiVector {
  trigger: EventFd | null;
  readonly remap: RemappedInterrupt;
}

/** The device's interrupt mode (vdev->irq_type with its contexts). */
export type IrqState =
  | { readonly type: 'none' }
  | { readonly type: 'intx'; readonly ctx: IntxContext }
  | { readonly type: 'msi' | 'msix'; readonly vectors: MsiVector[] };

export const IRQ_NONE: IrqState = Object.freeze({ type: 'none' });

// --- INTx ---

function intxCtx(vdev: VfioPciCoreDevice): IntxContext | null {
  return vdev.irq.type === 'intx' ? vdev.irq.ctx : null;
}

/** pci_intx(): drive COMMAND.INTX_DISABLE of the function (enable = clear the bit). */
function pciIntx(vdev: VfioPciCoreDevice, enable: boolean): void {
  const cmd = vdev.fn.configRead(PCI_COMMAND, 2);
  const next = enable ? cmd & ~PCI_COMMAND_INTX_DISABLE : cmd | PCI_COMMAND_INTX_DISABLE;
  if (next !== cmd) vdev.fn.configWrite(PCI_COMMAND, 2, next);
}

/** pci_check_and_mask_intx() / pci_check_and_unmask_intx(): act only if the state allows. */
function pciCheckAndSetIntxMask(vdev: VfioPciCoreDevice, mask: boolean): boolean {
  const pending = (vdev.fn.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT) !== 0;
  if (mask !== pending) return false;
  pciIntx(vdev, !mask);
  return true;
}

/** vfio_send_intx_eventfd(). */
function sendIntxEventfd(vdev: VfioPciCoreDevice): void {
  const ctx = intxCtx(vdev);
  if (ctx && !vdev.virqDisabled) ctx.trigger?.signal();
}

/** vfio_intx_handler(): the host interrupt for a raised pin. */
function intxHandler(vdev: VfioPciCoreDevice): void {
  const ctx = intxCtx(vdev);
  if (!ctx) return;
  let handled = false;
  if (!vdev.pci23) {
    if (!ctx.lineDisabled) {
      ctx.lineDisabled = true;
      ctx.masked = true;
      handled = true;
    }
  } else if (!ctx.masked && pciCheckAndSetIntxMask(vdev, true)) {
    ctx.masked = true;
    handled = true;
  }
  if (handled) sendIntxEventfd(vdev);
}

/** vfio_pci_intx_mask(): true if this call masked it. */
export function vfioPciIntxMask(vdev: VfioPciCoreDevice): boolean {
  const ctx = intxCtx(vdev);
  if (!ctx) {
    // Reached from the virtual INTx disable while INTx is not in use: the real bit follows.
    if (vdev.pci23) pciIntx(vdev, false);
    return false;
  }
  if (ctx.masked) return false;
  if (vdev.pci23) pciIntx(vdev, false);
  else ctx.lineDisabled = true;
  ctx.masked = true;
  return true;
}

/**
 * vfio_pci_intx_unmask_handler(): unmasks unless the function still asserts its interrupt;
 * true means "still pending: signal the user again instead".
 */
function intxUnmaskHandler(vdev: VfioPciCoreDevice): boolean {
  const ctx = intxCtx(vdev);
  if (!ctx) {
    if (vdev.pci23) pciIntx(vdev, true);
    return false;
  }
  if (!ctx.masked || vdev.virqDisabled) return false;
  if (vdev.pci23) {
    ctx.masked = !pciCheckAndSetIntxMask(vdev, false);
    return ctx.masked;
  }
  ctx.masked = false;
  ctx.lineDisabled = false;
  // enable_irq() on a level-triggered line that is still high fires at once.
  if (vdev.fn.intxLevel) intxHandler(vdev);
  return false;
}

export function vfioPciIntxUnmask(vdev: VfioPciCoreDevice): void {
  if (intxUnmaskHandler(vdev)) sendIntxEventfd(vdev);
}

/** vfio_intx_enable(): INTx with `trigger` (which may be null), the host IRQ requested. */
function intxEnable(vdev: VfioPciCoreDevice, trigger: EventFd | null): void {
  if (vdev.irq.type !== 'none') return fail('EINVAL');
  if (!vdev.fn.configRead(PCI_INTERRUPT_PIN, 1)) return fail('ENODEV');
  const ctx: IntxContext = {
    trigger,
    masked: vdev.virqDisabled,
    virqfd: null,
    releaseLine: () => {},
    lineDisabled: !vdev.pci23 && vdev.virqDisabled,
  };
  vdev.irq = { type: 'intx', ctx };
  if (vdev.pci23) pciIntx(vdev, !ctx.masked);
  ctx.releaseLine = vdev.fn.onIntx((level) => {
    if (level) intxHandler(vdev);
  });
  // A line already high when the level-triggered IRQ is requested fires right away.
  if (vdev.fn.intxLevel) intxHandler(vdev);
}

/** vfio_intx_disable(). */
function intxDisable(vdev: VfioPciCoreDevice): void {
  const ctx = intxCtx(vdev);
  if (!ctx) return;
  Virqfd.disable(ctx);
  ctx.releaseLine();
  ctx.trigger = null;
  vdev.irq = IRQ_NONE;
}

/** vfio_pci_set_intx_unmask(). */
function setIntxUnmask(
  vdev: VfioPciCoreDevice,
  task: Task,
  start: number,
  count: number,
  flags: number,
  data: Uint8Array,
): void {
  const ctx = intxCtx(vdev);
  if (!ctx || start !== 0 || count !== 1) return fail('EINVAL');
  if (flags & VFIO_IRQ_SET_DATA_NONE) {
    vfioPciIntxUnmask(vdev);
  } else if (flags & VFIO_IRQ_SET_DATA_BOOL) {
    if (data[0]) vfioPciIntxUnmask(vdev);
  } else if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    const fd = s32(data, 0);
    if (fd >= 0) {
      Virqfd.enable(
        task,
        fd,
        ctx,
        () => intxUnmaskHandler(vdev),
        () => sendIntxEventfd(vdev),
      );
      return;
    }
    Virqfd.disable(ctx);
  }
}

/** vfio_pci_set_intx_mask(): masking through an eventfd was never implemented (ENOTTY). */
function setIntxMask(
  vdev: VfioPciCoreDevice,
  _task: Task,
  start: number,
  count: number,
  flags: number,
  data: Uint8Array,
): void {
  if (!intxCtx(vdev) || start !== 0 || count !== 1) return fail('EINVAL');
  if (flags & VFIO_IRQ_SET_DATA_NONE) vfioPciIntxMask(vdev);
  else if (flags & VFIO_IRQ_SET_DATA_BOOL) {
    if (data[0]) vfioPciIntxMask(vdev);
  } else if (flags & VFIO_IRQ_SET_DATA_EVENTFD) fail('ENOTTY');
}

/** vfio_pci_set_intx_trigger(). */
function setIntxTrigger(
  vdev: VfioPciCoreDevice,
  task: Task,
  start: number,
  count: number,
  flags: number,
  data: Uint8Array,
): void {
  const intx = intxCtx(vdev);
  if (intx && !count && flags & VFIO_IRQ_SET_DATA_NONE) {
    intxDisable(vdev);
    return;
  }
  if (!(intx || vdev.irq.type === 'none') || start !== 0 || count !== 1) return fail('EINVAL');
  if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    const fd = s32(data, 0);
    const trigger = fd >= 0 ? eventfdCtxFdget(task, fd) : null;
    if (intx) {
      intx.trigger = trigger;
      return;
    }
    intxEnable(vdev, trigger);
    return;
  }
  if (!intx) return fail('EINVAL');
  // DATA_NONE / DATA_BOOL: loopback, the user testing its own handler.
  if (flags & VFIO_IRQ_SET_DATA_NONE || data[0]) sendIntxEventfd(vdev);
}

// --- MSI / MSI-X ---

/** vfio_msihandler(): one message from the device for `vector`. */
function msiHandler(vdev: VfioPciCoreDevice, vector: number): void {
  if (vdev.irq.type !== 'msi' && vdev.irq.type !== 'msix') return;
  vdev.irq.vectors[vector]?.trigger?.signal();
}

/**
 * vfio_msi_enable(): pci_alloc_irq_vectors() for `nvec` MSI vectors. The remapping entries are
 * allocated (one block, vector i at base + i, which is how the device's message data selects
 * them) and the function's MSI capability is programmed and enabled; INTx is disabled at the
 * device while MSI is on. Returns 0, or the smaller number of vectors the device offers.
 */
function msiEnable(vdev: VfioPciCoreDevice, nvec: number, msix: boolean): number {
  if (vdev.irq.type !== 'none') return fail('EINVAL');
  const msi = vdev.fn.msi;
  // No function model implements an MSI-X table (MSI-X counts are 0, so validation already
  // refuses); a device without MSI has an MSI count of 0 likewise.
  if (msix || !msi) return fail('EINVAL');
  // pci_alloc_irq_vectors(min 1, max 0): an EVENTFD call with count 0 on an inactive index.
  if (nvec < 1) return fail('ERANGE');
  if (msi.vectorsCapable < nvec) return msi.vectorsCapable;
  const table = vdev.irqRemap;
  const vectors: MsiVector[] = [];
  try {
    for (let i = 0; i < nvec; i++) {
      const remap = table.allocate(() => msiHandler(vdev, i), { requesterId: vdev.fn.requesterId });
      vectors.push({ trigger: null, remap });
      if (remap.index !== vectors[0]!.remap.index + i) fail('ENOSPC');
    }
  } catch (err) {
    for (const v of vectors) table.free(v.remap.index);
    throw err;
  }
  const base = vectors[0]!.remap;
  const fn = vdev.fn;
  fn.configWrite(msi.offset + PCI_MSI_ADDRESS_LO, 4, Number(base.address & 0xffffffffn));
  if (msi.address64) fn.configWrite(msi.offset + PCI_MSI_ADDRESS_HI, 4, Number(base.address >> 32n));
  fn.configWrite(msi.dataOffset, 2, base.data);
  const qsize = Math.log2(roundupPowerOfTwo(nvec)) << 4;
  const control = fn.configRead(msi.offset + PCI_MSI_FLAGS, 2);
  fn.configWrite(msi.offset + PCI_MSI_FLAGS, 2, (control & ~PCI_MSI_FLAGS_QSIZE) | qsize | PCI_MSI_FLAGS_ENABLE);
  pciIntx(vdev, false);
  vdev.irq = { type: 'msi', vectors };
  // The virtual multiple-message-capable field: log2 of the vectors enabled.
  vdev.msiQmax = Math.log2(roundupPowerOfTwo(nvec));
  return 0;
}

/** vfio_msi_set_vector_signal(): attach (fd >= 0) or detach (fd < 0) one vector's eventfd. */
function msiSetVectorSignal(vdev: VfioPciCoreDevice, task: Task, vector: number, fd: number): void {
  if (vdev.irq.type !== 'msi' && vdev.irq.type !== 'msix') return fail('EINVAL');
  const ctx = vdev.irq.vectors[vector];
  if (!ctx) return fail('EINVAL');
  ctx.trigger = null;
  if (fd < 0) return;
  ctx.trigger = eventfdCtxFdget(task, fd);
}

/** vfio_msi_set_block(): on failure every vector of the block is detached again. */
function msiSetBlock(vdev: VfioPciCoreDevice, task: Task, start: number, count: number, fds: Int32Array | null): void {
  const n = vdev.irq.type === 'msi' || vdev.irq.type === 'msix' ? vdev.irq.vectors.length : 0;
  if (start >= n || start + count > n) return fail('EINVAL');
  let j = start;
  try {
    for (let i = 0; i < count; i++, j++) msiSetVectorSignal(vdev, task, j, fds ? fds[i]! : -1);
  } catch (err) {
    for (j--; j >= start; j--) msiSetVectorSignal(vdev, task, j, -1);
    throw err;
  }
}

/** vfio_msi_disable(): eventfds dropped, vectors freed, INTx allowed again at the device. */
function msiDisable(vdev: VfioPciCoreDevice): void {
  if (vdev.irq.type !== 'msi' && vdev.irq.type !== 'msix') return;
  const vectors = vdev.irq.vectors;
  for (const v of vectors) v.trigger = null;
  const msi = vdev.fn.msi;
  if (msi) {
    const control = vdev.fn.configRead(msi.offset + PCI_MSI_FLAGS, 2);
    vdev.fn.configWrite(msi.offset + PCI_MSI_FLAGS, 2, control & ~PCI_MSI_FLAGS_ENABLE);
  }
  for (const v of vectors) vdev.irqRemap.free(v.remap.index);
  pciIntx(vdev, true);
  if (vdev.nointx) pciIntx(vdev, false);
  vdev.irq = IRQ_NONE;
}

/** vfio_pci_set_msi_trigger(). */
function setMsiTrigger(
  vdev: VfioPciCoreDevice,
  task: Task,
  index: number,
  start: number,
  count: number,
  flags: number,
  data: Uint8Array,
): number {
  const type = index === VFIO_PCI_MSIX_IRQ_INDEX ? 'msix' : 'msi';
  const active = vdev.irq.type === type;
  if (active && !count && flags & VFIO_IRQ_SET_DATA_NONE) {
    msiDisable(vdev);
    return 0;
  }
  if (!(active || vdev.irq.type === 'none')) return fail('EINVAL');
  if (flags & VFIO_IRQ_SET_DATA_EVENTFD) {
    const fds = new Int32Array(count);
    for (let i = 0; i < count; i++) fds[i] = s32(data, 4 * i);
    if (active) {
      msiSetBlock(vdev, task, start, count, fds);
      return 0;
    }
    const short = msiEnable(vdev, start + count, type === 'msix');
    if (short) return short;
    try {
      msiSetBlock(vdev, task, start, count, fds);
    } catch (err) {
      msiDisable(vdev);
      throw err;
    }
    return 0;
  }
  if (vdev.irq.type !== type || start + count > vdev.irq.vectors.length) return fail('EINVAL');
  for (let i = start; i < start + count; i++) {
    const trigger = vdev.irq.vectors[i]!.trigger;
    if (!trigger) continue;
    if (flags & VFIO_IRQ_SET_DATA_NONE || data[i - start]) trigger.signal();
  }
  return 0;
}

// --- ERR / REQ ---

/** vfio_pci_set_ctx_trigger_single(): one eventfd with loopback tests. */
function setCtxTriggerSingle(
  task: Task,
  slot: 'errTrigger' | 'reqTrigger',
  vdev: VfioPciCoreDevice,
  count: number,
  flags: number,
  data: Uint8Array,
): void {
  const current = vdev[slot];
  if (flags & VFIO_IRQ_SET_DATA_NONE) {
    if (!current) return fail('EINVAL');
    if (count) current.signal();
    else vdev[slot] = null;
    return;
  }
  if (!count) return fail('EINVAL');
  if (flags & VFIO_IRQ_SET_DATA_BOOL) {
    if (data[0] && current) current.signal();
    return;
  }
  const fd = s32(data, 0);
  if (fd === -1) vdev[slot] = null;
  else if (fd >= 0) vdev[slot] = eventfdCtxFdget(task, fd);
  // Any other negative fd is accepted and changes nothing.
}

function setErrReqTrigger(
  vdev: VfioPciCoreDevice,
  task: Task,
  index: number,
  start: number,
  count: number,
  flags: number,
  data: Uint8Array,
): void {
  if (start !== 0 || count > 1) return fail('EINVAL');
  setCtxTriggerSingle(task, index === VFIO_PCI_ERR_IRQ_INDEX ? 'errTrigger' : 'reqTrigger', vdev, count, flags, data);
}

// --- the ioctl ---

/**
 * vfio_pci_get_irq_count() for a function whose interrupt pin (as the user sees it) is `pin`:
 * INTx 1 with a pin; MSI the vectors the capability offers; MSI-X the table size; ERR 1 on
 * PCIe; REQ 1.
 */
export function pciIrqCount(fn: PciFunction, index: number, pin: number): number {
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      return pin ? 1 : 0;
    case VFIO_PCI_MSI_IRQ_INDEX:
      return fn.msi ? fn.msi.vectorsCapable : 0;
    case VFIO_PCI_MSIX_IRQ_INDEX: {
      const pos = fn.config.findCapability(PCI_CAP_ID_MSIX);
      return pos === null ? 0 : (fn.configRead(pos + PCI_MSIX_FLAGS, 2) & PCI_MSIX_FLAGS_QSIZE) + 1;
    }
    case VFIO_PCI_ERR_IRQ_INDEX:
      return fn.config.findCapability(PCI_CAP_ID_EXP) !== null ? 1 : 0;
    case VFIO_PCI_REQ_IRQ_INDEX:
      return 1;
    default:
      return 0;
  }
}

/** What GET_IRQ_INFO reports and SET_IRQS validates against for an open device. */
export function vfioPciGetIrqCount(vdev: VfioPciCoreDevice, index: number): number {
  return pciIrqCount(vdev.fn, index, virtualInterruptPin(vdev));
}

/** vfio_set_irqs_validate_and_prepare(): the generic checks, in the kernel's order. */
function setIrqsValidate(
  hdr: { argsz: number; flags: number; index: number; start: number; count: number },
  numIrqs: number,
): number {
  const minsz = vfioMinsz.vfio_irq_set.minsz;
  if (
    hdr.argsz < minsz ||
    hdr.index >= VFIO_PCI_NUM_IRQS ||
    hdr.count >= U32_MAX - hdr.start ||
    hdr.flags & ~(VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK)
  ) {
    return fail('EINVAL');
  }
  if (hdr.start >= numIrqs || hdr.start + hdr.count > numIrqs) return fail('EINVAL');
  let size: number;
  switch (hdr.flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
    case VFIO_IRQ_SET_DATA_NONE:
      size = 0;
      break;
    case VFIO_IRQ_SET_DATA_BOOL:
      size = 1;
      break;
    case VFIO_IRQ_SET_DATA_EVENTFD:
      size = 4;
      break;
    default:
      return fail('EINVAL');
  }
  if (size && hdr.argsz - minsz < hdr.count * size) return fail('EINVAL');
  return hdr.count * size;
}

type IrqHandler = (
  vdev: VfioPciCoreDevice,
  task: Task,
  start: number,
  count: number,
  flags: number,
  data: Uint8Array,
) => number | void;

/** vfio_pci_set_irqs_ioctl(): (index, action) -> handler; anything else is ENOTTY. */
function irqHandlerFor(vdev: VfioPciCoreDevice, index: number, action: number): IrqHandler | null {
  switch (index) {
    case VFIO_PCI_INTX_IRQ_INDEX:
      if (action === VFIO_IRQ_SET_ACTION_MASK) return setIntxMask;
      if (action === VFIO_IRQ_SET_ACTION_UNMASK) return setIntxUnmask;
      if (action === VFIO_IRQ_SET_ACTION_TRIGGER) return setIntxTrigger;
      return null;
    case VFIO_PCI_MSI_IRQ_INDEX:
    case VFIO_PCI_MSIX_IRQ_INDEX:
      if (action !== VFIO_IRQ_SET_ACTION_TRIGGER) return null;
      return (v, t, s, c, f, d) => setMsiTrigger(v, t, index, s, c, f, d);
    case VFIO_PCI_ERR_IRQ_INDEX:
      if (action !== VFIO_IRQ_SET_ACTION_TRIGGER || !vdev.isPcie) return null;
      return (v, t, s, c, f, d) => setErrReqTrigger(v, t, index, s, c, f, d);
    case VFIO_PCI_REQ_IRQ_INDEX:
      if (action !== VFIO_IRQ_SET_ACTION_TRIGGER) return null;
      return (v, t, s, c, f, d) => setErrReqTrigger(v, t, index, s, c, f, d);
    default:
      return null;
  }
}

/**
 * vfio_pci_set_irqs_ioctl() with its arguments already validated; also the teardown path
 * (close disables whatever is active with DATA_NONE|TRIGGER, count 0).
 */
export function vfioPciSetIrqs(
  vdev: VfioPciCoreDevice,
  task: Task,
  flags: number,
  index: number,
  start: number,
  count: number,
  data: Uint8Array,
): number {
  const handler = irqHandlerFor(vdev, index, flags & VFIO_IRQ_SET_ACTION_TYPE_MASK);
  if (!handler) return fail('ENOTTY');
  // A positive result is MSI's "only this many vectors available" [amb: legacy quirk].
  return handler(vdev, task, start, count, flags, data) ?? 0;
}

/** VFIO_DEVICE_SET_IRQS (vfio_pci_ioctl_set_irqs). */
export function vfioPciIoctlSetIrqs(vdev: VfioPciCoreDevice, task: Task, arg: bigint): number {
  const minsz = vfioMinsz.vfio_irq_set.minsz;
  const hdr = vfio_irq_set.decode(task.copyFromUser(arg, minsz));
  const dataSize = setIrqsValidate(hdr, vfioPciGetIrqCount(vdev, hdr.index));
  const data = dataSize ? task.copyFromUser(arg + BigInt(minsz), dataSize) : new Uint8Array(0);
  return vfioPciSetIrqs(vdev, task, hdr.flags, hdr.index, hdr.start, hdr.count, data);
}

/** Close path: every interrupt off, every eventfd released (vfio_pci_core_disable/close). */
export function vfioPciIrqsRelease(vdev: VfioPciCoreDevice): void {
  if (vdev.irq.type === 'intx') intxDisable(vdev);
  else msiDisable(vdev);
  vdev.errTrigger = null;
  vdev.reqTrigger = null;
}

function s32(data: Uint8Array, at: number): number {
  return data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24) | 0;
}

function roundupPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}
