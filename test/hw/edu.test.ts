import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Machine } from '../../src/hw/machine.js';
import { RamObject } from '../../src/hw/memory.js';
import {
  EDU_DMA_BUFFER_ADDRESS,
  EDU_DMA_IRQ,
  EDU_DMA_RUN,
  EDU_DMA_TO_RAM,
  EDU_IRQ_DMA,
  EDU_IRQ_FACTORIAL,
  EDU_STATUS_IRQ_FACTORIAL,
  EduDevice,
  EduReg,
} from '../../src/hw/devices/edu.js';
import {
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_STATUS,
  PCI_STATUS_INTERRUPT,
} from '../../src/hw/pci/regs.js';

const BDF = '0000:00:03.0';
const RW = { read: true, write: true };

/** The config space a real 6.12 kernel's vfio-pci showed for QEMU's edu (probe-612-edu.txt). */
const REFERENCE_CONFIG = [
  [0x00, '34 12 e8 11 03 01 10 00 10 00 ff 00 00 00 00 00'],
  [0x10, '00 00 a0 fe 00 00 00 00 00 00 00 00 00 00 00 00'],
  [0x20, '00 00 00 00 00 00 00 00 00 00 00 00 f4 1a 00 11'],
  [0x30, '00 00 00 00 40 00 00 00 00 00 00 00 0b 01 00 00'],
  [0x40, '05 00 80 00 00 00 00 00 00 00 00 00 00 00 00 00'],
] as const;

function build(options?: Record<string, unknown>) {
  const machine = new Machine({ devices: [{ bdf: BDF, model: 'edu', ...(options ? { options } : {}) }] });
  const edu = machine.function(BDF) as EduDevice;
  const bar = edu.bar(0)!.region;
  const buf = new Uint8Array(8);
  const view = new DataView(buf.buffer);
  const io = {
    r32(offset: number): number {
      bar.read(offset, buf.subarray(0, 4));
      return view.getUint32(0, true);
    },
    w32(offset: number, value: number): void {
      view.setUint32(0, value, true);
      bar.write(offset, buf.subarray(0, 4));
    },
    r64(offset: number): bigint {
      bar.read(offset, buf);
      return view.getBigUint64(0, true);
    },
    w64(offset: number, value: bigint): void {
      view.setBigUint64(0, value, true);
      bar.write(offset, buf);
    },
  };
  return { machine, edu, iommu: machine.iommu, bar, ...io };
}

/** A domain with `ram` mapped at iova 0x100000 (RW) and 0x500000 (read-only), device attached, bus master on. */
function withDma(ctx: ReturnType<typeof build>) {
  const ram = new RamObject(0x100000);
  const domain = ctx.iommu.allocDomain();
  domain.map(0x100000n, 0x2000n, { object: ram, offset: 0 }, RW);
  domain.map(0x500000n, 0x1000n, { object: ram, offset: 0x5000 }, { read: true, write: false });
  ctx.iommu.attachDevice(ctx.edu.requesterId, domain);
  ctx.edu.configWrite(PCI_COMMAND, 2, ctx.edu.configRead(PCI_COMMAND, 2) | PCI_COMMAND_MASTER);
  return { ram, domain };
}

function runDma(ctx: ReturnType<typeof build>, src: bigint, dst: bigint, count: bigint, cmd: number): void {
  ctx.w64(EduReg.DMA_SRC, src);
  ctx.w64(EduReg.DMA_DST, dst);
  ctx.w64(EduReg.DMA_COUNT, count);
  ctx.w64(EduReg.DMA_CMD, BigInt(cmd | EDU_DMA_RUN));
}

function hexBytes(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
}

test('config space matches the real device', () => {
  const { edu } = build();
  const bytes = new Uint8Array(256);
  for (let offset = 0; offset < 256; offset += 4) {
    new DataView(bytes.buffer).setUint32(offset, edu.configRead(offset, 4), true);
  }
  for (const [offset, line] of REFERENCE_CONFIG) assert.equal(hexBytes(bytes.subarray(offset, offset + 16)), line);
  assert.ok(bytes.subarray(0x50).every((b) => b === 0));
  assert.equal(edu.canReset, false);
  assert.throws(() => edu.reset(), /no reset method/);
  assert.equal(edu.msi?.offset, 0x40);
  assert.equal(edu.msi?.vectorsCapable, 1);
});

