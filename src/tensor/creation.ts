/**
 * Making tensors: from JS data (TypedArrays, nested arrays, numbers) and from libtorch's
 * factories, with dtype, device and requiresGrad options, and seeded random sampling.
 */
import { native, type DType, type NativeGenerator } from '../native/binding.js';
import * as aten from '../ops/generated/ops.gen.js';
import { Tensor, type Device, type NestedArray } from './tensor.js';
// For its side effect too: tensor.ts registers the Tensor class with the addon, so tensors made
// here have Tensor's methods even when nothing else imported tensor.ts (TypeScript drops a type-only import).
import './tensor.js';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

export interface RandomOptions extends TensorOptions {
  /** A seed for this call only; the global generator is left untouched. */
  seed?: number;
  /** A generator made by generator(seed), advanced by each call. */
  generator?: NativeGenerator;
}

/** Seeds the global generators (CPU and every CUDA device), as torch.manual_seed. */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}

/** A CPU random generator of its own, for reproducible sampling independent of the global one. */
export function generator(seed: number): NativeGenerator {
  return native.makeGenerator(seed);
}

function finish(t: Tensor, options: TensorOptions): Tensor {
  if (options.requiresGrad) t.requiresGrad = true;
  return t;
}

const TYPED_DTYPE: [Function, DType][] = [
  [Float32Array, 'float32'], [Float64Array, 'float64'], [BigInt64Array, 'int64'], [Int32Array, 'int32'],
  [Int16Array, 'int16'], [Int8Array, 'int8'], [Uint8Array, 'uint8'],
];

function typedDtype(data: ArrayBufferView): DType {
  for (const [ctor, dtype] of TYPED_DTYPE) if (data instanceof ctor) return dtype;
  throw new TypeError(`tensor(): unsupported TypedArray ${data.constructor.name}; use Float32Array, Float64Array, ` +
    'BigInt64Array, Int32Array, Int16Array, Int8Array or Uint8Array');
}

/** Shape of a nested array; throws when rows are ragged. */
function nestedShape(data: NestedArray): number[] {
  const shape: number[] = [];
  let level: NestedArray = data;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0];
  }
  return shape;
}

function flatten(data: NestedArray, shape: number[], depth: number, out: number[]): void {
  if (depth === shape.length) {
    if (Array.isArray(data)) throw new TypeError(`tensor(): ragged nested array (expected shape [${shape}])`);
    if (typeof data !== 'number' && typeof data !== 'boolean') {
      // Float64Array.from would turn it into NaN silently.
      const shown = typeof data === 'string' ? `the string '${data}'` : `${data === null ? 'null' : typeof data}`;
      throw new TypeError(`tensor(): elements must be numbers or booleans, got ${shown} at flat index ${out.length}; ` +
        'convert the data first (e.g. Number(x)), or use a TypedArray');
    }
    out.push(typeof data === 'boolean' ? Number(data) : data);
    return;
  }
  if (!Array.isArray(data) || data.length !== shape[depth]) {
    throw new TypeError(`tensor(): ragged nested array (expected shape [${shape}])`);
  }
  for (const v of data) flatten(v, shape, depth + 1, out);
}

function firstLeaf(data: NestedArray): number | boolean | undefined {
  let v: NestedArray = data;
  while (Array.isArray(v)) {
    if (v.length === 0) return undefined;
    v = v[0];
  }
  return v;
}

/**
 * A tensor holding a copy of `data`. TypedArrays keep their element type; nested number arrays
 * become float32 (booleans become bool) unless `dtype` says otherwise. `shape` reshapes flat data.
 */
export function tensor(data: NestedArray | ArrayBufferView, options: TensorOptions & { shape?: number[] } = {}): Tensor {
  let t: Tensor;
  if (ArrayBuffer.isView(data)) {
    const dtype = typedDtype(data);
    const count = data.byteLength / (data as Float32Array).BYTES_PER_ELEMENT;
    t = native.fromTypedArray(data, options.shape ?? [count], dtype) as Tensor;
  } else {
    const shape = nestedShape(data);
    const values: number[] = [];
    flatten(data, shape, 0, values);
    const inferred: DType = typeof firstLeaf(data) === 'boolean' ? 'bool' : 'float32';
    const holder: DType = inferred === 'bool' ? 'uint8' : 'float64';
    const array = holder === 'uint8' ? Uint8Array.from(values) : Float64Array.from(values);
    t = native.fromTypedArray(array, options.shape ?? shape, holder) as Tensor;
    const wanted = options.dtype ?? inferred;
    if (wanted !== holder) t = aten._to_copy(t, wanted);
  }
  if (options.dtype && options.dtype !== t.dtype) t = aten._to_copy(t, options.dtype);
  if (options.device && options.device !== 'cpu') t = t.to({ device: options.device });
  return finish(t, options);
}

