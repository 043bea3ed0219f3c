/**
 * Config space virtualization through region 7 (semantics.md §6.5), replaying "== PCI config
 * space via region 7" of probe-612-edu.txt, and the permission tables as data.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { basicPerms, capPerms, msiPerms, pciCapLength, permMask } from '../../src/kernel/vfio/pci/vfio-pci-config.js';
import { Env, CONFIG, exitAndCheck, region, u32 } from './helpers.js';

/** The 256 bytes the real kernel showed (only the first 0x50 are non-zero). */
const DUMP_HEAD = [
  0x34, 0x12, 0xe8, 0x11, 0x03, 0x01, 0x10, 0x00, 0x10, 0x00, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa0,
  0xfe, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf4, 0x1a, 0x00, 0x11, 0x00, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x0b, 0x01, 0x00, 0x00, 0x05, 0x00, 0x80, 0x00,
];

test('region 7 reads the transcript dump byte for byte', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  const dump = env.proc.pread(device, 256, region(CONFIG));
  const expected = new Uint8Array(256);
  expected.set(DUMP_HEAD);
  assert.deepEqual([...dump], [...expected]);
  // The same bytes through 1- and 2-byte accesses (chunking through the same tables).
  for (let at = 0; at < 0x48; at++) assert.equal(env.cfgRead(device, at, 1), expected[at], `byte 0x${at.toString(16)}`);
  for (let at = 0; at < 0x48; at += 2)
    assert.equal(env.cfgRead(device, at, 2), expected[at]! | (expected[at + 1]! << 8));
  // An unaligned 3-byte read across a dword boundary.
  assert.deepEqual([...env.proc.pread(device, 3, region(CONFIG, 0x3e))], [0, 0, 5]);
  exitAndCheck(env);
});

test('config bounds are EFAULT; zero-length access is 0', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  assert.throws(() => env.proc.pread(device, 4, region(CONFIG, 0x1000)), { code: 'EFAULT' });
  assert.throws(() => env.proc.pread(device, 2, region(CONFIG, 0xff)), { code: 'EFAULT' });
  assert.throws(() => env.proc.pwrite(device, new Uint8Array(4), region(CONFIG, 0xfe)), { code: 'EFAULT' });
  assert.throws(() => env.proc.pread(device, 0x7ffff000, region(CONFIG)), { code: 'EFAULT' });
  assert.equal(env.proc.pread(device, 0, region(CONFIG, 0x5000)).length, 0);
  assert.equal(env.proc.pwrite(device, new Uint8Array(0), region(CONFIG, 0x5000)), 0);
  exitAndCheck(env);
});

test('BAR sizing is emulated: 0xffffffff reads back 0xfff00000, the real BAR never moves', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  const fn = env.host.machine.function('0000:00:03.0');
  assert.equal(env.cfgWrite(device, 0x10, 4, 0xffffffff), 4);
  assert.equal(env.cfgRead(device, 0x10, 4), 0xfff00000);
  assert.equal(fn.bar(0)!.address, 0xfea00000n);
  assert.equal(fn.configRead(0x10, 4), 0xfea00000);
  // Unimplemented BARs and the absent ROM read 0 whatever is written.
  for (const at of [0x14, 0x18, 0x1c, 0x20, 0x24, 0x30]) {
    env.cfgWrite(device, at, 4, 0xffffffff);
    assert.equal(env.cfgRead(device, at, 4), 0, `0x${at.toString(16)}`);
  }
  // Writing an address back restores it.
  env.cfgWrite(device, 0x10, 4, 0xfea00000);
  assert.equal(env.cfgRead(device, 0x10, 4), 0xfea00000);
  // Access still works: the device kept its real BAR.
  assert.equal(env.barRead32(device, 0), 0x010000ed);
  exitAndCheck(env);
});