test('BAR0 sizing and hardware masks', () => {
  const { edu } = build();
  edu.configWrite(0x10, 4, 0xffffffff);
  assert.equal(edu.configRead(0x10, 4), 0xfff00000);
  edu.configWrite(0x10, 4, 0xfea00000);
  assert.equal(edu.bar(0)!.address, 0xfea00000n);
  edu.configWrite(0x00, 4, 0);
  assert.equal(edu.configRead(0x00, 4), 0x11e81234);
  edu.configWrite(PCI_COMMAND, 2, 0xffff);
  assert.equal(edu.configRead(PCI_COMMAND, 2), 0x0507);
  edu.configWrite(0x42, 2, 0xffff);
  assert.equal(edu.configRead(0x42, 2), 0x00f1, 'MSI: enable and QSIZE writable');
  edu.configWrite(0x42, 2, 0);
  edu.configWrite(0x44, 4, 0xffffffff);
  assert.equal(edu.configRead(0x44, 4), 0xfffffffc);
});

test('identification, liveness and factorial', () => {
  const ctx = build();
  assert.equal(ctx.r32(EduReg.ID), 0x010000ed);
  assert.equal(ctx.r32(EduReg.LIVENESS), 0);
  ctx.w32(EduReg.LIVENESS, 0x12345678);
  assert.equal(ctx.r32(EduReg.LIVENESS), 0xedcba987);
  ctx.w32(EduReg.ID, 5);
  assert.equal(ctx.r32(EduReg.ID), 0x010000ed);

  const factorial = (n: number) => {
    ctx.w32(EduReg.FACTORIAL, n);
    assert.equal(ctx.r32(EduReg.STATUS) & 1, 0, 'never reads busy');
    return ctx.r32(EduReg.FACTORIAL);
  };
  assert.equal(factorial(10), 3628800);
  assert.equal(factorial(0), 1);
  assert.equal(factorial(1), 1);
  assert.equal(factorial(12), 479001600);
  assert.equal(factorial(13), 1932053504, '13! wraps at 32 bits');
  assert.equal(factorial(20), Number(2432902008176640000n % 2n ** 32n));
  assert.equal(
    factorial(33),
    Number([...Array(33)].reduce((acc: bigint, _, i) => acc * BigInt(i + 1), 1n) % 2n ** 32n),
  );
  assert.equal(factorial(34), 0);
  assert.equal(factorial(0xffffffff), 0);
});

test('access widths: 4 below 0x80, 4 or 8 from 0x80, others ignored', () => {
  const ctx = build();
  const two = new Uint8Array(2);
  ctx.bar.read(EduReg.ID, two);
  assert.deepEqual([...two], [0, 0], 'QEMU refuses 2-byte accesses: the read completes with 0');
  ctx.bar.read(EduReg.DMA_SRC, two);
  assert.deepEqual([...two], [0, 0]);
  assert.equal(ctx.r64(EduReg.ID), 0xffffffffffffffffn, '8-byte read below 0x80 is ignored');
  ctx.w64(EduReg.LIVENESS - 4, 0x1111111122222222n);
  assert.equal(ctx.r32(EduReg.LIVENESS), 0, '8-byte write below 0x80 is ignored');
  ctx.bar.write(EduReg.LIVENESS, new Uint8Array([1, 2]));
  assert.equal(ctx.r32(EduReg.LIVENESS), 0, '2-byte write is ignored');
  assert.equal(ctx.r32(0x10), 0xffffffff, 'unassigned register');

  ctx.w64(EduReg.DMA_SRC, 0x123456789an);
  assert.equal(ctx.r64(EduReg.DMA_SRC), 0x123456789an);
  assert.equal(ctx.r32(EduReg.DMA_SRC), 0x3456789a, '4-byte read gives the low half');
  ctx.w32(EduReg.DMA_SRC, 0xabcd);
  assert.equal(ctx.r64(EduReg.DMA_SRC), 0xabcdn, '4-byte write replaces the whole register');
  ctx.w32(EduReg.DMA_SRC + 4, 0x77);
  assert.equal(ctx.r64(EduReg.DMA_SRC), 0xabcdn, 'upper half alone is not a register');
  ctx.w64(EduReg.DMA_CMD, BigInt(EDU_DMA_TO_RAM));
  assert.equal(ctx.r64(EduReg.DMA_CMD), 0n, 'command writes without the run bit are ignored');
});

test('memory decode off: reads all-ones, writes dropped', () => {
  const ctx = build();
  ctx.edu.configWrite(PCI_COMMAND, 2, ctx.edu.configRead(PCI_COMMAND, 2) & ~PCI_COMMAND_MEMORY);
  assert.equal(ctx.r32(EduReg.ID), 0xffffffff);
  ctx.w32(EduReg.LIVENESS, 1);
  ctx.edu.configWrite(PCI_COMMAND, 2, ctx.edu.configRead(PCI_COMMAND, 2) | PCI_COMMAND_MEMORY);
  assert.equal(ctx.r32(EduReg.LIVENESS), 0);
});

