/**
 * Scaffolding for the vfio-pci tests: a process that opens an edu device through the legacy
 * container/group path (or its cdev), struct round trips through process memory, region
 * offsets, eventfd helpers, and the end-of-test leak check.
 */
import { Host } from '../../src/host.js';
import type { Topology } from '../../src/topology.js';
import { MAP_SHARED } from '../../src/kernel/vfs/mm.js';
import { ProcessEnv } from '../support/process-env.js';
import type { EncodeValue, Struct } from '../../src/uapi/layout.js';
import {
  VFIO_DEVICE_SET_IRQS,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IRQ_SET_ACTION_TRIGGER,
  VFIO_IRQ_SET_DATA_EVENTFD,
  VFIO_PCI_INDEX_TO_OFFSET,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_irq_set,
} from '../../src/uapi/vfio.js';

export { ANON, PAGE, RW, assertHostClean, exitAndCheck } from '../support/process-env.js';
export const SHARED = MAP_SHARED;
export const BDF = '0000:00:03.0';

/** The region offset of `index` plus `offset` (index << 40). */
export const region = (index: number, offset = 0): bigint => VFIO_PCI_INDEX_TO_OFFSET(index) + BigInt(offset);
export const BAR0 = 0;
export const CONFIG = 7;

export function u32(bytes: Uint8Array, at = 0): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(at, true);
}

export function u16(bytes: Uint8Array, at = 0): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint16(at, true);
}

export function le32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value >>> 0, true);
  return out;
}

export function le16(value: number): Uint8Array {
  const out = new Uint8Array(2);
  new DataView(out.buffer).setUint16(0, value, true);
  return out;
}

export function s32s(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(4 * values.length);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => view.setInt32(4 * i, v, true));
  return out;
}

export class Env extends ProcessEnv {
  static create(topology?: Topology, spawn: Parameters<Host['spawn']>[0] = {}): Env {
    const host = Host.create(topology);
    return new Env(host, host.spawn(spawn));
  }

  /** Writes `value` as `struct` (zeroing 256 bytes after it first) at `at`; returns `at`. */
  override put<T extends object>(
    struct: Struct<T>,
    value: EncodeValue<T>,
    at = this.scratch,
    tail?: Uint8Array,
  ): bigint {
    this.proc.memory.write(at, new Uint8Array(struct.size + 256));
    this.proc.memory.write(at, struct.encode(value));
    if (tail) this.proc.memory.write(at + BigInt(struct.size), tail);
    return at;
  }

  /** ioctl with `value` encoded (argsz defaults to the struct size); returns the struct after. */
  call<T extends object>(fd: number, request: number, struct: Struct<T>, value: EncodeValue<T>, tail?: Uint8Array): T {
    const v = { argsz: struct.size, ...value } as EncodeValue<T>;
    this.proc.ioctl(fd, request, this.put(struct, v, this.scratch, tail));
    return this.get(struct);
  }

  /** Container + group, IOMMU set: {container, group}. */
  containerWithGroup(groupId: number): { container: number; group: number } {
    const container = this.proc.open('/dev/vfio/vfio');
    const group = this.proc.open(`/dev/vfio/${groupId}`);
    this.proc.memory.write(this.scratch, s32s([container]));
    this.proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, this.scratch);
    this.proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
    return { container, group };
  }

  /** A device fd through the group path. */
  openDevice(bdf = BDF, groupId = 3): { container: number; group: number; device: number } {
    const { container, group } = this.containerWithGroup(groupId);
    const device = this.proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, this.putString(bdf));
    return { container, group, device };
  }

  /** VFIO_DEVICE_SET_IRQS with `data` after the header; argsz covers the data unless given. */
  setIrqs(
    device: number,
    flags: number,
    index: number,
    start: number,
    count: number,
    data: Uint8Array = new Uint8Array(0),
    argsz?: number,
  ): number {
    const at = this.put(
      vfio_irq_set,
      { argsz: argsz ?? vfio_irq_set.size + data.length, flags, index, start, count },
      this.scratch,
      data,
    );
    return this.proc.ioctl(device, VFIO_DEVICE_SET_IRQS, at);
  }

  /** An eventfd attached as the trigger of `index` vectors [start, start+fds.length). */
  trigger(device: number, index: number, fds: number[], start = 0): number {
    return this.setIrqs(
      device,
      VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
      index,
      start,
      fds.length,
      s32s(fds),
    );
  }

  /** Reads an eventfd's count (0 when it would block). */
  drain(efd: number): bigint {
    try {
      return new DataView(this.proc.read(efd, 8).buffer).getBigUint64(0, true);
    } catch (err) {
      if ((err as { code?: string }).code === 'EAGAIN') return 0n;
      throw err;
    }
  }

  cfgRead(device: number, offset: number, width: number): number {
    const bytes = this.proc.pread(device, width, region(CONFIG, offset));
    return width === 4 ? u32(bytes) : width === 2 ? u16(bytes) : bytes[0]!;
  }

  cfgWrite(device: number, offset: number, width: number, value: number): number {
    const bytes = width === 4 ? le32(value) : width === 2 ? le16(value) : new Uint8Array([value]);
    return this.proc.pwrite(device, bytes, region(CONFIG, offset));
  }

  barRead32(device: number, offset: number): number {
    return u32(this.proc.pread(device, 4, region(BAR0, offset)));
  }

  barWrite32(device: number, offset: number, value: number): number {
    return this.proc.pwrite(device, le32(value), region(BAR0, offset));
  }
}
