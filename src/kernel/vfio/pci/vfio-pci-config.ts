/**
 * vfio-pci config space virtualization (drivers/vfio/pci/vfio_pci_config.c; semantics.md §6.5).
 *
 * The user sees a merge of two config spaces: the hardware's and a shadow (`vconfig`) the driver
 * keeps. Which bits come from where is data, not code:
 * - a byte map from config offset to the capability that owns the byte (`map`),
 * - per capability type a frozen permission table: `virt` bits live in vconfig, `write` bits may
 *   be written (virtual ones into vconfig, the others through to hardware); everything else is
 *   read-only and writes to it are silently dropped,
 * - one generic merge (`defaultConfigRead` / `defaultConfigWrite`), and small overrides where
 *   the behaviour is special: the header (BAR sizing, COMMAND, INTx disable), MSI (enable only
 *   through SET_IRQS, QMASK from msi_qmax), PM (power state changes), PCIe/AF (FLR).
 * Bytes of no visible capability are passed through raw; capabilities without a table read
 * from hardware except their header, and drop writes.
 */
import {
  PCI_AF_CAP,
  PCI_AF_CAP_FLR,
  PCI_AF_CAP_TP,
  PCI_AF_CTRL,
  PCI_AF_CTRL_FLR,
  PCI_BASE_ADDRESS_0,
  PCI_BASE_ADDRESS_MEM_PREFETCH,
  PCI_BASE_ADDRESS_MEM_TYPE_64,
  PCI_BASE_ADDRESS_SPACE_IO,
  PCI_BIST,
  PCI_CACHE_LINE_SIZE,
  PCI_CAPABILITY_LIST,
  PCI_CAP_FLAGS,
  PCI_CAP_ID_AF,
  PCI_CAP_ID_EXP,
  PCI_CAP_ID_MAX,
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_MSIX,
  PCI_CAP_ID_PM,
  PCI_CAP_ID_VNDR,
  PCI_CAP_LIST_ID,
  PCI_CAP_LIST_NEXT,
  PCI_CFG_SPACE_EXP_START,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_IO,
  PCI_COMMAND_MEMORY,
  PCI_CONFIG_SPACE_SIZE,
  PCI_DEVICE_ID,
  PCI_ERR_CAP,
  PCI_ERR_COR_MASK,
  PCI_ERR_COR_STATUS,
  PCI_ERR_ROOT_COMMAND,
  PCI_ERR_UNCOR_MASK,
  PCI_ERR_UNCOR_SEVER,
  PCI_ERR_UNCOR_STATUS,
  PCI_EXP_DEVCAP,
  PCI_EXP_DEVCAP_FLR,
  PCI_EXP_DEVCTL,
  PCI_EXP_DEVCTL2,
  PCI_EXP_DEVCTL2_ARI,
  PCI_EXP_DEVCTL_BCR_FLR,
  PCI_EXP_DEVCTL_PAYLOAD,
  PCI_EXP_DEVCTL_PHANTOM,
  PCI_EXP_DEVCTL_READRQ,
  PCI_EXP_FLAGS,
  PCI_EXP_FLAGS_TYPE,
  PCI_EXP_FLAGS_VERS,
  PCI_EXP_TYPE_RC_END,
  PCI_EXT_CAP_ID_DVSEC,
  PCI_EXT_CAP_ID_ERR,
  PCI_EXT_CAP_ID_PWR,
  PCI_EXT_CAP_ID_VNDR,
  PCI_INTERRUPT_LINE,
  PCI_INTERRUPT_PIN,
  PCI_LATENCY_TIMER,
  PCI_MSI_ADDRESS_HI,
  PCI_MSI_ADDRESS_LO,
  PCI_MSI_DATA_32,
  PCI_MSI_DATA_64,
  PCI_MSI_FLAGS,
  PCI_MSI_FLAGS_64BIT,
  PCI_MSI_FLAGS_ENABLE,
  PCI_MSI_FLAGS_MASKBIT,
  PCI_MSI_FLAGS_QMASK,
  PCI_MSI_FLAGS_QSIZE,
  PCI_MSI_MASK_32,
  PCI_MSI_MASK_64,
  PCI_MSI_PENDING_32,
  PCI_MSI_PENDING_64,
  PCI_NUM_BARS,
  PCI_PM_CAP_PME_MASK,
  PCI_PM_CTRL,
  PCI_PM_CTRL_PME_ENABLE,
  PCI_PM_CTRL_PME_STATUS,
  PCI_PM_CTRL_STATE_MASK,
  PCI_PM_PMC,
  PCI_PWR_DATA,
  PCI_ROM_ADDRESS,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_STD_HEADER_SIZEOF,
  PCI_VENDOR_ID,
  PCI_VPD_ADDR,
  PCI_VPD_DATA,
  PCI_X_CMD,
  PCI_X_ECC_CSR,
} from '../../../hw/pci/regs.js';
import type { PciFunction } from '../../../hw/pci/function.js';
import { fail } from '../../../uapi/errno.js';
import type { VfioPciCoreDevice } from './vfio-pci-core.js';
import { vfioPciIntxMask, vfioPciIntxUnmask } from './vfio-pci-intrs.js';

/** Every uncorrectable error status bit from Undefined to TLP Prefix Blocked. */
const PCI_ERR_UNC_WRITABLE = 0x03fff031;
const PCI_ERR_COR_WRITABLE = 0xf1c1;
const PCI_ERR_CAP_ECRC_GENE_CHKE = 0x0140;

export const PCI_CAP_ID_BASIC = 0;
/** Map value of bytes no capability owns: raw pass-through. */
export const PCI_CAP_ID_INVALID = 0xff;