test('INTx: raise, ack, level semantics, INTX_DISABLE', () => {
  const ctx = build();
  const levels: boolean[] = [];
  ctx.edu.onIntx((level) => levels.push(level));
  ctx.w32(EduReg.IRQ_RAISE, 0x10);
  assert.equal(ctx.r32(EduReg.IRQ_STATUS), 0x10);
  assert.deepEqual(levels, [true]);
  assert.ok(ctx.edu.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT);
  ctx.w32(EduReg.IRQ_RAISE, 0x01);
  assert.deepEqual(levels, [true], 'line already high');
  ctx.w32(EduReg.IRQ_ACK, 0x10);
  assert.equal(ctx.r32(EduReg.IRQ_STATUS), 0x01);
  assert.deepEqual(levels, [true], 'line stays high while status != 0');
  ctx.w32(EduReg.IRQ_ACK, 0x01);
  assert.deepEqual(levels, [true, false]);
  assert.equal(ctx.edu.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 0);

  const command = ctx.edu.configRead(PCI_COMMAND, 2);
  ctx.edu.configWrite(PCI_COMMAND, 2, command | PCI_COMMAND_INTX_DISABLE);
  ctx.w32(EduReg.IRQ_RAISE, 0x2);
  assert.deepEqual(levels, [true, false], 'pin held low by INTX_DISABLE');
  assert.ok(ctx.edu.configRead(PCI_STATUS, 2) & PCI_STATUS_INTERRUPT, 'status still reports it');
  ctx.edu.configWrite(PCI_COMMAND, 2, command);
  assert.deepEqual(levels, [true, false, true], 'pin rises when re-enabled with status pending');
  ctx.w32(EduReg.IRQ_ACK, 0x2);
  assert.equal(ctx.edu.intxLevel, false);

  ctx.w32(EduReg.STATUS, EDU_STATUS_IRQ_FACTORIAL);
  assert.equal(ctx.r32(EduReg.STATUS), EDU_STATUS_IRQ_FACTORIAL);
  ctx.w32(EduReg.FACTORIAL, 5);
  assert.equal(ctx.r32(EduReg.IRQ_STATUS), EDU_IRQ_FACTORIAL);
  assert.equal(ctx.edu.intxLevel, true);
});

test('DMA both directions through the IOMMU', () => {
  const ctx = build();
  const { ram } = withDma(ctx);
  const pattern = Uint8Array.from({ length: 2048 }, (_, i) => (i * 7 + 3) & 0xff);
  ram.write(0, pattern);
  runDma(ctx, 0x100000n, BigInt(EDU_DMA_BUFFER_ADDRESS), 2048n, 0);
  assert.deepEqual(ctx.edu.dmaBuffer.subarray(0, 2048), pattern);
  assert.equal(ctx.r64(EduReg.DMA_CMD) & 1n, 0n, 'run bit clear right after');

  runDma(ctx, BigInt(EDU_DMA_BUFFER_ADDRESS), 0x101000n, 2048n, EDU_DMA_TO_RAM | EDU_DMA_IRQ);
  const copy = new Uint8Array(2048);
  ram.read(0x1000, copy);
  assert.deepEqual(copy, pattern);
  assert.equal(ctx.r32(EduReg.IRQ_STATUS), EDU_IRQ_DMA);
  assert.equal(ctx.edu.snapshot().dmaTransfers, 2);
  assert.equal(ctx.iommu.faults.count, 0);
});

