/**
 * C struct layouts as data. A layout is declared once as a field list; offsets, padding, size
 * and alignment follow the x86-64 C ABI. Decoders and encoders are derived from it, so no other
 * module does offset arithmetic by hand.
 */

export type ScalarType = 'u8' | 'u16' | 'u32' | 'u64' | 's8' | 's16' | 's32' | 's64';

const scalarSize: Record<ScalarType, number> = {
  u8: 1,
  s8: 1,
  u16: 2,
  s16: 2,
  u32: 4,
  s32: 4,
  u64: 8,
  s64: 8,
};

/**
 * One declared field: `[name, type]`, `[name, 'u8', count]` for a fixed byte array,
 * `[name, otherStruct]` for an embedded struct, or the object form for element arrays of wider
 * types and explicit offsets (union members).
 */
export type FieldSpec =
  | readonly [name: string, type: ScalarType]
  | readonly [name: string, type: 'u8', count: number]
  | readonly [name: string, type: Struct<object>]
  | {
      readonly name: string;
      readonly type: ScalarType | Struct<object>;
      readonly count?: number;
      readonly offset?: number;
    };

export interface Field {
  readonly name: string;
  /** Scalar type of the field (of each element for arrays), or 'struct' for an embedded struct. */
  readonly type: ScalarType | 'struct';
  /** Array length; 0 for scalars and embedded structs. */
  readonly count: number;
  readonly offset: number;
  readonly size: number;
  /** The embedded layout when `type` is 'struct'. */
  readonly struct?: Struct<object>;
}

type FieldValue = number | bigint | Uint8Array | readonly number[] | readonly bigint[] | StructValue;
export interface StructValue {
  [field: string]: FieldValue;
}

/** What `encode` accepts: any subset of the fields, recursively for embedded structs. */
export type EncodeValue<T> = {
  [K in keyof T]?: T[K] extends number | bigint | Uint8Array | readonly unknown[] ? T[K] : EncodeValue<T[K]>;
};

// Value types derived from a field list, so a struct's TypeScript type cannot drift from its layout.
type ScalarValue<Ty> = Ty extends 'u64' | 's64' ? bigint : number;
type ArrayValue<Ty> = Ty extends 'u8' ? Uint8Array : Ty extends 'u64' | 's64' ? bigint[] : number[];
type ElementValue<Ty> = Ty extends Struct<infer N> ? N : ScalarValue<Ty>;
type SpecName<F> = F extends readonly [infer N extends string, ...unknown[]]
  ? N
  : F extends { readonly name: infer N extends string }
    ? N
    : never;
type SpecValue<F> = F extends readonly [string, infer Ty, number]
  ? ArrayValue<Ty>
  : F extends readonly [string, infer Ty]
    ? ElementValue<Ty>
    : F extends { readonly type: infer Ty; readonly count: number }
      ? ArrayValue<Ty>
      : F extends { readonly type: infer Ty }
        ? ElementValue<Ty>
        : never;

/**
 * A flexible array member (`__u8 data[]`, `struct vfio_iova_range iova_ranges[]`): not a field
 * and not counted in the value, but its element alignment can raise the struct's alignment and
 * size, and it starts at `offset`.
 */
export type FlexibleSpec = readonly [name: string, type: ScalarType | Struct<object>];

export interface FlexibleArray {
  readonly name: string;
  /** Element type, or 'struct' with `struct` set. */
  readonly type: ScalarType | 'struct';
  readonly struct?: Struct<object>;
  readonly offset: number;
  readonly elementSize: number;
}

/** The value type of a field list: u8..u32/s8..s32 as number, u64/s64 as bigint, u8 arrays as bytes. */
export type StructShape<S extends readonly FieldSpec[]> = { [F in S[number] as SpecName<F>]: SpecValue<F> };

/** The value type of a compiled layout: `StructType<typeof vfio_device_info>`. */
export type StructType<L> = L extends Struct<infer T> ? T : never;

