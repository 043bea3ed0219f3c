/**
 * `vfio-ts ls`: what a VFIO inspector shows about a machine, found out the way such a tool
 * finds it: sysfs for groups, drivers and cdevs; VFIO ioctls for the IOMMU, regions and IRQs
 * (a container per group, SET_IOMMU, GET_DEVICE_FD, GET_INFO, GET_REGION_INFO, GET_IRQ_INFO);
 * and iommufd's GET_HW_INFO on a bound cdev for the IOMMU model and its dirty tracking.
 * Only device models come from the host's device list (no sysfs file names them here).
 */
import { Host } from '../host.js';
import type { Process } from '../sys/process.js';
import type { Topology } from '../topology.js';
import { O_RDWR } from '../kernel/vfs/syscalls.js';
import { SyscallError } from '../uapi/errno.js';
import * as u from '../uapi/iommufd.js';
import * as v from '../uapi/vfio.js';
import { findCap } from '../uapi/capability.js';
import { iovaRanges } from './demo-paths.js';
import { IoctlCaller } from './ioctl-caller.js';
import { HW_INFO_TYPES } from './ioctl-iommufd.js';
import { IRQ_INDEX_NAMES, IRQ_INFO_FLAGS, REGION_FLAGS, REGION_INDEX_NAMES } from './ioctl-vfio.js';
import { flagsToString, hex } from './struct-format.js';
import { StraceTracer } from './trace.js';

export interface LsOptions {
  readonly topology?: Topology;
  readonly trace?: boolean;
  readonly out?: (line: string) => void;
}

type Out = (line: string) => void;

export function runLs(options: LsOptions = {}): void {
  const out = options.out ?? ((line: string) => console.log(line));
  const host = Host.create(options.topology);
  const proc = host.spawn();
  if (options.trace) proc.tracer = new StraceTracer(out);
  const io = new IoctlCaller(proc);
  try {
    const groups = proc.readdir('/sys/kernel/iommu_groups');
    out(`machine: ${host.devices().length} PCI devices in ${groups.length} IOMMU groups`);
    out('');
    describeIommu(proc, io, host, groups, out);
    for (const g of groups) describeGroup(proc, io, host, g, out);
  } finally {
    io.dispose();
    proc.exit();
  }
}

function errText(err: unknown): string {
  if (err instanceof SyscallError) return err.code;
  throw err;
}

interface Geometry {
  readonly ranges: [bigint, bigint][];
  readonly pgsizes: bigint;
  readonly source: string;
}

/**
 * The IOMMU: model and dirty tracking from iommufd GET_HW_INFO; page sizes and IOVA ranges from
 * VFIO_IOMMU_GET_INFO on a type1 container with the first usable group, or on the iommufd's
 * VFIO compat interface when no container can be set up.
 */
function describeIommu(proc: Process, io: IoctlCaller, host: Host, groups: string[], out: Out): void {
  out('IOMMU');
  const hw = hwInfo(proc, io, host);
  if (hw) {
    const type = HW_INFO_TYPES.get(hw.type) ?? String(hw.type);
    out(`  model           ${type === 'INTEL_VTD' ? 'Intel VT-d' : type} (IOMMU_GET_HW_INFO type ${type}${hw.detail})`);
    out(`  dirty tracking  ${hw.caps & BigInt(u.IOMMU_HW_CAP_DIRTY_TRACKING) ? 'supported' : 'not supported'}`);
  } else {
    out('  model           unknown (iommufd GET_HW_INFO not available)');
    out('  dirty tracking  unknown (iommufd GET_HW_INFO not available)');
  }
  let geometry: Geometry | undefined;
  for (const g of groups) {
    const c = openContainer(proc, io, g);
    if (!c) continue;
    try {
      geometry = { ...iommuInfo(io, c.container), source: 'type1 container' };
    } finally {
      c.close();
    }
    break;
  }
  geometry ??= hw?.geometry;
  if (geometry) {
    const top = geometry.ranges.reduce((m, [, e]) => (e > m ? e : m), 0n);
    out(`  address width   ${top.toString(2).length} bits`);
    out(`  page sizes      ${pageSizes(geometry.pgsizes)} (iova_pgsizes ${hex(geometry.pgsizes)})`);
    const ranges = geometry.ranges.map(([s, e]) => `[${hex(s)}-${hex(e)}]`).join(' ');
    out(`  IOVA ranges     ${ranges} (${geometry.source})`);
  }
  out('');
}