/** PCI power states as pci_power_t numbers them. */
export const PCI_D0 = 0;
export const PCI_D3HOT = 3;

const ALL = 0xffffffff;

// --- permission tables ---

type ConfigReadFn = (vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number) => number;
type ConfigWriteFn = (
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
) => void;

/**
 * struct perm_bits: per-byte masks over one capability (rounded up to whole dwords) plus the
 * read/write behaviour. A capability without masks (`virt` empty) reads from hardware except
 * its ID/NEXT header, and its writes are dropped unless `writefn` says otherwise.
 */
export interface PermBits {
  readonly name: string;
  /** Virtualized bits, one mask byte per config byte of the capability. */
  readonly virt: readonly number[];
  /** Writable bits. */
  readonly write: readonly number[];
  readonly readfn: ConfigReadFn;
  readonly writefn: ConfigWriteFn | null;
}

/** A mask of `width` bytes at `offset` of `table` (little-endian), for code and tests. */
export function permMask(table: readonly number[], offset: number, width: number): number {
  let value = 0;
  for (let i = width - 1; i >= 0; i--) value = value * 256 + (table[offset + i] ?? 0);
  return value;
}

/** Builds frozen masks of `size` bytes (rounded up to a dword, as alloc_perm_bits does). */
function masks(
  size: number,
  fields: ReadonlyArray<readonly [offset: number, width: number, virt: number, write: number]>,
) {
  const length = Math.ceil(size / 4) * 4;
  const virt = new Array<number>(length).fill(0);
  const write = new Array<number>(length).fill(0);
  for (const [offset, width, v, w] of fields) {
    for (let i = 0; i < width; i++) {
      virt[offset + i] = (v >>> (8 * i)) & 0xff;
      write[offset + i] = (w >>> (8 * i)) & 0xff;
    }
  }
  return { virt: Object.freeze(virt), write: Object.freeze(write) };
}

function perms(
  name: string,
  size: number,
  fields: ReadonlyArray<readonly [number, number, number, number]>,
  fns: { readfn?: ConfigReadFn; writefn?: ConfigWriteFn } = {},
): PermBits {
  return Object.freeze({
    name,
    ...masks(size, fields),
    readfn: fns.readfn ?? defaultConfigRead,
    writefn: fns.writefn ?? defaultConfigWrite,
  });
}

/** Capabilities with no table: hardware reads with a virtual header; writes dropped or raw. */
function directPerms(name: string, writefn: ConfigWriteFn | null = null): PermBits {
  return Object.freeze({ name, virt: Object.freeze([]), write: Object.freeze([]), readfn: directConfigRead, writefn });
}

/** The standard header (init_pci_cap_basic_perm). */
export const basicPerms: PermBits = perms(
  'basic',
  PCI_STD_HEADER_SIZEOF,
  [
    // Virtualized so VFs (which read ffff) can show real ids.
    [PCI_VENDOR_ID, 2, 0xffff, 0],
    [PCI_DEVICE_ID, 2, 0xffff, 0],
    // INTx disable is emulated: the driver masks INTx itself with the real bit.
    [PCI_COMMAND, 2, PCI_COMMAND_INTX_DISABLE, 0xffff],
    // CAP_LIST is virtual so the chain can be hidden.
    [PCI_STATUS, 2, PCI_STATUS_CAP_LIST, 0],
    [PCI_CACHE_LINE_SIZE, 1, 0, 0xff],
    [PCI_LATENCY_TIMER, 1, 0, 0xff],
    [PCI_BIST, 1, 0, 0xff],
    // The real BARs are never touched: the user programs a shadow (sizing emulated on read).
    ...[0, 1, 2, 3, 4, 5].map((i) => [PCI_BASE_ADDRESS_0 + 4 * i, 4, ALL, ALL] as const),
    [PCI_ROM_ADDRESS, 4, ALL, ALL],
    [PCI_CAPABILITY_LIST, 1, 0xff, 0],
    [PCI_INTERRUPT_LINE, 1, 0xff, 0xff],
    [PCI_INTERRUPT_PIN, 1, 0xff, 0],
  ],
  { readfn: basicConfigRead, writefn: basicConfigWrite },
);

/** Power management (init_pci_cap_pm_perm): PME bits hidden, power state changes trapped. */
export const pmPerms: PermBits = perms(
  'pm',
  8,
  [
    [PCI_CAP_LIST_NEXT, 1, 0xff, 0],
    [PCI_PM_PMC, 2, PCI_PM_CAP_PME_MASK, 0],
    [
      PCI_PM_CTRL,
      4,
      PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS,
      ~(PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS | PCI_PM_CTRL_STATE_MASK) >>> 0,
    ],
  ],
  { writefn: pmConfigWrite },
);

/** Vital product data (init_pci_cap_vpd_perm): address/data registers are the kernel's. */
export const vpdPerms: PermBits = perms(
  'vpd',
  8,
  [
    [PCI_CAP_LIST_NEXT, 1, 0xff, 0],
    [PCI_VPD_ADDR, 2, 0xffff, 0xffff],
    [PCI_VPD_DATA, 4, ALL, ALL],
  ],
  // vfio_vpd_config_write() would run pci_read/write_vpd(); no model has VPD storage, so the
  // access fails, the completion flag never toggles, and the driver sees a VPD timeout.
);

/** PCI-X (init_pci_cap_pcix_perm): command and ECC CSR writable. */
export const pcixPerms: PermBits = perms('pcix', 24, [
  [PCI_CAP_LIST_NEXT, 1, 0xff, 0],
  [PCI_X_CMD, 2, 0, 0xffff],
  [PCI_X_ECC_CSR, 4, 0, ALL],
]);