/** A compiled layout: frozen field table plus its codecs. */
export class Struct<T extends object = StructValue> {
  readonly fields: readonly Field[];
  readonly size: number;
  readonly align: number;
  /** The trailing flexible array member, if the C struct has one. */
  readonly flexible?: FlexibleArray;
  private readonly byName: ReadonlyMap<string, Field>;
  /** Codecs specialized to this field table, for structs of scalars and byte arrays. */
  private readonly compiled: CompiledCodec | null;
  /**
   * Views of the two buffers last used: scratch buffers reused on every call (a command's input
   * and its response) need no new DataView.
   */
  private readonly recentViews: [ViewCacheEntry, ViewCacheEntry] = [
    { bytes: null, view: null },
    { bytes: null, view: null },
  ];

  constructor(
    readonly name: string,
    specs: readonly FieldSpec[],
    flexible?: FlexibleSpec,
  ) {
    const fields: Field[] = [];
    let cursor = 0;
    let align = 1;
    for (const spec of specs) {
      const { name: fieldName, type, count, offset } = normalize(spec);
      if (type instanceof Struct) {
        if (count) throw new Error(`${name}.${fieldName}: arrays of structs are not supported`);
        const at = offset ?? roundUp(cursor, type.align);
        fields.push(
          Object.freeze({ name: fieldName, type: 'struct', count: 0, offset: at, size: type.size, struct: type }),
        );
        cursor = Math.max(cursor, at + type.size);
        align = Math.max(align, type.align);
        continue;
      }
      const unit = scalarSize[type];
      const size = count ? unit * count : unit;
      const at = offset ?? roundUp(cursor, unit);
      fields.push(Object.freeze({ name: fieldName, type, count, offset: at, size }));
      cursor = Math.max(cursor, at + size);
      align = Math.max(align, unit);
    }
    if (flexible) {
      const [flexName, type] = flexible;
      const element = type instanceof Struct ? { size: type.size, align: type.align } : scalarSize[type];
      const elementSize = typeof element === 'number' ? element : element.size;
      const elementAlign = typeof element === 'number' ? element : element.align;
      const at = roundUp(cursor, elementAlign);
      this.flexible = Object.freeze(
        type instanceof Struct
          ? { name: flexName, type: 'struct' as const, struct: type, offset: at, elementSize }
          : { name: flexName, type, offset: at, elementSize },
      );
      cursor = at;
      align = Math.max(align, elementAlign);
    }
    this.fields = Object.freeze(fields);
    this.align = align;
    this.size = roundUp(cursor, align);
    this.byName = new Map(fields.map((f) => [f.name, f]));
    this.compiled = fields.every(isFlat) ? compileCodec(fields) : null;
    Object.freeze(this);
  }

  field(name: keyof T & string): Field {
    const f = this.byName.get(name);
    if (!f) throw new Error(`${this.name} has no field ${name}`);
    return f;
  }

  offsetof(name: keyof T & string): number {
    return this.field(name).offset;
  }

  /** `offsetofend(struct, field)`: the kernel's minsz for "everything up to this field". */
  offsetofend(name: keyof T & string): number {
    const f = this.field(name);
    return f.offset + f.size;
  }

  /**
   * Decodes from `bytes` at `offset`. Bytes past the end of `bytes` read as zero, which is how
   * the kernel's zero-filled copy of a short user struct behaves.
   */
  decode(bytes: Uint8Array, offset = 0): T {
    const view = this.viewOf(bytes);
    if (this.compiled && offset + this.size <= bytes.byteLength) return this.compiled.read(bytes, view, offset) as T;
    return this.read(view, offset) as T;
  }

  /**
   * Encodes `value` into `into` at `offset`, or into a new (zeroed) buffer. Fields missing from
   * `value` are left as they are in `into`.
   */
  encode(value: EncodeValue<T>, into?: Uint8Array, offset = 0): Uint8Array {
    const bytes = into ?? new Uint8Array(this.size);
    const view = this.viewOf(bytes);
    if (this.compiled && offset + this.size <= bytes.byteLength) this.compiled.write(bytes, view, value, offset);
    else this.write(view, value as StructValue, offset);
    return bytes;
  }

  private viewOf(bytes: Uint8Array): DataView {
    const [newest, older] = this.recentViews;
    if (newest.bytes === bytes) return newest.view!;
    if (older.bytes !== bytes) {
      older.bytes = bytes;
      older.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    }
    this.recentViews[0] = older;
    this.recentViews[1] = newest;
    return older.view!;
  }

