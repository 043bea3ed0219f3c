/**
 * BAR access by pread/pwrite and by mmap (semantics.md §6.4, §6.6), replaying "== BAR0 access"
 * of probe-612-edu.txt.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { EduReg } from '../../src/hw/devices/edu.js';
import { BAR0, CONFIG, Env, RW, SHARED, ANON, exitAndCheck, le32, region, u32 } from './helpers.js';

const MiB = 1 << 20;

test('pread/pwrite: id, liveness, factorial(10)', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  assert.equal(env.barRead32(device, EduReg.ID), 0x010000ed);
  env.barWrite32(device, EduReg.LIVENESS, 0x12345678);
  assert.equal(env.barRead32(device, EduReg.LIVENESS), 0xedcba987);
  env.barWrite32(device, EduReg.FACTORIAL, 10);
  assert.equal(env.barRead32(device, EduReg.FACTORIAL), 3628800);
  // 8-byte access to a 64-bit register (widest aligned access).
  const src = new Uint8Array(8);
  new DataView(src.buffer).setBigUint64(0, 0x1_2345_6000n, true);
  assert.equal(env.proc.pwrite(device, src, region(BAR0, EduReg.DMA_SRC)), 8);
  assert.deepEqual([...env.proc.pread(device, 8, region(BAR0, EduReg.DMA_SRC))], [...src]);
  exitAndCheck(env);
});

test('BAR bounds: truncated at the end, EINVAL past it and on absent BARs, ROM and VGA', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  // A read crossing the end of BAR0 is short.
  assert.equal(env.proc.pread(device, 16, region(BAR0, MiB - 8)).length, 8);
  assert.equal(env.proc.pwrite(device, new Uint8Array(16), region(BAR0, MiB - 4)), 4);
  assert.throws(() => env.proc.pread(device, 4, region(BAR0, MiB)), { code: 'EINVAL' });
  // Huge lengths are bounded by the BAR, never allocated.
  assert.equal(env.proc.pread(device, 0x7ffff000, region(BAR0, MiB - 4)).length, 4);
  for (const index of [1, 2, 3, 4, 5, 6]) {
    assert.throws(() => env.proc.pread(device, 4, region(index)), { code: 'EINVAL' }, `region ${index}`);
  }
  assert.throws(() => env.proc.pwrite(device, new Uint8Array(4), region(6)), { code: 'EINVAL' });
  assert.throws(() => env.proc.pread(device, 4, region(8, 0xa0000)), { code: 'EINVAL' });
  assert.throws(() => env.proc.pwrite(device, new Uint8Array(1), region(8, 0x3c0)), { code: 'EINVAL' });
  assert.throws(() => env.proc.pread(device, 4, region(9)), { code: 'EINVAL' });
  assert.throws(() => env.proc.pread(device, 4, 0xffff_ffff_ffff_0000n), { code: 'EINVAL' });
  assert.equal(env.proc.pread(device, 0, region(9)).length, 0);
  exitAndCheck(env);
});

test('memory decode off: pread/pwrite EIO, mmap access EFAULT; back on: both work', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  const bar = env.proc.mmap(MiB, RW, SHARED, device, region(BAR0));
  const cmd = env.cfgRead(device, 0x04, 2);
  env.cfgWrite(device, 0x04, 2, cmd & ~0x2);
  assert.throws(() => env.barRead32(device, 0), { code: 'EIO' });
  assert.throws(() => env.barWrite32(device, EduReg.LIVENESS, 1), { code: 'EIO' });
  assert.throws(() => env.proc.memory.read(bar, 4), { code: 'EFAULT' });
  assert.throws(() => env.proc.memory.write(bar + 4n, le32(1)), { code: 'EFAULT' });
  // Config space stays reachable.
  assert.equal(env.cfgRead(device, 0x00, 2), 0x1234);
  env.cfgWrite(device, 0x04, 2, cmd | 0x2);
  assert.equal(env.barRead32(device, 0), 0x010000ed);
  assert.equal(u32(env.proc.memory.read(bar, 4)), 0x010000ed);
  exitAndCheck(env);
});

test('mmap BAR0: id, liveness and factorial through the mapping with the width of the access', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  const bar = env.proc.mmap(MiB, RW, SHARED, device, region(BAR0));
  assert.equal(u32(env.proc.memory.read(bar, 4)), 0x010000ed);
  env.proc.memory.write(bar + BigInt(EduReg.LIVENESS), le32(0x12345678));
  assert.equal(u32(env.proc.memory.read(bar + BigInt(EduReg.LIVENESS), 4)), 0xedcba987);
  env.proc.memory.write(bar + BigInt(EduReg.FACTORIAL), le32(10));
  assert.equal(u32(env.proc.memory.read(bar + BigInt(EduReg.FACTORIAL), 4)), 3628800);
  // edu takes 4- and 8-byte accesses only: QEMU completes a 2-byte read with 0, and pread
  // splits an unaligned range into such narrow accesses too.
  assert.deepEqual([...env.proc.memory.read(bar, 2)], [0, 0]);
  assert.deepEqual([...env.proc.pread(device, 4, region(BAR0, 2))], [0, 0, 0, 0]);
  // An 8-byte read below 0x80 reaches edu, which answers all-ones.
  assert.deepEqual([...env.proc.pread(device, 8, region(BAR0, 0))], Array(8).fill(0xff));
  // A mapping at an offset inside the BAR.
  const tail = env.proc.mmap(4096, RW, SHARED, device, region(BAR0, 0));
  assert.equal(u32(env.proc.memory.read(tail, 4)), 0x010000ed);
  env.proc.munmap(tail, 4096);
  exitAndCheck(env);
});

test('read()/write() use the file position and move it by the bytes transferred', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  // f_pos starts at 0: BAR0's identification register, then the liveness register.
  assert.equal(u32(env.proc.read(device, 4)), 0x010000ed);
  assert.equal(env.proc.write(device, le32(0x12345678)), 4);
  assert.equal(env.barRead32(device, EduReg.LIVENESS), 0xedcba987);
  assert.equal(u32(env.proc.read(device, 4)), 0x0, 'offset 8: the factorial register');
  // pread/pwrite leave the position alone.
  assert.equal(env.proc.pread(device, 4, region(BAR0)).length, 4);
  assert.equal(u32(env.proc.read(device, 4)), 0xffffffff, 'offset 12: unassigned');
  exitAndCheck(env);
});

test('mmap rules: MAP_SHARED only, BARs only, within the BAR', () => {
  const env = Env.create();
  const { device } = env.openDevice();
  assert.throws(() => env.proc.mmap(4096, RW, SHARED, device, region(CONFIG)), { code: 'EINVAL' });
  assert.throws(() => env.proc.mmap(4096, RW, ANON & ~0x20, device, region(BAR0)), { code: 'EINVAL' });
  for (const index of [1, 5, 6, 8, 9, 200]) {
    assert.throws(() => env.proc.mmap(4096, RW, SHARED, device, region(index)), { code: 'EINVAL' }, `region ${index}`);
  }
  assert.throws(() => env.proc.mmap(MiB + 4096, RW, SHARED, device, region(BAR0)), { code: 'EINVAL' });
  assert.throws(() => env.proc.mmap(8192, RW, SHARED, device, region(BAR0, MiB - 4096)), { code: 'EINVAL' });
  const last = env.proc.mmap(4096, RW, SHARED, device, region(BAR0, MiB - 4096));
  assert.equal(env.proc.memory.read(last, 4096).length, 4096);
  exitAndCheck(env);
});
