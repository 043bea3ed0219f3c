/**
 * `Host`: one emulated machine with its kernel, built from a Topology (CONTRACT.md). Processes
 * spawned on it reach the kernel only through their system calls.
 */
import { Machine } from './hw/machine.js';
import { Kernel } from './kernel/kernel.js';
import { IommuGroup } from './kernel/iommu/group.js';
import { PciBus, PciDev } from './kernel/pci.js';
import { CAPABILITIES } from './kernel/vfs/cred.js';
import { RLIM_INFINITY } from './kernel/vfs/task.js';
import { registerIommufd, registerIommufdVfioContainer } from './kernel/iommufd/main.js';
import { Vfio } from './kernel/vfio/vfio.js';
import { vfioPciOps } from './kernel/vfio/pci/vfio-pci-core.js';
import { Process } from './sys/process.js';
import { normalizeTopology, type NormalizedTopology, type Topology } from './topology.js';

export interface SpawnOptions {
  uid?: number;
  /** Exactly these capabilities; default: all (a root process). */
  capabilities?: string[];
  /** RLIMIT_MEMLOCK in bytes; default unlimited. */
  rlimitMemlock?: number | bigint;
}

export interface HostDevice {
  bdf: string;
  model: string;
  iommuGroup: number;
  driver: string | null;
  cdev: string | null;
}

/** What the host still holds; all zero once every process has exited. */
export interface HostUsage {
  processes: number;
  openFiles: number;
  /** Pages charged to mm->locked_vm and user->locked_vm over all processes and users. */
  lockedPages: number;
  /** Mappings present in IOMMU domains. */
  iommuMappings: number;
  /** IOMMU domains allocated. */
  iommuDomains: number;
  /** Requester ids attached to a domain. */
  iommuAttachments: number;
}

export class Host {
  readonly kernel: Kernel;
  readonly machine: Machine;
  readonly vfio: Vfio;
  readonly topology: NormalizedTopology;
  private readonly pciDevs: PciDev[] = [];

  private constructor(topology: NormalizedTopology) {
    this.topology = topology;
    this.machine = new Machine({
      iommu: topology.iommu,
      devices: topology.devices.map(({ bdf, model, options }) => ({ bdf, model, options })),
    });
    this.kernel = new Kernel(this.machine);
    this.vfio = new Vfio(this.kernel);

    const groups = new Map<number, IommuGroup>();
    for (const spec of topology.devices) {
      const pdev = new PciDev(this.machine.function(spec.bdf), spec.driver);
      let group = groups.get(spec.iommuGroup);
      if (!group) {
        group = new IommuGroup(spec.iommuGroup, this.machine.iommu);
        groups.set(spec.iommuGroup, group);
      }
      pdev.group = group;
      group.devices.push(pdev);
      this.pciDevs.push(pdev);
    }
    // pdev->bus: functions sharing a bus number share a (secondary bus) reset.
    const buses = new Map<string, PciBus>();
    for (const pdev of this.pciDevs) {
      const { segment, bus: number } = pdev.fn.address;
      const key = `${segment}:${number}`;
      let bus = buses.get(key);
      if (!bus) buses.set(key, (bus = new PciBus(segment, number)));
      pdev.bus = bus;
      bus.devices.push(pdev);
    }
    for (const group of groups.values()) {
      if (group.devices.some((d) => d.driver === 'vfio-pci')) this.vfio.registerGroup(group);
    }
    for (const pdev of this.pciDevs) if (pdev.driver === 'vfio-pci') this.vfio.registerDevice(pdev, vfioPciOps);
    registerIommufd(this.kernel);
    // /dev/vfio/vfio is either the type1 container or iommufd in VFIO compat mode.
    if (topology.vfioContainer === 'legacy') this.vfio.registerContainerNode();
    else registerIommufdVfioContainer(this.kernel);
    this.registerSysfs(groups);
  }

  /** Builds a host; no topology = the documented default machine (DEFAULT_TOPOLOGY). */
  static create(topology?: Topology): Host {
    return new Host(normalizeTopology(topology));
  }

  devices(): HostDevice[] {
    return this.pciDevs.map((pdev) => ({
      bdf: pdev.bdf,
      model: pdev.fn.model,
      iommuGroup: pdev.group.id,
      driver: pdev.driver,
      cdev: this.cdevName(pdev),
    }));
  }

