/**
 * Seeded randomized robustness test: random ioctl numbers (from the uapi decode tables and
 * made up) with random struct bytes, and random read/write/pread/pwrite/mmap/munmap/close/dup,
 * against every kind of fd a VFIO user holds. Whatever the arguments, a call either returns or
 * throws SyscallError; the kernel records no oops; the host still works afterwards (a full DMA
 * round trip) and nothing leaks once the processes exit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Host, type SpawnOptions } from '../../src/host.js';
import { DEFAULT_TOPOLOGY } from '../../src/topology.js';
import type { Process } from '../../src/sys/process.js';
import { SyscallError } from '../../src/uapi/errno.js';
import type { Field } from '../../src/uapi/layout.js';
import * as v from '../../src/uapi/vfio.js';
import * as u from '../../src/uapi/iommufd.js';
import { MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE } from '../../src/kernel/vfs/mm.js';
import { O_RDWR } from '../../src/kernel/vfs/syscalls.js';
import { containerTable, deviceTable, groupTable, migrationTable } from '../../src/cli/ioctl-vfio.js';
import { iommufdTable } from '../../src/cli/ioctl-iommufd.js';
import { fdKind, ioctlSpec } from '../../src/cli/trace.js';
import { IoctlCaller } from '../../src/cli/ioctl-caller.js';
import { openLegacyPath } from '../../src/cli/demo-paths.js';
import { EDU_DMA_BUFFER, EduDriver } from '../../src/cli/edu-driver.js';

/** xorshift64*: small, fast, deterministic. */
class Rng {
  private s: bigint;
  constructor(seed: number) {
    this.s = BigInt(seed) * 0x9e3779b97f4a7c15n + 1n;
    this.s = BigInt.asUintN(64, this.s);
  }
  u64(): bigint {
    let x = this.s;
    x ^= x >> 12n;
    x ^= BigInt.asUintN(64, x << 25n);
    x ^= x >> 27n;
    this.s = x;
    return BigInt.asUintN(64, x * 0x2545f4914f6cdd1dn);
  }
  u32(): number {
    return Number(this.u64() >> 32n);
  }
  int(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
}

const PAGE = 4096;
const ALL_REQUESTS = [
  ...new Set([containerTable, groupTable, deviceTable, migrationTable, iommufdTable].flatMap((t) => [...t.keys()])),
];
const PATHS = [
  '/dev/vfio/vfio',
  '/dev/vfio/3',
  '/dev/vfio/4',
  '/dev/vfio/5',
  '/dev/vfio/devices/vfio0',
  '/dev/vfio/devices/vfio2',
  '/dev/vfio/devices/vfio3',
  '/dev/iommu',
  '/dev/nope',
];

interface World {
  rng: Rng;
  proc: Process;
  fds: number[];
  /** Addresses worth pointing at: RAM, read-only RAM, BARs, memfd pages. */
  addrs: bigint[];
  /** Mappings the fuzzer may munmap. */
  victims: { addr: bigint; len: number }[];
  scratch: bigint;
  /** The call in progress, for failure messages. */
  what: string;
  /** Well-formed calls for the setup sequences (its own scratch page). */
  io: IoctlCaller;
}

/** A 64-bit field value; plausible calls get addresses, lengths and IOVAs of the right kind. */
function u64Field(w: World, name: string, plausible: boolean): bigint {
  const r = w.rng;
  if (plausible && r.chance(0.8)) {
    if (/va$|vaddr|uptr|^data$|allowed_iovas|ranges|bitmap/.test(name)) return r.pick(w.addrs) & ~0xfffn;
    if (/length|size/.test(name)) return BigInt(r.pick([PAGE, 2 * PAGE, 8 * PAGE]));
    if (/iova/.test(name)) return BigInt(r.int(64) * PAGE) + 0x100000n;
  }
  return u64Pool(w);
}

function u64Pool(w: World): bigint {
  const r = w.rng;
  switch (r.int(8)) {
    case 0:
      return 0n;
    case 1:
      return BigInt(r.int(64) * PAGE);
    case 2:
      return r.pick(w.addrs) + BigInt(r.pick([0, 0, 1, PAGE, -PAGE]));
    case 3:
      return r.pick([0x100000n, 0x200000n, 0xfee00000n, 0xfef00000n, 1n << 39n, (1n << 39n) - 4096n]);
    case 4:
      return r.pick([0xffffffffffffffffn, 0xfffffffffffff000n, 1n << 63n, 0x7ffffffff000n]);
    case 5:
      return BigInt(r.pick([PAGE, 2 * PAGE, 0x200000, 0x40000000, 1]));
    default:
      return r.u64();
  }
}

/**
 * A 32-bit field value. `plausible` calls keep the size right and the values small, so they get
 * past the first checks and reach the deeper ones; the others probe those first checks.
 */
function u32Pool(w: World, field: Field, size: number, plausible: boolean): number {
  const r = w.rng;
  const name = field.name;
  if (name === 'argsz' || name === 'size') {
    return plausible || r.chance(0.5)
      ? size
      : r.pick([0, 4, 8, 12, 16, 20, size - 1, size + 4, size + 8, 4096, r.u32()]);
  }
  if (/fd$/.test(name) || name === 'iommufd') return r.pick([...w.fds, ...w.fds, -1, -2, 1000, r.u32()]);
  if (name === 'flags') {
    // Small combinations are what most checks accept; the rest probes the unknown-bit checks.
    const small = [0, 1, 2, 3, 4, 5, 6, 7, 0x21, 0x22, 0x24, 0x09, 0x11, 0x12, r.int(64)];
    if (plausible && r.chance(0.4)) return 0;
    return plausible || r.chance(0.8) ? r.pick(small) : r.pick([1 << r.int(32), r.u32()]);
  }
  if (/index|count|num|start|id$/.test(name)) {
    return plausible ? r.int(10) : r.pick([0, 1, 2, 5, 7, 8, 9, 0xffffffff, r.int(16)]);
  }
  return plausible || r.chance(0.5) ? r.int(16) : r.u32();
}

const BDFS = ['0000:00:03.0', '0000:00:04.0', '0000:00:05.0', '0000:00:05.1'];

/** Argument bytes for `request` on this fd: shaped like its struct, int pointer or string. */
function randomArgBytes(w: World, fd: number, request: number): Uint8Array {
  const r = w.rng;
  const file = w.proc.task.files.lookup(fd);
  const spec = file ? ioctlSpec(fdKind(file.path), request) : undefined;
  const tail = r.int(3) === 0 ? 0 : 4 * r.int(12);
  if (spec?.arg.type === 'string' && r.chance(0.7)) {
    const name = r.pick(BDFS) + r.pick(['', '', ' ', ' vf_token=00000000-0000-0000-0000-000000000000', 'x', ' bogus']);
    return Uint8Array.from([...Buffer.from(name, 'latin1'), 0]);
  }
  if ((spec?.arg.type === 's32ptr' || spec?.arg.type === 'u32ptr') && r.chance(0.8)) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setInt32(0, r.pick([...w.fds, -1]), true);
    return b;
  }
  if (spec?.arg.type !== 'struct') {
    const b = new Uint8Array(8 + tail);
    for (let i = 0; i < b.length; i++) b[i] = r.int(256);
    return b;
  }
  const s = spec.arg.struct;
  const plausible = r.chance(0.5);
  const bytes = new Uint8Array(s.size + tail);
  const view = new DataView(bytes.buffer);
  const fill = (fields: readonly Field[], base: number): void => {
    for (const f of fields) {
      if (f.struct) fill(f.struct.fields, base + f.offset);
      else if (f.size === 8 && !f.count) view.setBigUint64(base + f.offset, u64Field(w, f.name, plausible), true);
      else if (f.size === 4 && !f.count) view.setUint32(base + f.offset, u32Pool(w, f, s.size, plausible) >>> 0, true);
      else for (let i = 0; i < f.size; i++) bytes[base + f.offset + i] = plausible || r.chance(0.7) ? 0 : r.int(256);
    }
  };
  fill(s.fields, 0);
  // Tails: eventfd arrays, ranges, capability room.
  for (let at = s.size; at + 4 <= bytes.length; at += 4) view.setInt32(at, r.pick([...w.fds, -1, 0, r.u32()]), true);
  return bytes;
}

