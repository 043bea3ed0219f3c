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

/** One declared field: `[name, type]`, or `[name, 'u8', count]` for a fixed byte array. */
export type FieldSpec =
  | readonly [name: string, type: ScalarType]
  | readonly [name: string, type: 'u8', count: number]
  | { readonly name: string; readonly type: ScalarType; readonly count?: number; readonly offset?: number };

export interface Field {
  readonly name: string;
  readonly type: ScalarType;
  /** Array length for byte arrays; 0 for scalars. */
  readonly count: number;
  readonly offset: number;
  readonly size: number;
}

type FieldValue = number | bigint | Uint8Array;
export type StructValue = Record<string, FieldValue>;

/** A compiled layout: frozen field table plus its codecs. */
export class Struct<T extends object = StructValue> {
  readonly fields: readonly Field[];
  readonly size: number;
  readonly align: number;
  private readonly byName: ReadonlyMap<string, Field>;

  constructor(
    readonly name: string,
    specs: readonly FieldSpec[],
  ) {
    const fields: Field[] = [];
    let cursor = 0;
    let align = 1;
    for (const spec of specs) {
      const { name: fieldName, type, count, offset } = normalize(spec);
      const unit = scalarSize[type];
      const size = count ? unit * count : unit;
      const at = offset ?? roundUp(cursor, unit);
      fields.push(Object.freeze({ name: fieldName, type, count, offset: at, size }));
      cursor = Math.max(cursor, at + size);
      align = Math.max(align, unit);
    }
    this.fields = Object.freeze(fields);
    this.align = align;
    this.size = roundUp(cursor, align);
    this.byName = new Map(fields.map((f) => [f.name, f]));
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
    const out: StructValue = {};
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (const f of this.fields) out[f.name] = readField(view, offset + f.offset, f);
    return out as T;
  }

  /** Encodes `value` (missing fields are zero) into `into` at `offset`, or into a new buffer. */
  encode(value: Partial<T>, into?: Uint8Array, offset = 0): Uint8Array {
    const bytes = into ?? new Uint8Array(this.size);
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const record = value as Partial<StructValue>;
    for (const f of this.fields) {
      const v = record[f.name];
      if (v !== undefined) writeField(view, offset + f.offset, f, v);
    }
    return bytes;
  }
}

export function defineStruct<T extends object>(name: string, specs: readonly FieldSpec[]): Struct<T> {
  return new Struct<T>(name, specs);
}

function normalize(spec: FieldSpec): { name: string; type: ScalarType; count: number; offset?: number } {
  if (Array.isArray(spec)) {
    const [name, type, count] = spec as readonly [string, ScalarType, number?];
    return { name, type, count: count ?? 0 };
  }
  const s = spec as Exclude<FieldSpec, readonly unknown[]>;
  return { name: s.name, type: s.type, count: s.count ?? 0, ...(s.offset === undefined ? {} : { offset: s.offset }) };
}

function roundUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

function readField(view: DataView, at: number, f: Field): FieldValue {
  if (f.count) {
    const out = new Uint8Array(f.size);
    for (let i = 0; i < f.size; i++) out[i] = at + i < view.byteLength ? view.getUint8(at + i) : 0;
    return out;
  }
  if (at + f.size > view.byteLength) {
    if (at >= view.byteLength) return f.size === 8 ? 0n : 0;
    // A field cut by the end of the buffer: assemble what is there, zero the rest.
    const tmp = new DataView(new ArrayBuffer(8));
    for (let i = 0; at + i < view.byteLength; i++) tmp.setUint8(i, view.getUint8(at + i));
    return readScalar(tmp, 0, f.type);
  }
  return readScalar(view, at, f.type);
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
  if (f.count) {
    const src = v as Uint8Array;
    for (let i = 0; i < f.size; i++) view.setUint8(at + i, src[i] ?? 0);
    return;
  }
  switch (f.type) {
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
      view.setUint32(at, typeof v === 'number' ? v >>> 0 : Number(BigInt.asUintN(32, v as bigint)), true);
      return;
    case 'u64':
    case 's64':
      view.setBigUint64(at, BigInt.asUintN(64, typeof v === 'number' ? BigInt(Math.trunc(v)) : (v as bigint)), true);
      return;
  }
}