/** PCI Express (init_pci_cap_exp_perm): device control writable but phantom functions. */
export const expPerms: PermBits = perms(
  'exp',
  52,
  [
    [PCI_CAP_LIST_NEXT, 1, 0xff, 0],
    [
      PCI_EXP_DEVCTL,
      2,
      PCI_EXP_DEVCTL_BCR_FLR | PCI_EXP_DEVCTL_PAYLOAD | PCI_EXP_DEVCTL_READRQ,
      ~PCI_EXP_DEVCTL_PHANTOM & 0xffff,
    ],
    [PCI_EXP_DEVCTL2, 2, 0, ~PCI_EXP_DEVCTL2_ARI & 0xffff],
  ],
  { writefn: expConfigWrite },
);

/** Advanced features (init_pci_cap_af_perm): the FLR bit is virtual and triggers a reset. */
export const afPerms: PermBits = perms(
  'af',
  6,
  [
    [PCI_CAP_LIST_NEXT, 1, 0xff, 0],
    [PCI_AF_CTRL, 1, PCI_AF_CTRL_FLR, PCI_AF_CTRL_FLR],
  ],
  { writefn: afConfigWrite },
);

/** AER (init_pci_ext_cap_err_perm): the header dword virtual, error status/mask bits writable. */
export const errPerms: PermBits = perms('err', PCI_ERR_ROOT_COMMAND, [
  [0, 4, ALL, 0],
  [PCI_ERR_UNCOR_STATUS, 4, 0, PCI_ERR_UNC_WRITABLE],
  [PCI_ERR_UNCOR_MASK, 4, 0, PCI_ERR_UNC_WRITABLE],
  [PCI_ERR_UNCOR_SEVER, 4, 0, PCI_ERR_UNC_WRITABLE],
  [PCI_ERR_COR_STATUS, 4, 0, PCI_ERR_COR_WRITABLE],
  [PCI_ERR_COR_MASK, 4, 0, PCI_ERR_COR_WRITABLE],
  [PCI_ERR_CAP, 4, 0, PCI_ERR_CAP_ECRC_GENE_CHKE],
]);

/** Power budgeting (init_pci_ext_cap_pwr_perm): only the data selector is writable. */
export const pwrPerms: PermBits = perms('pwr', 16, [
  [0, 4, ALL, 0],
  [PCI_PWR_DATA, 1, 0, 0xff],
]);

/**
 * MSI (init_pci_cap_msi_perm), which depends on the capability's layout: flags low byte,
 * address and data virtual and writable; mask/pending bits (if any) written to hardware.
 */
export function msiPerms(flags: number): PermBits {
  return MSI_PERMS[(flags & PCI_MSI_FLAGS_64BIT ? 1 : 0) | (flags & PCI_MSI_FLAGS_MASKBIT ? 2 : 0)]!;
}

function buildMsiPerms(flags: number): PermBits {
  const is64 = (flags & PCI_MSI_FLAGS_64BIT) !== 0;
  const maskbit = (flags & PCI_MSI_FLAGS_MASKBIT) !== 0;
  const fields: [number, number, number, number][] = [
    [PCI_CAP_LIST_NEXT, 1, 0xff, 0],
    // The upper byte of the control register is reserved.
    [PCI_MSI_FLAGS, 1, 0xff, 0xff],
    [PCI_MSI_ADDRESS_LO, 4, ALL, ALL],
  ];
  if (is64) fields.push([PCI_MSI_ADDRESS_HI, 4, ALL, ALL], [PCI_MSI_DATA_64, 2, 0xffff, 0xffff]);
  else fields.push([PCI_MSI_DATA_32, 2, 0xffff, 0xffff]);
  if (maskbit) {
    fields.push(is64 ? [PCI_MSI_MASK_64, 4, 0, ALL] : [PCI_MSI_MASK_32, 4, 0, ALL]);
    fields.push(is64 ? [PCI_MSI_PENDING_64, 4, 0, ALL] : [PCI_MSI_PENDING_32, 4, 0, ALL]);
  }
  return perms(`msi${is64 ? '64' : '32'}${maskbit ? '-maskbit' : ''}`, msiCapLength(flags), fields, {
    readfn: msiConfigRead,
    writefn: msiConfigWrite,
  });
}

/** The four MSI layouts: [32-bit, 64-bit, 32-bit + masking, 64-bit + masking]. */
const MSI_PERMS: readonly PermBits[] = Object.freeze(
  [0, PCI_MSI_FLAGS_64BIT, PCI_MSI_FLAGS_MASKBIT, PCI_MSI_FLAGS_64BIT | PCI_MSI_FLAGS_MASKBIT].map(buildMsiPerms),
);

const unassignedPerms: PermBits = Object.freeze({
  name: 'unassigned',
  virt: Object.freeze([]),
  write: Object.freeze([]),
  readfn: rawConfigRead,
  writefn: rawConfigWrite,
});

/** cap_perms[]: standard capability id -> table (MSI is per device, see msiPerms). */
export const capPerms: ReadonlyMap<number, PermBits> = new Map([
  [PCI_CAP_ID_BASIC, basicPerms],
  [PCI_CAP_ID_PM, pmPerms],
  [0x03, vpdPerms],
  [0x07, pcixPerms],
  [PCI_CAP_ID_VNDR, directPerms('vndr', rawConfigWrite)],
  [PCI_CAP_ID_EXP, expPerms],
  [PCI_CAP_ID_MSIX, directPerms('msix')],
  [PCI_CAP_ID_AF, afPerms],
]);

