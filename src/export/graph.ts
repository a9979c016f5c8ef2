/**
 * Builds the ONNX graph from a fitted trace (trace.ts): names values, turns parameters and
 * constants into initializers, and gives each op's translation (aten-*.ts) the helpers it needs —
 * typed constants, casts, and shape tensors that keep the batch dynamic (a·B + c computed from
 * Shape(input)[0]).
 */
import type { DType, TypedData } from '../tensor/tensor.js';
import { ONNX_DTYPE, type NodeSpec, type OnnxDType, type TensorData, type AttributeValue } from './onnx-proto.js';
import { ExportError, type Arg, type BatchLinear, type Dim, type Trace, type TracedCall, type TracedValue } from './trace.js';

/** Translates one traced ATen call into ONNX nodes whose last outputs are the call's results. */
export type OpTranslation = (g: GraphBuilder, call: CallView) => void;

export const isLinear = (d: unknown): d is BatchLinear =>
  d !== null && typeof d === 'object' && !Array.isArray(d) && 'a' in (d as object) && 'c' in (d as object);

/** Reads a traced call's arguments, in the terms the translations need. */
export class CallView {
  constructor(private readonly g: GraphBuilder, readonly call: TracedCall) {}

  get op(): string {
    return this.call.op;
  }
  /** The ONNX name of tensor argument i (an initializer when it is a constant). */
  tensor(i: number): string {
    const a = this.call.args[i];
    if (a === null || typeof a !== 'object' || !('value' in a)) throw this.error(`argument ${i} is not a tensor`);
    return this.g.valueName(a.value);
  }
  /** Tensor argument i, or null when the op got none (optional weights). */
  optionalTensor(i: number): string | null {
    const a = this.call.args[i];
    return a === null || a === undefined ? null : this.tensor(i);
  }
  /** The ONNX names of a list-of-tensors argument (cat, stack, einsum). */
  tensors(i: number): string[] {
    const a = this.call.args[i];
    if (!Array.isArray(a)) throw this.error(`argument ${i} is not a tensor list`);
    return a.map((x) => this.g.valueName((x as { value: number }).value));
  }
  /** The traced value of tensor argument i (or element k of a list argument). */
  value(i: number, k?: number): TracedValue {
    const a = k === undefined ? this.call.args[i] : (this.call.args[i] as Arg[])[k];
    return this.g.trace.values[(a as { value: number }).value];
  }
  dtype(i: number): DType {
    return this.value(i).dtype;
  }
  rank(i: number): number {
    return this.value(i).shape.length;
  }
  /** A static integer argument; a batch-dependent one is an error naming the op. */
  int(i: number, fallback?: number): number {
    const a = this.call.args[i];
    if ((a === null || a === undefined) && fallback !== undefined) return fallback;
    if (typeof a === 'number') return a;
    if (typeof a === 'boolean') return a ? 1 : 0;
    throw this.error(`argument ${i} (${JSON.stringify(a)}) must be a batch-independent integer`);
  }
  ints(i: number, fallback?: number[]): number[] {
    const a = this.call.args[i];
    if ((a === null || a === undefined) && fallback !== undefined) return fallback;
    if (typeof a === 'number') return [a];
    if (!Array.isArray(a) || !a.every((x) => typeof x === 'number')) {
      throw this.error(`argument ${i} (${JSON.stringify(a)}) must be batch-independent integers`);
    }
    return a as number[];
  }
  number(i: number, fallback?: number): number {
    const a = this.call.args[i];
    if ((a === null || a === undefined) && fallback !== undefined) return fallback;
    if (typeof a === 'number') return a;
    if (typeof a === 'boolean') return a ? 1 : 0;
    throw this.error(`argument ${i} (${JSON.stringify(a)}) must be a number`);
  }
  raw(i: number): Arg {
    return this.call.args[i];
  }
  isTensor(i: number): boolean {
    const a = this.call.args[i];
    return a !== null && typeof a === 'object' && !Array.isArray(a) && 'value' in a;
  }
  /** Normalised dimension index of argument i for a tensor of the given rank. */
  dim(i: number, rank: number): number {
    const d = this.int(i);
    return d < 0 ? d + rank : d;
  }
  /** Output k's traced value and ONNX name. */
  output(k = 0): TracedValue {
    return this.g.trace.values[this.call.outputs[k]];
  }
  outName(k = 0): string {
    return this.g.valueName(this.call.outputs[k], true);
  }
  get outputCount(): number {
    return this.call.outputs.length;
  }
  error(what: string): ExportError {
    return new ExportError(`export: ${this.call.op}: ${what}`);
  }
}

const TYPED: Record<string, (n: number) => TypedData> = {
  float32: (n) => new Float32Array(n), float64: (n) => new Float64Array(n), int64: (n) => new BigInt64Array(n),
  int32: (n) => new Int32Array(n), int16: (n) => new Int16Array(n), int8: (n) => new Int8Array(n),
  uint8: (n) => new Uint8Array(n), bool: (n) => new Uint8Array(n),
};

function bytesOf(data: TypedData): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
}

/** The ONNX element type of a dtype; the ones ONNX has no code for here are an error. */
export function onnxDType(dtype: DType): OnnxDType {
  if (!(dtype in ONNX_DTYPE) || !(dtype in TYPED)) {
    throw new ExportError(`export: dtype ${dtype} is not exported; convert the model to float32 first (model.to('float32'))`);
  }
  return dtype as OnnxDType;
}

/** TensorProto.DataType code (Cast's `to`). */
export function onnxCode(dtype: DType): number {
  return ONNX_DTYPE[onnxDType(dtype)];
}

