// The edu DMA round trip through every way of giving a device an IO address space: a cdev
// attached to an IOAS, a cdev attached to a user HWPT (and replaced), iommufd's VFIO compat
// (/dev/vfio/vfio as iommufd, and /dev/iommu as a group's container), and legacy type1. Each time
// the DMA reaches exactly what is mapped and stops at the IOMMU after unmap (a recorded fault).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EduDriver, EDU_DMA_BUFFER } from '../../src/cli/edu-driver.js';
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from '../../src/hw/pci/regs.js';
import { MAP_SHARED } from '../../src/kernel/vfs/mm.js';
import type { Process } from '../../src/sys/process.js';
import { IOMMU_HWPT_ALLOC, IOMMU_IOAS_COPY, iommu_hwpt_alloc, iommu_ioas_copy } from '../../src/uapi/iommufd.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_MAP_DMA,
  VFIO_IOMMU_UNMAP_DMA,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_INDEX_TO_OFFSET,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_dma_map,
  vfio_iommu_type1_dma_unmap,
} from '../../src/uapi/vfio.js';
import { Env, FIXED_RW, PAGE, RW } from './helpers.js';

const A = 0x100000n;
const B = 0x200000n;
const LENGTH = 2048;

/** Bus mastering on through the config region, BAR0 mmap'ed: the transcript's driver. */
function edu(proc: Process, deviceFd: number): EduDriver {
  const config = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX) + BigInt(PCI_COMMAND);
  const command = proc.pread(deviceFd, 2, config);
  command[0] = command[0]! | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
  proc.pwrite(deviceFd, command, config);
  return new EduDriver(proc, proc.mmap(PAGE, RW, MAP_SHARED, deviceFd, 0));
}

/** Two buffers, A with a pattern and B zero; `map(va, iova)` maps one page of each. */
function buffers(env: Env): { a: bigint; b: bigint; pattern: Uint8Array } {
  const a = env.buffer(PAGE);
  const b = env.buffer(PAGE);
  const pattern = Uint8Array.from({ length: PAGE }, (_, i) => (3 + 7 * i) & 0xff);
  env.proc.memory.write(a, pattern);
  return { a, b, pattern };
}

/**
 * A -> device -> B moves the bytes; after `unmapB` a transfer to B faults at the IOMMU and B
 * keeps its contents.
 */
function roundTrip(env: Env, driver: EduDriver, mem: ReturnType<typeof buffers>, unmapB: () => void): void {
  const { proc } = env;
  const iommu = env.host.machine.iommu;
  driver.dma(A, EDU_DMA_BUFFER, LENGTH, false);
  driver.dma(B, EDU_DMA_BUFFER, LENGTH, true);
  assert.deepEqual(proc.memory.read(mem.b, LENGTH), mem.pattern.subarray(0, LENGTH));
  proc.memory.write(mem.b, new Uint8Array(PAGE));
  unmapB();
  const faults = iommu.faults.count;
  driver.dma(B, EDU_DMA_BUFFER, LENGTH, true);
  assert.equal(iommu.faults.count, faults + 1);
  assert.deepEqual(proc.memory.read(mem.b, LENGTH), new Uint8Array(LENGTH));
}

test('cdev attached to an IOAS: DMA round trip, stopped at the IOMMU after IOAS_UNMAP', () => {
  const env = Env.create();
  const { cdev, ioas } = env.device(0);
  const mem = buffers(env);
  env.map(ioas, { iova: A, length: PAGE, va: mem.a });
  env.map(ioas, { iova: B, length: PAGE, va: mem.b });
  roundTrip(env, edu(env.proc, cdev), mem, () => assert.equal(env.unmap(ioas, B, PAGE), BigInt(PAGE)));
  env.leakCheck();
});

