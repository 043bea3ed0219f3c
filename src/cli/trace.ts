/**
 * `--trace`: an strace for the emulated host. A `SyscallTracer` (src/sys/trace-hook.ts) set as
 * `proc.tracer` sees every system call; this one prints each as a line such as
 *
 *   ioctl(5, VFIO_IOMMU_MAP_DMA, {argsz=32, flags=READ|WRITE, vaddr=0x7effffe00000, iova=0x100000, size=0x1000}) = 0
 *   ioctl(4, VFIO_IOMMU_GET_INFO, {argsz=24 => 104, flags=PGSIZES|CAPS, ...}) = 0
 *   ioctl(3, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU) = -1 EINVAL (Invalid argument)
 *
 * ioctls are decoded per fd type (semantics.md §0: request numbers collide across fd types),
 * the type being what /proc/self/fd/N links to. The tracer reads the fd table and the address
 * space directly, so its own look-ups are neither traced nor able to disturb the traced process:
 * it only ever reads plain RAM, never a device mapping (an MMIO read can have side effects).
 */
import type { Process } from '../sys/process.js';
import type { SyscallTracer } from '../sys/trace-hook.js';
import { errnoMessage, type SyscallError } from '../uapi/errno.js';
import {
  merge,
  peekString,
  unknownRequest,
  type IoctlSpec,
  type IoctlTable,
  type Peek,
  type StructArg,
} from './ioctl-decode.js';
import { iommufdTable } from './ioctl-iommufd.js';
import { containerTable, deviceTable, groupTable, migrationTable } from './ioctl-vfio.js';
import { flagsToString, formatStruct, hex, quoteBytes, type FlagNames } from './struct-format.js';

export type FdKind = 'container' | 'group' | 'device' | 'iommufd' | 'migration' | 'eventfd' | 'memfd' | 'other';

/** The kind of file behind a /proc/self/fd/N link target. */
export function fdKind(path: string): FdKind {
  if (path === '/dev/vfio/vfio') return 'container';
  if (/^\/dev\/vfio\/(noiommu-)?\d+$/.test(path)) return 'group';
  if (path === 'anon_inode:[vfio-device]' || /^\/dev\/vfio\/devices\/vfio\d+$/.test(path)) return 'device';
  if (path === '/dev/iommu') return 'iommufd';
  if (path === 'anon_inode:[eventfd]') return 'eventfd';
  if (path.startsWith('/memfd:')) return 'memfd';
  if (/mig/i.test(path) && /vfio/i.test(path)) return 'migration';
  return 'other';
}

// /dev/vfio/vfio may be an iommufd in VFIO compat mode, and /dev/iommu answers the VFIO
// container ioctls too (semantics.md §7.14); the two number ranges never collide.
const TABLES: Readonly<Record<FdKind, IoctlTable>> = {
  container: merge(containerTable, iommufdTable),
  iommufd: merge(iommufdTable, containerTable),
  group: groupTable,
  device: deviceTable,
  migration: migrationTable,
  eventfd: new Map(),
  memfd: new Map(),
  other: new Map(),
};

/** The decode entry for `request` on a file of `kind`, if the tracer knows it. */
export function ioctlSpec(kind: FdKind, request: number): IoctlSpec | undefined {
  return TABLES[kind].get(request >>> 0);
}

export interface TraceOptions {
  /** Prefix each line with `[pid N] `. */
  readonly showPid?: boolean;
}

interface Pending {
  readonly spec: IoctlSpec | undefined;
  readonly before: Record<string, unknown> | undefined;
  readonly limit: number;
  readonly tailIn: string | undefined;
}

/** Prints each system call of the processes it is attached to, strace-style. */
export class StraceTracer implements SyscallTracer {
  private readonly pending: (Pending | undefined)[] = [];

  constructor(
    private readonly out: (line: string) => void,
    private readonly options: TraceOptions = {},
  ) {}

  enter(proc: Process, name: string, args: readonly unknown[]): void {
    let p: Pending | undefined;
    try {
      if (name === 'ioctl') p = this.prepareIoctl(proc, args);
    } catch {
      p = undefined;
    }
    this.pending.push(p);
  }

  exit(proc: Process, name: string, args: readonly unknown[], result: unknown, error: SyscallError | undefined): void {
    const p = this.pending.pop();
    let line: string;
    try {
      line = `${this.formatCall(proc, name, args, result, error, p)} = ${formatResult(name, result, error)}`;
    } catch (err) {
      line = `${name}(...) = <trace error: ${String(err)}>`;
    }
    this.out(this.options.showPid ? `[pid ${proc.pid}] ${line}` : line);
  }