/** ecap_perms[]: extended capability id -> table. */
export const ecapPerms: ReadonlyMap<number, PermBits> = new Map([
  [PCI_EXT_CAP_ID_ERR, errPerms],
  [PCI_EXT_CAP_ID_PWR, pwrPerms],
  [PCI_EXT_CAP_ID_VNDR, directPerms('ext-vndr', rawConfigWrite)],
  [PCI_EXT_CAP_ID_DVSEC, directPerms('dvsec', rawConfigWrite)],
]);

const defaultCapPerms = directPerms('cap');

/**
 * pci_cap_length[]: bytes a standard capability spans; 0 hides it from the user's chain,
 * 0xff means "read its length from the device".
 */
export const pciCapLength: readonly number[] = Object.freeze([
  PCI_STD_HEADER_SIZEOF, // basic
  8, // PM
  12, // AGP
  8, // VPD
  0, // SLOTID: bridges only
  0xff, // MSI
  0, // CHSWP
  0xff, // PCI-X
  0xff, // HyperTransport
  0xff, // vendor specific
  0, // DBG
  0, // CCRC
  0, // SHPC
  0, // SSVID
  0, // AGP3
  0, // SECDEV
  0xff, // PCIe
  12, // MSI-X
  0xff, // SATA
  6, // AF
  0, // EA
]);

/** pci_ext_cap_length[] (ids past the table, e.g. DPC or PTM, are hidden like the 0 entries). */
const pciExtCapLength: ReadonlyMap<number, number> = new Map([
  [PCI_EXT_CAP_ID_ERR, PCI_ERR_ROOT_COMMAND],
  [0x02, 0xff], // VC
  [0x03, 12], // DSN
  [PCI_EXT_CAP_ID_PWR, 16],
  [0x08, 0xff], // MFVC
  [0x09, 0xff], // VC9
  [PCI_EXT_CAP_ID_VNDR, 0xff],
  [0x0d, 0xff], // ACS
  [0x0e, 8], // ARI
  [0x0f, 8], // ATS
  [0x10, 0x40], // SR-IOV
  [0x12, 40], // multicast
  [0x13, 16], // PRI
  [0x15, 0xff], // resizable BAR
  [0x16, 0xff], // DPA
  [0x17, 0xff], // TPH
  [0x18, 8], // LTR
  [PCI_EXT_CAP_ID_DVSEC, 0xff],
]);

// --- the per-device state ---

/** The shadow config space of an open device (vdev->vconfig, ->pci_config_map, ->rbar). */
export class VfioPciConfigState {
  readonly vconfig: Uint8Array;
  /** Owner of each byte: a capability id, or PCI_CAP_ID_INVALID. */
  readonly map: Uint8Array;
  /** Hardware BAR and ROM values at enable, restored after a backdoor reset. */
  readonly rbar: number[] = [];
  msiPerm: PermBits | null = null;
  bardirty = true;
  extendedCaps = false;

  constructor(readonly size: number) {
    this.vconfig = new Uint8Array(size);
    this.map = new Uint8Array(size).fill(PCI_CAP_ID_INVALID);
  }

  get(offset: number, width: number): number {
    return getLe(this.vconfig, offset, width);
  }

  set(offset: number, width: number, value: number): void {
    setLe(this.vconfig, offset, width, value);
  }
}

function getLe(bytes: Uint8Array, offset: number, width: number): number {
  let value = 0;
  for (let i = width - 1; i >= 0; i--) value = value * 256 + bytes[offset + i]!;
  return value;
}

function setLe(bytes: Uint8Array, offset: number, width: number, value: number): void {
  for (let i = 0; i < width; i++) bytes[offset + i] = (value >>> (8 * i)) & 0xff;
}

const fullMask = (count: number): number => (count === 4 ? ALL : (1 << (8 * count)) - 1);

function cfg(vdev: VfioPciCoreDevice): VfioPciConfigState {
  return vdev.config ?? fail('EINVAL');
}

const hwRead = (fn: PciFunction, pos: number, count: number): number => fn.configRead(pos, count);
const hwWrite = (fn: PciFunction, pos: number, count: number, value: number): void =>
  fn.configWrite(pos, count, value >>> 0);

// --- the generic merge ---

function defaultConfigRead(
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
): number {
  const state = cfg(vdev);
  const val = state.get(pos, count);
  const virt = permMask(perm.virt, offset, count);
  if (virt === fullMask(count)) return val;
  const phys = hwRead(vdev.fn, pos, count);
  return ((phys & ~virt) | (val & virt)) >>> 0;
}

function defaultConfigWrite(
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
): void {
  const write = permMask(perm.write, offset, count);
  if (!write) return; // nothing writable: dropped, still counted as written
  const virt = permMask(perm.virt, offset, count);
  const state = cfg(vdev);
  if (write & virt) {
    const mask = write & virt;
    state.set(pos, count, ((state.get(pos, count) & ~mask) | (val & mask)) >>> 0);
  }
  if (write & ~virt) {
    const mask = write & ~virt;
    const phys = hwRead(vdev.fn, pos, count);
    hwWrite(vdev.fn, pos, count, (phys & ~mask) | (val & mask));
  }
}

/** vfio_direct_config_read(): hardware, except the capability header from vconfig. */
function directConfigRead(
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  _perm: PermBits,
  offset: number,
): number {
  let val = hwRead(vdev.fn, pos, count);
  const state = cfg(vdev);
  if (pos >= PCI_CONFIG_SPACE_SIZE) {
    if (offset < 4) val = state.get(pos, count);
  } else if (pos >= PCI_STD_HEADER_SIZEOF) {
    // A one-byte read of the ID itself comes from hardware, as in the kernel.
    if (offset === PCI_CAP_LIST_ID && count > 1) {
      const n = Math.min(PCI_CAP_FLAGS, count);
      val = (val & ~fullMask(n)) | state.get(pos, n);
    } else if (offset === PCI_CAP_LIST_NEXT) {
      val = ((val & ~0xff) | state.get(pos, 1)) >>> 0;
    }
  }
  return val >>> 0;
}

