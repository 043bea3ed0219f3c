/**
 * The "== edu DMA through IOMMU" part of probe-612-edu.txt: what type1 maps is exactly what the
 * device reaches, and nothing else.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EduDevice } from '../../src/hw/devices/edu.js';
import { PCI_COMMAND, PCI_COMMAND_MASTER, PCI_COMMAND_MEMORY } from '../../src/hw/pci/regs.js';
import { MAP_SHARED } from '../../src/kernel/vfs/mm.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_GROUP_GET_DEVICE_FD,
  VFIO_PCI_CONFIG_REGION_INDEX,
  VFIO_PCI_INDEX_TO_OFFSET,
} from '../../src/uapi/vfio.js';
import { BDF, Env, PAGE, RW, exitAndCheck } from './legacy-helpers.js';

const EDU_BUFFER = 0x40000n;
const DMA_SRC = 0x80n;
const DMA_DST = 0x88n;
const DMA_COUNT = 0x90n;
const DMA_CMD = 0x98n;
const CMD_RUN = 1n;
const CMD_TO_RAM = 2n;

function u64(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, v, true);
  return b;
}

/**
 * The edu through its VFIO device fd, as the transcript's program drives it: bus mastering on
 * through the config region, BAR0 mmap'ed, the DMA registers written 8 bytes at a time.
 */
function eduDriver(env: Env, group: number) {
  const { proc } = env;
  const edu = env.host.machine.function(BDF) as EduDevice;
  const device = proc.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, env.putString(BDF, env.scratch + 2048n));
  const config = VFIO_PCI_INDEX_TO_OFFSET(VFIO_PCI_CONFIG_REGION_INDEX);
  const command = proc.pread(device, 2, config + BigInt(PCI_COMMAND));
  command[0] = command[0]! | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
  proc.pwrite(device, command, config + BigInt(PCI_COMMAND));
  const bar = proc.mmap(PAGE, RW, MAP_SHARED, device, 0);
  const reg = (offset: bigint, value: bigint) => proc.memory.write(bar + offset, u64(value));
  return {
    edu,
    device,
    bar,
    /** RAM (iova) -> device buffer. */
    fromRam(iova: bigint, length: number): void {
      reg(DMA_SRC, iova);
      reg(DMA_DST, EDU_BUFFER);
      reg(DMA_COUNT, BigInt(length));
      reg(DMA_CMD, CMD_RUN);
    },
    /** Device buffer -> RAM (iova). */
    toRam(iova: bigint, length: number): void {
      reg(DMA_SRC, EDU_BUFFER);
      reg(DMA_DST, iova);
      reg(DMA_COUNT, BigInt(length));
      reg(DMA_CMD, CMD_RUN | CMD_TO_RAM);
    },
  };
}

test('transcript "== edu DMA through IOMMU": copies through mapped IOVAs, faults elsewhere', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container, group } = env.containerWithGroup(2);
  const a = env.buffer(PAGE);
  const b = env.buffer(PAGE);
  const ro = env.buffer(PAGE);
  env.map(container, a, 0x100000n, PAGE);
  env.map(container, b, 0x200000n, PAGE);
  env.map(container, a, 0x180000n, PAGE);
  env.map(container, ro, 0x500000n, PAGE, VFIO_DMA_MAP_FLAG_READ);
  const pattern = Uint8Array.from({ length: PAGE }, (_, i) => (3 + 7 * i) & 0xff);
  proc.memory.write(a, pattern);
  proc.memory.write(ro, new Uint8Array(PAGE).fill(3));
  const dev = eduDriver(env, group);
  const faults = () => host.machine.iommu.faults.count;

  dev.fromRam(0x100000n, 2048);
  dev.toRam(0x200000n, 2048);
  assert.deepEqual([...proc.memory.read(b, 4)], [0x03, 0x0a, 0x11, 0x18]);
  assert.deepEqual(proc.memory.read(b, 2048), pattern.subarray(0, 2048));
  assert.equal(faults(), 0);

  dev.toRam(0x180000n, 2048); // the alias reaches A's page
  assert.deepEqual(proc.memory.read(a, 2048), pattern.subarray(0, 2048));

  dev.toRam(0x900000n, 2048);
  assert.equal(faults(), 1, 'unmapped IOVA: a DMAR fault, nothing moves');
  dev.toRam(0x500000n, 2048);
  assert.equal(faults(), 2, 'read-only mapping: the write faults');
  assert.ok(proc.memory.read(ro, PAGE).every((x) => x === 3));
  dev.fromRam(0x500000n, 16); // reading it is fine
  assert.equal(faults(), 2);
  assert.equal(dev.edu.snapshot().dmaFailures, 2);

  // After UNMAP_DMA the IOMMU stops the device at once.
  assert.equal(env.unmap(container, 0x200000n, PAGE), BigInt(PAGE));
  proc.memory.write(b, new Uint8Array(PAGE));
  dev.toRam(0x200000n, 2048);
  assert.equal(faults(), 3);
  assert.ok(proc.memory.read(b, PAGE).every((x) => x === 0));
  exitAndCheck(env);
});

