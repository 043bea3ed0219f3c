/**
 * The MSI-X table BAR on a synthetic function (no machine model has MSI-X yet): the
 * MSIX_MAPPABLE region capability and argsz growth (semantics.md §6.3), table reads of 0xff and
 * dropped writes (§6.4), ioeventfds refused over the table (§6.12), IRQ info count/flags.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Host } from '../../src/host.js';
import { VtdIommu } from '../../src/hw/iommu/vtd.js';
import type { MmioHandler } from '../../src/hw/memory.js';
import { PciFunction } from '../../src/hw/pci/function.js';
import { PciDev } from '../../src/kernel/pci.js';
import { vfioPciOps } from '../../src/kernel/vfio/pci/vfio-pci-core.js';
import { VfioDevice } from '../../src/kernel/vfio/vfio-main.js';
import { findCap } from '../../src/uapi/capability.js';
import {
  VFIO_DEVICE_GET_IRQ_INFO,
  VFIO_DEVICE_GET_REGION_INFO,
  VFIO_DEVICE_IOEVENTFD,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE,
  VFIO_REGION_INFO_FLAG_CAPS,
  vfio_device_ioeventfd,
  vfio_irq_info,
  vfio_region_info,
} from '../../src/uapi/vfio.js';
import { ANON, RW, region } from './helpers.js';

const TABLE = 0x2000;

class MsixFunction extends PciFunction implements MmioHandler {
  readonly writes: number[] = [];

  constructor() {
    super({ bdf: '0000:00:07.0', model: 'msix-test', bus: new VtdIommu() });
    this.config.set16(0x00, 0x1af4);
    this.config.set16(0x04, 0x0002);
    this.config.setWriteMask16(0x04, 0x0407);
    this.addBar({ index: 0, size: 0x4000, kind: 'mem32', handler: this });
    this.config.addCapability(0x11, 0x40, 12);
    this.config.set16(0x42, 3); // 4 vectors
    this.config.set32(0x44, TABLE | 0); // table in BAR0
    this.config.set32(0x48, 0x3000 | 0); // PBA in BAR0
    this.setBarAddress(0, 0xe0000000n);
  }

  mmioRead(offset: number, _width: number, out: Uint32Array): void {
    out[0] = offset;
  }

  mmioWrite(offset: number): void {
    this.writes.push(offset);
  }
}

function setup() {
  const fn = new MsixFunction();
  const device = new VfioDevice(new PciDev(fn, 'vfio-pci'), vfioPciOps, 0);
  device.open();
  const host = Host.create({ devices: [] });
  const proc = host.spawn();
  const scratch = proc.mmap(4096, RW, ANON);
  const call = <T extends object>(
    request: number,
    struct: { encode(v: object): Uint8Array; decode(b: Uint8Array): T; size: number },
    value: object,
    room = 0,
  ): T => {
    proc.memory.write(scratch, new Uint8Array(struct.size + room + 64));
    proc.memory.write(scratch, struct.encode(value));
    vfioPciOps.ioctl(device, proc.task, request, scratch);
    return struct.decode(proc.memory.read(scratch, struct.size));
  };
  return { fn, device, proc, scratch, call };
}

test('REGION_INFO of the MSI-X BAR: MMAP plus the MSIX_MAPPABLE capability', () => {
  const { proc, scratch, call } = setup();
  // argsz too small for the chain: argsz grows to 40, cap_offset 0, CAPS set.
  const short = call(VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { argsz: 32, index: 0 });
  assert.deepEqual(short, {
    argsz: 40,
    flags: 0x7 | VFIO_REGION_INFO_FLAG_CAPS,
    index: 0,
    cap_offset: 0,
    size: 0x4000n,
    offset: 0n,
  });
  const full = call(VFIO_DEVICE_GET_REGION_INFO, vfio_region_info, { argsz: 40, index: 0 }, 8);
  assert.equal(full.cap_offset, 32);
  const buf = proc.memory.read(scratch, 40);
  const cap = findCap(buf, full.cap_offset, VFIO_REGION_INFO_CAP_MSIX_MAPPABLE);
  assert.deepEqual(cap && { id: cap.id, version: cap.version, next: cap.next }, { id: 3, version: 1, next: 0 });
});

test('MSI-X IRQ info: count = table size, NORESIZE without dynamic allocation', () => {
  const { call } = setup();
  assert.deepEqual(call(VFIO_DEVICE_GET_IRQ_INFO, vfio_irq_info, { argsz: 16, index: 2 }), {
    argsz: 16,
    flags: 0x9,
    index: 2,
    count: 4,
  });
});

test('the table range reads 0xff and drops writes; the rest of the BAR is reached', () => {
  const { fn, device, proc } = setup();
  const data = vfioPciOps.read(device, proc.task, 16, region(0, TABLE - 8));
  assert.deepEqual([...data.subarray(0, 8)], [0xf8, 0x1f, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...data.subarray(8)], new Array(8).fill(0xff));
  assert.equal(vfioPciOps.write(device, proc.task, new Uint8Array(0x50), region(0, TABLE + 0x20)), 0x50);
  assert.deepEqual(fn.writes, [TABLE + 0x40, TABLE + 0x48, TABLE + 0x50, TABLE + 0x58, TABLE + 0x60, TABLE + 0x68]);
});

test('ioeventfds over the MSI-X table are EINVAL', () => {
  const { device, proc, scratch } = setup();
  const efd = proc.eventfd();
  const at = (offset: number) => {
    proc.memory.write(
      scratch,
      vfio_device_ioeventfd.encode({ argsz: 32, flags: 4, offset: region(0, offset), fd: efd }),
    );
    return vfioPciOps.ioctl(device, proc.task, VFIO_DEVICE_IOEVENTFD, scratch);
  };
  assert.throws(() => at(TABLE), { code: 'EINVAL' });
  assert.throws(() => at(TABLE - 2), { code: 'EINVAL' });
  assert.throws(() => at(TABLE + 0x3c), { code: 'EINVAL' });
  assert.equal(at(TABLE - 4), 0);
  assert.equal(at(TABLE + 0x40), 0);
});