function rawConfigRead(vdev: VfioPciCoreDevice, pos: number, count: number): number {
  return hwRead(vdev.fn, pos, count);
}

function rawConfigWrite(
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  _p: PermBits,
  _o: number,
  val: number,
): void {
  hwWrite(vdev.fn, pos, count, val);
}

// --- the standard header ---

const isBar = (offset: number): boolean =>
  (offset >= PCI_BASE_ADDRESS_0 && offset < PCI_BASE_ADDRESS_0 + 4 * PCI_NUM_BARS) ||
  (offset >= PCI_ROM_ADDRESS && offset < PCI_ROM_ADDRESS + 4);

function basicConfigRead(vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number): number {
  if (isBar(offset)) barFixup(vdev);
  return defaultConfigRead(vdev, pos, count, perm, offset);
}

/**
 * vfio_bar_fixup(): what a sizing read returns. The shadow BAR keeps only the address bits the
 * BAR decodes plus its type bits, so writing all-ones reads back the size mask; BARs the host did
 * not assign read 0, and so does an absent ROM.
 */
function barFixup(vdev: VfioPciCoreDevice): void {
  const state = cfg(vdev);
  for (let i = 0; i < PCI_NUM_BARS; i++) {
    const offset = PCI_BASE_ADDRESS_0 + 4 * i;
    const bar = vdev.fn.bar(i);
    if (!bar || bar.address === 0n) {
      state.set(offset, 4, 0);
      continue;
    }
    const mask = BigInt.asUintN(64, ~(BigInt(bar.size) - 1n));
    let flags = 0;
    if (bar.kind === 'io') flags = PCI_BASE_ADDRESS_SPACE_IO;
    else
      flags =
        (bar.prefetchable ? PCI_BASE_ADDRESS_MEM_PREFETCH : 0) |
        (bar.kind === 'mem64' ? PCI_BASE_ADDRESS_MEM_TYPE_64 : 0);
    state.set(offset, 4, ((state.get(offset, 4) & Number(mask & 0xffffffffn)) | flags) >>> 0);
    if (bar.kind === 'mem64') {
      state.set(offset + 4, 4, (state.get(offset + 4, 4) & Number(mask >> 32n)) >>> 0);
      i++;
    }
  }
  // No function model has an expansion ROM (nor a shadow ROM): the ROM BAR reads 0.
  state.set(PCI_ROM_ADDRESS, 4, 0);
  state.bardirty = false;
}

/** vfio_need_bar_restore(): the hardware BARs no longer hold what they held at enable. */
function needBarRestore(vdev: VfioPciCoreDevice): boolean {
  const state = cfg(vdev);
  for (let i = 0; i < PCI_NUM_BARS; i++) {
    const saved = state.rbar[i] ?? 0;
    if (saved && hwRead(vdev.fn, PCI_BASE_ADDRESS_0 + 4 * i, 4) !== saved) return true;
  }
  return false;
}

/** vfio_bar_restore(): puts the real BARs back after a reset we did not see. */
function barRestore(vdev: VfioPciCoreDevice): void {
  const state = cfg(vdev);
  for (let i = 0; i < PCI_NUM_BARS; i++) hwWrite(vdev.fn, PCI_BASE_ADDRESS_0 + 4 * i, 4, state.rbar[i] ?? 0);
  hwWrite(vdev.fn, PCI_ROM_ADDRESS, 4, state.rbar[PCI_NUM_BARS] ?? 0);
}

/**
 * vfio_basic_config_write(): COMMAND writes go to hardware, but the MEMORY/IO enables are also
 * remembered in vconfig (BAR access and mmap faults test the virtual MEMORY bit) and INTx
 * disable is emulated by masking/unmasking the interrupt.
 */
function basicConfigWrite(
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
): void {
  const state = cfg(vdev);
  const newCmd = val & 0xffff;
  if (offset === PCI_COMMAND) {
    const physCmd = hwRead(vdev.fn, PCI_COMMAND, 2);
    const virtCmd = state.get(PCI_COMMAND, 2);
    const reenables = (bit: number): boolean => (newCmd & bit) !== 0 && (virtCmd & bit) !== 0 && (physCmd & bit) === 0;
    if (reenables(PCI_COMMAND_MEMORY) || reenables(PCI_COMMAND_IO) || needBarRestore(vdev)) barRestore(vdev);
  }
  defaultConfigWrite(vdev, pos, count, perm, offset, val);
  if (offset === PCI_COMMAND) {
    const keep = PCI_COMMAND_MEMORY | PCI_COMMAND_IO;
    state.set(PCI_COMMAND, 2, (state.get(PCI_COMMAND, 2) & ~keep) | (newCmd & keep));
  }
  if (offset >= PCI_COMMAND && offset <= PCI_COMMAND + 1) {
    const virtIntxDisable = (state.get(PCI_COMMAND, 2) & PCI_COMMAND_INTX_DISABLE) !== 0;
    if (virtIntxDisable && !vdev.virqDisabled) {
      vdev.virqDisabled = true;
      vfioPciIntxMask(vdev);
    } else if (!virtIntxDisable && vdev.virqDisabled) {
      vdev.virqDisabled = false;
      vfioPciIntxUnmask(vdev);
    }
  }
  if (isBar(offset)) state.bardirty = true;
}