test('DMA stops at the IOMMU once the group leaves the container (the domain is gone)', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container, group } = env.containerWithGroup(2);
  const a = env.buffer(PAGE);
  env.map(container, a, 0x100000n, PAGE);
  const dev = eduDriver(env, group);
  dev.toRam(0x100000n, 64);
  assert.equal(host.machine.iommu.faults.count, 0);
  proc.munmap(dev.bar, PAGE);
  proc.close(dev.device);
  proc.close(group);
  // vfio-pci turned bus mastering off at close; a device that masters anyway (forced here
  // through the hardware) is now stopped by the IOMMU: its requester id has no domain.
  dev.edu.configWrite(PCI_COMMAND, 2, dev.edu.command | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
  dev.edu.mmioWrite(Number(DMA_CMD), 8, Number(CMD_RUN | CMD_TO_RAM), 0);
  dev.edu.mmioStoreDone();
  assert.equal(host.machine.iommu.faults.count, 1);
  assert.equal(host.usage().iommuDomains, 0);
  exitAndCheck(env);
});

test('a mapping spanning two VMAs of different objects is one mapping with two pieces', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container, group } = env.containerWithGroup(2);
  const region = env.buffer(2 * PAGE);
  // Replace the second page by a memfd page: the range now crosses two memory objects.
  const memfd = proc.memfdCreate('second');
  proc.ftruncate(memfd, PAGE);
  proc.mmapAt(region + BigInt(PAGE), PAGE, RW, MAP_SHARED | 0x10, memfd, 0);
  proc.memory.write(region + BigInt(PAGE - 4), new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  env.map(container, region, 0x100000n, 2 * PAGE);
  assert.equal(host.usage().iommuMappings, 2);
  const dev = eduDriver(env, group);
  dev.fromRam(0x100000n + BigInt(PAGE - 4), 8);
  assert.deepEqual([...dev.edu.dmaBuffer.subarray(0, 8)], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(env.unmap(container, 0x100000n, 2 * PAGE), BigInt(2 * PAGE));
  assert.equal(host.usage().iommuMappings, 0);
  exitAndCheck(env);
});

test("an mmap'ed BAR maps for DMA on type1 (vfio_dma_mapping_mmio_test) without pinning or charging", () => {
  const env = Env.create(undefined, { capabilities: [], rlimitMemlock: 0 });
  const { proc, host } = env;
  const { container, group } = env.containerWithGroup(2);
  const dev = eduDriver(env, group);
  const bar = proc.mmap(PAGE, RW, MAP_SHARED, dev.device, 0);
  assert.equal(env.map(container, bar, 0x100000n, PAGE), 0);
  assert.equal(proc.task.mm.lockedVm, 0);
  assert.equal(host.usage().iommuMappings, 1);
  assert.equal(env.unmap(container, 0x100000n, PAGE), BigInt(PAGE));
  exitAndCheck(env);
});
