/**
 * The two ways a VFIO user gets a device fd and a DMA address space, as the demo narrates them:
 * the legacy container + group path (type1 IOMMU), and iommufd with the device cdev.
 */
import type { HostDevice } from '../host.js';
import type { Process } from '../sys/process.js';
import { O_RDWR } from '../kernel/vfs/syscalls.js';
import { decodeArray } from '../uapi/layout.js';
import * as u from '../uapi/iommufd.js';
import * as v from '../uapi/vfio.js';
import { findCap } from '../uapi/capability.js';
import { IoctlCaller } from './ioctl-caller.js';
import { hex } from './struct-format.js';

/** Mapping process memory for the device: type1 MAP_DMA or iommufd IOAS_MAP. */
export interface DmaSpace {
  map(vaddr: bigint, iova: bigint, size: number): void;
  /** Returns the number of bytes unmapped. */
  unmap(iova: bigint, size: number): bigint;
}

export interface OpenPath {
  readonly deviceFd: number;
  readonly dma: DmaSpace;
  close(): void;
}

type Say = (text: string) => void;

export function openLegacyPath(proc: Process, io: IoctlCaller, dev: HostDevice, say: Say): OpenPath {
  const container = proc.open('/dev/vfio/vfio', O_RDWR);
  say(`opened /dev/vfio/vfio: a new, empty container (fd ${container})`);
  const version = proc.ioctl(container, v.VFIO_GET_API_VERSION);
  const type1v2 = proc.ioctl(container, v.VFIO_CHECK_EXTENSION, v.VFIO_TYPE1v2_IOMMU);
  say(`VFIO_GET_API_VERSION = ${version}; type1v2 IOMMU ${type1v2 ? 'supported' : 'NOT supported'}`);

  const groupLink = proc.readlink(`/sys/bus/pci/devices/${dev.bdf}/iommu_group`);
  const groupId = groupLink.slice(groupLink.lastIndexOf('/') + 1);
  const group = proc.open(`/dev/vfio/${groupId}`, O_RDWR);
  say(`sysfs says ${dev.bdf} is in IOMMU group ${groupId}; opened /dev/vfio/${groupId} (fd ${group})`);
  const status = io.struct(group, v.VFIO_GROUP_GET_STATUS, v.vfio_group_status, { argsz: v.vfio_group_status.size });
  const viable = (status.value.flags & v.VFIO_GROUP_FLAGS_VIABLE) !== 0;
  say(`VFIO_GROUP_GET_STATUS: group is ${viable ? 'viable (no device in it uses a host driver)' : 'NOT viable'}`);
  io.s32ptr(group, v.VFIO_GROUP_SET_CONTAINER, container);
  say('VFIO_GROUP_SET_CONTAINER: the group joined the container');
  proc.ioctl(container, v.VFIO_SET_IOMMU, v.VFIO_TYPE1v2_IOMMU);
  say('VFIO_SET_IOMMU(TYPE1v2): the container now has an IOMMU domain');
  describeIovaRanges(io, container, say);

  const deviceFd = io.string(group, v.VFIO_GROUP_GET_DEVICE_FD, dev.bdf);
  say(`VFIO_GROUP_GET_DEVICE_FD("${dev.bdf}"): device fd ${deviceFd}`);
  const dma: DmaSpace = {
    map(vaddr, iova, size) {
      io.struct(container, v.VFIO_IOMMU_MAP_DMA, v.vfio_iommu_type1_dma_map, {
        argsz: v.vfio_iommu_type1_dma_map.size,
        flags: v.VFIO_DMA_MAP_FLAG_READ | v.VFIO_DMA_MAP_FLAG_WRITE,
        vaddr,
        iova,
        size: BigInt(size),
      });
    },
    unmap(iova, size) {
      return io.struct(container, v.VFIO_IOMMU_UNMAP_DMA, v.vfio_iommu_type1_dma_unmap, {
        argsz: v.vfio_iommu_type1_dma_unmap.size,
        iova,
        size: BigInt(size),
      }).value.size;
    },
  };
  return {
    deviceFd,
    dma,
    close() {
      proc.close(deviceFd);
      proc.close(group);
      proc.close(container);
    },
  };
}

/** VFIO_IOMMU_GET_INFO twice: once to learn the size of the capability chain, once to read it. */
function describeIovaRanges(io: IoctlCaller, container: number, say: Say): void {
  const probe = io.struct(container, v.VFIO_IOMMU_GET_INFO, v.vfio_iommu_type1_info, {
    argsz: v.vfio_iommu_type1_info.size,
  });
  const argsz = probe.value.argsz;
  const full = io.struct(container, v.VFIO_IOMMU_GET_INFO, v.vfio_iommu_type1_info, { argsz }, { size: argsz });
  const cap = findCap(full.bytes, full.value.cap_offset, v.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE);
  const ranges = cap ? iovaRanges(full.bytes, cap.offset) : [];
  say(
    `VFIO_IOMMU_GET_INFO (argsz grew ${v.vfio_iommu_type1_info.size} -> ${argsz}): page sizes ${hex(full.value.iova_pgsizes)}, ` +
      `IOVA ranges ${ranges.map(([s, e]) => `[${hex(s)}-${hex(e)}]`).join(' ')}`,
  );
}