/** Whether BAR accesses and mmap faults may proceed (__vfio_pci_memory_enabled). */
export function memoryEnabled(vdev: VfioPciCoreDevice): boolean {
  const state = vdev.config;
  if (!state || vdev.powerState >= PCI_D3HOT) return false;
  // MEMORY is in COMMAND's low byte: one byte test instead of a 16-bit read, since every access
  // through a mapped BAR asks. Reading vconfig itself (no cached copy) keeps every writer of
  // COMMAND (config writes, reset and restore paths) seen at once.
  return (state.vconfig[PCI_COMMAND]! & PCI_COMMAND_MEMORY) !== 0;
}

// --- capabilities with behaviour ---

/** vfio_pm_config_write(): the user asks for a power state; the kernel performs it. */
function pmConfigWrite(
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
): void {
  defaultConfigWrite(vdev, pos, count, perm, offset, val);
  if (offset !== PCI_PM_CTRL) return;
  const state = val & PCI_PM_CTRL_STATE_MASK;
  vdev.setPowerState(state);
}

/** vfio_exp_config_write(): a written FLR bit resets the function and reads back 0. */
function expConfigWrite(
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
): void {
  const state = cfg(vdev);
  const ctrl = pos - offset + PCI_EXP_DEVCTL;
  defaultConfigWrite(vdev, pos, count, perm, offset, val);
  const devctl = state.get(ctrl, 2);
  if (devctl & PCI_EXP_DEVCTL_BCR_FLR) {
    state.set(ctrl, 2, devctl & ~PCI_EXP_DEVCTL_BCR_FLR);
    const cap = hwRead(vdev.fn, pos - offset + PCI_EXP_DEVCAP, 4);
    if (cap & PCI_EXP_DEVCAP_FLR) vdev.tryResetFunction();
  }
  // MRRS is written to hardware by pcie_set_readrq(), never below MPS; the models ignore it.
}

/** vfio_af_config_write(): the AF FLR bit, likewise. */
function afConfigWrite(
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
): void {
  const state = cfg(vdev);
  const ctrl = pos - offset + PCI_AF_CTRL;
  defaultConfigWrite(vdev, pos, count, perm, offset, val);
  const byte = state.get(ctrl, 1);
  if (byte & PCI_AF_CTRL_FLR) {
    state.set(ctrl, 1, byte & ~PCI_AF_CTRL_FLR);
    const cap = hwRead(vdev.fn, pos - offset + PCI_AF_CAP, 1);
    if (cap & PCI_AF_CAP_FLR && cap & PCI_AF_CAP_TP) vdev.tryResetFunction();
  }
}

function findCapStart(state: VfioPciConfigState, pos: number): number {
  const cap = state.map[pos]!;
  if (cap === PCI_CAP_ID_BASIC && pos < PCI_STD_HEADER_SIZEOF) return 0;
  const base = pos >= PCI_CONFIG_SPACE_SIZE ? PCI_CONFIG_SPACE_SIZE : PCI_STD_HEADER_SIZEOF;
  while (pos - 1 >= base && state.map[pos - 1] === cap) pos--;
  return pos;
}

/** vfio_msi_config_read(): QMASK shows msi_qmax (what SET_IRQS enabled), not the hardware's. */
function msiConfigRead(vdev: VfioPciCoreDevice, pos: number, count: number, perm: PermBits, offset: number): number {
  if (offset <= PCI_MSI_FLAGS && offset + count >= PCI_MSI_FLAGS) {
    const state = cfg(vdev);
    const flagsAt = findCapStart(state, pos) + PCI_MSI_FLAGS;
    state.set(flagsAt, 2, (state.get(flagsAt, 2) & ~PCI_MSI_FLAGS_QMASK) | (vdev.msiQmax << 1));
  }
  return defaultConfigRead(vdev, pos, count, perm, offset);
}

/**
 * vfio_msi_config_write(): MSI is enabled by SET_IRQS only, so a written enable bit sticks only
 * while MSI is the active interrupt type; the message count is clamped to msi_qmax; then the
 * flags are written to hardware too. Hence after SET_IRQS the config region still shows the
 * enable bit clear until the user sets it (probe-612-edu.txt: ctrl 0x0080 right after
 * SET_IRQS); semantics.md §6.5's "reads 1 while enabled" is that state after the user's write.
 */
function msiConfigWrite(
  vdev: VfioPciCoreDevice,
  pos: number,
  count: number,
  perm: PermBits,
  offset: number,
  val: number,
): void {
  defaultConfigWrite(vdev, pos, count, perm, offset, val);
  if (!(offset <= PCI_MSI_FLAGS && offset + count >= PCI_MSI_FLAGS)) return;
  const state = cfg(vdev);
  const flagsAt = findCapStart(state, pos) + PCI_MSI_FLAGS;
  let flags = state.get(flagsAt, 2);
  if (vdev.irq.type !== 'msi') flags &= ~PCI_MSI_FLAGS_ENABLE;
  if ((flags & PCI_MSI_FLAGS_QSIZE) >>> 4 > vdev.msiQmax) flags = (flags & ~PCI_MSI_FLAGS_QSIZE) | (vdev.msiQmax << 4);
  state.set(flagsAt, 2, flags);
  hwWrite(vdev.fn, flagsAt, 2, flags);
}

// --- building the shadow (vfio_config_init) ---

function msiCapLength(flags: number): number {
  return 10 + (flags & PCI_MSI_FLAGS_64BIT ? 4 : 0) + (flags & PCI_MSI_FLAGS_MASKBIT ? 10 : 0);
}