/** Requests that mean something on each kind of fd. */
const REQUESTS_BY_KIND: Record<string, number[]> = {
  container: [...containerTable.keys(), ...iommufdTable.keys()],
  iommufd: [...iommufdTable.keys(), ...containerTable.keys()],
  group: [...groupTable.keys()],
  device: [...deviceTable.keys()],
  migration: [...migrationTable.keys()],
};

function randomRequest(w: World, fd: number): number {
  const r = w.rng;
  const file = w.proc.task.files.lookup(fd);
  const own = file ? REQUESTS_BY_KIND[fdKind(file.path)] : undefined;
  if (own?.length && r.chance(0.7)) return r.pick(own);
  switch (r.int(6)) {
    case 0:
      return (0x3b00 | r.int(256)) >>> 0;
    case 1:
      return r.pick(ALL_REQUESTS) | ((r.int(4) << 30) | (r.int(0x3fff) << 16));
    case 2:
      return r.u32();
    default:
      return r.pick(ALL_REQUESTS);
  }
}

function randomFd(w: World, vfioOnly = false): number {
  const pool = vfioOnly ? w.fds.filter((fd) => vfioKind(w, fd)) : w.fds;
  return w.rng.chance(0.95) && pool.length ? w.rng.pick(pool) : w.rng.pick([-1, 999, 0, ...w.fds]);
}

