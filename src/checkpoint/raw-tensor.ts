/**
 * RawTensor: the one in-memory form every checkpoint reader in src/checkpoint/ produces and every
 * writer accepts — a dtype, a shape and contiguous row-major little-endian bytes. It is
 * deliberately not a libtorch tensor, so checkpoints can be inspected, converted and tested
 * without the native addon; turning a RawTensor into a live tensor is the tensor layer's job.
 */
import { readFile } from 'node:fs/promises';

export type DType =
  | 'float32' | 'float64' | 'bfloat16' | 'float16'
  | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** Contiguous row-major little-endian bytes; `data.byteLength === numel(shape) * DTYPE_SIZE[dtype]`. */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: Uint8Array;
}

/** Bytes per element. */
export const DTYPE_SIZE: Record<DType, number> = {
  float32: 4, float64: 8, bfloat16: 2, float16: 2,
  int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1,
};

export const DTYPES = Object.keys(DTYPE_SIZE) as DType[];

/** Every malformed or unsupported checkpoint ends in this error; its message names the problem and the fix. */
export class CheckpointError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CheckpointError';
  }
}

export function isDType(value: unknown): value is DType {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, value);
}

/**
 * Number of elements of `shape` (1 for a scalar). Throws when a dimension is not a non-negative
 * integer, or when the byte size would pass 2^53 (beyond what a JS number indexes exactly).
 */
export function numel(shape: readonly number[], where = 'tensor'): number {
  let n = 1;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw new CheckpointError(
        `${where}: shape [${shape.join(', ')}] has dimension ${String(d)}; ` +
        'every dimension must be a non-negative integer');
    }
    n *= d;
    if (!Number.isSafeInteger(n * 8)) {
      throw new CheckpointError(`${where}: shape [${shape.join(', ')}] has more elements than can be addressed`);
    }
  }
  return n;
}

/** Throws a CheckpointError unless `t` is a well-formed RawTensor (valid dtype, shape, byte length). */
export function validateRawTensor(t: unknown, where = 'tensor'): asserts t is RawTensor {
  if (typeof t !== 'object' || t === null) {
    throw new CheckpointError(`${where}: expected a RawTensor { dtype, shape, data }, got ${describe(t)}`);
  }
  const { dtype, shape, data } = t as Partial<RawTensor>;
  if (!isDType(dtype)) {
    throw new CheckpointError(`${where}: dtype ${JSON.stringify(dtype)} is not one of ${DTYPES.join(', ')}`);
  }
  if (!Array.isArray(shape)) throw new CheckpointError(`${where}: shape must be an array of integers`);
  const n = numel(shape, where);
  if (!(data instanceof Uint8Array)) {
    throw new CheckpointError(`${where}: data must be a Uint8Array of raw bytes, got ${describe(data)}`);
  }
  if (data.byteLength !== n * DTYPE_SIZE[dtype]) {
    throw new CheckpointError(
      `${where}: ${dtype} shape [${shape.join(', ')}] needs ${n * DTYPE_SIZE[dtype]} bytes ` +
      `but data holds ${data.byteLength}`);
  }
}

/** Structural check used to tell tensors from other values inside an unpickled checkpoint. */
export function isRawTensor(value: unknown): value is RawTensor {
  if (typeof value !== 'object' || value === null) return false;
  const t = value as Partial<RawTensor>;
  return isDType(t.dtype) && Array.isArray(t.shape) && t.data instanceof Uint8Array;
}

/**
 * Reads a whole checkpoint file. Node cannot read files over 2 GiB into one buffer; that case gets a
 * CheckpointError with a way out instead of a bare RangeError. Other I/O errors (ENOENT, EACCES)
 * pass through unchanged.
 */
export async function readCheckpointBytes(file: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_FS_FILE_TOO_LARGE') {
      throw new CheckpointError(`${file}: the file is larger than the 2 GiB Node can read at once; ` +
        'split the state dict into several files (e.g. one per top-level module) and load each', { cause: err });
    }
    throw err;
  }
}

/** A short description of a value's type, for error messages. */
export function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value instanceof Map) return `a Map of ${value.size}`;
  if (value instanceof Uint8Array) return `${value.byteLength} bytes`;
  if (isRawTensor(value)) return `a ${value.dtype} tensor [${value.shape.join(', ')}]`;
  if (typeof value === 'object') return 'an object';
  return typeof value === 'string' ? `the string ${JSON.stringify(value.slice(0, 40))}` : `${typeof value} ${String(value)}`;
}

// ---- value access ------------------------------------------------------------------------------

type Decoded = number[] | bigint[] | boolean[];

/**
 * The elements of `t`, flattened in row-major order: float and small int dtypes as numbers
 * (bfloat16/float16 widened exactly), int64 as bigint (it does not fit a number), bool as boolean.
 */
