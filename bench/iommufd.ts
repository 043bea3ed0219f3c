/**
 * Benchmarks of the iommufd paths through the system-call contract: IOAS_MAP + IOAS_UNMAP pairs
 * on an IOAS with a device attached (so every pair pins, maps the IOMMU domain, unmaps and
 * unpins), and IOMMU_HWPT_GET_DIRTY_BITMAP over 1 GiB of mapped IOVA with 1% of its pages made
 * dirty by device writes through the IOMMU. Each case builds its own host in setup() and lets
 * its process exit in teardown().
 */
import { Host } from '../src/host.js';
import type { Process } from '../src/sys/process.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE } from '../src/kernel/vfs/mm.js';
import * as f from '../src/uapi/iommufd.js';
import * as v from '../src/uapi/vfio.js';
import type { EncodeValue, Struct } from '../src/uapi/layout.js';
import type { BenchCase } from './harness.js';

const PAGE = 4096;
const RW = PROT_READ | PROT_WRITE;
const ANON = MAP_PRIVATE | MAP_ANONYMOUS;

/** A process with /dev/iommu, its first vfio device bound, and an IOAS. */
interface Session {
  host: Host;
  proc: Process;
  iommufd: number;
  cdev: number;
  devid: number;
  ioas: number;
  requesterId: number;
}

/** Writes `value` (size/argsz filled in) into a fresh page and returns its address. */
function place<T extends object>(proc: Process, struct: Struct<T>, value: EncodeValue<T>): bigint {
  const addr = proc.mmap(PAGE, RW, ANON);
  proc.memory.write(addr, struct.encode(value));
  return addr;
}

function call<T extends object>(
  proc: Process,
  fd: number,
  request: number,
  struct: Struct<T>,
  value: EncodeValue<T>,
): T {
  const at = place(proc, struct, value);
  proc.ioctl(fd, request, at);
  const out = struct.decode(proc.memory.read(at, struct.size));
  proc.munmap(at, PAGE);
  return out;
}

function openSession(attach: 'ioas' | 'dirty-hwpt'): Session & { hwpt: number } {
  const host = Host.create();
  const proc = host.spawn();
  const dev = host.devices().find((d) => d.cdev !== null)!;
  const iommufd = proc.open('/dev/iommu');
  const cdev = proc.open(`/dev/vfio/devices/${dev.cdev!}`);
  const devid = call(proc, cdev, v.VFIO_DEVICE_BIND_IOMMUFD, v.vfio_device_bind_iommufd, {
    argsz: 24,
    iommufd,
  }).out_devid;
  const ioas = call(proc, iommufd, f.IOMMU_IOAS_ALLOC, f.iommu_ioas_alloc, { size: 12 }).out_ioas_id;
  let pt = ioas;
  if (attach === 'dirty-hwpt') {
    pt = call(proc, iommufd, f.IOMMU_HWPT_ALLOC, f.iommu_hwpt_alloc, {
      size: f.iommu_hwpt_alloc.size,
      flags: f.IOMMU_HWPT_ALLOC_DIRTY_TRACKING,
      dev_id: devid,
      pt_id: ioas,
    }).out_hwpt_id;
  }
  const hwpt = call(proc, cdev, v.VFIO_DEVICE_ATTACH_IOMMUFD_PT, v.vfio_device_attach_iommufd_pt, {
    argsz: 16,
    pt_id: pt,
  }).pt_id;
  const requesterId = host.machine.function(dev.bdf).requesterId;
  return { host, proc, iommufd, cdev, devid, ioas, requesterId, hwpt };
}