type Shape = number[];
const dev = (o: TensorOptions) => o.device ?? null;

export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  return finish(aten.zeros(shape, options.dtype ?? 'float32', null, dev(options)), options);
}
export function ones(shape: Shape, options: TensorOptions = {}): Tensor {
  return finish(aten.ones(shape, options.dtype ?? 'float32', null, dev(options)), options);
}
/**
 * Filled with `value`: float32 for numbers (JavaScript has no int/float distinction, as in
 * tensor()), bool for booleans; pass `dtype: 'int64'` where torch.full would infer an integer.
 */
export function full(shape: Shape, value: number | boolean, options: TensorOptions = {}): Tensor {
  return finish(aten.full(shape, value, options.dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32'), null, dev(options)), options);
}
/** Uninitialised memory: every element must be written before it is read. */
export function empty(shape: Shape, options: TensorOptions = {}): Tensor {
  return finish(aten.empty_memory_format(shape, options.dtype ?? 'float32', null, dev(options)), options);
}
/**
 * [start, end) in steps of `step`; `arange(n)` is [0, n). Integral arguments give int64, as in
 * PyTorch; pass `dtype` for anything else.
 */
export function arange(start: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  return finish(aten.arange_start_step(from, to, step, options.dtype ?? null, null, dev(options)), options);
}
export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  return finish(aten.linspace(start, end, steps, options.dtype ?? 'float32', null, dev(options)), options);
}
export function eye(n: number, m = n, options: TensorOptions = {}): Tensor {
  return finish(aten.eye_m(n, m, options.dtype ?? 'float32', null, dev(options)), options);
}

// One generator, re-seeded for each `{ seed }` call: ops run synchronously, so calls cannot
// interleave, and no generator state is allocated per call.
let perCallGenerator: NativeGenerator | undefined;
function seeded(seed: number): NativeGenerator {
  perCallGenerator ??= native.makeGenerator(seed);
  native.seedGenerator(perCallGenerator, seed);
  return perCallGenerator;
}

/** Samples on the CPU with a generator, then moves: per-call seeds work on every device. */
function sampled(make: (g: NativeGenerator | null, device: string | null) => Tensor, options: RandomOptions): Tensor {
  const g = options.generator ?? (options.seed !== undefined ? seeded(options.seed) : null);
  if (g === null) return finish(make(null, dev(options)), options);
  const t = make(g, 'cpu');
  return finish(options.device && options.device !== 'cpu' ? t.to({ device: options.device }) : t, options);
}

/** Uniform on [0, 1). */
export function rand(shape: Shape, options: RandomOptions = {}): Tensor {
  return sampled((g, d) => aten.rand_generator(shape, g, options.dtype ?? 'float32', null, d), options);
}
/** Standard normal. */
export function randn(shape: Shape, options: RandomOptions = {}): Tensor {
  return sampled((g, d) => aten.randn_generator(shape, g, options.dtype ?? 'float32', null, d), options);
}
/** Integers uniform on [low, high), int64 by default. */
export function randint(low: number, high: number, shape: Shape, options: RandomOptions = {}): Tensor {
  return sampled((g, d) => aten.randint_low_generator(low, high, shape, g, options.dtype ?? 'int64', null, d), options);
}
/** A random permutation of 0..n-1 (int64). */
export function randperm(n: number, options: RandomOptions = {}): Tensor {
  return sampled((g, d) => aten.randperm_generator(n, g, options.dtype ?? 'int64', null, d), options);
}

export function zerosLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(aten.zeros_like(t, options.dtype ?? null, null, dev(options)), options);
}
export function onesLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(aten.ones_like(t, options.dtype ?? null, null, dev(options)), options);
}
export function fullLike(t: Tensor, value: number, options: TensorOptions = {}): Tensor {
  return finish(aten.full_like(t, value, options.dtype ?? null, null, dev(options)), options);
}
export function emptyLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(aten.empty_like(t, options.dtype ?? null, null, dev(options)), options);
}
export function randnLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(aten.randn_like(t, options.dtype ?? null, null, dev(options)), options);
}
export function randLike(t: Tensor, options: TensorOptions = {}): Tensor {
  return finish(aten.rand_like(t, options.dtype ?? null, null, dev(options)), options);
}
/** A 0-d tensor. */
export function scalar(value: number | boolean, options: TensorOptions = {}): Tensor {
  return finish(aten.scalar_tensor(value, options.dtype ?? (typeof value === 'boolean' ? 'bool' : 'float32'), null, dev(options)), options);
}