  private prepareIoctl(proc: Process, args: readonly unknown[]): Pending {
    const [fd, request, arg] = args;
    const file = typeof fd === 'number' ? proc.task.files.lookup(fd) : undefined;
    const spec = file && typeof request === 'number' ? ioctlSpec(fdKind(file.path), request) : undefined;
    if (spec?.arg.type !== 'struct') return { spec, before: undefined, limit: 0, tailIn: undefined };
    const addr = toBig(arg);
    const s = spec.arg;
    const bytes = addr === undefined ? undefined : peekFor(proc)(addr, s.struct.size);
    if (!bytes) return { spec, before: undefined, limit: 0, tailIn: undefined };
    const before = s.struct.decode(bytes) as Record<string, unknown>;
    const limit = s.sizeField ? Math.min(Number(before[s.sizeField]), s.struct.size) : s.struct.size;
    const tailIn = s.tailIn?.({ peek: peekFor(proc), addr: addr!, value: before, before });
    return { spec, before, limit, tailIn };
  }

  private formatCall(
    proc: Process,
    name: string,
    args: readonly unknown[],
    result: unknown,
    error: SyscallError | undefined,
    p: Pending | undefined,
  ): string {
    const a = args;
    switch (name) {
      case 'open':
        return `open(${str(a[0])}, ${openFlags(a[1])})`;
      case 'close':
      case 'dup':
        return `${name}(${num(a[0])})`;
      case 'ioctl':
        return this.formatIoctl(proc, a, error, p);
      case 'read':
        return `read(${num(a[0])}, ${bufferOut(result)}, ${num(a[1])})`;
      case 'write':
        return `write(${num(a[0])}, ${bufferIn(a[1])}, ${byteLength(a[1])})`;
      case 'pread':
        return `pread64(${num(a[0])}, ${bufferOut(result)}, ${num(a[1])}, ${num(a[2], true)})`;
      case 'pwrite':
        return `pwrite64(${num(a[0])}, ${bufferIn(a[1])}, ${byteLength(a[1])}, ${num(a[2], true)})`;
      case 'mmap': {
        // mmap(length, prot, flags, fd, offset) or mmapAt(addr, length, prot, flags, fd, offset).
        const [addr, ...rest] = a.length === 6 ? a : [0n, ...a];
        const [length, prot, flags, fd, offset] = rest;
        return `mmap(${addr === 0n || addr === 0 ? 'NULL' : num(addr, true)}, ${num(length, true)}, ${flagsOf(prot, PROT)}, ${flagsOf(flags, MAP)}, ${num(fd ?? -1)}, ${num(offset ?? 0, true)})`;
      }
      case 'munmap':
        return `munmap(${num(a[0], true)}, ${num(a[1], true)})`;
      case 'eventfd':
        return `eventfd2(${num(a[0] ?? 0)}, ${flagsOf(a[1] ?? 0, EFD)})`;
      case 'memfd_create':
        return `memfd_create(${str(a[0])}, ${flagsOf(a[1] ?? 0, MFD)})`;
      case 'ftruncate':
        return `ftruncate(${num(a[0])}, ${num(a[1], true)})`;
      case 'readlink':
        return `readlink(${str(a[0])})`;
      case 'readdir':
        return `getdents64(${str(a[0])})`;
      case 'exit':
        return 'exit_group(0)';
      default:
        return `${name}(${a.map((x) => num(x)).join(', ')})`;
    }
  }

  private formatIoctl(
    proc: Process,
    a: readonly unknown[],
    error: SyscallError | undefined,
    p: Pending | undefined,
  ): string {
    const [fd, request, arg] = a;
    const spec = p?.spec;
    const reqText = spec ? spec.name : typeof request === 'number' ? unknownRequest(request) : num(request);
    const head = `ioctl(${num(fd)}, ${reqText}`;
    if (!spec) return arg === undefined ? `${head})` : `${head}, ${num(arg, true)})`;
    const peek = peekFor(proc);
    switch (spec.arg.type) {
      case 'none':
        return `${head})`;
      case 'int': {
        const n = toBig(arg);
        const named = n !== undefined && n < 1n << 32n ? spec.arg.values?.get(Number(n)) : undefined;
        return `${head}, ${named ?? num(arg)})`;
      }
      case 's32ptr':
      case 'u32ptr': {
        const addr = toBig(arg);
        const b = addr === undefined ? undefined : peek(addr, 4);
        if (!b) return `${head}, ${num(arg, true)})`;
        const dv = new DataView(b.buffer, b.byteOffset, 4);
        return `${head}, [${spec.arg.type === 's32ptr' ? dv.getInt32(0, true) : dv.getUint32(0, true)}])`;
      }
      case 'string': {
        const addr = toBig(arg);
        return `${head}, ${addr === undefined ? num(arg) : peekString(peek, addr)})`;
      }
      case 'struct':
        return `${head}, ${this.formatStructArg(proc, spec.arg, arg, error, p!)})`;
    }
  }

