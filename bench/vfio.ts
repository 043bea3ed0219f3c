/**
 * Benchmarks of the VFIO paths through the system-call contract: ioctl dispatch, type1
 * MAP_DMA/UNMAP_DMA, a full table of 65,535 mappings, and edu DMA driven through the mmap'ed
 * BAR. Each case builds its own host in setup() and lets its process exit in teardown().
 */
import { Host } from '../src/host.js';
import type { Process } from '../src/sys/process.js';
import { MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../src/kernel/vfs/mm.js';
import { O_RDWR } from '../src/kernel/vfs/syscalls.js';
import * as v from '../src/uapi/vfio.js';
import { EDU_DMA_BUFFER, EduDriver } from '../src/cli/edu-driver.js';
import { IoctlCaller } from '../src/cli/ioctl-caller.js';
import type { BenchCase } from './harness.js';

const PAGE = 4096;

/** A process with a type1v2 container holding the first edu device's group, and its device fd. */
interface VfioSession {
  host: Host;
  proc: Process;
  io: IoctlCaller;
  container: number;
  device: number;
}

function openSession(): VfioSession {
  const host = Host.create();
  const proc = host.spawn();
  const io = new IoctlCaller(proc);
  const dev = host.devices().find((d) => d.driver === 'vfio-pci')!;
  const container = proc.open('/dev/vfio/vfio', O_RDWR);
  const group = proc.open(`/dev/vfio/${dev.iommuGroup}`, O_RDWR);
  io.s32ptr(group, v.VFIO_GROUP_SET_CONTAINER, container);
  proc.ioctl(container, v.VFIO_SET_IOMMU, v.VFIO_TYPE1v2_IOMMU);
  const device = io.string(group, v.VFIO_GROUP_GET_DEVICE_FD, dev.bdf);
  return { host, proc, io, container, device };
}

/** Writes an encoded struct at a fresh anonymous page and returns its address. */
function place(proc: Process, bytes: Uint8Array): bigint {
  const addr = proc.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  proc.memory.write(addr, bytes);
  return addr;
}

function trivialIoctl(): BenchCase {
  let s: VfioSession | undefined;
  let sink = 0;
  const plain = (x: number): number => x + 1;
  return {
    name: 'ioctl: VFIO_GET_API_VERSION on a container fd',
    baselineName: 'a plain function call',
    target: { kind: 'rate', min: 2_000_000 },
    setup: () => void (s = openSession()),
    teardown: () => s?.proc.exit(),
    run(n) {
      const { proc, container } = s!;
      for (let i = 0; i < n; i++) sink += proc.ioctl(container, v.VFIO_GET_API_VERSION);
    },
    baseline(n) {
      for (let i = 0; i < n; i++) sink = plain(sink);
    },
  };
}

function mapUnmapPairs(): BenchCase {
  let s: VfioSession | undefined;
  let mapArg = 0n;
  let unmapArg = 0n;
  const baselineMap = new Map<bigint, number>();
  return {
    name: 'type1: MAP_DMA + UNMAP_DMA of 4 KiB',
    baselineName: 'Map.set + Map.delete',
    target: { kind: 'rate', min: 300_000 },
    setup() {
      s = openSession();
      const buffer = s.proc.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      const iova = 0x100000n;
      mapArg = place(
        s.proc,
        v.vfio_iommu_type1_dma_map.encode({
          argsz: v.vfio_iommu_type1_dma_map.size,
          flags: v.VFIO_DMA_MAP_FLAG_READ | v.VFIO_DMA_MAP_FLAG_WRITE,
          vaddr: buffer,
          iova,
          size: BigInt(PAGE),
        }),
      );
      unmapArg = place(
        s.proc,
        v.vfio_iommu_type1_dma_unmap.encode({ argsz: v.vfio_iommu_type1_dma_unmap.size, iova, size: BigInt(PAGE) }),
      );
    },
    teardown: () => s?.proc.exit(),
    run(n) {
      const { proc, container } = s!;
      for (let i = 0; i < n; i++) {
        proc.ioctl(container, v.VFIO_IOMMU_MAP_DMA, mapArg);
        proc.ioctl(container, v.VFIO_IOMMU_UNMAP_DMA, unmapArg);
      }
    },
    baseline(n) {
      for (let i = 0; i < n; i++) {
        baselineMap.set(0x100000n, i);
        baselineMap.delete(0x100000n);
      }
    },
  };
}

/** type1's default dma_entry_limit (semantics.md §5): a full table. */
const FULL_TABLE = 65_535;

function fullTable(): BenchCase {
  let s: VfioSession | undefined;
  let buffer = 0n;
  let arg = 0n;
  let unmapAll = 0n;
  const scratch = new Uint8Array(v.vfio_iommu_type1_dma_map.size);
  // UNMAP_DMA writes the unmapped size back, so the argument is rebuilt before every call.
  const unmapAllArg = v.vfio_iommu_type1_dma_unmap.encode({
    argsz: v.vfio_iommu_type1_dma_unmap.size,
    flags: v.VFIO_DMA_UNMAP_FLAG_ALL,
  });
  return {
    name: `type1: create ${FULL_TABLE.toLocaleString('en-US')} 4 KiB mappings, then UNMAP_ALL`,
    baselineName: `${FULL_TABLE.toLocaleString('en-US')} entries into a Map`,
    kind: 'total',
    iterations: FULL_TABLE,
    target: { kind: 'time', maxMs: 500 },
    setup() {
      s = openSession();
      // Lazily backed: 256 MiB of address space costs nothing until pinned.
      buffer = s.proc.mmap(FULL_TABLE * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      arg = s.proc.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      unmapAll = place(s.proc, unmapAllArg);
    },
    teardown: () => s?.proc.exit(),
    run(n) {
      const { proc, container } = s!;
      for (let i = 0; i < n; i++) {
        const offset = BigInt(i * PAGE);
        v.vfio_iommu_type1_dma_map.encode(
          {
            argsz: v.vfio_iommu_type1_dma_map.size,
            flags: v.VFIO_DMA_MAP_FLAG_READ | v.VFIO_DMA_MAP_FLAG_WRITE,
            vaddr: buffer + offset,
            iova: 0x100000n + offset,
            size: BigInt(PAGE),
          },
          scratch,
        );
        proc.memory.write(arg, scratch);
        proc.ioctl(container, v.VFIO_IOMMU_MAP_DMA, arg);
      }
      proc.memory.write(unmapAll, unmapAllArg);
      proc.ioctl(container, v.VFIO_IOMMU_UNMAP_DMA, unmapAll);
    },
    baseline(n) {
      const m = new Map<bigint, { vaddr: bigint; size: number }>();
      for (let i = 0; i < n; i++) m.set(0x100000n + BigInt(i * PAGE), { vaddr: BigInt(i * PAGE), size: PAGE });
      m.clear();
    },
  };
}

function eduDma(): BenchCase {
  let s: VfioSession | undefined;
  let edu: EduDriver | undefined;
  const iova = 0x100000n;
  const src = new Uint8Array(PAGE).fill(0x5a);
  const dst = new Uint8Array(PAGE);
  return {
    name: "edu: 4 KiB DMA RAM -> device, programmed through the mmap'ed BAR0",
    baselineName: 'Uint8Array.set of 4 KiB',
    bytesPerIteration: PAGE,
    target: { kind: 'ratio', fraction: 0.25 },
    setup() {
      s = openSession();
      const { proc, io, container, device } = s;
      const region = io.struct(device, v.VFIO_DEVICE_GET_REGION_INFO, v.vfio_region_info, {
        argsz: v.vfio_region_info.size,
        index: v.VFIO_PCI_BAR0_REGION_INDEX,
      }).value;
      const bar0 = proc.mmap(region.size, PROT_READ | PROT_WRITE, MAP_SHARED, device, region.offset);
      const config = v.VFIO_PCI_INDEX_TO_OFFSET(v.VFIO_PCI_CONFIG_REGION_INDEX) + 4n;
      proc.pwrite(device, Uint8Array.of(0x06, 0x00), config); // COMMAND: memory decode + bus master
      const buffer = proc.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
      proc.memory.write(buffer, src);
      io.struct(container, v.VFIO_IOMMU_MAP_DMA, v.vfio_iommu_type1_dma_map, {
        argsz: v.vfio_iommu_type1_dma_map.size,
        flags: v.VFIO_DMA_MAP_FLAG_READ | v.VFIO_DMA_MAP_FLAG_WRITE,
        vaddr: buffer,
        iova,
        size: BigInt(PAGE),
      });
      edu = new EduDriver(proc, bar0);
    },
    teardown: () => s?.proc.exit(),
    run(n) {
      for (let i = 0; i < n; i++) edu!.dma(iova, EDU_DMA_BUFFER, PAGE, false);
    },
    baseline(n) {
      for (let i = 0; i < n; i++) dst.set(src);
    },
  };
}

export const vfioCases: readonly BenchCase[] = [trivialIoctl(), mapUnmapPairs(), fullTable(), eduDma()];