export function iovaRanges(info: Uint8Array, capAt: number): [bigint, bigint][] {
  const cap = v.vfio_iommu_type1_info_cap_iova_range.decode(info, capAt);
  const first = capAt + v.vfio_iommu_type1_info_cap_iova_range.size;
  const n = Math.min(cap.nr_iovas, Math.floor((info.length - first) / v.vfio_iova_range.size));
  return decodeArray(v.vfio_iova_range, info, first, Math.max(0, n)).map((r) => [r.start, r.end]);
}

export function openIommufdPath(proc: Process, io: IoctlCaller, dev: HostDevice, say: Say): OpenPath {
  const iommufd = proc.open('/dev/iommu', O_RDWR);
  say(`opened /dev/iommu: a new iommufd context (fd ${iommufd})`);
  const cdevName = proc.readdir(`/sys/bus/pci/devices/${dev.bdf}/vfio-dev`)[0];
  const cdev = proc.open(`/dev/vfio/devices/${cdevName}`, O_RDWR);
  say(`sysfs says ${dev.bdf} has the VFIO cdev ${cdevName}; opened /dev/vfio/devices/${cdevName} (fd ${cdev})`);
  const bind = io.struct(cdev, v.VFIO_DEVICE_BIND_IOMMUFD, v.vfio_device_bind_iommufd, {
    argsz: v.vfio_device_bind_iommufd.size,
    iommufd,
  });
  const devId = bind.value.out_devid;
  say(`VFIO_DEVICE_BIND_IOMMUFD: bound to the iommufd as device object ${devId} (DMA blocked until attached)`);
  const ioasId = io.struct(iommufd, u.IOMMU_IOAS_ALLOC, u.iommu_ioas_alloc, { size: u.iommu_ioas_alloc.size }).value
    .out_ioas_id;
  say(`IOMMU_IOAS_ALLOC: IO address space ${ioasId}`);
  const attach = io.struct(cdev, v.VFIO_DEVICE_ATTACH_IOMMUFD_PT, v.vfio_device_attach_iommufd_pt, {
    argsz: v.vfio_device_attach_iommufd_pt.size,
    pt_id: ioasId,
  });
  say(`VFIO_DEVICE_ATTACH_IOMMUFD_PT(IOAS ${ioasId}): attached through hardware page table ${attach.value.pt_id}`);
  describeIoasRanges(io, iommufd, ioasId, say);

  const dma: DmaSpace = {
    map(vaddr, iova, size) {
      io.struct(iommufd, u.IOMMU_IOAS_MAP, u.iommu_ioas_map, {
        size: u.iommu_ioas_map.size,
        flags: u.IOMMU_IOAS_MAP_FIXED_IOVA | u.IOMMU_IOAS_MAP_READABLE | u.IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: ioasId,
        user_va: vaddr,
        length: BigInt(size),
        iova,
      });
    },
    unmap(iova, size) {
      return io.struct(iommufd, u.IOMMU_IOAS_UNMAP, u.iommu_ioas_unmap, {
        size: u.iommu_ioas_unmap.size,
        ioas_id: ioasId,
        iova,
        length: BigInt(size),
      }).value.length;
    },
  };
  return {
    deviceFd: cdev,
    dma,
    close() {
      proc.close(cdev);
      proc.close(iommufd);
    },
  };
}

/** IOMMU_IOAS_IOVA_RANGES with room for a few ranges right after the struct. */
function describeIoasRanges(io: IoctlCaller, iommufd: number, ioasId: number, say: Say): void {
  const room = 8;
  const r = u.iommu_iova_range;
  const call = io.struct(
    iommufd,
    u.IOMMU_IOAS_IOVA_RANGES,
    u.iommu_ioas_iova_ranges,
    {
      size: u.iommu_ioas_iova_ranges.size,
      ioas_id: ioasId,
      num_iovas: room,
      allowed_iovas: io.address + BigInt(u.iommu_ioas_iova_ranges.size),
    },
    { tail: new Uint8Array(room * r.size) },
  );
  const n = Math.min(call.value.num_iovas, room);
  const ranges = decodeArray(r, call.bytes, u.iommu_ioas_iova_ranges.size, n);
  say(
    `IOMMU_IOAS_IOVA_RANGES: alignment ${hex(call.value.out_iova_alignment)}, usable ` +
      ranges.map((x) => `[${hex(x.start)}-${hex(x.last)}]`).join(' '),
  );
}