/** VFIO_IOMMU_GET_INFO twice (learn argsz, then read the capability chain). */
function iommuInfo(io: IoctlCaller, fd: number): Omit<Geometry, 'source'> {
  const probe = io.struct(fd, v.VFIO_IOMMU_GET_INFO, v.vfio_iommu_type1_info, { argsz: v.vfio_iommu_type1_info.size });
  const argsz = probe.value.argsz;
  const full = io.struct(fd, v.VFIO_IOMMU_GET_INFO, v.vfio_iommu_type1_info, { argsz }, { size: argsz });
  const cap = findCap(full.bytes, full.value.cap_offset, v.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
  return { ranges: cap ? iovaRanges(full.bytes, cap.offset) : [], pgsizes: full.value.iova_pgsizes };
}

function pageSizes(bitmap: bigint): string {
  const names: string[] = [];
  for (let bit = 12n; bit < 64n; bit++) {
    if (!(bitmap & (1n << bit))) continue;
    const size = 1n << bit;
    names.push(size >= 1n << 30n ? `${size >> 30n}G` : size >= 1n << 20n ? `${size >> 20n}M` : `${size >> 10n}K`);
  }
  return names.join(' ');
}

/** GET_HW_INFO through a cdev bound to a fresh iommufd; undefined when iommufd is unavailable. */
function hwInfo(
  proc: Process,
  io: IoctlCaller,
  host: Host,
): { type: number; caps: bigint; detail: string; geometry?: Geometry } | undefined {
  const dev = host.devices().find((d) => d.cdev !== null);
  if (!dev) return undefined;
  let iommufd = -1;
  let cdev = -1;
  try {
    iommufd = proc.open('/dev/iommu', O_RDWR);
    cdev = proc.open(`/dev/vfio/devices/${dev.cdev}`, O_RDWR);
    const bind = io.struct(cdev, v.VFIO_DEVICE_BIND_IOMMUFD, v.vfio_device_bind_iommufd, {
      argsz: v.vfio_device_bind_iommufd.size,
      iommufd,
    });
    const dataAt = io.address + 0x800n;
    const info = io.struct(
      iommufd,
      u.IOMMU_GET_HW_INFO,
      u.iommu_hw_info,
      {
        size: u.iommu_hw_info.size,
        dev_id: bind.value.out_devid,
        data_len: u.iommu_hw_info_vtd.size,
        data_uptr: dataAt,
      },
      { size: 0x800 + u.iommu_hw_info_vtd.size },
    );
    let detail = '';
    if (info.value.out_data_type === u.IOMMU_HW_INFO_TYPE_INTEL_VTD) {
      const vtd = u.iommu_hw_info_vtd.decode(info.bytes, 0x800);
      detail = `, cap_reg ${hex(vtd.cap_reg)}, ecap_reg ${hex(vtd.ecap_reg)}`;
    }
    return {
      type: info.value.out_data_type,
      caps: info.value.out_capabilities,
      detail,
      geometry: compatGeometry(io, iommufd, cdev),
    };
  } catch (err) {
    errText(err);
    return undefined;
  } finally {
    if (cdev >= 0) proc.close(cdev);
    if (iommufd >= 0) proc.close(iommufd);
  }
}

/** The IOMMU seen through iommufd's VFIO compat GET_INFO, with the device attached to an IOAS. */
function compatGeometry(io: IoctlCaller, iommufd: number, cdev: number): Geometry | undefined {
  try {
    const ioas = io.struct(iommufd, u.IOMMU_IOAS_ALLOC, u.iommu_ioas_alloc, { size: u.iommu_ioas_alloc.size }).value;
    io.struct(cdev, v.VFIO_DEVICE_ATTACH_IOMMUFD_PT, v.vfio_device_attach_iommufd_pt, {
      argsz: v.vfio_device_attach_iommufd_pt.size,
      pt_id: ioas.out_ioas_id,
    });
    io.struct(iommufd, u.IOMMU_VFIO_IOAS, u.iommu_vfio_ioas, {
      size: u.iommu_vfio_ioas.size,
      ioas_id: ioas.out_ioas_id,
      op: u.IOMMU_VFIO_IOAS_SET,
    });
    return { ...iommuInfo(io, iommufd), source: 'iommufd VFIO compat, device attached' };
  } catch (err) {
    errText(err);
    return undefined;
  }
}

/** A container with group `g` attached and type1v2 set, or undefined when the group cannot be used. */
function openContainer(
  proc: Process,
  io: IoctlCaller,
  g: string,
): { container: number; group: number; close(): void } | undefined {
  let group = -1;
  let container = -1;
  const close = (): void => {
    if (group >= 0) proc.close(group);
    if (container >= 0) proc.close(container);
  };
  try {
    group = proc.open(`/dev/vfio/${g}`, O_RDWR);
    container = proc.open('/dev/vfio/vfio', O_RDWR);
    io.s32ptr(group, v.VFIO_GROUP_SET_CONTAINER, container);
    proc.ioctl(container, v.VFIO_SET_IOMMU, v.VFIO_TYPE1v2_IOMMU);
    return { container, group, close };
  } catch (err) {
    errText(err);
    close();
    return undefined;
  }
}

function describeGroup(proc: Process, io: IoctlCaller, host: Host, g: string, out: Out): void {
  const bdfs = proc.readdir(`/sys/kernel/iommu_groups/${g}/devices`);
  let viability = '';
  let groupFd = -1;
  try {
    groupFd = proc.open(`/dev/vfio/${g}`, O_RDWR);
    const st = io.struct(groupFd, v.VFIO_GROUP_GET_STATUS, v.vfio_group_status, { argsz: v.vfio_group_status.size });
    viability = `/dev/vfio/${g}, ${st.value.flags & v.VFIO_GROUP_FLAGS_VIABLE ? 'viable' : 'not viable: a device uses a host driver'}`;
  } catch (err) {
    viability = `no /dev/vfio/${g} (${errText(err)}): not bound to vfio`;
  } finally {
    if (groupFd >= 0) proc.close(groupFd);
  }
  out(`IOMMU group ${g} (${viability})`);
  const c = openContainer(proc, io, g);
  try {
    for (const bdf of bdfs) describeDevice(proc, io, host, bdf, c?.group, out);
  } finally {
    c?.close();
  }
  out('');
}

function describeDevice(
  proc: Process,
  io: IoctlCaller,
  host: Host,
  bdf: string,
  group: number | undefined,
  out: Out,
): void {
  const model = host.devices().find((d) => d.bdf === bdf)?.model ?? '?';
  const base = `/sys/bus/pci/devices/${bdf}`;
  let driver = 'none';
  try {
    const link = proc.readlink(`${base}/driver`);
    driver = link.slice(link.lastIndexOf('/') + 1);
  } catch (err) {
    errText(err);
  }
  let cdev = '-';
  try {
    cdev = proc.readdir(`${base}/vfio-dev`).join(',') || '-';
  } catch (err) {
    errText(err);
  }
  const opened = driver === 'vfio-pci' ? openDevice(proc, io, bdf, group, cdev) : undefined;
  if (!opened) {
    out(`  ${bdf}  ${model}  driver ${driver}  cdev ${cdev}`);
    return;
  }
  const { fd, via } = opened;
  try {
    const cfg = proc.pread(fd, 4, v.VFIO_PCI_INDEX_TO_OFFSET(v.VFIO_PCI_CONFIG_REGION_INDEX));
    const ids = new DataView(cfg.buffer, cfg.byteOffset, 4);
    const id = `${ids.getUint16(0, true).toString(16).padStart(4, '0')}:${ids.getUint16(2, true).toString(16).padStart(4, '0')}`;
    out(`  ${bdf}  ${model} [${id}]  driver ${driver}  cdev ${cdev}${via}`);
    const info = io.struct(fd, v.VFIO_DEVICE_GET_INFO, v.vfio_device_info, { argsz: v.vfio_device_info.size }).value;
    const flags = flagsToString(info.flags, [
      [v.VFIO_DEVICE_FLAGS_RESET, 'RESET'],
      [v.VFIO_DEVICE_FLAGS_PCI, 'PCI'],
      [v.VFIO_DEVICE_FLAGS_CAPS, 'CAPS'],
    ]);
    out(`    device flags ${flags}, ${info.num_regions} regions, ${info.num_irqs} irqs`);
    describeRegions(io, fd, info.num_regions, out);
    describeIrqs(io, fd, info.num_irqs, out);
  } finally {
    opened.close();
  }
}

/**
 * A device fd: from the group when a container could be set up, else through the cdev bound
 * to a fresh iommufd (the group is busy, or the machine's /dev/vfio/vfio cannot be used).
 */
function openDevice(
  proc: Process,
  io: IoctlCaller,
  bdf: string,
  group: number | undefined,
  cdev: string,
): { fd: number; via: string; close(): void } | undefined {
  if (group !== undefined) {
    const fd = io.string(group, v.VFIO_GROUP_GET_DEVICE_FD, bdf);
    return { fd, via: '', close: () => proc.close(fd) };
  }
  if (cdev === '-') return undefined;
  let iommufd = -1;
  let fd = -1;
  const close = (): void => {
    if (fd >= 0) proc.close(fd);
    if (iommufd >= 0) proc.close(iommufd);
  };
  try {
    iommufd = proc.open('/dev/iommu', O_RDWR);
    fd = proc.open(`/dev/vfio/devices/${cdev}`, O_RDWR);
    io.struct(fd, v.VFIO_DEVICE_BIND_IOMMUFD, v.vfio_device_bind_iommufd, {
      argsz: v.vfio_device_bind_iommufd.size,
      iommufd,
    });
    return { fd, via: ' (read through the cdev bound to an iommufd)', close };
  } catch (err) {
    errText(err);
    close();
    return undefined;
  }
}

function describeRegions(io: IoctlCaller, fd: number, count: number, out: Out): void {
  out(`    regions:  ${'index'.padEnd(6)}${'name'.padEnd(8)}${'flags'.padEnd(24)}${'size'.padEnd(12)}offset`);
  for (let index = 0; index < Math.min(count, 64); index++) {
    const name = REGION_INDEX_NAMES[index] ?? `DEV${index}`;
    const row = `              ${String(index).padEnd(6)}${name.padEnd(8)}`;
    try {
      const r = io.struct(fd, v.VFIO_DEVICE_GET_REGION_INFO, v.vfio_region_info, {
        argsz: v.vfio_region_info.size,
        index,
      }).value;
      const flags = r.flags ? flagsToString(r.flags, REGION_FLAGS) : '-';
      out(`${row}${flags.padEnd(24)}${hex(r.size).padEnd(12)}${hex(r.offset)}`);
    } catch (err) {
      out(`${row}unavailable (${errText(err)})`);
    }
  }
}

function describeIrqs(io: IoctlCaller, fd: number, count: number, out: Out): void {
  out(`    irqs:     ${'index'.padEnd(6)}${'name'.padEnd(8)}${'flags'.padEnd(36)}count`);
  for (let index = 0; index < Math.min(count, 64); index++) {
    const name = IRQ_INDEX_NAMES[index] ?? `IRQ${index}`;
    const row = `              ${String(index).padEnd(6)}${name.padEnd(8)}`;
    try {
      const r = io.struct(fd, v.VFIO_DEVICE_GET_IRQ_INFO, v.vfio_irq_info, {
        argsz: v.vfio_irq_info.size,
        index,
      }).value;
      out(`${row}${flagsToString(r.flags, IRQ_INFO_FLAGS).padEnd(36)}${r.count}`);
    } catch (err) {
      out(`${row}unavailable (${errText(err)})`);
    }
  }
}
