/**
 * Per-command scratch buffers for the iommufd ioctl path: the user's struct is copied into one
 * buffer and decoded from it, and responses are encoded into another, so a call allocates only
 * the decoded value. The codecs themselves are the uapi layouts' (compiled once per struct).
 */
import type { Struct } from '../../uapi/layout.js';

export interface StructCodec<T extends object> {
  /** A struct-sized buffer to copy a command into, and its decoder. */
  readonly input: Uint8Array;
  decodeInput(): T;
  /** Encodes into a buffer owned by the codec (valid until the next encode). */
  encode(value: T): Uint8Array;
}

const cache = new WeakMap<Struct<object>, StructCodec<object>>();

export function codecOf<T extends object>(struct: Struct<T>): StructCodec<T> {
  let codec = cache.get(struct as Struct<object>);
  if (!codec) {
    codec = scratchCodec(struct as Struct<object>);
    cache.set(struct as Struct<object>, codec);
  }
  return codec as StructCodec<T>;
}

function scratchCodec(struct: Struct<object>): StructCodec<object> {
  const input = new Uint8Array(struct.size);
  const output = new Uint8Array(struct.size);
  return {
    input,
    decodeInput: () => struct.decode(input),
    encode: (value) => {
      output.fill(0);
      return struct.encode(value, output);
    },
  };
}