function vfioKind(w: World, fd: number): boolean {
  const file = w.proc.task.files.lookup(fd);
  return file !== undefined && REQUESTS_BY_KIND[fdKind(file.path)] !== undefined;
}

function regionOffset(w: World): bigint {
  return (BigInt(w.rng.int(10)) << 40n) + BigInt(w.rng.pick([0, 0, 4, 0x10, 0x98, 0xfff, 0x100000, w.rng.int(0x2000)]));
}

/** One random system call; `w.what` describes it for failure messages. */
function step(w: World): void {
  const r = w.rng;
  w.what = 'restore scratch pages';
  repairScratch(w);
  const op = w.fds.length > 40 ? 'fd' : r.pick(OPS);
  switch (op) {
    case 'ioctl':
      // ioctls mostly go to the VFIO/iommufd fds, where the interesting checks are.
      return ioctlOp(w, randomFd(w, r.chance(0.85)));
    case 'rw':
      return rwOp(w, randomFd(w));
    case 'mm':
      return mmOp(w, randomFd(w));
    case 'fd':
      return fdOp(w, randomFd(w));
    case 'setup':
      return setupChain(w);
    case 'dma':
      return mapUnmap(w);
    case 'device':
      return deviceOp(w);
  }
}

/** Relative frequencies of the kinds of step. */
const OPS = [
  ...Array<'ioctl'>(6).fill('ioctl'),
  ...Array<'rw'>(4).fill('rw'),
  ...Array<'mm'>(3).fill('mm'),
  ...Array<'fd'>(3).fill('fd'),
  ...Array<'setup'>(2).fill('setup'),
  'dma' as const,
  ...Array<'device'>(2).fill('device'),
];

/** A random request with a random (mostly struct-shaped) argument. */
function ioctlOp(w: World, fd: number): void {
  const { rng: r, proc } = w;
  const request = randomRequest(w, fd);
  let arg: bigint;
  if (r.chance(0.75)) {
    proc.memory.write(w.scratch, randomArgBytes(w, fd, request));
    arg = w.scratch;
  } else arg = r.chance(0.5) ? u64Pool(w) : BigInt(r.int(16));
  const file = proc.task.files.lookup(fd);
  const name = (file && ioctlSpec(fdKind(file.path), request)?.name) ?? `0x${(request >>> 0).toString(16)}`;
  w.what = `ioctl ${name} (${fd}, 0x${arg.toString(16)})`;
  const ret = proc.ioctl(fd, request, arg);
  // New fds (GET_DEVICE_FD, fault queues, ...) join the pool.
  if (ret > 2 && proc.task.files.lookup(ret) && !w.fds.includes(ret)) w.fds.push(ret);
}

/** read / write / pread / pwrite with random lengths and region offsets. */
function rwOp(w: World, fd: number): void {
  const { rng: r, proc } = w;
  const len = r.pick([0, 1, 2, 4, 8, 16, 4096, r.int(8192), 0x100000]);
  const off = regionOffset(w);
  const data = new Uint8Array(r.pick([1, 2, 4, 8, 3, 64])).map(() => r.int(256));
  switch (r.int(4)) {
    case 0:
      w.what = `read(${fd}, ${len})`;
      proc.read(fd, len);
      return;
    case 1:
      w.what = `write(${fd}, ${data.length})`;
      proc.write(fd, data);
      return;
    case 2:
      w.what = `pread(${fd}, ${len}, 0x${off.toString(16)})`;
      proc.pread(fd, Math.min(len, 0x2000), off);
      return;
    default:
      w.what = `pwrite(${fd}, ${data.length}, 0x${off.toString(16)})`;
      proc.pwrite(fd, data, off);
  }
}