test('COMMAND: MEM|MASTER written through reads 0x0107; INTx disable is virtual', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  const fn = env.host.machine.function('0000:00:03.0');
  assert.equal(fn.configRead(0x04, 2), 0x0103, 'vfio-pci enabled decode, bus master off');
  const cmd = env.cfgRead(device, 0x04, 2);
  assert.equal(env.cfgWrite(device, 0x04, 2, cmd | 0x6), 2);
  assert.equal(env.cfgRead(device, 0x04, 2), 0x0107);
  assert.equal(fn.configRead(0x04, 2), 0x0107);
  assert.ok(fn.busMasterEnabled);
  // INTX_DISABLE: the user's view is virtual; the device bit masks INTx (see irqs tests).
  env.cfgWrite(device, 0x05, 1, 0x05);
  assert.equal(env.cfgRead(device, 0x04, 2), 0x0507);
  env.cfgWrite(device, 0x05, 1, 0x01);
  assert.equal(env.cfgRead(device, 0x04, 2), 0x0107);
  assert.equal(fn.configRead(0x04, 2) & 0x400, 0);
  exitAndCheck(env);
});

test('read-only and virtual header fields', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  const fn = env.host.machine.function('0000:00:03.0');
  // Ids, class, pin, capability pointer: writes dropped, yet counted.
  for (const [at, width] of [
    [0x00, 4],
    [0x08, 4],
    [0x2c, 4],
    [0x34, 1],
    [0x3d, 1],
  ] as const) {
    const before = env.cfgRead(device, at, width);
    assert.equal(env.cfgWrite(device, at, width, 0), width);
    assert.equal(env.cfgRead(device, at, width), before, `0x${at.toString(16)}`);
  }
  // STATUS is read-only; its CAP_LIST bit is virtual.
  env.cfgWrite(device, 0x06, 2, 0xffff);
  assert.equal(env.cfgRead(device, 0x06, 2), 0x0010);
  // INTERRUPT_LINE: pure storage in the shadow; the device keeps the firmware's 0x0b.
  env.cfgWrite(device, 0x3c, 1, 0x42);
  assert.equal(env.cfgRead(device, 0x3c, 1), 0x42);
  assert.equal(fn.configRead(0x3c, 1), 0x0b);
  // CACHE_LINE_SIZE: written through.
  env.cfgWrite(device, 0x0c, 1, 0x10);
  assert.equal(env.cfgRead(device, 0x0c, 1), 0x10);
  assert.equal(fn.configRead(0x0c, 1), 0x10);
  exitAndCheck(env);
});

test('MSI capability: enable only through SET_IRQS; address/data virtual; QSIZE clamped', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  const fn = env.host.machine.function('0000:00:03.0');
  // Enable written before SET_IRQS is dropped (and never reaches the device).
  env.cfgWrite(device, 0x42, 2, 0x0081);
  assert.equal(env.cfgRead(device, 0x42, 2), 0x0080);
  assert.equal(fn.msiEnabled, false);
  // QSIZE above msi_qmax (0) is clamped.
  env.cfgWrite(device, 0x42, 1, 0xf0);
  assert.equal(env.cfgRead(device, 0x42, 2), 0x0080);
  // The whole low byte is virtual: even the 64-bit flag can be cleared in the user's view.
  env.cfgWrite(device, 0x42, 1, 0x00);
  assert.equal(env.cfgRead(device, 0x42, 2), 0x0000);
  assert.equal(fn.configRead(0x42, 2), 0x0080);
  env.cfgWrite(device, 0x42, 1, 0x80);
  // Address and data live in the shadow only.
  env.cfgWrite(device, 0x44, 4, 0xfee01000);
  env.cfgWrite(device, 0x48, 4, 0x1);
  env.cfgWrite(device, 0x4c, 2, 0x4242);
  assert.equal(env.cfgRead(device, 0x44, 4), 0xfee01000);
  assert.equal(env.cfgRead(device, 0x48, 4), 1);
  assert.equal(env.cfgRead(device, 0x4c, 2), 0x4242);
  assert.equal(fn.configRead(0x44, 4), 0);
  assert.equal(fn.configRead(0x4c, 2), 0);
  // The ID/NEXT header is read-only.
  env.cfgWrite(device, 0x40, 2, 0xffff);
  assert.equal(env.cfgRead(device, 0x40, 2), 0x0005);
  exitAndCheck(env);
});

test('bytes no capability owns are raw device registers', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  const fn = env.host.machine.function('0000:00:03.0');
  env.cfgWrite(device, 0x80, 4, 0xdeadbeef);
  assert.equal(fn.configRead(0x80, 4), 0xdeadbeef);
  assert.equal(u32(env.proc.pread(device, 4, region(CONFIG, 0x80))), 0xdeadbeef);
  fn.configWrite(0x84, 4, 0x12345678);
  assert.equal(env.cfgRead(device, 0x84, 4), 0x12345678);
  exitAndCheck(env);
});