/** vfio_cap_len(): the length of a variable-size standard capability. */
function capLength(vdev: VfioPciCoreDevice, state: VfioPciConfigState, cap: number, pos: number): number {
  const fn = vdev.fn;
  switch (cap) {
    case PCI_CAP_ID_MSI: {
      const flags = hwRead(fn, pos + PCI_MSI_FLAGS, 2);
      state.msiPerm ??= msiPerms(flags);
      return msiCapLength(flags);
    }
    case 0x07: {
      const version = (hwRead(fn, pos + PCI_X_CMD, 2) >>> 12) & 3;
      if (!version) return 8;
      detectExtendedCaps(fn, state);
      return 24;
    }
    case PCI_CAP_ID_VNDR:
      return hwRead(fn, pos + PCI_CAP_FLAGS, 1);
    case PCI_CAP_ID_EXP: {
      detectExtendedCaps(fn, state);
      const flags = hwRead(fn, pos + PCI_EXP_FLAGS, 2);
      const rcEnd = (flags & PCI_EXP_FLAGS_TYPE) >>> 4 === PCI_EXP_TYPE_RC_END;
      if ((flags & PCI_EXP_FLAGS_VERS) === 1) return rcEnd ? 0x0c : 20;
      return rcEnd ? 0x2c : 52;
    }
    case 0x08: // HyperTransport: short or long form
      return hwRead(fn, pos + 3, 1) & 0xe0 ? 24 : 28;
    case 0x12: // SATA: register block inline or not
      return (hwRead(fn, pos + 2, 1) & 0xf) === 0xf ? 16 : 8;
    default:
      return 0;
  }
}

function detectExtendedCaps(fn: PciFunction, state: VfioPciConfigState): void {
  if (state.size > PCI_CONFIG_SPACE_SIZE) state.extendedCaps = hwRead(fn, PCI_CFG_SPACE_EXP_START, 4) !== 0;
}

/** vfio_ext_cap_len(): the length of a variable-size extended capability. */
function extCapLength(fn: PciFunction, ecap: number, epos: number): number {
  switch (ecap) {
    case PCI_EXT_CAP_ID_VNDR:
    case PCI_EXT_CAP_ID_DVSEC:
      return hwRead(fn, epos + 4, 4) >>> 20;
    case 0x02:
    case 0x08:
    case 0x09: {
      const evcc = hwRead(fn, epos + 4, 4) & 0x7;
      const cap2 = hwRead(fn, epos + 8, 4);
      const phases = cap2 & 0x8 ? 128 : cap2 & 0x4 ? 64 : cap2 & 0x2 ? 32 : 0;
      let len = 0x10 + (1 + evcc) * 0x0c;
      if (phases) len = Math.ceil(len / 16) * 16 + (phases * 4) / 8;
      return len;
    }
    case 0x0d: {
      if (!(hwRead(fn, epos + 4, 1) & 0x20)) return 8;
      const bits = hwRead(fn, epos + 5, 1);
      return 8 + (bits ? Math.ceil(bits / 32) * 32 : 256) / 8;
    }
    case 0x15:
      return 4 + ((hwRead(fn, epos + 8, 1) & 0xe0) >>> 5) * 8;
    case 0x16:
      return 16 + (hwRead(fn, epos + 4, 1) & 0x1f) + 1;
    case 0x17: {
      const cap = hwRead(fn, epos + 4, 4);
      if ((cap & 0x600) === 0x200) return 0x0c + ((cap & 0x07ff0000) >>> 16) * 2 + 2;
      return 0x0c;
    }
    default:
      return 0;
  }
}

function fillVconfigBytes(fn: PciFunction, state: VfioPciConfigState, offset: number, size: number): void {
  const end = Math.min(offset + size, state.size);
  while (offset < end) {
    const width = end - offset >= 4 && offset % 4 === 0 ? 4 : end - offset >= 2 && offset % 2 === 0 ? 2 : 1;
    state.set(offset, width, hwRead(fn, offset, width));
    offset += width;
  }
}

/** vfio_cap_init(): walks the standard chain, hiding capabilities of length 0. */
function capInit(vdev: VfioPciCoreDevice, state: VfioPciConfigState): void {
  const fn = vdev.fn;
  if (!(hwRead(fn, PCI_STATUS, 2) & PCI_STATUS_CAP_LIST)) return;
  let pos = hwRead(fn, PCI_CAPABILITY_LIST, 1) & ~3;
  let prev = PCI_CAPABILITY_LIST;
  let caps = 0;
  for (let loops = (PCI_CONFIG_SPACE_SIZE - PCI_STD_HEADER_SIZEOF) / 4; pos && loops > 0; loops--) {
    const cap = hwRead(fn, pos, 1);
    const next = hwRead(fn, pos + PCI_CAP_LIST_NEXT, 1) & ~3;
    // ID 0 would collide with PCI_CAP_ID_BASIC and has no content: hidden.
    let len = cap && cap <= PCI_CAP_ID_MAX ? pciCapLength[cap]! : 0;
    if (len === 0xff) len = capLength(vdev, state, cap, pos);
    if (!len) {
      state.vconfig[prev] = next;
      pos = next;
      continue;
    }
    len = Math.min(len, PCI_CONFIG_SPACE_SIZE - pos);
    state.map.fill(cap, pos, pos + len);
    fillVconfigBytes(fn, state, pos, len);
    if (cap === PCI_CAP_ID_PM) {
      // PME cannot reach the user: PME_Support, PME_En and PME_Status read 0.
      state.set(pos + PCI_PM_PMC, 2, state.get(pos + PCI_PM_PMC, 2) & ~PCI_PM_CAP_PME_MASK);
      const ctrl = state.get(pos + PCI_PM_CTRL, 2) & ~(PCI_PM_CTRL_PME_ENABLE | PCI_PM_CTRL_PME_STATUS);
      state.set(pos + PCI_PM_CTRL, 2, ctrl);
    }
    prev = pos + PCI_CAP_LIST_NEXT;
    pos = next;
    caps++;
  }
  if (!caps) state.set(PCI_STATUS, 2, state.get(PCI_STATUS, 2) & ~PCI_STATUS_CAP_LIST);
}