/** mmap of any fd, munmap of earlier mappings or random ranges, direct memory accesses. */
function mmOp(w: World, fd: number): void {
  const { rng: r, proc } = w;
  const choice = r.int(3);
  if (choice === 0) {
    const length = r.pick([PAGE, 2 * PAGE, 0x100000, 0x200000, 0, 1 << 30]);
    const prot = r.pick([PROT_READ, PROT_READ | PROT_WRITE, 0, 7]);
    const flags = r.pick([MAP_SHARED, MAP_PRIVATE, MAP_SHARED | MAP_ANONYMOUS, MAP_PRIVATE | MAP_ANONYMOUS, 0]);
    const off = r.chance(0.5) ? regionOffset(w) & ~0xfffn : 0n;
    w.what = `mmap(${length}, ${prot}, ${flags}, ${fd}, 0x${off.toString(16)})`;
    const addr = proc.mmap(length, prot, flags, fd, off);
    w.victims.push({ addr, len: length });
    if (prot & PROT_READ) w.addrs.push(addr);
  } else if (choice === 1) {
    const victim = w.victims.length
      ? w.victims.splice(r.int(w.victims.length), 1)[0]!
      : { addr: u64Pool(w), len: PAGE };
    w.what = `munmap(0x${victim.addr.toString(16)}, ${victim.len})`;
    proc.munmap(victim.addr, victim.len);
  } else {
    const addr = u64Pool(w);
    const len = r.pick([1, 4, 8, 64]);
    w.what = `memory access 0x${addr.toString(16)}`;
    if (r.chance(0.5)) proc.memory.read(addr, len);
    else proc.memory.write(addr, new Uint8Array(len));
  }
}

/** close / dup / open / eventfd / memfd: the fd pool changes under the other operations. */
function fdOp(w: World, fd: number): void {
  const { rng: r, proc } = w;
  const choice = w.fds.length > 30 ? 0 : r.int(4);
  if (choice === 0) {
    w.what = `close(${fd})`;
    w.fds = w.fds.filter((x) => x !== fd);
    proc.close(fd);
  } else if (choice === 1) {
    w.what = `dup(${fd})`;
    w.fds.push(proc.dup(fd));
  } else if (choice === 2) {
    const path = r.pick(PATHS);
    w.what = `open(${path})`;
    w.fds.push(proc.open(path, O_RDWR));
  } else if (r.chance(0.5)) {
    w.what = 'eventfd';
    w.fds.push(proc.eventfd(r.int(3), r.pick([0, 1, 0x800, 0x801, 0x4])));
  } else {
    w.what = 'memfd_create+ftruncate';
    const m = proc.memfdCreate('fuzz', 0);
    w.fds.push(m);
    proc.ftruncate(m, BigInt(r.pick([0, PAGE, 0x10000])));
  }
}

/** The fuzzer may munmap its own scratch pages (they are ordinary memory); map them again. */
function repairScratch(w: World): void {
  for (const addr of [w.scratch, w.io.address]) {
    try {
      w.proc.memory.read(addr, 1);
    } catch {
      w.proc.mmapAt(
        addr,
        addr === w.scratch ? PAGE : w.io.scratchSize,
        PROT_READ | PROT_WRITE,
        MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
      );
    }
  }
}

/** A well-formed container + group + SET_IOMMU + GET_DEVICE_FD sequence on a random group. */
function setupChain(w: World): void {
  const { rng: r, proc } = w;
  const io = w.io;
  const group = r.pick(['3', '4', '5']);
  w.what = `setup chain on group ${group}`;
  const c = proc.open('/dev/vfio/vfio', O_RDWR);
  w.fds.push(c);
  // A group opens once; reuse a held fd of it if there is one.
  const held = w.fds.find((fd) => proc.task.files.lookup(fd)?.path === `/dev/vfio/${group}`);
  const g = held ?? proc.open(`/dev/vfio/${group}`, O_RDWR);
  if (held === undefined) w.fds.push(g);
  io.s32ptr(g, v.VFIO_GROUP_SET_CONTAINER, c);
  proc.ioctl(c, v.VFIO_SET_IOMMU, r.pick([v.VFIO_TYPE1v2_IOMMU, v.VFIO_TYPE1_IOMMU]));
  const bdf = group === '3' ? BDFS[0]! : group === '4' ? BDFS[1]! : r.pick([BDFS[2]!, BDFS[3]!]);
  w.fds.push(io.string(g, v.VFIO_GROUP_GET_DEVICE_FD, bdf));
}