test('a DMA runs once the store carrying DMA_CMD has landed: one 32-byte store programs and starts it', () => {
  const ctx = build();
  const { ram } = withDma(ctx);
  ram.write(0, Uint8Array.of(1, 2, 3, 4));
  const block = new DataView(new ArrayBuffer(32));
  block.setBigUint64(0, 0x100000n, true);
  block.setBigUint64(8, BigInt(EDU_DMA_BUFFER_ADDRESS), true);
  block.setBigUint64(16, 4n, true);
  block.setBigUint64(24, BigInt(EDU_DMA_RUN), true);
  ctx.bar.write(EduReg.DMA_SRC, new Uint8Array(block.buffer));
  assert.deepEqual([...ctx.edu.dmaBuffer.subarray(0, 4)], [1, 2, 3, 4]);
  assert.equal(ctx.r64(EduReg.DMA_CMD), 0n);

  // Register by register, as a model sees a store: the transfer is in progress (run bit set,
  // registers frozen) until the store is done.
  ram.write(0, Uint8Array.of(9, 8));
  ctx.edu.mmioWrite(EduReg.DMA_CMD, 8, EDU_DMA_RUN, 0);
  ctx.edu.mmioWrite(EduReg.DMA_COUNT, 8, 1, 0);
  const cmd = new Uint32Array(2);
  ctx.edu.mmioRead(EduReg.DMA_CMD, 8, cmd);
  assert.equal(cmd[0], EDU_DMA_RUN);
  assert.equal(ctx.edu.dmaBuffer[0], 1, 'nothing moved yet');
  ctx.edu.mmioStoreDone();
  assert.equal(ctx.edu.dmaBuffer[0], 9);
  assert.equal(ctx.edu.dmaBuffer[1], 8, 'DMA_COUNT stayed 4: the write came while the transfer ran');
  assert.equal(ctx.edu.snapshot().dmaCount, 4n);
  assert.equal(ctx.r64(EduReg.DMA_CMD), 0n);
});

test('DMA to an unmapped IOVA faults and moves nothing', () => {
  const ctx = build();
  const { ram } = withDma(ctx);
  ctx.edu.dmaBuffer.fill(0x5a);
  runDma(ctx, BigInt(EDU_DMA_BUFFER_ADDRESS), 0x900000n, 64n, EDU_DMA_TO_RAM | EDU_DMA_IRQ);
  assert.equal(ctx.iommu.faults.count, 1);
  assert.deepEqual(
    { ...ctx.iommu.faults.last!, sequence: 0 },
    { sequence: 0, requesterId: 0x18, iova: 0x900000n, write: true, reason: 'unmapped', domainId: 1 },
  );
  assert.equal(ram.residentPages, 0);
  assert.equal(ctx.r64(EduReg.DMA_CMD) & 1n, 0n, 'the command still completes');
  assert.equal(ctx.r32(EduReg.IRQ_STATUS), EDU_IRQ_DMA);
  assert.equal(ctx.edu.snapshot().dmaFailures, 1);

  // RAM -> device from an unmapped IOVA leaves the buffer alone.
  runDma(ctx, 0x900000n, BigInt(EDU_DMA_BUFFER_ADDRESS), 64n, 0);
  assert.ok(ctx.edu.dmaBuffer.subarray(0, 64).every((b) => b === 0x5a));
  assert.equal(ctx.iommu.faults.last?.write, false);
});

test('device write to a read-only mapping faults', () => {
  const ctx = build();
  const { ram } = withDma(ctx);
  ram.write(0x5000, new Uint8Array([3, 10, 17, 24]));
  ctx.edu.dmaBuffer.fill(0xee);
  runDma(ctx, BigInt(EDU_DMA_BUFFER_ADDRESS), 0x500000n, 16n, EDU_DMA_TO_RAM);
  assert.equal(ctx.iommu.faults.last?.reason, 'permission');
  const check = new Uint8Array(4);
  ram.read(0x5000, check);
  assert.deepEqual([...check], [3, 10, 17, 24]);
  // Reading it is fine.
  runDma(ctx, 0x500000n, BigInt(EDU_DMA_BUFFER_ADDRESS), 4n, 0);
  assert.deepEqual([...ctx.edu.dmaBuffer.subarray(0, 4)], [3, 10, 17, 24]);
});

test('the DMA mask applies to bus addresses', () => {
  const ctx = build();
  const { ram } = withDma(ctx);
  ctx.edu.dmaBuffer.fill(0x42, 0, 8);
  // Bits above 28 are dropped: 0x7_1010_0000 -> 0x0100000.
  runDma(ctx, BigInt(EDU_DMA_BUFFER_ADDRESS), 0x7_1010_0000n, 8n, EDU_DMA_TO_RAM);
  const out = new Uint8Array(8);
  ram.read(0, out);
  assert.ok(out.every((b) => b === 0x42));

  const wide = build({ dmaMask: 40 });
  withDma(wide);
  runDma(wide, BigInt(EDU_DMA_BUFFER_ADDRESS), 0x7_1010_0000n, 8n, EDU_DMA_TO_RAM);
  assert.equal(wide.iommu.faults.last?.iova, 0x7_1010_0000n);
  assert.equal(wide.iommu.faults.last?.reason, 'unmapped');
  assert.throws(() => build({ dmaMask: 0 }), /dmaMask/);
  assert.throws(() => build({ dmaMask: '28' }), /dmaMask/);
  assert.throws(() => build({ dmaMasks: 28 }), /unknown option/);
});