function mapUnmapPairs(bytes: number, target: number): BenchCase {
  let s: Session | undefined;
  let mapArg = 0n;
  let unmapArg = 0n;
  const baselineMap = new Map<bigint, number>();
  const label = bytes >= 1 << 20 ? `${bytes >> 20} MiB` : `${bytes >> 10} KiB`;
  return {
    name: `iommufd: IOAS_MAP + IOAS_UNMAP of ${label} (device attached: pin + domain map)`,
    baselineName: 'Map.set + Map.delete',
    target: { kind: 'rate', min: target },
    setup() {
      s = openSession('ioas');
      const buffer = s.proc.mmap(bytes + 0x200000, RW, ANON);
      const va = (buffer + 0x1fffffn) & ~0x1fffffn;
      s.proc.memory.write(va, new Uint8Array(1));
      const iova = 0x40000000n;
      mapArg = place(s.proc, f.iommu_ioas_map, {
        size: f.iommu_ioas_map.size,
        flags: f.IOMMU_IOAS_MAP_FIXED_IOVA | f.IOMMU_IOAS_MAP_READABLE | f.IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: s.ioas,
        user_va: va,
        length: BigInt(bytes),
        iova,
      });
      unmapArg = place(s.proc, f.iommu_ioas_unmap, {
        size: f.iommu_ioas_unmap.size,
        ioas_id: s.ioas,
        iova,
        length: BigInt(bytes),
      });
    },
    teardown: () => s?.proc.exit(),
    run(n) {
      const { proc, iommufd } = s!;
      for (let i = 0; i < n; i++) {
        proc.ioctl(iommufd, f.IOMMU_IOAS_MAP, mapArg);
        proc.ioctl(iommufd, f.IOMMU_IOAS_UNMAP, unmapArg);
      }
    },
    baseline(n) {
      for (let i = 0; i < n; i++) {
        baselineMap.set(BigInt(i), i);
        baselineMap.delete(BigInt(i));
      }
    },
  };
}

/** 1 GiB mapped through a DIRTY_TRACKING HWPT; 1% of the pages written by the device. */
function dirtyBitmap(): BenchCase {
  const GIB = 1 << 30;
  const pages = GIB / PAGE;
  const bitmapBytes = pages / 8;
  let s: Session | undefined;
  let arg = 0n;
  let bitmap = 0n;
  let copyBuffer = new Uint8Array(0);
  return {
    name: 'iommufd: HWPT_GET_DIRTY_BITMAP over 1 GiB mapped, 1% of pages dirty (NO_CLEAR)',
    baselineName: 'reading and writing back the 32 KiB bitmap through process memory',
    target: { kind: 'rate', min: 200 },
    setup() {
      s = openSession('dirty-hwpt');
      const { proc, iommufd, ioas } = s;
      const hwpt = (s as Session & { hwpt: number }).hwpt;
      const buffer = proc.mmap(GIB, RW, ANON);
      const iova = 0x40000000n;
      call(proc, iommufd, f.IOMMU_IOAS_MAP, f.iommu_ioas_map, {
        size: f.iommu_ioas_map.size,
        flags: f.IOMMU_IOAS_MAP_FIXED_IOVA | f.IOMMU_IOAS_MAP_READABLE | f.IOMMU_IOAS_MAP_WRITEABLE,
        ioas_id: ioas,
        user_va: buffer,
        length: BigInt(GIB),
        iova,
      });
      call(proc, iommufd, f.IOMMU_HWPT_SET_DIRTY_TRACKING, f.iommu_hwpt_set_dirty_tracking, {
        size: 16,
        flags: f.IOMMU_HWPT_DIRTY_TRACKING_ENABLE,
        hwpt_id: hwpt,
      });
      // Every 100th page written by the device: real dirty bits in the IOMMU's tables.
      const one = new Uint8Array([0x5a]);
      for (let page = 0; page < pages; page += 100) {
        if (!s.host.machine.iommu.dmaWrite(s.requesterId, iova + BigInt(page * PAGE), one))
          throw new Error('DMA refused');
      }
      bitmap = proc.mmap(bitmapBytes, RW, ANON);
      copyBuffer = new Uint8Array(bitmapBytes);
      arg = place(proc, f.iommu_hwpt_get_dirty_bitmap, {
        size: f.iommu_hwpt_get_dirty_bitmap.size,
        hwpt_id: hwpt,
        flags: f.IOMMU_HWPT_GET_DIRTY_BITMAP_NO_CLEAR,
        iova,
        length: BigInt(GIB),
        page_size: BigInt(PAGE),
        data: bitmap,
      });
    },
    teardown: () => s?.proc.exit(),
    run(n) {
      const { proc, iommufd } = s!;
      for (let i = 0; i < n; i++) proc.ioctl(iommufd, f.IOMMU_HWPT_GET_DIRTY_BITMAP, arg);
    },
    baseline(n) {
      const { proc } = s!;
      for (let i = 0; i < n; i++) {
        copyBuffer.set(proc.memory.read(bitmap, bitmapBytes));
        proc.memory.write(bitmap, copyBuffer);
      }
    },
  };
}

export const iommufdCases: readonly BenchCase[] = [
  mapUnmapPairs(PAGE, 250_000),
  mapUnmapPairs(2 * 1024 * 1024, 250_000),
  dirtyBitmap(),
];