/** A well-formed MAP_DMA or UNMAP_DMA on a random container, with random (often valid) ranges. */
function mapUnmap(w: World): void {
  const { rng: r, proc } = w;
  const containers = w.fds.filter((fd) => proc.task.files.lookup(fd)?.path === '/dev/vfio/vfio');
  const c = containers.length ? r.pick(containers) : randomFd(w);
  const iova = BigInt(r.int(64) * PAGE) + 0x100000n;
  const size = BigInt(r.pick([PAGE, 2 * PAGE, 16 * PAGE, 0x200000]));
  if (r.chance(0.6)) {
    w.what = `MAP_DMA(${c}, iova 0x${iova.toString(16)}, 0x${size.toString(16)})`;
    w.io.struct(c, v.VFIO_IOMMU_MAP_DMA, v.vfio_iommu_type1_dma_map, {
      argsz: v.vfio_iommu_type1_dma_map.size,
      flags: r.pick([3, 3, 1, 2]),
      vaddr: r.pick(w.addrs) & ~0xfffn,
      iova,
      size,
    });
  } else {
    w.what = `UNMAP_DMA(${c}, iova 0x${iova.toString(16)})`;
    w.io.struct(c, v.VFIO_IOMMU_UNMAP_DMA, v.vfio_iommu_type1_dma_unmap, {
      argsz: v.vfio_iommu_type1_dma_unmap.size,
      flags: r.chance(0.2) ? v.VFIO_DMA_UNMAP_FLAG_ALL : 0,
      iova: r.chance(0.2) ? 0n : iova,
      size: r.chance(0.2) ? 0n : size,
    });
  }
}

/**
 * Well-formed device work with random values: IRQ setup with eventfds, config space accesses,
 * and edu registers written through a BAR mapping, including DMA to random IOVAs.
 */
