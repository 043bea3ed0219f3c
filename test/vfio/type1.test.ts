/**
 * The type1 backend (semantics.md §5.1, §5.2, §5.5): GET_INFO byte for byte against
 * probe-612-edu.txt, the "== DMA mapping" sequence, every MAP_DMA check in order, pinning and
 * RLIMIT_MEMLOCK / CAP_IPC_LOCK accounting, MMIO mappings, the entry limit, teardown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MmioObject } from '../../src/hw/memory.js';
import { MAP_SHARED, PROT_READ } from '../../src/kernel/vfs/mm.js';
import { CapChainBuilder, walkCapChain } from '../../src/uapi/capability.js';
import {
  VFIO_DMA_MAP_FLAG_READ,
  VFIO_DMA_MAP_FLAG_WRITE,
  VFIO_GROUP_SET_CONTAINER,
  VFIO_IOMMU_GET_INFO,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL,
  VFIO_SET_IOMMU,
  VFIO_TYPE1v2_IOMMU,
  vfio_iommu_type1_info,
  vfio_iommu_type1_info_dma_avail,
} from '../../src/uapi/vfio.js';
import { DMA_RW, Env, PAGE, assertHostClean, exitAndCheck } from './legacy-helpers.js';

const RAW_INFO_612 = `
78 00 00 00 03 00 00 00 00 10 20 40 00 00 00 00
18 00 00 00 00 00 00 00 02 00 01 00 38 00 00 00
00 00 00 00 00 00 00 00 00 10 00 00 00 00 00 00
00 00 00 10 00 00 00 00 03 00 01 00 48 00 00 00
ff ff 00 00 00 00 00 00 01 00 01 00 00 00 00 00
02 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
ff ff df fe 00 00 00 00 00 00 f0 fe 00 00 00 00
ff ff ff ff 7f 00 00 00`;

function hexBytes(dump: string): number[] {
  return dump
    .trim()
    .split(/\s+/)
    .map((h) => parseInt(h, 16));
}

function getInfo(env: Env, container: number, argsz: number): Uint8Array {
  env.proc.memory.write(env.scratch, new Uint8Array(256).fill(0xaa));
  const struct = vfio_iommu_type1_info.encode({ argsz });
  env.proc.memory.write(env.scratch, struct.subarray(0, Math.min(argsz, struct.length)));
  env.proc.ioctl(container, VFIO_IOMMU_GET_INFO, env.scratch);
  return env.proc.memory.read(env.scratch, 256);
}

function dmaAvail(env: Env, container: number): number {
  const info = getInfo(env, container, 256);
  for (const cap of walkCapChain(info, 24)) {
    if (cap.id === VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL)
      return vfio_iommu_type1_info_dma_avail.decode(info, cap.offset).avail;
  }
  throw new Error('no DMA_AVAIL capability');
}

test('transcript "== IOMMU_GET_INFO": argsz growth, then the 120-byte chain byte for byte', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);

  let out = getInfo(env, container, 16);
  const short = vfio_iommu_type1_info.decode(out);
  assert.equal(short.argsz, 120);
  assert.equal(short.flags, 3);
  assert.deepEqual([...out.subarray(8, 16)], [0x00, 0x10, 0x20, 0x40, 0, 0, 0, 0]);
  assert.ok(
    out.subarray(16, 24).every((b) => b === 0xaa),
    'only argsz bytes are copied back',
  );

  env.put(vfio_iommu_type1_info, { argsz: 8 });
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_GET_INFO, env.scratch), { code: 'EINVAL' });
  assert.throws(() => proc.ioctl(container, VFIO_IOMMU_GET_INFO, 0), { code: 'EFAULT' });

  out = getInfo(env, container, 24);
  const info = vfio_iommu_type1_info.decode(out);
  assert.deepEqual(info, { argsz: 120, flags: 3, iova_pgsizes: 0x40201000n, cap_offset: 0, pad: 0 });
  assert.ok(
    out.subarray(24, 120).every((b) => b === 0xaa),
    'no capability written when argsz is short',
  );

  out = getInfo(env, container, 120);
  assert.deepEqual([...out.subarray(0, 120)], hexBytes(RAW_INFO_612));
  assert.ok(out.subarray(120).every((b) => b === 0xaa));

  out = getInfo(env, container, 200);
  assert.equal(vfio_iommu_type1_info.decode(out).argsz, 200, 'a large enough argsz is left alone');
  assert.deepEqual([...out.subarray(4, 120)], hexBytes(RAW_INFO_612).slice(4));
  exitAndCheck(env);
});

test('GET_INFO builds its chain like vfio_info_cap_add (cross-check with the uapi builder)', () => {
  const chain = new CapChainBuilder(24);
  assert.equal(chain.addBytes(2, 1, new Uint8Array(24)), 24);
  assert.equal(chain.addBytes(3, 1, new Uint8Array(4)), 56);
  assert.equal(chain.addBytes(1, 1, new Uint8Array(8 + 32)), 72);
  assert.equal(chain.build().totalSize, 120);
});

test('transcript "== DMA mapping": every answer, and DMA_AVAIL counts the mappings', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const a = env.buffer(0x10000);
  const b = env.buffer(PAGE);
  const three = env.buffer(3 * PAGE);
  const ro = env.buffer(PAGE);
  const map = (vaddr: bigint, iova: bigint, size: number | bigint, flags = DMA_RW, argsz = 32) =>
    env.map(container, vaddr, iova, size, flags, argsz);

  assert.equal(map(a, 0x100000n, 0x1000), 0, 'A');
  assert.equal(map(b, 0x200000n, 0x1000), 0, 'B');
  assert.throws(() => map(a, 0x100000n, 0x1000), { code: 'EEXIST' }, 'same iova again');
  assert.throws(() => map(a, 0x0ff000n, 0x2000), { code: 'EEXIST' }, 'overlapping');
  assert.equal(map(a, 0x180000n, 0x1000), 0, 'same vaddr, different iova');
  assert.throws(() => map(a, 0x400000n, 0x800), { code: 'EINVAL' }, 'unaligned size');
  assert.throws(() => map(a, 0x400800n, 0x1000), { code: 'EINVAL' }, 'unaligned iova');
  assert.throws(() => map(a + 0x800n, 0x400000n, 0x1000), { code: 'EINVAL' }, 'unaligned vaddr');
  assert.throws(() => map(a, 0x400000n, 0), { code: 'EINVAL' }, 'size 0');
  assert.throws(() => map(a, 0x400000n, 0x1000, 0), { code: 'EINVAL' }, 'flags 0');
  assert.equal(map(ro, 0x500000n, 0x1000, VFIO_DMA_MAP_FLAG_READ), 0, 'READ only');
  assert.throws(() => map(a, 0x400000n, 0x1000, 0x80), { code: 'EINVAL' }, 'bogus flag');
  assert.throws(() => map(a, 1n << 40n, 0x1000), { code: 'EINVAL' }, 'beyond the 39-bit aperture');
  assert.throws(() => map(a, 0xfee00000n, 0x1000), { code: 'EINVAL' }, 'in the MSI window');
  assert.throws(() => map(0n, 0x400000n, 0x1000), { code: 'EFAULT' }, 'vaddr NULL');
  // 6.12 answered EINVAL here; 6.18+ answers EOVERFLOW (semantics.md §5.2, newest wins).
  assert.throws(() => map(a, 0xffff_ffff_ffff_f000n, 0x2000), { code: 'EOVERFLOW' }, 'iova + size wraps');
  assert.equal(map(three, 0x300000n, 0x3000), 0, '3 pages');
  assert.throws(() => map(a, 0x600000n, 0x1000, DMA_RW, 16), { code: 'EINVAL' }, 'argsz 16');
  assert.throws(() => proc.ioctl(container, 0x3b71, 0), { code: 'EFAULT' });
  assert.equal(dmaAvail(env, container), 65530);
  exitAndCheck(env);
});

test('MAP_DMA check order (6.18+): size 0, wrap (EOVERFLOW) before flags, flags, alignment, then lookups', () => {
  const env = Env.create();
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(2 * PAGE);
  const top = 0xffff_ffff_ffff_f000n;
  assert.throws(() => env.map(container, buf, top, 0x2000, 0), { code: 'EOVERFLOW' }, 'wrap beats flags 0');
  assert.throws(() => env.map(container, top, 0x100000n, 0x2000, 0x4 | DMA_RW), { code: 'EOVERFLOW' }, 'vaddr wrap');
  assert.throws(() => env.map(container, buf, 0x100000n, 0, 0x80), { code: 'EINVAL' }, 'unknown flag first');
  assert.throws(() => env.map(container, buf, 0x100001n, 0x1000, 0), { code: 'EINVAL' });
  assert.throws(
    () => env.map(container, buf, 0x100000n, 0x1000, 0x4 | VFIO_DMA_MAP_FLAG_WRITE),
    { code: 'EINVAL' },
    'VADDR with WRITE',
  );
  env.map(container, buf, 0x100000n, 0x1000);
  assert.throws(() => env.map(container, buf, 0x100800n, 0x1000), { code: 'EINVAL' }, 'alignment before EEXIST');
  assert.throws(() => env.map(container, 0n, 0x100000n, 0x1000), { code: 'EEXIST' }, 'EEXIST before pinning');
  assert.throws(() => env.map(container, 0n, 1n << 40n, 0x1000), { code: 'EINVAL' }, 'IOVA range before pinning');
  exitAndCheck(env);
});

test('mappings may end at the top of the IOVA space; beyond it EINVAL, wrapping EOVERFLOW', () => {
  const env = Env.create();
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(2 * PAGE);
  const apertureTop = (1n << 39n) - 0x1000n;
  assert.equal(env.map(container, buf, apertureTop, PAGE), 0);
  assert.throws(() => env.map(container, buf, apertureTop + 0x1000n, PAGE), { code: 'EINVAL' });
  assert.throws(() => env.map(container, buf, apertureTop, 2 * PAGE), { code: 'EEXIST' });
  assert.throws(
    () => env.map(container, buf, 0xffff_ffff_ffff_f000n, PAGE),
    { code: 'EINVAL' },
    'ends at 2^64 - 1: no overflow, not in the list',
  );
  assert.throws(() => env.map(container, buf, 0xffff_ffff_ffff_f000n, 2 * PAGE), { code: 'EOVERFLOW' });
  assert.equal(env.unmap(container, apertureTop, PAGE), BigInt(PAGE));
  assert.equal(env.unmap(container, 0xffff_ffff_ffff_f000n, PAGE), 0n);
  assert.throws(() => env.unmap(container, 0xffff_ffff_ffff_f000n, 2 * PAGE), { code: 'EOVERFLOW' });
  exitAndCheck(env);
});

test('the IOVA list follows the topology: a 48-bit IOMMU reports [0xfef00000, 2^48 - 1]', () => {
  const env = Env.create({
    iommu: { addressWidth: 48 },
    devices: [{ bdf: '0000:00:03.0', model: 'edu', iommuGroup: 2 }],
  });
  const { container } = env.containerWithGroup(2);
  const info = getInfo(env, container, 256);
  assert.deepEqual([...info.subarray(0x70, 0x78)], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]);
  const buf = env.buffer(PAGE);
  assert.equal(env.map(container, buf, (1n << 48n) - 0x1000n, PAGE), 0);
  exitAndCheck(env);
});

test('GET_INFO page sizes follow the IOMMU (sub-page sizes never appear)', () => {
  const env = Env.create({
    iommu: { pageSizes: 0x1000 },
    devices: [{ bdf: '0000:00:03.0', model: 'edu', iommuGroup: 2 }],
  });
  const { container } = env.containerWithGroup(2);
  const info = vfio_iommu_type1_info.decode(getInfo(env, container, 24));
  assert.equal(info.iova_pgsizes, 0x1000n);
  exitAndCheck(env);
});

test('pinning: unmapped or partly unmapped ranges fault and charge nothing', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(3 * PAGE);
  proc.munmap(buf + BigInt(2 * PAGE), PAGE);
  assert.throws(() => env.map(container, buf, 0x100000n, 3 * PAGE), { code: 'EFAULT' });
  assert.equal(proc.task.mm.lockedVm, 0);
  assert.equal(host.usage().iommuMappings, 0);
  assert.equal(dmaAvail(env, container), 65535);
  assert.throws(() => env.map(container, 0x7ffffffff000n, 0x100000n, PAGE), { code: 'EFAULT' }, 'beyond user space');
  assert.throws(() => env.map(container, 0x8000_0000_0000n, 0x100000n, PAGE), { code: 'EFAULT' });
  assert.equal(env.map(container, buf, 0x100000n, 2 * PAGE), 0);
  assert.equal(proc.task.mm.lockedVm, 2);
  exitAndCheck(env);
});

test('pinning: a WRITE mapping over a read-only VMA faults, READ over it works; PROT_NONE faults', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const ro = env.buffer(PAGE, PROT_READ);
  assert.throws(() => env.map(container, ro, 0x100000n, PAGE, DMA_RW), { code: 'EFAULT' });
  assert.throws(() => env.map(container, ro, 0x100000n, PAGE, VFIO_DMA_MAP_FLAG_WRITE), { code: 'EFAULT' });
  assert.equal(env.map(container, ro, 0x100000n, PAGE, VFIO_DMA_MAP_FLAG_READ), 0);
  const none = env.buffer(PAGE, 0);
  assert.throws(() => env.map(container, none, 0x200000n, PAGE, VFIO_DMA_MAP_FLAG_READ), { code: 'EFAULT' });
  assert.equal(proc.task.mm.lockedVm, 1);
  exitAndCheck(env);
});

test('pinning survives munmap: the IOMMU keeps the pages until UNMAP_DMA', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(PAGE);
  proc.memory.write(buf, new Uint8Array([1, 2, 3, 4]));
  env.map(container, buf, 0x100000n, PAGE);
  proc.munmap(buf, PAGE);
  const fn = host.machine.function('0000:00:03.0');
  const seen = host.machine.iommu.translate(fn.requesterId, 0x100000n, 4, false);
  assert.ok(seen.ok);
  const bytes = new Uint8Array(4);
  seen.segments[0]!.object.read(seen.segments[0]!.offset, bytes);
  assert.deepEqual([...bytes], [1, 2, 3, 4]);
  exitAndCheck(env);
});

test('RLIMIT_MEMLOCK: mm->locked_vm is charged per mapping (aliases twice) and ENOMEM past the limit', () => {
  const env = Env.create(undefined, { capabilities: [], rlimitMemlock: 3 * PAGE });
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(4 * PAGE);
  assert.equal(env.map(container, buf, 0x100000n, 2 * PAGE), 0);
  assert.equal(proc.task.mm.lockedVm, 2);
  assert.throws(() => env.map(container, buf, 0x200000n, 2 * PAGE), { code: 'ENOMEM' }, 'the alias is charged again');
  assert.equal(proc.task.mm.lockedVm, 2);
  assert.equal(env.map(container, buf, 0x200000n, PAGE), 0);
  assert.equal(proc.task.mm.lockedVm, 3);
  assert.throws(() => env.map(container, buf + BigInt(3 * PAGE), 0x300000n, PAGE), { code: 'ENOMEM' });
  assert.equal(dmaAvail(env, container), 65533);
  assert.equal(env.unmap(container, 0x100000n, 2 * PAGE), BigInt(2 * PAGE));
  assert.equal(proc.task.mm.lockedVm, 1);
  assert.equal(env.map(container, buf + BigInt(3 * PAGE), 0x300000n, PAGE), 0);
  exitAndCheck(env);
});

test('RLIMIT_MEMLOCK: ENOMEM wins over a fault further along the range (address order)', () => {
  const env = Env.create(undefined, { capabilities: [], rlimitMemlock: PAGE });
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(3 * PAGE);
  proc.munmap(buf + BigInt(2 * PAGE), PAGE);
  assert.throws(() => env.map(container, buf, 0x100000n, 3 * PAGE), { code: 'ENOMEM' });
  assert.throws(() => env.map(container, buf + BigInt(PAGE), 0x100000n, 2 * PAGE), { code: 'EFAULT' });
  assert.equal(proc.task.mm.lockedVm, 0);
  exitAndCheck(env);
});

test('CAP_IPC_LOCK bypasses RLIMIT_MEMLOCK, but the pages are still charged to locked_vm', () => {
  const env = Env.create(undefined, { capabilities: ['CAP_IPC_LOCK'], rlimitMemlock: 0 });
  const { proc, host } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(8 * PAGE);
  assert.equal(env.map(container, buf, 0x100000n, 8 * PAGE), 0);
  assert.equal(proc.task.mm.lockedVm, 8);
  assert.equal(host.usage().lockedPages, 8);
  exitAndCheck(env);
});

test('MMIO (a device window mapped into the process) maps without pinning or charging, and DMA reaches it', () => {
  const env = Env.create(undefined, { capabilities: [], rlimitMemlock: 0 });
  const { proc, host } = env;
  const { container } = env.containerWithGroup(2);
  const writes: string[] = [];
  const window = new MmioObject(2 * PAGE, {
    mmioRead: () => {},
    mmioWrite: (offset, width, lo) => void writes.push(`${offset}/${width}=${lo}`),
  });
  const vaddr = BigInt(proc.task.mm.map(0, 2 * PAGE, PROT_READ | 2, MAP_SHARED, window, 0));
  assert.equal(env.map(container, vaddr, 0x100000n, 2 * PAGE), 0);
  assert.equal(proc.task.mm.lockedVm, 0);
  const fn = host.machine.function('0000:00:03.0');
  assert.ok(host.machine.iommu.dmaWrite(fn.requesterId, 0x101008n, new Uint8Array([5, 0, 0, 0])));
  assert.deepEqual(writes, [`${PAGE + 8}/4=5`]);
  assert.equal(env.unmap(container, 0x100000n, 2 * PAGE), BigInt(2 * PAGE));
  exitAndCheck(env);
});

test('dma_entry_limit: ENOSPC once every slot is used, a slot freed by UNMAP is reusable', () => {
  const env = Env.create();
  env.host.vfio.type1Params.dmaEntryLimit = 3;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(PAGE);
  for (let i = 0n; i < 3n; i++) env.map(container, buf, 0x100000n + i * 0x1000n, PAGE);
  assert.equal(dmaAvail(env, container), 0);
  assert.throws(() => env.map(container, buf, 0x200000n, PAGE), { code: 'ENOSPC' });
  assert.throws(() => env.map(container, buf, 0x100000n, PAGE), { code: 'EEXIST' }, 'EEXIST before ENOSPC');
  assert.throws(() => env.map(container, buf, 1n << 40n, PAGE), { code: 'ENOSPC' }, 'ENOSPC before the IOVA range');
  env.unmap(container, 0x101000n, PAGE);
  assert.equal(env.map(container, buf, 0x200000n, PAGE), 0);
  exitAndCheck(env);
});

test('dma_entry_limit default: 65535 mappings, then ENOSPC; UNMAP_ALL frees them all', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container } = env.containerWithGroup(2);
  const buf = env.buffer(PAGE);
  for (let i = 0n; i < 65535n; i++) env.map(container, buf, i << 12n, PAGE);
  assert.throws(() => env.map(container, buf, 0x1000_0000n, PAGE), { code: 'ENOSPC' });
  assert.equal(proc.task.mm.lockedVm, 65535);
  assert.equal(host.usage().iommuMappings, 65535);
  assert.equal(env.unmap(container, 0n, 0, 2), 65535n * 4096n);
  assert.equal(proc.task.mm.lockedVm, 0);
  assert.equal(host.usage().iommuMappings, 0);
  exitAndCheck(env);
});

test('a 64 GiB mapping of lazily backed memory costs nothing but the charge', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container } = env.containerWithGroup(2);
  const size = 64n << 30n;
  const buf = env.buffer(Number(size));
  assert.equal(env.map(container, buf, 1n << 36n, size), 0);
  assert.equal(proc.task.mm.lockedVm, 16 * 1024 * 1024);
  assert.equal(host.usage().iommuMappings, 1);
  assert.equal(env.unmap(container, 1n << 36n, size), size);
  exitAndCheck(env);
});

test('teardown: the last group leaving drops and unpins every mapping; groups that stay keep them', () => {
  const env = Env.create(undefined, { capabilities: [], rlimitMemlock: 64 * PAGE });
  const { proc, host } = env;
  const container = proc.open('/dev/vfio/vfio');
  const g2 = proc.open('/dev/vfio/2');
  const g4 = proc.open('/dev/vfio/4');
  proc.ioctl(g2, VFIO_GROUP_SET_CONTAINER, env.putS32(container));
  proc.ioctl(g4, VFIO_GROUP_SET_CONTAINER, env.putS32(container));
  proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  env.map(container, env.buffer(16 * PAGE), 0x100000n, 16 * PAGE);
  proc.close(g4);
  assert.equal(proc.task.mm.lockedVm, 16);
  proc.close(g2);
  assert.equal(proc.task.mm.lockedVm, 0);
  assert.equal(host.usage().iommuMappings, 0);
  assert.equal(host.usage().iommuDomains, 0);
  proc.close(container);
  proc.exit();
  assertHostClean(host);
});

test('leak check: a process exiting with mappings, several groups and device-less containers', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const other = proc.open('/dev/vfio/vfio');
  const g5 = proc.open('/dev/vfio/5');
  proc.ioctl(g5, VFIO_GROUP_SET_CONTAINER, env.putS32(other));
  proc.ioctl(other, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  const buf = env.buffer(8 * PAGE);
  env.map(container, buf, 0x100000n, 8 * PAGE);
  env.map(other, buf, 0x100000n, 8 * PAGE);
  assert.equal(proc.task.mm.lockedVm, 16);
  exitAndCheck(env);
});

/** Pretends the machine's VT-d lacks (or has) an ECAP_REG feature, as another platform would. */
function setEcap(env: Env, bit: bigint, on: boolean): void {
  const iommu = env.host.machine.iommu as { ecapReg: bigint };
  iommu.ecapReg = on ? iommu.ecapReg | bit : iommu.ecapReg & ~bit;
}

