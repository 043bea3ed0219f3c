/**
 * End to end: an edu driver in a process maps memory through a type1 container, programs DMA
 * through its mmap'ed BAR0 and gets the completion interrupt on an eventfd, as in the "== edu
 * DMA through IOMMU" and "DMA with IRQ flag" parts of probe-612-edu.txt.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EDU_DMA_BUFFER_ADDRESS, EDU_DMA_IRQ, EDU_DMA_RUN, EDU_DMA_TO_RAM, EduReg } from '../../src/hw/devices/edu.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_IOMMU_MAP_DMA,
  VFIO_PCI_INTX_IRQ_INDEX,
  VFIO_PCI_MSI_IRQ_INDEX,
  vfio_iommu_type1_dma_map,
} from '../../src/uapi/vfio.js';
import { ANON, BAR0, Env, RW, SHARED, exitAndCheck, le32, region, u32 } from './helpers.js';

function setup() {
  const env = Env.create();
  const { container, device } = env.openDevice();
  env.cfgWrite(device, 0x04, 2, env.cfgRead(device, 0x04, 2) | 0x6);
  const bar = env.proc.mmap(1 << 20, RW, SHARED, device, region(BAR0));
  const reg32 = (offset: number) => u32(env.proc.memory.read(bar + BigInt(offset), 4));
  const write32 = (offset: number, value: number) => env.proc.memory.write(bar + BigInt(offset), le32(value));
  const write64 = (offset: number, value: bigint) => {
    const bytes = new Uint8Array(8);
    new DataView(bytes.buffer).setBigUint64(0, value, true);
    env.proc.memory.write(bar + BigInt(offset), bytes);
  };
  const map = (vaddr: bigint, iova: bigint, size: number, flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE) =>
    env.proc.ioctl(
      container,
      VFIO_IOMMU_MAP_DMA,
      env.put(vfio_iommu_type1_dma_map, { argsz: 32, flags, vaddr, iova, size: BigInt(size) }),
    );
  /** One edu transfer; waits as a driver would (the emulation completes it at once). */
  const dma = (src: bigint, dst: bigint, count: number, cmd: number) => {
    write64(EduReg.DMA_SRC, src);
    write64(EduReg.DMA_DST, dst);
    write64(EduReg.DMA_COUNT, BigInt(count));
    write64(EduReg.DMA_CMD, BigInt(cmd | EDU_DMA_RUN));
    let polls = 0;
    while (reg32(EduReg.DMA_CMD) & EDU_DMA_RUN) if (++polls > 100) throw new Error('DMA never completed');
  };
  return { env, device, reg32, write32, map, dma };
}

test('edu DMA RAM -> device -> RAM through a type1 container, MSI on completion', () => {
  const { env, device, reg32, write32, map, dma } = setup();
  const a = env.proc.mmap(4096, RW, ANON);
  const b = env.proc.mmap(4096, RW, ANON);
  const pattern = Uint8Array.from({ length: 2048 }, (_, i) => (3 + 7 * i) & 0xff);
  env.proc.memory.write(a, pattern);
  map(a, 0x100000n, 4096);
  map(b, 0x200000n, 4096);
  const efd = env.proc.eventfd();
  env.trigger(device, VFIO_PCI_MSI_IRQ_INDEX, [efd]);

  dma(0x100000n, BigInt(EDU_DMA_BUFFER_ADDRESS), 2048, 0);
  dma(BigInt(EDU_DMA_BUFFER_ADDRESS), 0x200000n, 2048, EDU_DMA_TO_RAM | EDU_DMA_IRQ);
  assert.deepEqual([...env.proc.memory.read(b, 2048)], [...pattern], 'DMA VERIFIED');
  assert.equal(env.drain(efd), 1n);
  assert.equal(reg32(EduReg.IRQ_STATUS), 0x100);
  write32(EduReg.IRQ_ACK, 0x100);

  // A transfer to an unmapped IOVA faults in the IOMMU and moves nothing.
  const faults = env.host.machine.iommu.faults.count;
  dma(BigInt(EDU_DMA_BUFFER_ADDRESS), 0x900000n, 64, EDU_DMA_TO_RAM);
  assert.equal(env.host.machine.iommu.faults.count, faults + 1);
  exitAndCheck(env);
});

test('edu DMA completion through INTx: auto-masked, unmasked after acknowledging', () => {
  const { env, device, reg32, write32, map, dma } = setup();
  const buf = env.proc.mmap(4096, RW, ANON);
  map(buf, 0x300000n, 4096);
  const efd = env.proc.eventfd();
  env.trigger(device, VFIO_PCI_INTX_IRQ_INDEX, [efd]);
  dma(BigInt(EDU_DMA_BUFFER_ADDRESS), 0x300000n, 16, EDU_DMA_TO_RAM | EDU_DMA_IRQ);
  assert.equal(env.drain(efd), 1n);
  assert.equal(reg32(EduReg.IRQ_STATUS), 0x100);
  write32(EduReg.IRQ_ACK, 0x100);
  env.setIrqs(device, 0x1 | 0x10, VFIO_PCI_INTX_IRQ_INDEX, 0, 1);
  assert.equal(env.drain(efd), 0n);
  dma(BigInt(EDU_DMA_BUFFER_ADDRESS), 0x300000n, 16, EDU_DMA_TO_RAM | EDU_DMA_IRQ);
  assert.equal(env.drain(efd), 1n);
  exitAndCheck(env);
});