  spawn(options: SpawnOptions = {}): Process {
    const uid = options.uid ?? 0;
    if (!Number.isInteger(uid) || uid < 0 || uid > 0xfffffffe) throw new RangeError(`bad uid ${String(uid)}`);
    const caps = new Set(options.capabilities ?? CAPABILITIES);
    const limit = options.rlimitMemlock === undefined ? RLIM_INFINITY : BigInt(options.rlimitMemlock);
    if (limit < 0n) throw new RangeError('rlimitMemlock must not be negative');
    const task = this.kernel.spawn({ uid, caps }, limit > RLIM_INFINITY ? RLIM_INFINITY : limit);
    return new Process(task);
  }

  /** Runs every pending piece of emulated device work to completion. */
  settle(): void {
    this.machine.settle();
  }

  usage(): HostUsage {
    let openFiles = 0;
    let lockedPages = 0;
    for (const task of this.kernel.tasks) {
      openFiles += task.files.size;
    }
    for (const task of [...this.kernel.tasks, ...this.kernel.zombies])
      lockedPages += task.mm.lockedVm + task.mm.pinnedVm;
    for (const user of this.kernel.allUsers()) lockedPages += user.lockedVm;
    const iommu = this.machine.iommu.snapshot();
    return {
      processes: this.kernel.tasks.size,
      openFiles,
      lockedPages,
      iommuMappings: iommu.domains.reduce((n, d) => n + d.mappingCount, 0),
      iommuDomains: iommu.domains.length,
      iommuAttachments: iommu.attachments.length,
    };
  }

  private cdevName(pdev: PciDev): string | null {
    const device = this.vfio.deviceByName(pdev.bdf);
    return device ? `vfio${device.cdevIndex}` : null;
  }

  private registerSysfs(groups: Map<number, IommuGroup>): void {
    const sysfs = this.kernel.sysfs;
    const byBdf = new Map(this.pciDevs.map((p) => [p.bdf, p]));
    sysfs.dir('/sys/bus/pci/devices', () => [...byBdf.keys()]);
    for (const driver of ['vfio-pci', 'host']) {
      sysfs.dir(`/sys/bus/pci/drivers/${driver}`, () =>
        this.pciDevs.filter((p) => p.driver === driver).map((p) => p.bdf),
      );
    }
    sysfs.dir('/sys/kernel/iommu_groups', () => [...groups.keys()].sort((a, b) => a - b).map(String));
    for (const [id, group] of groups) {
      sysfs.dir(`/sys/kernel/iommu_groups/${id}`, () => ['devices', 'reserved_regions', 'type']);
      sysfs.dir(`/sys/kernel/iommu_groups/${id}/devices`, () => group.devices.map((d) => d.bdf));
    }
    for (const pdev of this.pciDevs) {
      // /sys/bus/pci/devices/<bdf> points at the device's place in the /sys/devices tree, and
      // the links inside it are relative to that place, as on a real machine.
      const root = `pci${pdev.bdf.slice(0, 7)}`;
      sysfs.link(`/sys/bus/pci/devices/${pdev.bdf}`, () => `../../../devices/${root}/${pdev.bdf}`);
      const base = `/sys/devices/${root}/${pdev.bdf}`;
      sysfs.dir(base, () =>
        ['config', 'driver', 'iommu_group', 'resource', 'vfio-dev'].filter((e) => this.sysfsEntryPresent(pdev, e)),
      );
      sysfs.link(`${base}/iommu_group`, () => `../../../kernel/iommu_groups/${pdev.group.id}`);
      sysfs.link(`${base}/driver`, () => (pdev.driver ? `../../../bus/pci/drivers/${pdev.driver}` : undefined));
      sysfs.dir(`${base}/vfio-dev`, () => {
        const name = this.cdevName(pdev);
        return name ? [name] : undefined;
      });
    }
  }

  private sysfsEntryPresent(pdev: PciDev, entry: string): boolean {
    if (entry === 'driver') return pdev.driver !== null;
    if (entry === 'vfio-dev') return this.cdevName(pdev) !== null;
    return true;
  }
}
