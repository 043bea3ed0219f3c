/**
 * The machine description a Host is built from (CONTRACT.md "Topology"), its validation, and
 * the documented default machine.
 */

export interface Topology {
  /** What /dev/vfio/vfio is: the type1 container (default) or iommufd in VFIO compat mode. */
  vfioContainer?: 'legacy' | 'iommufd';
  iommu?: {
    model?: 'vtd';
    /** IOVA space [0, 2^addressWidth - 1]; default 39. */
    addressWidth?: number;
    /** Supported IOMMU page sizes; default 0x40201000 (4 KiB | 2 MiB | 1 GiB). */
    pageSizes?: number | bigint;
    /** HWPT dirty tracking; default true. */
    dirtyTracking?: boolean;
  };
  devices: Array<{
    bdf: string;
    model: string;
    /** Same number = same group; default: a group of its own. */
    iommuGroup?: number;
    /** Default 'vfio-pci'; 'host' = a regular host driver; null = no driver. */
    driver?: 'vfio-pci' | 'host' | null;
    options?: Record<string, unknown>;
  }>;
}

export interface DeviceSpec {
  bdf: string;
  model: string;
  iommuGroup: number;
  driver: 'vfio-pci' | 'host' | null;
  options: Record<string, unknown>;
}

export interface NormalizedTopology {
  vfioContainer: 'legacy' | 'iommufd';
  iommu: { model: 'vtd'; addressWidth: number; pageSizes: bigint; dirtyTracking: boolean };
  devices: DeviceSpec[];
}

/**
 * The default machine: four edu devices. 00:03.0 and 00:04.0 sit in groups of their own;
 * 00:05.0 and 00:05.1 (two functions of one slot) share group 5.
 */
export const DEFAULT_TOPOLOGY: Topology = Object.freeze({
  devices: [
    { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 3 },
    { bdf: '0000:00:04.0', model: 'edu', iommuGroup: 4 },
    { bdf: '0000:00:05.0', model: 'edu', iommuGroup: 5 },
    { bdf: '0000:00:05.1', model: 'edu', iommuGroup: 5 },
  ],
});

const BDF = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-1][0-9a-f]\.[0-7]$/;

/** Checks the data and fills in every default; throws TypeError/RangeError on bad input. */
export function normalizeTopology(topology: Topology = DEFAULT_TOPOLOGY): NormalizedTopology {
  if (typeof topology !== 'object' || topology === null || !Array.isArray(topology.devices)) {
    throw new TypeError('topology must be an object with a devices array');
  }
  const container = topology.vfioContainer ?? 'legacy';
  if (container !== 'legacy' && container !== 'iommufd') throw new RangeError(`bad vfioContainer ${String(container)}`);

  const iommu = topology.iommu ?? {};
  const model = iommu.model ?? 'vtd';
  if (model !== 'vtd') throw new RangeError(`unknown IOMMU model ${String(model)}`);
  const addressWidth = iommu.addressWidth ?? 39;
  if (!Number.isInteger(addressWidth) || addressWidth < 32 || addressWidth > 57) {
    throw new RangeError(`addressWidth must be an integer in [32, 57], got ${String(addressWidth)}`);
  }
  const pageSizes = BigInt(iommu.pageSizes ?? 0x40201000);
  if (pageSizes <= 0n || pageSizes >= 1n << 64n || !(pageSizes & ~0xfffn)) {
    throw new RangeError(`pageSizes must include a page size of 4 KiB or more, got 0x${pageSizes.toString(16)}`);
  }

  const explicit = new Set(topology.devices.flatMap((d) => (d.iommuGroup === undefined ? [] : [d.iommuGroup])));
  let nextGroup = 0;
  const seen = new Set<string>();
  const devices = topology.devices.map((d): DeviceSpec => {
    if (typeof d !== 'object' || d === null) throw new TypeError('each device must be an object');
    const bdf = String(d.bdf).toLowerCase();
    if (!BDF.test(bdf)) throw new RangeError(`bad PCI address ${String(d.bdf)} (want dddd:bb:dd.f)`);
    if (seen.has(bdf)) throw new RangeError(`duplicate device ${bdf}`);
    seen.add(bdf);
    let group = d.iommuGroup;
    if (group === undefined) {
      while (explicit.has(nextGroup)) nextGroup++;
      group = nextGroup++;
    } else if (!Number.isInteger(group) || group < 0 || group > 0x7fffffff) {
      throw new RangeError(`bad iommuGroup ${String(group)} for ${bdf}`);
    }
    const driver = d.driver === undefined ? 'vfio-pci' : d.driver;
    if (driver !== 'vfio-pci' && driver !== 'host' && driver !== null)
      throw new RangeError(`bad driver ${String(driver)}`);
    return { bdf, model: String(d.model), iommuGroup: group, driver, options: { ...(d.options ?? {}) } };
  });
  return {
    vfioContainer: container,
    iommu: { model, addressWidth, pageSizes, dirtyTracking: iommu.dirtyTracking ?? true },
    devices,
  };
}
