/**
 * How the tracer decodes an ioctl: its name and the shape of its argument, per fd type. The
 * same request number means different ioctls on different files (semantics.md §0: e.g.
 * 0x3b71 is VFIO_IOMMU_MAP_DMA on a container and VFIO_DEVICE_PCI_HOT_RESET on a device), so
 * there is one table per kind of file, chosen from what /proc/self/fd/N links to.
 */
import type { Struct } from '../uapi/layout.js';
import { hex, quoteBytes, type StructStyle } from './struct-format.js';

/** Reads process memory for display; undefined when unmapped or not plain RAM (never MMIO). */
export type Peek = (addr: bigint, length: number) => Uint8Array | undefined;

export interface TailContext {
  readonly peek: Peek;
  /** The ioctl argument: the struct's user address. */
  readonly addr: bigint;
  /** The struct as decoded now (entry for 'in' tails, exit for 'out' tails). */
  readonly value: Record<string, unknown>;
  /** The struct as the caller passed it in. */
  readonly before: Record<string, unknown>;
}

export type ArgSpec =
  | { readonly type: 'none' }
  /** A plain integer argument (VFIO_CHECK_EXTENSION, VFIO_SET_IOMMU). */
  | { readonly type: 'int'; readonly values?: ReadonlyMap<number, string> }
  /** A pointer to one s32 / u32 (VFIO_GROUP_SET_CONTAINER, VFIO_DEVICE_GET_GFX_DMABUF). */
  | { readonly type: 's32ptr' | 'u32ptr' }
  /** A pointer to a NUL-terminated string (VFIO_GROUP_GET_DEVICE_FD). */
  | { readonly type: 'string' }
  | StructArg;

export interface StructArg {
  readonly type: 'struct';
  readonly struct: Struct<object>;
  /** The leading size field (VFIO `argsz`, iommufd `size`) that bounds what is shown. */
  readonly sizeField?: string;
  readonly style?: StructStyle;
  /** Flexible arrays, payloads, capability chains: read at entry ('in') or after success ('out'). */
  readonly tailIn?: (ctx: TailContext) => string | undefined;
  readonly tailOut?: (ctx: TailContext) => string | undefined;
}

export interface IoctlSpec {
  readonly name: string;
  readonly arg: ArgSpec;
}

export type IoctlTable = ReadonlyMap<number, IoctlSpec>;

export function table(entries: readonly (readonly [number, string, ArgSpec])[]): IoctlTable {
  const map = new Map<number, IoctlSpec>();
  for (const [request, name, arg] of entries) {
    if (map.has(request)) throw new Error(`trace table: ${name} collides with ${map.get(request)!.name}`);
    map.set(request >>> 0, Object.freeze({ name, arg }));
  }
  return map;
}

export function merge(...tables: IoctlTable[]): IoctlTable {
  const map = new Map<number, IoctlSpec>();
  for (const t of tables) for (const [k, v] of t) if (!map.has(k)) map.set(k, v);
  return map;
}

export const NONE: ArgSpec = Object.freeze({ type: 'none' });

export function struct(s: Struct<object>, extra: Omit<StructArg, 'type' | 'struct'> = {}): StructArg {
  const sizeField = s.fields[0]?.name === 'argsz' || s.fields[0]?.name === 'size' ? s.fields[0].name : undefined;
  return Object.freeze({ type: 'struct', struct: s, ...(sizeField ? { sizeField } : {}), ...extra });
}

/** `_IOC(_IOC_NONE, 0x3b, 0x7f, 0)`, strace's rendering of a request it does not know. */
export function unknownRequest(request: number): string {
  const r = request >>> 0;
  const dir = ['_IOC_NONE', '_IOC_WRITE', '_IOC_READ', '_IOC_READ|_IOC_WRITE'][(r >>> 30) & 3];
  return `_IOC(${dir}, ${hex((r >>> 8) & 0xff)}, ${hex(r & 0xff)}, ${hex((r >>> 16) & 0x3fff)})`;
}

/** Reads a NUL-terminated string for display, at most `max` bytes. */
export function peekString(peek: Peek, addr: bigint, max = 256): string {
  // Read in small steps so a string near the end of a mapping still shows.
  const bytes: number[] = [];
  for (let at = 0; at < max; at += 16) {
    const chunk = peek(addr + BigInt(at), 16) ?? peek(addr + BigInt(at), 1);
    if (!chunk) break;
    for (const b of chunk) {
      if (b === 0) return quoteBytes(Uint8Array.from(bytes), max);
      bytes.push(b);
    }
  }
  return bytes.length ? quoteBytes(Uint8Array.from(bytes), max) + '...' : hex(addr);
}

/** Renders `count` elements of `element` at `addr`, at most `max` of them. */
export function peekArray(
  peek: Peek,
  addr: bigint,
  count: number,
  elementSize: number,
  render: (bytes: Uint8Array) => string,
  max = 16,
): string {
  const n = Math.min(count, max);
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const b = peek(addr + BigInt(i * elementSize), elementSize);
    if (!b) {
      parts.push('?');
      break;
    }
    parts.push(render(b));
  }
  if (count > n) parts.push('...');
  return `[${parts.join(', ')}]`;
}