  private formatStructArg(
    proc: Process,
    s: StructArg,
    arg: unknown,
    error: SyscallError | undefined,
    p: Pending,
  ): string {
    const addr = toBig(arg);
    if (!p.before || addr === undefined) return num(arg, true);
    const peek = peekFor(proc);
    const afterBytes = peek(addr, s.struct.size);
    const after = afterBytes ? (s.struct.decode(afterBytes) as Record<string, unknown>) : p.before;
    let text = formatStruct(s.struct as never, p.before as never, after as never, s.style, p.limit);
    const tails: string[] = [];
    if (p.tailIn) tails.push(p.tailIn);
    if (!error && s.tailOut) {
      const t = s.tailOut({ peek, addr, value: after, before: p.before });
      if (t && t !== p.tailIn) tails.push(p.tailIn ? `=> ${t}` : t);
    }
    if (tails.length) text = `${text.slice(0, -1)}${text.length > 2 ? ', ' : ''}${tails.join(' ')}}`;
    return text;
  }
}

/** A display-only reader of process memory: plain RAM only, never a device window. */
function peekFor(proc: Process): Peek {
  return (addr, length) => {
    if (addr < 0n || addr > BigInt(Number.MAX_SAFE_INTEGER) || length <= 0) return undefined;
    const at = Number(addr);
    const mm = proc.task.mm;
    try {
      // PROT_READ: a page the process could read itself.
      const segments = mm.resolve(at, length, 1);
      if (segments.some((seg) => seg.object.kind !== 'ram')) return undefined;
      return mm.read(at, length);
    } catch {
      return undefined;
    }
  };
}

function formatResult(name: string, result: unknown, error: SyscallError | undefined): string {
  if (error) return `-1 ${error.code} (${errnoMessage(error.errno)})`;
  if (name === 'exit') return '?';
  if (result === undefined) return '0';
  if (typeof result === 'bigint') return hex(result);
  if (typeof result === 'number') return String(result);
  if (result instanceof Uint8Array) return String(result.length);
  if (typeof result === 'string') return JSON.stringify(result);
  if (Array.isArray(result)) return `[${result.map((x) => JSON.stringify(x)).join(', ')}]`;
  return String(result);
}

function toBig(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return BigInt.asUintN(64, v);
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt.asUintN(64, BigInt(v));
  return undefined;
}

function num(v: unknown, asHex = false): string {
  if (typeof v === 'bigint') return asHex && v !== 0n ? hex(v) : v.toString();
  if (typeof v === 'number') return asHex && Number.isInteger(v) && v > 9 ? hex(v) : String(v);
  if (typeof v === 'string') return JSON.stringify(v);
  return `<${typeof v}>`;
}

function str(v: unknown): string {
  return typeof v === 'string' ? JSON.stringify(v) : num(v);
}

function bufferIn(v: unknown): string {
  return v instanceof Uint8Array ? quoteBytes(v) : num(v);
}

function bufferOut(v: unknown): string {
  return v instanceof Uint8Array ? quoteBytes(v) : '?';
}

function byteLength(v: unknown): string {
  return v instanceof Uint8Array ? String(v.length) : '?';
}

const PROT: FlagNames = [
  [1, 'PROT_READ'],
  [2, 'PROT_WRITE'],
  [4, 'PROT_EXEC'],
];
const MAP: FlagNames = [
  [1, 'MAP_SHARED'],
  [2, 'MAP_PRIVATE'],
  [0x10, 'MAP_FIXED'],
  [0x20, 'MAP_ANONYMOUS'],
];
const EFD: FlagNames = [
  [1, 'EFD_SEMAPHORE'],
  [0x800, 'EFD_NONBLOCK'],
  [0x80000, 'EFD_CLOEXEC'],
];
const MFD: FlagNames = [
  [1, 'MFD_CLOEXEC'],
  [2, 'MFD_ALLOW_SEALING'],
];

function flagsOf(v: unknown, names: FlagNames): string {
  if (typeof v !== 'number' && typeof v !== 'bigint') return num(v);
  const text = flagsToString(v, names);
  return text === '0' && names === PROT ? 'PROT_NONE' : text;
}

function openFlags(v: unknown): string {
  if (typeof v !== 'number') return num(v);
  const mode = ['O_RDONLY', 'O_WRONLY', 'O_RDWR', 'O_ACCMODE'][v & 3]!;
  const rest = flagsToString(v & ~3, [
    [0x800, 'O_NONBLOCK'],
    [0x80000, 'O_CLOEXEC'],
  ]);
  return rest === '0' ? mode : `${mode}|${rest}`;
}