  // Embedded structs share the outer view.
  private read(view: DataView, offset: number): StructValue {
    const out: StructValue = {};
    for (const f of this.fields) {
      out[f.name] = f.struct ? f.struct.read(view, offset + f.offset) : readField(view, offset + f.offset, f);
    }
    return out;
  }

  private write(view: DataView, value: Partial<StructValue>, offset: number): void {
    for (const f of this.fields) {
      const v = value[f.name];
      if (v === undefined) continue;
      if (f.struct) f.struct.write(view, v as StructValue, offset + f.offset);
      else writeField(view, offset + f.offset, f, v);
    }
  }
}

/**
 * Declares a layout. The value type is inferred from the field list
 * (`defineStruct('x', [['argsz', 'u32']])` is a `Struct<{ argsz: number }>`), or given explicitly
 * as `defineStruct<MyType>(...)`. `flexible` names a trailing flexible array member.
 */
export function defineStruct<T extends object = never, const S extends readonly FieldSpec[] = readonly FieldSpec[]>(
  name: string,
  specs: S,
  flexible?: FlexibleSpec,
): Struct<[T] extends [never] ? StructShape<S> : T> {
  return new Struct(name, specs, flexible);
}

/** Decodes `count` consecutive elements: the flexible array members (`ranges[]`, `devices[]`). */
export function decodeArray<T extends object>(
  struct: Struct<T>,
  bytes: Uint8Array,
  offset: number,
  count: number,
): T[] {
  const out: T[] = [];
  for (let i = 0; i < count; i++) out.push(struct.decode(bytes, offset + i * struct.size));
  return out;
}

/** Encodes consecutive elements into `into` at `offset`, or into a new buffer of exactly their size. */
export function encodeArray<T extends object>(
  struct: Struct<T>,
  values: readonly EncodeValue<T>[],
  into?: Uint8Array,
  offset = 0,
): Uint8Array {
  const bytes = into ?? new Uint8Array(struct.size * values.length);
  values.forEach((v, i) => struct.encode(v, bytes, offset + i * struct.size));
  return bytes;
}

function normalize(spec: FieldSpec): {
  name: string;
  type: ScalarType | Struct<object>;
  count: number;
  offset?: number;
} {
  if (Array.isArray(spec)) {
    const [name, type, count] = spec as readonly [string, ScalarType | Struct<object>, number?];
    return { name, type, count: count ?? 0 };
  }
  const s = spec as Exclude<FieldSpec, readonly unknown[]>;
  return { name: s.name, type: s.type, count: s.count ?? 0, ...(s.offset === undefined ? {} : { offset: s.offset }) };
}

interface ViewCacheEntry {
  bytes: Uint8Array | null;
  view: DataView | null;
}

interface CompiledCodec {
  read(bytes: Uint8Array, view: DataView, offset: number): StructValue;
  write(bytes: Uint8Array, view: DataView, value: object, offset: number): void;
}

function isFlat(f: Field): boolean {
  return f.type !== 'struct' && (f.count === 0 || f.type === 'u8');
}

/**
 * Generates a reader and a writer with every offset and accessor resolved (the ioctl paths
 * decode a struct per call; a walk over the field list costs several times more). The code is
 * derived from the field table alone, so it cannot disagree with the generic path.
 */
function compileCodec(fields: readonly Field[]): CompiledCodec {
  const reads = fields.map((f) => `${JSON.stringify(f.name)}: ${compiledRead(f)}`);
  const writes = fields.map((f) => {
    const value = `o[${JSON.stringify(f.name)}]`;
    return `if (${value} !== undefined) ${compiledWrite(f, value)}`;
  });
  return {
    read: new Function('b', 'v', 'p', `return { ${reads.join(', ')} };`) as CompiledCodec['read'],
    write: new Function('b', 'v', 'o', 'p', writes.join('\n')) as CompiledCodec['write'],
  };
}

const DATAVIEW_GETTER: Record<ScalarType, string> = {
  u8: 'getUint8',
  s8: 'getInt8',
  u16: 'getUint16',
  s16: 'getInt16',
  u32: 'getUint32',
  s32: 'getInt32',
  u64: 'getBigUint64',
  s64: 'getBigInt64',
};

