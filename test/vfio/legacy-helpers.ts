/**
 * Shared scaffolding for the legacy VFIO tests (container, group, type1): a process with a
 * scratch page for ioctl structs, struct encode/decode through process memory, the usual
 * container + group setup, and the end-of-test leak check.
 */
import { Host } from '../../src/host.js';
import type { Topology } from '../../src/topology.js';
import { ANON, ProcessEnv, RW } from '../support/process-env.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
} from '../../src/uapi/vfio.js';

export { ANON, PAGE, RW, assertHostClean, exitAndCheck } from '../support/process-env.js';
export const DMA_RW = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;

/** Two edu devices in groups of their own plus a two-function group (the default topology). */
export const TOPOLOGY: Topology = {
  devices: [
    { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 2 },
    { bdf: '0000:00:04.0', model: 'edu', iommuGroup: 4 },
    { bdf: '0000:00:05.0', model: 'edu', iommuGroup: 5 },
    { bdf: '0000:00:05.1', model: 'edu', iommuGroup: 5 },
  ],
};
export const BDF = '0000:00:03.0';

/** A process with scratch memory, plus the usual container + group + type1 calls. */
export class Env extends ProcessEnv {
  static create(topology: Topology = TOPOLOGY, spawn: Parameters<Host['spawn']>[0] = {}): Env {
    const host = Host.create(topology);
    return new Env(host, host.spawn(spawn));
  }

  /** Opens the container and group `groupId`, joins them, and selects `iommuType` (0: none). */
  containerWithGroup(groupId = 2, iommuType: number = VFIO_TYPE1v2_IOMMU): { container: number; group: number } {
    const container = this.proc.open('/dev/vfio/vfio');
    const group = this.proc.open(`/dev/vfio/${groupId}`);
    this.proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, this.putS32(container));
    if (iommuType) this.proc.ioctl(container, VFIO_SET_IOMMU, iommuType);
    return { container, group };
  }

  /** VFIO_IOMMU_MAP_DMA with a 32-byte struct. */
  map(container: number, vaddr: bigint, iova: bigint, size: bigint | number, flags = DMA_RW, argsz = 32): number {
    const arg = this.put(vfio_iommu_type1_dma_map, { argsz, flags, vaddr, iova, size: BigInt(size) });
    return this.proc.ioctl(container, VFIO_IOMMU_MAP_DMA, arg);
  }

  /** VFIO_IOMMU_UNMAP_DMA; returns the size copied back. */
  unmap(container: number, iova: bigint, size: bigint | number, flags = 0, argsz = 24): bigint {
    const arg = this.put(vfio_iommu_type1_dma_unmap, { argsz, flags, iova, size: BigInt(size) });
    this.proc.ioctl(container, VFIO_IOMMU_UNMAP_DMA, arg);
    return this.get(vfio_iommu_type1_dma_unmap, arg).size;
  }

  /** Anonymous read-write memory, touched so that it is backed. */
  buffer(length: number, prot = RW): bigint {
    return this.proc.mmap(length, prot, ANON);
  }
}