test('device side outside the buffer: device error, nothing moves', () => {
  const ctx = build();
  const { ram } = withDma(ctx);
  ctx.edu.dmaBuffer.fill(1);
  runDma(ctx, BigInt(EDU_DMA_BUFFER_ADDRESS + 4000), 0x100000n, 200n, EDU_DMA_TO_RAM | EDU_DMA_IRQ);
  runDma(ctx, 0x100000n, BigInt(EDU_DMA_BUFFER_ADDRESS - 8), 16n, 0);
  runDma(ctx, 0x100000n, 0x1_0004_0000n, 16n, 0);
  assert.equal(ctx.edu.snapshot().deviceErrors, 3);
  assert.equal(ram.residentPages, 0);
  assert.ok(ctx.edu.dmaBuffer.every((b) => b === 1));
  assert.equal(ctx.iommu.faults.count, 0);
  assert.equal(ctx.r32(EduReg.IRQ_STATUS), EDU_IRQ_DMA, 'completion is still signalled');
  // The last byte of the buffer is in range.
  runDma(ctx, BigInt(EDU_DMA_BUFFER_ADDRESS + 4095), 0x100000n, 1n, EDU_DMA_TO_RAM);
  assert.equal(ctx.edu.snapshot().dmaTransfers, 1);
});

test('bus mastering off: DMA never reaches the IOMMU', () => {
  const ctx = build();
  const { ram } = withDma(ctx);
  ctx.edu.configWrite(PCI_COMMAND, 2, ctx.edu.configRead(PCI_COMMAND, 2) & ~PCI_COMMAND_MASTER);
  ctx.edu.dmaBuffer.fill(9);
  runDma(ctx, BigInt(EDU_DMA_BUFFER_ADDRESS), 0x100000n, 16n, EDU_DMA_TO_RAM);
  assert.equal(ram.residentPages, 0);
  assert.equal(ctx.iommu.faults.count, 0);
  assert.equal(ctx.edu.snapshot().dmaFailures, 1);
});

test('MSI through interrupt remapping', () => {
  const ctx = build();
  withDma(ctx);
  const levels: boolean[] = [];
  ctx.edu.onIntx((level) => levels.push(level));
  let delivered = 0;
  const vector = ctx.iommu.irqRemap.allocate(() => delivered++, { requesterId: ctx.edu.requesterId });
  ctx.edu.configWrite(0x44, 4, Number(vector.address & 0xffffffffn));
  ctx.edu.configWrite(0x48, 4, Number(vector.address >> 32n));
  ctx.edu.configWrite(0x4c, 2, vector.data);
  ctx.edu.configWrite(0x42, 2, 0x0001);
  assert.ok(ctx.edu.msiEnabled);

  ctx.w32(EduReg.IRQ_RAISE, 0x1);
  assert.equal(delivered, 1);
  ctx.w32(EduReg.IRQ_RAISE, 0x2);
  assert.equal(delivered, 2, 'each raise sends one message');
  runDma(ctx, 0x100000n, BigInt(EDU_DMA_BUFFER_ADDRESS), 8n, EDU_DMA_IRQ);
  assert.equal(delivered, 3);
  assert.equal(ctx.r32(EduReg.IRQ_STATUS), 0x103);
  assert.deepEqual(levels, [], 'INTx unused while MSI is enabled');
  ctx.w32(EduReg.IRQ_ACK, 0x103);
  assert.equal(delivered, 3);

  // Bus mastering off: no message at all, no fault.
  const command = ctx.edu.configRead(PCI_COMMAND, 2);
  ctx.edu.configWrite(PCI_COMMAND, 2, command & ~PCI_COMMAND_MASTER);
  ctx.w32(EduReg.IRQ_RAISE, 0x1);
  assert.equal(delivered, 3);
  assert.equal(ctx.iommu.faults.count, 0);
  ctx.edu.configWrite(PCI_COMMAND, 2, command);
  ctx.w32(EduReg.IRQ_ACK, 0x1);

  // A stale entry: the message faults in the remapping unit.
  ctx.iommu.irqRemap.free(vector.index);
  ctx.w32(EduReg.IRQ_RAISE, 0x1);
  assert.equal(delivered, 3);
  assert.equal(ctx.iommu.faults.last?.reason, 'interrupt-remap');

  // MSI disabled: as on the real device the pin only rises with the next raise.
  ctx.edu.configWrite(0x42, 2, 0);
  assert.deepEqual(levels, []);
  ctx.w32(EduReg.IRQ_RAISE, 0);
  assert.deepEqual(levels, [true]);
  assert.equal(delivered, 3);
});