/** vfio_ecap_init(): the extended chain; a hidden first capability stays as a placeholder. */
function ecapInit(vdev: VfioPciCoreDevice, state: VfioPciConfigState): void {
  if (!state.extendedCaps) return;
  const fn = vdev.fn;
  let epos = PCI_CFG_SPACE_EXP_START;
  let prev = -1;
  let ecaps = 0;
  for (let loops = (state.size - PCI_CONFIG_SPACE_SIZE) / 4; loops > 0 && epos >= PCI_CONFIG_SPACE_SIZE; loops--) {
    const header = hwRead(fn, epos, 4);
    const ecap = header & 0xffff;
    const next = (header >>> 20) & 0xffc;
    let len = pciExtCapLength.get(ecap) ?? 0;
    if (len === 0xff) len = extCapLength(fn, ecap, epos);
    let hidden = false;
    if (!len) {
      if (prev >= 0) {
        state.set(prev, 4, ((state.get(prev, 4) & ~(0xffc << 20)) | (next << 20)) >>> 0);
        epos = next;
        continue;
      }
      len = 4;
      hidden = true;
    }
    len = Math.min(len, state.size - epos);
    state.map.fill(ecap, epos, epos + len);
    fillVconfigBytes(fn, state, epos, len);
    if (hidden) state.set(epos, 4, (state.get(epos, 4) & (0xffc << 20)) >>> 0);
    else ecaps++;
    prev = epos;
    epos = next;
  }
  if (!ecaps) state.set(PCI_CFG_SPACE_EXP_START, 4, 0);
}

/** vfio_config_init(): the shadow as the user first sees it. */
export function vfioConfigInit(vdev: VfioPciCoreDevice): VfioPciConfigState {
  const fn = vdev.fn;
  const state = new VfioPciConfigState(fn.config.size);
  state.map.fill(PCI_CAP_ID_BASIC, 0, PCI_STD_HEADER_SIZEOF);
  fillVconfigBytes(fn, state, 0, PCI_STD_HEADER_SIZEOF);
  for (let i = 0; i < PCI_NUM_BARS; i++) state.rbar.push(state.get(PCI_BASE_ADDRESS_0 + 4 * i, 4));
  state.rbar.push(state.get(PCI_ROM_ADDRESS, 4));
  // No host IRQ (or a broken INTx mask) hides the pin: INTx count 0, SET_IRQS on it EINVAL.
  if (vdev.nointx) state.vconfig[PCI_INTERRUPT_PIN] = 0;
  capInit(vdev, state);
  ecapInit(vdev, state);
  return state;
}

// --- user access (vfio_pci_config_rw) ---

/** vfio_pci_cap_remaining_dword(): bytes left in this dword that belong to the same owner. */
function capRemainingDword(state: VfioPciConfigState, pos: number): number {
  const cap = state.map[pos];
  let i = 1;
  while ((pos + i) % 4 && state.map[pos + i] === cap) i++;
  return i;
}

function permsFor(state: VfioPciConfigState, pos: number): PermBits {
  const capId = state.map[pos]!;
  if (capId === PCI_CAP_ID_INVALID) return unassignedPerms;
  if (pos >= PCI_CONFIG_SPACE_SIZE) return ecapPerms.get(capId) ?? defaultCapPerms;
  if (capId === PCI_CAP_ID_MSI && state.msiPerm) return state.msiPerm;
  return capPerms.get(capId) ?? defaultCapPerms;
}

/**
 * vfio_config_do_rw(): one naturally aligned chunk of 1, 2 or 4 bytes that stays inside one
 * dword and one capability. Returns the chunk length.
 */
function configDoRw(vdev: VfioPciCoreDevice, buf: Uint8Array, done: number, pos: number, write: boolean): number {
  const state = cfg(vdev);
  let count = Math.min(buf.length - done, capRemainingDword(state, pos));
  count = count >= 4 && pos % 4 === 0 ? 4 : count >= 2 && pos % 2 === 0 ? 2 : 1;
  const perm = permsFor(state, pos);
  const capStart = state.map[pos] === PCI_CAP_ID_INVALID ? pos : findCapStart(state, pos);
  const offset = pos - capStart;
  if (write) {
    perm.writefn?.(vdev, pos, count, perm, offset, getLe(buf, done, count));
  } else {
    setLe(buf, done, count, perm.readfn(vdev, pos, count, perm, offset));
  }
  return count;
}

/**
 * Reads (`write` false: fills `buf`) or writes `buf` at config offset `pos`. The whole access
 * must lie inside config space (EFAULT, not EINVAL, semantics.md §6.4).
 */
export function vfioPciConfigRw(vdev: VfioPciCoreDevice, buf: Uint8Array, pos: bigint, write: boolean): number {
  const size = BigInt(cfg(vdev).size);
  if (pos < 0n || pos >= size || pos + BigInt(buf.length) > size) return fail('EFAULT');
  let at = Number(pos);
  let done = 0;
  while (done < buf.length) {
    const n = configDoRw(vdev, buf, done, at, write);
    done += n;
    at += n;
  }
  return done;
}

/** The interrupt pin as the user sees it (vfio_pci_get_irq_count for INTx). */
export function virtualInterruptPin(vdev: VfioPciCoreDevice): number {
  return vdev.config ? vdev.config.vconfig[PCI_INTERRUPT_PIN]! : 0;
}