function compiledRead(f: Field): string {
  const at = `p + ${f.offset}`;
  if (f.count) return `b.slice(${at}, ${at} + ${f.count})`;
  return `v.${DATAVIEW_GETTER[f.type as ScalarType]}(${at}${f.size > 1 ? ', true' : ''})`;
}

function compiledWrite(f: Field, value: string): string {
  const at = `p + ${f.offset}`;
  if (f.count) return `{ for (let i = 0; i < ${f.count}; i++) b[${at} + i] = ${value}[i] ?? 0; }`;
  switch (f.size) {
    case 1:
      return `v.setUint8(${at}, Number(${value}) & 0xff);`;
    case 2:
      return `v.setUint16(${at}, Number(${value}) & 0xffff, true);`;
    case 4:
      return `v.setUint32(${at}, typeof ${value} === 'number' ? ${value} >>> 0 : Number(BigInt.asUintN(32, ${value})), true);`;
    default:
      // setBigUint64 wraps modulo 2^64 by itself (ToBigUint64).
      return `v.setBigUint64(${at}, typeof ${value} === 'number' ? BigInt(Math.trunc(${value})) : ${value}, true);`;
  }
}

function roundUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function readField(view: DataView, at: number, f: Field): FieldValue {
  const type = f.type as ScalarType;
  if (!f.count) return readScalarZeroFilled(view, at, type);
  if (type === 'u8') {
    const out = new Uint8Array(f.size);
    const end = Math.min(at + f.size, view.byteLength);
    if (end > at) out.set(new Uint8Array(view.buffer, view.byteOffset + at, end - at));
    return out;
  }
  const unit = scalarSize[type];
  const out: (number | bigint)[] = [];
  for (let i = 0; i < f.count; i++) out.push(readScalarZeroFilled(view, at + i * unit, type));
  return out as number[] | bigint[];
}

function readScalarZeroFilled(view: DataView, at: number, type: ScalarType): number | bigint {
  const size = scalarSize[type];
  if (at + size <= view.byteLength) return readScalar(view, at, type);
  if (at >= view.byteLength) return size === 8 ? 0n : 0;
  // A field cut by the end of the buffer: assemble what is there, zero the rest.
  const tmp = new DataView(new ArrayBuffer(8));
  for (let i = 0; at + i < view.byteLength; i++) tmp.setUint8(i, view.getUint8(at + i));
  return readScalar(tmp, 0, type);
}

function readScalar(view: DataView, at: number, type: ScalarType): number | bigint {
  switch (type) {
    case 'u8':
      return view.getUint8(at);
    case 's8':
      return view.getInt8(at);
    case 'u16':
      return view.getUint16(at, true);
    case 's16':
      return view.getInt16(at, true);
    case 'u32':
      return view.getUint32(at, true);
    case 's32':
      return view.getInt32(at, true);
    case 'u64':
      return view.getBigUint64(at, true);
    case 's64':
      return view.getBigInt64(at, true);
  }
}

function writeField(view: DataView, at: number, f: Field, v: FieldValue): void {
  const type = f.type as ScalarType;
  if (!f.count) return writeScalar(view, at, type, v as number | bigint);
  if (type === 'u8') {
    const src = v as Uint8Array;
    for (let i = 0; i < f.size; i++) view.setUint8(at + i, src[i] ?? 0);
    return;
  }
  const src = v as readonly (number | bigint)[];
  const unit = scalarSize[type];
  for (let i = 0; i < f.count; i++) writeScalar(view, at + i * unit, type, src[i] ?? 0);
}

function writeScalar(view: DataView, at: number, type: ScalarType, v: number | bigint): void {
  switch (type) {
    case 'u8':
    case 's8':
      view.setUint8(at, Number(v) & 0xff);
      return;
    case 'u16':
    case 's16':
      view.setUint16(at, Number(v) & 0xffff, true);
      return;
    case 'u32':
    case 's32':
      view.setUint32(at, typeof v === 'number' ? v >>> 0 : Number(BigInt.asUintN(32, v)), true);
      return;
    case 'u64':
    case 's64':
      view.setBigUint64(at, typeof v === 'number' ? BigInt(Math.trunc(v)) : v, true);
      return;
  }
}