test('attach without interrupt remapping: EPERM unless allow_unsafe_interrupts', () => {
  const env = Env.create();
  const { proc, host } = env;
  setEcap(env, 1n << 3n, false);
  const { container, group } = env.containerWithGroup(2, 0);
  assert.throws(() => proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), { code: 'EPERM' });
  assert.equal(host.usage().iommuDomains, 0, 'the failed attach freed its domain');
  assert.equal(host.usage().iommuAttachments, 0);
  host.vfio.type1Params.allowUnsafeInterrupts = true;
  assert.equal(proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), 0);
  host.vfio.type1Params.allowUnsafeInterrupts = false;
  // The module parameter is read at every attach, as the kernel reads it.
  const g4 = proc.open('/dev/vfio/4');
  assert.throws(() => proc.ioctl(g4, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), { code: 'EPERM' });
  proc.close(g4);
  proc.close(group);
  exitAndCheck(env);
});

test('attaching a group to a backend that refuses it leaves the group unowned', () => {
  const env = Env.create();
  const { proc, host } = env;
  const { container } = env.containerWithGroup(2);
  setEcap(env, 1n << 3n, false);
  const other = proc.open('/dev/vfio/vfio');
  const g4 = proc.open('/dev/vfio/4');
  proc.ioctl(g4, VFIO_GROUP_SET_CONTAINER, env.putS32(other));
  assert.throws(() => proc.ioctl(other, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU), { code: 'EPERM' });
  proc.close(g4);
  const again = proc.open('/dev/vfio/4');
  assert.throws(() => proc.ioctl(again, VFIO_GROUP_SET_CONTAINER, env.putS32(container)), { code: 'EPERM' });
  assert.equal(host.vfio.group(4)!.iommuGroup.dmaOwner, null);
  exitAndCheck(env);
});

test('DMA_CC_IOMMU is 1 when every domain enforces cache coherency (VT-d snoop control)', () => {
  const env = Env.create();
  setEcap(env, 1n << 7n, true);
  const { container } = env.containerWithGroup(2, 0);
  assert.equal(env.proc.ioctl(container, 0x3b65, 4), 0, 'no instance yet');
  env.proc.ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU);
  assert.equal(env.proc.ioctl(container, 0x3b65, 4), 1);
  exitAndCheck(env);
});

test('pinning: pages of a truncated memfd mapping fault (SIGBUS) and nothing stays charged', () => {
  const env = Env.create();
  const { proc } = env;
  const { container } = env.containerWithGroup(2);
  const memfd = proc.memfdCreate('guest-ram');
  proc.ftruncate(memfd, 2 * PAGE);
  const shared = proc.mmap(2 * PAGE, PROT_READ | 2, MAP_SHARED, memfd, 0);
  proc.ftruncate(memfd, PAGE);
  assert.throws(() => env.map(container, shared, 0x100000n, 2 * PAGE), { code: 'EFAULT' });
  assert.equal(proc.task.mm.lockedVm, 0);
  assert.equal(env.map(container, shared, 0x100000n, PAGE), 0);
  exitAndCheck(env);
});
