/**
 * Shared scaffolding for the iommufd tests: a process with /dev/iommu open and scratch memory
 * for ioctl structs, struct round trips through process memory, the cdev bind/attach steps, and
 * the end-of-test leak check.
 */
import { Host } from '../../src/host.js';
import type { Topology } from '../../src/topology.js';
import type { Process } from '../../src/sys/process.js';
import type { EncodeValue, Struct } from '../../src/uapi/layout.js';
import { ANON, assertHostClean, ProcessEnv, RW } from '../support/process-env.js';
import {
  IOMMU_IOAS_ALLOC,
  IOMMU_IOAS_MAP,
  IOMMU_IOAS_MAP_FIXED_IOVA,
  IOMMU_IOAS_MAP_READABLE,
  IOMMU_IOAS_MAP_WRITEABLE,
  IOMMU_IOAS_UNMAP,
  iommu_ioas_alloc,
  iommu_ioas_map,
  iommu_ioas_unmap,
} from '../../src/uapi/iommufd.js';
import {
  VFIO_DEVICE_ATTACH_IOMMUFD_PT,
  VFIO_DEVICE_BIND_IOMMUFD,
  VFIO_DEVICE_DETACH_IOMMUFD_PT,
  vfio_device_attach_iommufd_pt,
  vfio_device_bind_iommufd,
  vfio_device_detach_iommufd_pt,
} from '../../src/uapi/vfio.js';

export { ANON, PAGE, RW } from '../support/process-env.js';
export const MAP_RW = IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE;
export const FIXED_RW = MAP_RW | IOMMU_IOAS_MAP_FIXED_IOVA;
export const U64_MAX = 0xffffffffffffffffn;

/** Four edu devices: 00:03.0 and 00:04.0 alone, 00:05.0 and 00:05.1 sharing group 5. */
export const TOPOLOGY: Topology = {
  devices: [
    { bdf: '0000:00:03.0', model: 'edu', iommuGroup: 3 },
    { bdf: '0000:00:04.0', model: 'edu', iommuGroup: 4 },
    { bdf: '0000:00:05.0', model: 'edu', iommuGroup: 5 },
    { bdf: '0000:00:05.1', model: 'edu', iommuGroup: 5 },
  ],
};

export function createHost(topology: Topology = TOPOLOGY): Host {
  return Host.create(topology);
}

export interface MapArgs {
  iova?: bigint;
  length: bigint | number;
  va: bigint;
  flags?: number;
}

/** A process with /dev/iommu open and four pages of scratch memory. */
export class Env extends ProcessEnv {
  readonly iommufd: number;

  constructor(host: Host, proc: Process) {
    super(host, proc);
    this.iommufd = proc.open('/dev/iommu');
  }

  static create(topology: Topology = TOPOLOGY, spawn: Parameters<Host['spawn']>[0] = {}): Env {
    const host = createHost(topology);
    return new Env(host, host.spawn(spawn));
  }

  /**
   * An iommufd-style call: encodes `value` (with `size` = the struct size unless given) at the
   * scratch page, issues the ioctl on `fd` (default: the iommufd) and returns the struct as the
   * kernel left it. Throws the SyscallError of a failed call.
   */
  call<T extends object>(request: number, struct: Struct<T>, value: EncodeValue<T>, fd = this.iommufd): T {
    const v = { size: struct.size, ...value } as EncodeValue<T>;
    this.proc.memory.write(this.scratch, new Uint8Array(struct.size + 64));
    this.put(struct, v);
    this.proc.ioctl(fd, request, this.scratch);
    return this.get(struct);
  }

  /** The struct left in memory after a failed call (for copy-back checks). */
  last<T extends object>(struct: Struct<T>): T {
    return this.get(struct);
  }

  /** A VFIO-style call (argsz first). */
  vcall<T extends object>(fd: number, request: number, struct: Struct<T>, value: EncodeValue<T>): T {
    const v = { argsz: struct.size, ...value } as EncodeValue<T>;
    this.proc.memory.write(this.scratch, new Uint8Array(struct.size + 64));
    this.put(struct, v);
    this.proc.ioctl(fd, request, this.scratch);
    return this.get(struct);
  }

  ioasAlloc(fd = this.iommufd): number {
    return this.call(IOMMU_IOAS_ALLOC, iommu_ioas_alloc, {}, fd).out_ioas_id;
  }

  /** Anonymous read-write memory. */
  buffer(length: number | bigint): bigint {
    return this.proc.mmap(length, RW, ANON);
  }

  map(ioas: number, args: MapArgs, fd = this.iommufd): bigint {
    const flags = args.flags ?? (args.iova === undefined ? MAP_RW : FIXED_RW);
    const out = this.call(
      IOMMU_IOAS_MAP,
      iommu_ioas_map,
      { ioas_id: ioas, flags, user_va: args.va, length: BigInt(args.length), iova: args.iova ?? 0n },
      fd,
    );
    return out.iova;
  }

  unmap(ioas: number, iova: bigint, length: bigint | number, fd = this.iommufd): bigint {
    return this.call(IOMMU_IOAS_UNMAP, iommu_ioas_unmap, { ioas_id: ioas, iova, length: BigInt(length) }, fd).length;
  }

  openCdev(index = 0): number {
    return this.proc.open(`/dev/vfio/devices/vfio${index}`);
  }

  bind(cdev: number, iommufd = this.iommufd): number {
    return this.vcall(cdev, VFIO_DEVICE_BIND_IOMMUFD, vfio_device_bind_iommufd, { iommufd }).out_devid;
  }

  attach(cdev: number, ptId: number): number {
    return this.vcall(cdev, VFIO_DEVICE_ATTACH_IOMMUFD_PT, vfio_device_attach_iommufd_pt, { pt_id: ptId }).pt_id;
  }

  detach(cdev: number): void {
    this.vcall(cdev, VFIO_DEVICE_DETACH_IOMMUFD_PT, vfio_device_detach_iommufd_pt, {});
  }

  /** A bound cdev attached to a fresh IOAS: {cdev, devid, ioas, hwpt}. */
  device(index = 0): { cdev: number; devid: number; ioas: number; hwpt: number } {
    const cdev = this.openCdev(index);
    const devid = this.bind(cdev);
    const ioas = this.ioasAlloc();
    const hwpt = this.attach(cdev, ioas);
    return { cdev, devid, ioas, hwpt };
  }

  /** Exits the process and checks that the host is back to empty. */
  leakCheck(): void {
    leakCheck(this.host, [this.proc]);
  }
}

/** After every process exits: no files, no charges, no IOMMU state, no internal errors. */
export function leakCheck(host: Host, procs: Process[]): void {
  for (const p of procs) p.exit();
  assertHostClean(host);
}

export function u64(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value, true);
  return out;
}