function deviceOp(w: World): void {
  const { rng: r, proc, io } = w;
  const devices = w.fds.filter((fd) => fdKind(proc.task.files.lookup(fd)?.path ?? '') === 'device');
  const fd = devices.length ? r.pick(devices) : randomFd(w);
  switch (r.int(5)) {
    case 0: {
      const index = r.int(5);
      const efds = [r.pick(w.fds), -1, r.pick(w.fds)].slice(0, r.int(3) + 1);
      const tail = new Uint8Array(efds.length * 4);
      efds.forEach((e, i) => new DataView(tail.buffer).setInt32(i * 4, e, true));
      const flags = r.pick([0x24, 0x21, 0x22, 0x28, 0x29, 0x31, 0x34, 0x30]);
      w.what = `SET_IRQS(${fd}, index ${index}, flags 0x${flags.toString(16)})`;
      io.struct(
        fd,
        v.VFIO_DEVICE_SET_IRQS,
        v.vfio_irq_set,
        { argsz: v.vfio_irq_set.size + tail.length, flags, index, start: r.int(2), count: r.int(efds.length + 1) },
        { tail },
      );
      return;
    }
    case 1: {
      const at = v.VFIO_PCI_INDEX_TO_OFFSET(v.VFIO_PCI_CONFIG_REGION_INDEX) + BigInt(r.int(0x110));
      const data = new Uint8Array(r.pick([1, 2, 4, 3, 8])).map(() => r.int(256));
      w.what = `config access(${fd}, 0x${at.toString(16)}, ${data.length})`;
      if (r.chance(0.5)) proc.pwrite(fd, data, at);
      else proc.pread(fd, data.length, at);
      return;
    }
    case 2:
      w.what = `VFIO_DEVICE_RESET(${fd})`;
      proc.ioctl(fd, v.VFIO_DEVICE_RESET);
      return;
    default: {
      // edu registers through BAR0 (mapped now if needed): DMA to/from random IOVAs, IRQs.
      w.what = `edu registers(${fd})`;
      const bar = proc.mmap(0x100000, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      try {
        const edu = new EduDriver(proc, bar);
        const reg = r.pick([0x04, 0x08, 0x20, 0x60, 0x64, 0x80, 0x88, 0x90, 0x98, 0x24, 0x00, 0x7c, 0x100]);
        if (reg >= 0x80 && r.chance(0.7)) {
          const iova = r.chance(0.5) ? BigInt(r.int(64) * PAGE) + 0x100000n : u64Pool(w);
          edu.write64(0x80, r.chance(0.5) ? iova : EDU_DMA_BUFFER);
          edu.write64(0x88, r.chance(0.5) ? EDU_DMA_BUFFER : iova);
          edu.write64(0x90, BigInt(r.pick([0, 1, 8, PAGE, PAGE + 1, 0x10000])));
          edu.write64(0x98, BigInt(r.int(8)));
          edu.read64(0x98);
        } else if (r.chance(0.5)) edu.write32(reg, r.u32());
        else edu.read32(reg);
      } finally {
        proc.munmap(bar, 0x100000);
      }
    }
  }
}

/** The fd pool of a VFIO user: containers before and after SET_IOMMU, groups, devices, more. */
function buildWorld(host: Host, seed: number, options: SpawnOptions = {}): World {
  // (an iommufd-backed /dev/vfio/vfio takes the same container calls, semantics.md §7.14)
  const proc = host.spawn(options);
  const io = new IoctlCaller(proc);
  const fds: number[] = [];
  const fresh = proc.open('/dev/vfio/vfio', O_RDWR);
  const set = proc.open('/dev/vfio/vfio', O_RDWR);
  const half = proc.open('/dev/vfio/vfio', O_RDWR);
  fds.push(fresh, set, half);
  const g3 = proc.open('/dev/vfio/3', O_RDWR);
  const g4 = proc.open('/dev/vfio/4', O_RDWR);
  fds.push(g3, g4);
  io.s32ptr(g3, v.VFIO_GROUP_SET_CONTAINER, set);
  proc.ioctl(set, v.VFIO_SET_IOMMU, v.VFIO_TYPE1v2_IOMMU);
  io.s32ptr(g4, v.VFIO_GROUP_SET_CONTAINER, half);
  const device = io.string(g3, v.VFIO_GROUP_GET_DEVICE_FD, '0000:00:03.0');
  fds.push(device);
  bindCdev(proc, io, fds);
  fds.push(proc.eventfd(0, 0), proc.memfdCreate('fuzz', 0));

  const ram = proc.mmap(16 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const ro = proc.mmap(PAGE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS);
  const bar = proc.mmap(0x100000, PROT_READ | PROT_WRITE, MAP_SHARED, device, 0);
  const scratch = proc.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  return {
    rng: new Rng(seed),
    proc,
    fds,
    addrs: [ram, ram + BigInt(8 * PAGE), ro, bar, scratch + 0x800n],
    victims: [
      { addr: ram + BigInt(12 * PAGE), len: PAGE },
      { addr: bar, len: 0x100000 },
    ],
    scratch,
    what: '',
    io,
  };
}

/**
 * /dev/iommu with the vfio2 cdev bound and attached to an IOAS, when iommufd is available:
 * the iommufd and cdev fds then start with live objects behind them.
 */
function bindCdev(proc: Process, io: IoctlCaller, fds: number[]): void {
  let iommufd: number;
  try {
    iommufd = proc.open('/dev/iommu', O_RDWR);
  } catch (err) {
    assert.ok(err instanceof SyscallError, String(err));
    return;
  }
  const cdev = proc.open('/dev/vfio/devices/vfio2', O_RDWR);
  fds.push(iommufd, cdev);
  const bind = io.struct(cdev, v.VFIO_DEVICE_BIND_IOMMUFD, v.vfio_device_bind_iommufd, {
    argsz: v.vfio_device_bind_iommufd.size,
    iommufd,
  });
  assert.ok(bind.value.out_devid > 0);
  const ioas = io.struct(iommufd, u.IOMMU_IOAS_ALLOC, u.iommu_ioas_alloc, { size: u.iommu_ioas_alloc.size }).value;
  io.struct(cdev, v.VFIO_DEVICE_ATTACH_IOMMUFD_PT, v.vfio_device_attach_iommufd_pt, {
    argsz: v.vfio_device_attach_iommufd_pt.size,
    pt_id: ioas.out_ioas_id,
  });
}

/** A full DMA round trip on a fresh process: the host still works. */
function roundTrip(host: Host): void {
  const proc = host.spawn();
  const io = new IoctlCaller(proc);
  const dev = host.devices()[0]!;
  const path = openLegacyPath(proc, io, dev, () => {});
  const info = io.struct(path.deviceFd, v.VFIO_DEVICE_GET_REGION_INFO, v.vfio_region_info, {
    argsz: v.vfio_region_info.size,
    index: 0,
  }).value;
  const bar = proc.mmap(info.size, PROT_READ | PROT_WRITE, MAP_SHARED, path.deviceFd, info.offset);
  proc.pwrite(path.deviceFd, Uint8Array.of(6, 0), v.VFIO_PCI_INDEX_TO_OFFSET(v.VFIO_PCI_CONFIG_REGION_INDEX) + 4n);
  const a = proc.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  const b = proc.mmap(PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS);
  path.dma.map(a, 0x100000n, PAGE);
  path.dma.map(b, 0x200000n, PAGE);
  const data = Uint8Array.from({ length: PAGE }, (_, i) => (i * 13) & 0xff);
  proc.memory.write(a, data);
  const edu = new EduDriver(proc, bar);
  edu.dma(0x100000n, EDU_DMA_BUFFER, PAGE, false);
  edu.dma(0x200000n, EDU_DMA_BUFFER, PAGE, true);
  assert.deepEqual(proc.memory.read(b, PAGE), data);
  proc.exit();
}

const SEEDS = [1, 2, 3, 0xc0ffee];
const STEPS = 2000;

/** Runs `steps` random calls in `w`; fails on anything but SyscallError and on any oops. */
function fuzz(host: Host, w: World, label: string, steps: number): void {
  const stats = new Map<string, number>();
  for (let i = 0; i < steps; i++) {
    let outcome = 'ok';
    try {
      step(w);
    } catch (err) {
      outcome = err instanceof SyscallError ? err.code : 'THROW';
      if (!(err instanceof SyscallError)) {
        assert.fail(`${label} step ${i}: ${w.what}: non-SyscallError escaped: ${(err as Error)?.stack ?? String(err)}`);
      }
    }
    const key = `${w.what.split(/ ?\(| 0x| on /)[0]} ${outcome}`;
    stats.set(key, (stats.get(key) ?? 0) + 1);
    if (host.kernel.oopses.length) {
      assert.fail(`${label} step ${i}: ${w.what}: kernel oops: ${host.kernel.oopses.map((e) => e.stack).join('\n')}`);
    }
  }
  // FUZZ_STATS=1 shows how calls ended, to check the fuzzer reaches past the first checks.
  if (process.env['FUZZ_STATS'])
    console.log(
      [...stats]
        .sort()
        .map(([k, n]) => `${label} ${k}: ${n}`)
        .join('\n'),
    );
  w.proc.exit();
  assert.deepEqual(host.kernel.oopses, []);
}

const CLEAN = {
  processes: 0,
  openFiles: 0,
  lockedPages: 0,
  iommuMappings: 0,
  iommuDomains: 0,
  iommuAttachments: 0,
};

for (const seed of SEEDS) {
  test(`fuzz seed ${seed}: only SyscallError, no oops, host still usable, nothing leaks`, () => {
    const host = Host.create();
    fuzz(host, buildWorld(host, seed), `seed ${seed} root`, STEPS);
    // Then an unprivileged user with a small RLIMIT_MEMLOCK, where pinning runs into the limit.
    const user = { uid: 1000, capabilities: [], rlimitMemlock: 16 * PAGE };
    fuzz(host, buildWorld(host, seed + 1000, user), `seed ${seed} uid 1000`, STEPS / 2);
    roundTrip(host);
    assert.deepEqual(host.kernel.oopses, []);
    assert.deepEqual(host.usage(), CLEAN);
  });
}

test('fuzz with /dev/vfio/vfio as iommufd in VFIO compat mode', () => {
  const host = Host.create({ vfioContainer: 'iommufd', devices: [...DEFAULT_TOPOLOGY.devices] });
  fuzz(host, buildWorld(host, 77), 'compat root', STEPS);
  roundTrip(host);
  assert.deepEqual(host.kernel.oopses, []);
  assert.deepEqual(host.usage(), CLEAN);
});