export function toFlatArray(t: RawTensor): Decoded {
  validateRawTensor(t);
  const n = t.data.byteLength / DTYPE_SIZE[t.dtype];
  const view = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  switch (t.dtype) {
    case 'float32': return Array.from({ length: n }, (_, i) => view.getFloat32(4 * i, true));
    case 'float64': return Array.from({ length: n }, (_, i) => view.getFloat64(8 * i, true));
    case 'bfloat16': return Array.from({ length: n }, (_, i) => bfloat16ToNumber(view.getUint16(2 * i, true)));
    case 'float16': return Array.from({ length: n }, (_, i) => float16ToNumber(view.getUint16(2 * i, true)));
    case 'int64': return Array.from({ length: n }, (_, i) => view.getBigInt64(8 * i, true));
    case 'int32': return Array.from({ length: n }, (_, i) => view.getInt32(4 * i, true));
    case 'int16': return Array.from({ length: n }, (_, i) => view.getInt16(2 * i, true));
    case 'int8': return Array.from({ length: n }, (_, i) => view.getInt8(i));
    case 'uint8': return Array.from({ length: n }, (_, i) => view.getUint8(i));
    case 'bool': return Array.from({ length: n }, (_, i) => view.getUint8(i) !== 0);
  }
}

/**
 * Builds a RawTensor from row-major values (the inverse of toFlatArray). Floats round to nearest
 * even as PyTorch does; integers must fit the dtype.
 */
export function fromFlatArray(dtype: DType, shape: number[], values: ArrayLike<number | bigint | boolean>): RawTensor {
  const n = numel(shape);
  if (values.length !== n) {
    throw new CheckpointError(`fromFlatArray: shape [${shape.join(', ')}] has ${n} elements but ${values.length} values were given`);
  }
  const data = new Uint8Array(n * DTYPE_SIZE[dtype]);
  const view = new DataView(data.buffer);
  for (let i = 0; i < n; i++) {
    const v = values[i];
    switch (dtype) {
      case 'float32': view.setFloat32(4 * i, Number(v), true); break;
      case 'float64': view.setFloat64(8 * i, Number(v), true); break;
      case 'bfloat16': view.setUint16(2 * i, numberToBfloat16(Number(v)), true); break;
      case 'float16': view.setUint16(2 * i, numberToFloat16(Number(v)), true); break;
      case 'int64': view.setBigInt64(8 * i, BigInt(v), true); break;
      case 'int32': view.setInt32(4 * i, checkedInt(v, -(2 ** 31), 2 ** 31 - 1, dtype), true); break;
      case 'int16': view.setInt16(2 * i, checkedInt(v, -(2 ** 15), 2 ** 15 - 1, dtype), true); break;
      case 'int8': view.setInt8(i, checkedInt(v, -128, 127, dtype)); break;
      case 'uint8': view.setUint8(i, checkedInt(v, 0, 255, dtype)); break;
      case 'bool': view.setUint8(i, v ? 1 : 0); break;
    }
  }
  return { dtype, shape: [...shape], data };
}

function checkedInt(v: number | bigint | boolean, lo: number, hi: number, dtype: DType): number {
  const x = Number(v);
  if (!Number.isInteger(x) || x < lo || x > hi) {
    throw new CheckpointError(`fromFlatArray: ${String(v)} does not fit ${dtype} (${lo}..${hi})`);
  }
  return x;
}

// ---- 16-bit floats -----------------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bfloat16ToNumber(bits: number): number {
  u32[0] = bits << 16;
  return f32[0]!;
}

/** Round-to-nearest-even on the float32 bits (doubles round to float32 first), as torch converts. */
export function numberToBfloat16(x: number): number {
  f32[0] = x;
  const bits = u32[0]!;
  if (Number.isNaN(x)) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

export function float16ToNumber(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exp = (bits >>> 10) & 0x1f;
  const frac = bits & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/**
 * IEEE binary16 with round-to-nearest-even, overflow to ±Infinity and gradual underflow. Like
 * PyTorch (c10::Half has only a float constructor) the value is rounded to float32 first, so
 * doubles convert exactly as `torch.tensor(x, dtype=torch.float64).half()` does.
 */
export function numberToFloat16(value: number): number {
  const x = Math.fround(value);
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= 65520) return sign | 0x7c00; // 65520 is the first value that rounds past the max 65504
  if (a < 2 ** -14) return sign | roundEven(a / 2 ** -24); // subnormal: units of 2^-24
  let exp = Math.floor(Math.log2(a));
  if (2 ** exp > a) exp -= 1; // log2 can be off by one ulp near powers of two
  let mant = roundEven((a / 2 ** exp - 1) * 1024);
  if (mant === 1024) { mant = 0; exp += 1; }
  return sign | ((exp + 15) << 10) | mant;
}

function roundEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