test('the shadow is rebuilt at each open; close restores the device', () => {
  const env = Env.create();
  const { device, group, container } = env.openDevice();
  const fn = env.host.machine.function('0000:00:03.0');
  env.cfgWrite(device, 0x04, 2, 0x0107);
  env.cfgWrite(device, 0x10, 4, 0xffffffff);
  env.cfgWrite(device, 0x3c, 1, 0x99);
  env.proc.close(device);
  assert.equal(fn.configRead(0x04, 2), 0x0103, 'bus master off after close');
  const again = env.proc.ioctl(group, 0x3b6a, env.putString('0000:00:03.0'));
  assert.equal(env.cfgRead(again, 0x10, 4), 0xfea00000);
  assert.equal(env.cfgRead(again, 0x3c, 1), 0x0b);
  assert.equal(env.cfgRead(again, 0x04, 2), 0x0103);
  void container;
  exitAndCheck(env);
});

test('permission tables are frozen data with the kernel masks', () => {
  assert.ok(Object.isFrozen(basicPerms) && Object.isFrozen(basicPerms.virt) && Object.isFrozen(basicPerms.write));
  assert.equal(basicPerms.virt.length, 64);
  // COMMAND: everything writable, INTx disable virtual.
  assert.equal(permMask(basicPerms.write, 0x04, 2), 0xffff);
  assert.equal(permMask(basicPerms.virt, 0x04, 2), 0x0400);
  // STATUS: CAP_LIST virtual, nothing writable.
  assert.equal(permMask(basicPerms.virt, 0x06, 2), 0x0010);
  assert.equal(permMask(basicPerms.write, 0x06, 2), 0);
  // BARs and ROM: fully virtual, fully writable.
  for (let at = 0x10; at < 0x28; at += 4) assert.equal(permMask(basicPerms.virt, at, 4), 0xffffffff);
  assert.equal(permMask(basicPerms.write, 0x30, 4), 0xffffffff);
  // Ids virtual read-only; line virtual writable; pin virtual read-only.
  assert.equal(permMask(basicPerms.virt, 0x00, 4), 0xffffffff);
  assert.equal(permMask(basicPerms.write, 0x00, 4), 0);
  assert.equal(permMask(basicPerms.write, 0x3c, 2), 0x00ff);
  assert.equal(permMask(basicPerms.virt, 0x3c, 2), 0xffff);
  // Cache line, latency, BIST written through.
  assert.equal(permMask(basicPerms.write, 0x0c, 4), 0xff00ffff);
  assert.equal(permMask(basicPerms.virt, 0x0c, 4), 0);

  // MSI, 64-bit without masking (edu): flags low byte, address, data.
  const msi = msiPerms(0x0080);
  assert.equal(msi.virt.length, 16);
  assert.equal(permMask(msi.virt, 0, 4), 0x00ffff00);
  assert.equal(permMask(msi.write, 0, 4), 0x00ff0000);
  assert.equal(permMask(msi.write, 4, 4), 0xffffffff);
  assert.equal(permMask(msi.write, 8, 4), 0xffffffff);
  assert.equal(permMask(msi.virt, 12, 4), 0x0000ffff);
  // With per-vector masking the mask and pending registers go to hardware.
  const masked = msiPerms(0x0180);
  assert.equal(permMask(masked.virt, 0x10, 4), 0);
  assert.equal(permMask(masked.write, 0x10, 4), 0xffffffff);

  // Capabilities hidden from the chain have length 0.
  assert.equal(pciCapLength[0x04], 0);
  assert.equal(pciCapLength[0x0a], 0);
  assert.equal(pciCapLength[0x05], 0xff);
  // PM: state bits read-only, PME bits virtual.
  const pm = capPerms.get(0x01)!;
  assert.equal(permMask(pm.write, 4, 2) & 0x3, 0);
  assert.equal(permMask(pm.virt, 4, 2), 0x8100);
  assert.equal(permMask(pm.virt, 2, 2), 0xf800);
});
