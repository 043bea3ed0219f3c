/**
 * Compiled codecs for the ioctl fast path: each command's struct is turned once into a decoder
 * and an encoder specialized to its field table (the uapi `Struct` - no offsets are written by
 * hand here), so that a call costs a few typed-array reads and writes instead of a walk over
 * the field list. Structs with embedded structs or wide arrays keep the generic codec.
 */
import type { Field, Struct } from '../../uapi/layout.js';

export interface StructCodec<T extends object> {
  /** Decodes a buffer of exactly struct.size bytes. */
  decode(bytes: Uint8Array): T;
  /** A struct-sized scratch buffer to copy a command into, and its decoder. */
  readonly input: Uint8Array;
  decodeInput(): T;
  /** Encodes into a scratch buffer owned by the codec (valid until the next encode). */
  encode(value: T): Uint8Array;
}

const cache = new WeakMap<Struct<object>, StructCodec<object>>();

export function codecOf<T extends object>(struct: Struct<T>): StructCodec<T> {
  let codec = cache.get(struct as Struct<object>);
  if (!codec) {
    codec = compile(struct as Struct<object>);
    cache.set(struct as Struct<object>, codec);
  }
  return codec as StructCodec<T>;
}

function compile(struct: Struct<object>): StructCodec<object> {
  const input = new Uint8Array(struct.size);
  if (!struct.fields.every(simple)) {
    return {
      decode: (bytes) => struct.decode(bytes),
      input,
      decodeInput: () => struct.decode(input),
      encode: (value) => struct.encode(value),
    };
  }
  const reads = struct.fields.map((f) => `${JSON.stringify(f.name)}: ${reader(f)}`);
  const writes = struct.fields.map(writer);
  const decodeBody = new Function('b', 'v', `return { ${reads.join(', ')} };`) as (
    b: Uint8Array,
    v: DataView,
  ) => object;
  const encodeBody = new Function('v', 'o', 'b', writes.join('\n')) as (
    v: DataView,
    o: Record<string, unknown>,
    b: Uint8Array,
  ) => void;
  const scratch = new Uint8Array(struct.size);
  const scratchView = new DataView(scratch.buffer);
  const inputView = new DataView(input.buffer);
  return {
    decode: (bytes) => decodeBody(bytes, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)),
    input,
    decodeInput: () => decodeBody(input, inputView),
    encode: (value) => {
      encodeBody(scratchView, value as Record<string, unknown>, scratch);
      return scratch;
    },
  };
}

function simple(f: Field): boolean {
  return f.type !== 'struct' && (f.count === 0 || f.type === 'u8');
}

function reader(f: Field): string {
  const at = f.offset;
  if (f.count) return `b.slice(${at}, ${at + f.count})`;
  switch (f.type) {
    case 'u8':
      return `v.getUint8(${at})`;
    case 's8':
      return `v.getInt8(${at})`;
    case 'u16':
      return `v.getUint16(${at}, true)`;
    case 's16':
      return `v.getInt16(${at}, true)`;
    case 'u32':
      return `v.getUint32(${at}, true)`;
    case 's32':
      return `v.getInt32(${at}, true)`;
    case 'u64':
      return `v.getBigUint64(${at}, true)`;
    case 's64':
      return `v.getBigInt64(${at}, true)`;
    default:
      throw new Error(`no reader for ${f.type}`);
  }
}

function writer(f: Field): string {
  const at = f.offset;
  const value = `o[${JSON.stringify(f.name)}]`;
  if (f.count) return `for (let i = 0; i < ${f.count}; i++) b[${at} + i] = (${value} && ${value}[i]) | 0;`;
  switch (f.type) {
    case 'u8':
    case 's8':
      return `v.setUint8(${at}, Number(${value}) & 0xff);`;
    case 'u16':
    case 's16':
      return `v.setUint16(${at}, Number(${value}) & 0xffff, true);`;
    case 'u32':
    case 's32':
      return `v.setUint32(${at}, Number(${value}) >>> 0, true);`;
    case 'u64':
    case 's64':
      return `v.setBigUint64(${at}, BigInt.asUintN(64, BigInt(${value})), true);`;
    default:
      throw new Error(`no writer for ${f.type}`);
  }
}