test('cdev attached to a user HWPT, by replace from the IOAS: same round trip', () => {
  const env = Env.create();
  const { cdev, devid, ioas } = env.device(0);
  const mem = buffers(env);
  env.map(ioas, { iova: A, length: PAGE, va: mem.a });
  const driver = edu(env.proc, cdev);
  const hwpt = env.call(IOMMU_HWPT_ALLOC, iommu_hwpt_alloc, { dev_id: devid, pt_id: ioas }).out_hwpt_id;
  env.attach(cdev, hwpt);
  // Mapped after the HWPT exists: every domain of the IOAS gets it.
  env.map(ioas, { iova: B, length: PAGE, va: mem.b });
  roundTrip(env, driver, mem, () => env.unmap(ioas, B, PAGE));
  // Detached: DMA is blocked altogether.
  env.detach(cdev);
  const faults = env.host.machine.iommu.faults.count;
  driver.dma(A, EDU_DMA_BUFFER, LENGTH, false);
  assert.equal(env.host.machine.iommu.faults.count, faults + 1);
  env.leakCheck();
});

test('pinned pages stay reachable after the process unmaps its buffer', () => {
  const env = Env.create();
  const { cdev, ioas } = env.device(0);
  const mem = buffers(env);
  env.map(ioas, { iova: A, length: PAGE, va: mem.a });
  env.map(ioas, { iova: B, length: PAGE, va: mem.b });
  const driver = edu(env.proc, cdev);
  env.proc.munmap(mem.a, PAGE);
  env.buffer(PAGE);
  driver.dma(A, EDU_DMA_BUFFER, LENGTH, false);
  driver.dma(B, EDU_DMA_BUFFER, LENGTH, true);
  assert.deepEqual(env.proc.memory.read(mem.b, LENGTH), mem.pattern.subarray(0, LENGTH));
  env.leakCheck();
});

test('IOAS_COPY shares the pages: the copy reaches the same memory', () => {
  const env = Env.create();
  const { cdev, ioas } = env.device(0);
  const other = env.ioasAlloc();
  const mem = buffers(env);
  env.map(other, { iova: A, length: PAGE, va: mem.a });
  env.map(ioas, { iova: B, length: PAGE, va: mem.b });
  env.call(IOMMU_IOAS_COPY, iommu_ioas_copy, {
    flags: FIXED_RW,
    src_ioas_id: other,
    dst_ioas_id: ioas,
    src_iova: A,
    dst_iova: A,
    length: BigInt(PAGE),
  });
  roundTrip(env, edu(env.proc, cdev), mem, () => env.unmap(ioas, B, PAGE));
  env.leakCheck();
});

function compatRoundTrip(env: Env, container: number, group: number): void {
  const { proc } = env;
  env.proc.memory.write(env.scratch + 512n, new Uint8Array(new Int32Array([container]).buffer));
  proc.ioctl(group, VFIO_GROUP_SET_CONTAINER, env.scratch + 512n);
  proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  proc.memory.write(env.scratch + 1024n, new Uint8Array([...Buffer.from('0000:00:03.0'), 0]));
  const device = proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env.scratch + 1024n);
  const mem = buffers(env);
  const flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE;
  env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
    flags,
    vaddr: mem.a,
    iova: A,
    size: BigInt(PAGE),
  });
  env.vcall(container, VFIO_IOMMU_MAP_DMA, vfio_iommu_type1_dma_map, {
    flags,
    vaddr: mem.b,
    iova: B,
    size: BigInt(PAGE),
  });
  roundTrip(env, edu(proc, device), mem, () => {
    const out = env.vcall(container, VFIO_IOMMU_UNMAP_DMA, vfio_iommu_type1_dma_unmap, { iova: B, size: BigInt(PAGE) });
    assert.equal(out.size, BigInt(PAGE));
  });
}

test('VFIO compat: /dev/vfio/vfio provided by iommufd, type1 ioctls, same round trip', () => {
  const env = Env.create({ vfioContainer: 'iommufd', devices: [{ bdf: '0000:00:03.0', model: 'edu', iommuGroup: 3 }] });
  compatRoundTrip(env, env.proc.open('/dev/vfio/vfio'), env.proc.open('/dev/vfio/3'));
  env.leakCheck();
});

test('VFIO compat: a group whose container is a /dev/iommu fd, same round trip', () => {
  const env = Env.create();
  compatRoundTrip(env, env.iommufd, env.proc.open('/dev/vfio/3'));
  env.leakCheck();
});

test('legacy type1 container: the same round trip (reference path)', () => {
  const env = Env.create();
  compatRoundTrip(env, env.proc.open('/dev/vfio/vfio'), env.proc.open('/dev/vfio/3'));
  env.leakCheck();
});
