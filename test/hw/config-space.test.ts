import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigSpace } from '../../src/hw/pci/config-space.js';
import { MsiCapability } from '../../src/hw/pci/msi.js';
import { formatBdf, parseBdf, requesterIdOf } from '../../src/hw/pci/bdf.js';
import {
  PCI_CAP_ID_MSI,
  PCI_CAP_ID_PM,
  PCI_CAPABILITY_LIST,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
  PCI_VENDOR_ID,
} from '../../src/hw/pci/regs.js';

test('read-only bits stay, writable bits change, RW1C bits clear', () => {
  const config = new ConfigSpace();
  config.set16(PCI_VENDOR_ID, 0x1234);
  config.write(PCI_VENDOR_ID, 2, 0xffff);
  assert.equal(config.read(PCI_VENDOR_ID, 2), 0x1234);

  config.setWriteMask16(0x04, 0x0547);
  config.write(0x04, 2, 0xffff);
  assert.equal(config.read(0x04, 2), 0x0547);
  config.write(0x04, 1, 0x00);
  assert.equal(config.read(0x04, 2), 0x0500, 'byte write touches only its byte');

  config.set16(0x06, 0x8010);
  config.setClearMask16(0x06, 0x8000);
  config.write(0x06, 2, 0x8000);
  assert.equal(config.read(0x06, 2), 0x0010);

  assert.equal(config.read(0x04, 4), 0x00100500);
  assert.throws(() => config.read(0xff, 2), RangeError);
  assert.throws(() => config.read(0x10, 3), RangeError);
  assert.throws(() => new ConfigSpace(512 as 256), RangeError);
});

test('little-endian accessors', () => {
  const config = new ConfigSpace(4096);
  config.set32(0x100, 0xdeadbeef);
  assert.equal(config.read(0x100, 4), 0xdeadbeef);
  assert.equal(config.read(0x101, 2), 0xadbe);
  assert.equal(config.read(0x103, 1), 0xde);
  assert.equal(config.get32(0x100), 0xdeadbeef);
});

test('BAR sizing: all-ones reads back the size mask with the type bits', () => {
  const config = new ConfigSpace();
  const mem32 = { index: 0, size: 1 << 20, kind: 'mem32', prefetchable: false } as const;
  const mem64 = { index: 2, size: 1 << 14, kind: 'mem64', prefetchable: true } as const;
  const io = { index: 4, size: 32, kind: 'io', prefetchable: false } as const;
  config.defineBar(mem32);
  config.defineBar(mem64);
  config.defineBar(io);
  config.setBarAddress(mem32, 0xfea00000n);
  config.setBarAddress(mem64, 0x8000004000n);
  config.setBarAddress(io, 0xc020n);
  assert.equal(config.read(0x10, 4), 0xfea00000);
  assert.equal(config.read(0x18, 4), 0x0000400c);
  assert.equal(config.read(0x1c, 4), 0x80);
  assert.equal(config.read(0x20, 4), 0xc021);
  assert.equal(config.barAddress(mem64), 0x8000004000n);

  for (const offset of [0x10, 0x18, 0x1c, 0x20, 0x14, 0x24]) config.write(offset, 4, 0xffffffff);
  assert.equal(config.read(0x10, 4), 0xfff00000);
  assert.equal(config.read(0x18, 4), 0xffffc00c);
  assert.equal(config.read(0x1c, 4), 0xffffffff);
  assert.equal(config.read(0x20, 4), 0xffffffe1);
  assert.equal(config.read(0x14, 4), 0, 'unimplemented BARs read 0');
  assert.equal(config.read(0x24, 4), 0);

  assert.throws(() => config.setBarAddress(mem32, 0xfea80000n), /aligned/);
  assert.throws(() => config.defineBar({ index: 5, size: 4096, kind: 'mem64', prefetchable: false }), RangeError);
  assert.throws(() => config.defineBar({ index: 1, size: 3000, kind: 'mem32', prefetchable: false }), RangeError);
});

test('capability list building and walking', () => {
  const config = new ConfigSpace();
  assert.deepEqual(config.capabilities(), []);
  config.addCapability(PCI_CAP_ID_PM, 0x50, 8);
  const msi = MsiCapability.install(config, 0x60, { vectors: 4, address64: false, perVectorMask: true });
  assert.equal(config.read(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST, PCI_STATUS_CAP_LIST);
  assert.equal(config.read(PCI_CAPABILITY_LIST, 1), 0x50);
  assert.deepEqual(config.capabilities(), [
    { id: PCI_CAP_ID_PM, offset: 0x50 },
    { id: PCI_CAP_ID_MSI, offset: 0x60 },
  ]);
  assert.equal(config.findCapability(PCI_CAP_ID_MSI), 0x60);
  assert.equal(config.findCapability(0x11), null);
  // A loop in the list ends the walk.
  config.set8(0x61, 0x50);
  assert.equal(config.capabilities().length, 2);
  config.set8(0x61, 0);

  assert.equal(msi.vectorsCapable, 4);
  assert.equal(msi.address64, false);
  config.write(0x62, 2, 0xffff);
  assert.equal(config.read(0x62, 2), 0x0175, 'enable and QSIZE writable; QMASK, 64-bit, mask-capable read-only');
  assert.equal(msi.vectorsEnabled, 4, 'QSIZE clamped to what the function can do');
  config.write(0x64, 4, 0xfee0100f);
  assert.equal(msi.address, 0xfee0100cn);
  config.write(0x68, 2, 0x4021);
  assert.equal(msi.messageData(2), 0x4022);
  config.write(0x6c, 4, 0xffffffff);
  assert.equal(config.read(0x6c, 4), 0xf, 'mask bits only for existing vectors');
  assert.ok(msi.masked(3));
});

test('extended capability walk', () => {
  const config = new ConfigSpace(4096);
  config.set32(0x100, 0x1401_0001); // AER v1, next 0x140
  config.set32(0x140, 0x0001_0003); // DSN v1, end
  assert.deepEqual(config.extendedCapabilities(), [
    { id: 1, version: 1, offset: 0x100 },
    { id: 3, version: 1, offset: 0x140 },
  ]);
  assert.equal(config.findExtendedCapability(3), 0x140);
  assert.deepEqual(new ConfigSpace().extendedCapabilities(), []);
});

test('BDF parsing and requester ids', () => {
  assert.deepEqual(parseBdf('0000:00:03.0'), { segment: 0, bus: 0, device: 3, function: 0 });
  assert.equal(formatBdf(parseBdf('0A:1F.7')), '0000:0a:1f.7');
  assert.equal(requesterIdOf(parseBdf('0000:01:02.3')), 0x113);
  assert.throws(() => parseBdf('0000:00:20.0'), /above 0x1f/);
  assert.throws(() => parseBdf('00:03'), /not a PCI address/);
});
