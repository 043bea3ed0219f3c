/**
 * Renders decoded uapi structs the way strace prints them: `{argsz=32, flags=READ|WRITE,
 * iova=0x100000}`, with `before => after` for fields the kernel changed. Numbers follow one
 * rule: 64-bit fields (addresses, sizes, IOVAs) in hex, narrower fields in decimal, flag words
 * symbolically when the caller names their bits.
 */
import type { Field, Struct } from '../uapi/layout.js';

/** Bit -> name, for one flags word. Multi-bit masks may be listed too (matched whole). */
export type FlagNames = readonly (readonly [bits: number, name: string])[];

/** Per field name: how to show it. */
export interface FieldStyle {
  readonly flags?: FlagNames;
  /** Whole-value names (enums): value -> name. */
  readonly values?: ReadonlyMap<number, string>;
  readonly hex?: boolean;
  /** Custom rendering of the raw value. */
  readonly render?: (value: unknown) => string;
}

export type StructStyle = Readonly<Record<string, FieldStyle>>;

const HIDDEN_WHEN_ZERO = /^(__)?(pad|reserved|resv)\d*$|^__reserved\d*$|^__pad$/;

export function hex(v: number | bigint): string {
  if (typeof v === 'number') return v < 0 ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
  return v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`;
}

/** `READ|WRITE`, `0`, or `READ|0x80` for unknown bits. */
export function flagsToString(value: number | bigint, names: FlagNames): string {
  let rest = BigInt(value);
  if (rest === 0n) return '0';
  const parts: string[] = [];
  for (const [bits, name] of names) {
    const b = BigInt(bits >>> 0);
    if (b !== 0n && (rest & b) === b) {
      parts.push(name);
      rest &= ~b;
    }
  }
  if (rest !== 0n) parts.push(hex(rest));
  return parts.join('|');
}

function scalar(field: Field, value: unknown, style: FieldStyle | undefined): string {
  if (style?.render) return style.render(value);
  if (style?.flags && (typeof value === 'number' || typeof value === 'bigint'))
    return flagsToString(value, style.flags);
  if (style?.values && typeof value === 'number') return style.values.get(value) ?? String(value);
  if (value instanceof Uint8Array) return bytesToHex(value);
  if (Array.isArray(value)) return `[${value.map((v) => scalar({ ...field, count: 0 }, v, style)).join(', ')}]`;
  if (typeof value === 'bigint') return style?.hex === false ? value.toString() : hex(value);
  if (typeof value === 'number') return style?.hex ? hex(value) : String(value);
  return String(value);
}

export function bytesToHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function same(a: unknown, b: unknown): boolean {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return a.length === b.length && a.every((x, i) => x === b[i]);
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => x === b[i]);
  return a === b;
}

/**
 * Renders `before` (and, if given, what the kernel left in `after`) field by field. `limit` is
 * the number of bytes the caller declared (argsz/size): fields past it are not part of the
 * call and are left out.
 */
export function formatStruct<T extends object>(
  struct: Struct<T>,
  before: T,
  after?: T,
  style: StructStyle = {},
  limit = struct.size,
): string {
  const parts: string[] = [];
  for (const field of struct.fields) {
    if (field.offset + field.size > limit && parts.length > 0) break;
    const b = (before as Record<string, unknown>)[field.name];
    const a = after === undefined ? b : (after as Record<string, unknown>)[field.name];
    if (field.struct) {
      const inner = field.struct as Struct<object>;
      const shown = formatStruct(inner, b as object, a as object, style);
      parts.push(`${field.name}=${shown}`);
      continue;
    }
    if (HIDDEN_WHEN_ZERO.test(field.name) && isZero(b) && isZero(a)) continue;
    const fs = style[field.name];
    const text = scalar(field, b, fs);
    parts.push(same(a, b) ? `${field.name}=${text}` : `${field.name}=${text} => ${scalar(field, a, fs)}`);
  }
  return `{${parts.join(', ')}}`;
}

function isZero(v: unknown): boolean {
  if (v === 0 || v === 0n) return true;
  if (v instanceof Uint8Array) return v.every((x) => x === 0);
  if (Array.isArray(v)) return v.every((x) => x === 0 || x === 0n);
  return false;
}

/** Renders bytes the way strace shows buffers: a C string with escapes, cut after `max` bytes. */
export function quoteBytes(bytes: Uint8Array, max = 32): string {
  let out = '"';
  const n = Math.min(bytes.length, max);
  for (let i = 0; i < n; i++) {
    const b = bytes[i]!;
    if (b === 0x22 || b === 0x5c) out += '\\' + String.fromCharCode(b);
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else if (b === 0x0a) out += '\\n';
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  out += '"';
  return bytes.length > max ? out + '...' : out;
}
