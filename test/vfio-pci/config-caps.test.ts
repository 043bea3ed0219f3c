/**
 * Config virtualization of capabilities edu does not have (semantics.md §6.5), on a synthetic
 * PCIe function driven directly through the driver: chain filtering, PM, PCIe FLR, AER, the
 * extended chain with a hidden capability.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VtdIommu } from '../../src/hw/iommu/vtd.js';
import { PciFunction, type ResetMethods } from '../../src/hw/pci/function.js';
import { PciDev } from '../../src/kernel/pci.js';
import { coreDevice, vfioPciOps, type VfioPciCoreDevice } from '../../src/kernel/vfio/pci/vfio-pci-core.js';
import { memoryEnabled, PCI_D3HOT, vfioPciConfigRw } from '../../src/kernel/vfio/pci/vfio-pci-config.js';
import { vfioPciGetIrqCount } from '../../src/kernel/vfio/pci/vfio-pci-intrs.js';
import { VfioDevice } from '../../src/kernel/vfio/vfio-main.js';
import { VFIO_PCI_ERR_IRQ_INDEX } from '../../src/uapi/vfio.js';

const PM = 0x40;
const SLOTID = 0x48;
const VNDR = 0x50;
const EXP = 0x60;

class SyntheticPcie extends PciFunction {
  resets = 0;

  constructor() {
    super({ bdf: '0000:02:00.0', model: 'synthetic', bus: new VtdIommu(), configSize: 4096 });
    const c = this.config;
    c.set16(0x00, 0x8086);
    c.set16(0x02, 0x1234);
    c.set16(0x04, 0x0002);
    c.setWriteMask16(0x04, 0x0547);
    c.set8(0x3d, 1);
    c.addCapability(0x01, PM, 8);
    c.set16(PM + 2, 0xf803); // PME from every state, version 3
    c.set16(PM + 4, 0x0008); // No_Soft_Reset
    c.setWriteMask16(PM + 4, 0x0103);
    c.addCapability(0x04, SLOTID, 4); // slot id: hidden by vfio-pci
    c.set8(SLOTID + 2, 0x5a);
    c.addCapability(0x09, VNDR, 8);
    c.set8(VNDR + 2, 8);
    c.setWriteMask32(VNDR + 4, 0xffffffff);
    c.addCapability(0x10, EXP, 0x34);
    c.set16(EXP + 2, 0x0002); // version 2, endpoint
    c.set32(EXP + 4, 0x10000000); // DEVCAP: FLR
    c.setWriteMask16(EXP + 8, 0xffff);
    // Extended chain: AER at 0x100 -> DPC (hidden) at 0x140 -> DSN at 0x180.
    c.set32(0x100, 0x0001 | (1 << 16) | (0x140 << 20));
    c.setWriteMask32(0x108, 0xffffffff);
    c.set32(0x140, 0x001d | (1 << 16) | (0x180 << 20));
    c.set32(0x180, 0x0003 | (1 << 16));
    this.capturePowerOnState();
  }

  override get resetMethods(): ResetMethods {
    return { flr: true, pm: false };
  }

  protected override resetDevice(): void {
    this.resets++;
  }
}

function open(): { fn: SyntheticPcie; vdev: VfioPciCoreDevice } {
  const fn = new SyntheticPcie();
  const device = new VfioDevice(new PciDev(fn, 'vfio-pci'), vfioPciOps, 0);
  device.open();
  return { fn, vdev: coreDevice(device) };
}

function read(vdev: VfioPciCoreDevice, at: number, width: number): number {
  const buf = new Uint8Array(width);
  vfioPciConfigRw(vdev, buf, BigInt(at), false);
  return buf.reduceRight((v, b) => v * 256 + b, 0);
}

function write(vdev: VfioPciCoreDevice, at: number, width: number, value: number): void {
  const buf = new Uint8Array(width);
  for (let i = 0; i < width; i++) buf[i] = (value >>> (8 * i)) & 0xff;
  vfioPciConfigRw(vdev, buf, BigInt(at), true);
}

test('open: a function with FLR resets once and reports RESET; PCIe has the ERR IRQ', () => {
  const { fn, vdev } = open();
  assert.equal(fn.resets, 1);
  assert.equal(vdev.resetWorks, true);
  assert.equal(vfioPciGetIrqCount(vdev, VFIO_PCI_ERR_IRQ_INDEX), 1);
  // The reset restored the config state: decode still on, bus master off.
  assert.equal(fn.configRead(0x04, 2) & 0x7, 0x2);
});

test('standard chain: SLOTID is unlinked, its bytes pass through raw', () => {
  const { fn, vdev } = open();
  assert.equal(read(vdev, 0x34, 1), PM);
  assert.equal(read(vdev, PM + 1, 1), VNDR);
  assert.equal(read(vdev, VNDR + 1, 1), EXP);
  assert.equal(read(vdev, EXP + 1, 1), 0);
  assert.equal(read(vdev, SLOTID + 2, 1), 0x5a);
  write(vdev, SLOTID + 2, 1, 0x11);
  assert.equal(fn.configRead(SLOTID + 2, 1), 0x5a, 'read-only in hardware');
  // The vendor capability is raw read/write below its header.
  write(vdev, VNDR + 4, 4, 0xcafef00d);
  assert.equal(fn.configRead(VNDR + 4, 4), 0xcafef00d);
  write(vdev, VNDR, 2, 0xffff);
  assert.equal(read(vdev, VNDR, 2), 0x6009);
});

test('PM: PME bits hidden, power state changes trapped (D3hot stops memory access)', () => {
  const { fn, vdev } = open();
  assert.equal(read(vdev, PM + 2, 2), 0x0003);
  assert.equal(memoryEnabled(vdev), true);
  write(vdev, PM + 4, 2, 0x0103);
  assert.equal(vdev.powerState, PCI_D3HOT);
  assert.equal(read(vdev, PM + 4, 2) & 0x3, 3, 'the kernel put the function in D3hot');
  assert.equal(memoryEnabled(vdev), false);
  // PME_En is virtual and not writable: neither the device nor the user's view gets it.
  assert.equal(fn.configRead(PM + 4, 2) & 0x0100, 0);
  assert.equal(read(vdev, PM + 4, 2) & 0x0100, 0);
  write(vdev, PM + 4, 2, 0x0000);
  assert.equal(vdev.powerState, 0);
});

test('PCIe: writing FLR resets the function and reads back 0; phantom functions stay off', () => {
  const { fn, vdev } = open();
  const before = fn.resets;
  write(vdev, EXP + 8, 2, 0x8200 | 0x0010);
  assert.equal(fn.resets, before + 1);
  assert.equal(read(vdev, EXP + 8, 2) & 0x8000, 0);
  assert.equal(fn.configRead(EXP + 8, 2) & 0x0200, 0);
  assert.equal(fn.configRead(EXP + 8, 2) & 0x0010, 0x0010);
});

test('extended chain: a hidden capability is skipped by rewriting the previous next pointer', () => {
  const { fn, vdev } = open();
  assert.equal(read(vdev, 0x100, 4) >>> 20, 0x180);
  assert.equal(read(vdev, 0x100, 4) & 0xffff, 0x0001);
  assert.equal(fn.configRead(0x100, 4) >>> 20, 0x140, 'hardware unchanged');
  // AER: only the defined error bits of the uncorrectable mask are writable.
  write(vdev, 0x108, 4, 0xffffffff);
  assert.equal(fn.configRead(0x108, 4), 0x03fff031);
  // DSN: no table, reads from hardware with a virtual header; writes dropped.
  assert.equal(read(vdev, 0x180, 4), 0x00010003);
});