export class GraphBuilder {
  readonly nodes: NodeSpec[] = [];
  readonly initializers = new Map<string, TensorData>();
  private readonly names = new Map<number, string>();
  private readonly shapeCache = new Map<string, string>();
  private counter = 0;
  /** Name of the 1-element int64 tensor holding the batch size. */
  private batchName: string | null = null;

  constructor(readonly trace: Trace, readonly inputName: string) {
    this.names.set(trace.input, inputName);
  }

  fresh(hint: string): string {
    return `${hint}_${this.counter++}`;
  }

  /** The ONNX name of a traced value; constants and parameters become initializers on first use. */
  valueName(id: number, defining = false): string {
    const known = this.names.get(id);
    if (known !== undefined) return known;
    const v = this.trace.values[id];
    if (defining || v.dynamic) {
      const name = this.fresh('v');
      this.names.set(id, name);
      return name;
    }
    const name = v.kind === 'parameter' ? (v.name as string) : this.fresh('const');
    if (v.kind === 'parameter' && this.initializers.has(name)) return name;
    const data = v.data;
    if (!data) throw new ExportError(`export: no data for ${v.kind} ${v.name ?? `#${id}`}`);
    this.initializers.set(name, { name, dims: v.shape as number[], dtype: onnxDType(v.dtype), bytes: bytesOf(data) });
    this.names.set(id, name);
    return name;
  }

  /** Binds a traced value to an ONNX name a translation produced. */
  bind(id: number, name: string): void {
    this.names.set(id, name);
  }

  node(opType: string, inputs: string[], attributes: Record<string, AttributeValue | undefined> = {}, outputs?: string[] | number): string[] {
    const outs = Array.isArray(outputs) ? outputs : Array.from({ length: outputs ?? 1 }, () => this.fresh(opType.toLowerCase()));
    this.nodes.push({ opType, inputs, outputs: outs, attributes, name: `${opType}_${this.nodes.length}` });
    return outs;
  }

  /** One-output node. */
  op(opType: string, inputs: string[], attributes: Record<string, AttributeValue | undefined> = {}, output?: string): string {
    return this.node(opType, inputs, attributes, output === undefined ? 1 : [output])[0];
  }

  /** A constant initializer from numbers. */
  constant(values: number[] | number, dtype: DType, dims?: number[]): string {
    const list = Array.isArray(values) ? values : [values];
    const shape = dims ?? (Array.isArray(values) ? [list.length] : []);
    const key = `${dtype}:${shape.join(',')}:${list.join(',')}`;
    const cached = this.shapeCache.get(key);
    if (cached) return cached;
    const data = (TYPED[dtype] ?? TYPED.float32)(list.length);
    list.forEach((x, i) => { (data as unknown as (number | bigint)[])[i] = dtype === 'int64' ? BigInt(x) : x; });
    const name = this.fresh('c');
    this.initializers.set(name, { name, dims: shape, dtype: onnxDType(dtype), bytes: bytesOf(data) });
    this.shapeCache.set(key, name);
    return name;
  }

  /** A 1-D int64 tensor of the given dims; batch-linear ones are computed from the input's shape. */
  shape(dims: Dim[]): string {
    if (dims.every((d) => typeof d === 'number')) return this.constant(dims as number[], 'int64');
    const key = `shape:${JSON.stringify(dims)}`;
    const cached = this.shapeCache.get(key);
    if (cached) return cached;
    const parts: string[] = [];
    let run: number[] = [];
    for (const d of dims) {
      if (typeof d === 'number') { run.push(d); continue; }
      if (run.length) parts.push(this.constant(run, 'int64'));
      run = [];
      parts.push(this.linear(d));
    }
    if (run.length) parts.push(this.constant(run, 'int64'));
    const name = parts.length === 1 ? parts[0] : this.op('Concat', parts, { axis: 0 });
    this.shapeCache.set(key, name);
    return name;
  }

  /** a·B + c as a 1-element int64 tensor. */
  private linear({ a, c }: BatchLinear): string {
    if (this.batchName === null) {
      const shape = this.op('Shape', [this.inputName]);
      this.batchName = this.op('Slice', [shape, this.constant([0], 'int64'), this.constant([1], 'int64')]);
    }
    let out = this.batchName;
    if (a !== 1) out = this.op('Mul', [out, this.constant([a], 'int64')]);
    if (c !== 0) out = this.op('Add', [out, this.constant([c], 'int64')]);
    return out;
  }

  /** Casts `name` from one dtype to another (no node when they agree). */
  cast(name: string, from: DType, to: DType): string {
    return from === to ? name : this.op('Cast', [name], { to: onnxCode(to) });
  }
}

/**
 * Removes Identity nodes (their readers read the input instead; an Identity that names a graph
 * output stays), then the nodes and initializers that do not lead to the outputs.
 */
export function pruneGraph(all: NodeSpec[], initializers: Map<string, TensorData>, outputs: string[]): { nodes: NodeSpec[]; initializers: TensorData[] } {
  const alias = new Map<string, string>();
  const resolve = (name: string) => alias.get(name) ?? name;
  const nodes: NodeSpec[] = [];
  for (const n of all) {
    const inputs = n.inputs.map(resolve);
    if (n.opType === 'Identity' && !outputs.includes(n.outputs[0])) alias.set(n.outputs[0], inputs[0]);
    else nodes.push({ ...n, inputs });
  }
  const needed = new Set(outputs);
  const kept: NodeSpec[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i];
    if (!n.outputs.some((o) => needed.has(o))) continue;
    kept.push(n);
    n.inputs.forEach((x) => needed.add(x));
  }
  return { nodes: kept.reverse(), initializers: [...initializers.values()].filter((t) => needed.has(t.name as string)) };
}
