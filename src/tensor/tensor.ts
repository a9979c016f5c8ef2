/**
 * Tensor: one JS object per libtorch tensor. The native base class (native/core/tensor.cc) holds
 * the at::Tensor; this class adds PyTorch's method names over the generated ops. Every tensor
 * registers in the current scope when it is made (see scope.ts).
 *
 * Methods take a Tensor or a number where PyTorch takes a Tensor or a Python scalar; options
 * objects replace keyword arguments (`x.sum(1, { keepdim: true })`).
 */
import { native, type DType, type TensorBase } from '../native/binding.js';
import * as aten from '../ops/generated/ops.gen.js';
import type { Scalar } from '../ops/call.js';
import { currentScope, keep as keepTensor } from './scope.js';

export type { DType };
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type TypedData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
export type NestedArray = number | boolean | NestedArray[];

export interface ReduceOptions {
  keepdim?: boolean;
}

export class Tensor extends (native.TensorBase as unknown as new () => TensorBase) {
  constructor() {
    super();
    // Parameters belong to their Module, not to the scope they were made in. Whatever no scope
    // will free is left to the GC, which then needs to know its size.
    const owner = new.target === Tensor ? currentScope() : undefined;
    if (owner) owner.track(this);
    else this._trackGc();
  }

  override get grad(): Tensor | null {
    return super.grad as Tensor | null;
  }
  override set grad(value: Tensor | null) {
    super.grad = value;
  }

  /** Accumulates gradients into the leaves' `.grad` (torch.Tensor.backward). */
  backward(gradient?: Tensor, options: { retainGraph?: boolean } = {}): void {
    this._backward(gradient ?? null, options.retainGraph ?? false);
  }

  /** Exempts this tensor from every scope: the caller disposes it. */
  keep(): this {
    return keepTensor(this);
  }

  /** Sets requiresGrad in place and returns this, like torch.Tensor.requires_grad_. */
  requiresGrad_(requiresGrad = true): this {
    this.requiresGrad = requiresGrad;
    return this;
  }

  // ---- conversion ------------------------------------------------------------------------------

  /** `to('cuda')`, `to('float64')` or `to({ device, dtype })`; returns this when nothing changes. */
  to(target: Device | DType | { device?: Device; dtype?: DType }): Tensor {
    const { device, dtype } = typeof target === 'string'
      ? (isDType(target) ? { device: undefined, dtype: target } : { device: target, dtype: undefined })
      : target;
    const sameDevice = device === undefined || normalizeDevice(device) === this.device;
    if (sameDevice && (dtype === undefined || dtype === this.dtype)) return this;
    return aten._to_copy(this, dtype ?? null, null, device ?? null);
  }
  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  long(): Tensor { return this.to('int64'); }
  int(): Tensor { return this.to('int32'); }
  bool(): Tensor { return this.to('bool'); }
  cpu(): Tensor { return this.to({ device: 'cpu' }); }
  cuda(): Tensor { return this.to({ device: 'cuda' }); }
  detach(): Tensor { return aten.detach(this); }
  clone(): Tensor { return aten.clone(this); }
  contiguous(): Tensor { return aten.contiguous(this); }

  /** Nested arrays of numbers (int64 as numbers, bool as booleans). */
  toArray(): NestedArray {
    const flat = this.dataSync();
    const values: (number | boolean)[] = this.dtype === 'bool'
      ? Array.from(flat as Uint8Array, (v) => v !== 0)
      : Array.from(flat as ArrayLike<number | bigint>, Number);
    const shape = this.shape;
    if (shape.length === 0) return values[0];
    let offset = 0;
    const build = (dim: number): NestedArray[] => {
      const out: NestedArray[] = [];
      for (let i = 0; i < shape[dim]; i++) out.push(dim === shape.length - 1 ? values[offset++] : build(dim + 1));
      return out;
    };
    return build(0);
  }

  // ---- shape and views -------------------------------------------------------------------------

  reshape(...shape: number[] | [number[]]): Tensor { return aten.reshape(this, flatShape(shape)); }
  view(...shape: number[] | [number[]]): Tensor { return aten.view(this, flatShape(shape)); }
  permute(...dims: number[] | [number[]]): Tensor { return aten.permute(this, flatShape(dims)); }
  transpose(dim0: number, dim1: number): Tensor { return aten.transpose_int(this, dim0, dim1); }
  /** The 2-D transpose. */
  t(): Tensor { return aten.transpose_int(this, 0, 1); }
  flatten(startDim = 0, endDim = -1): Tensor { return aten.flatten_using_ints(this, startDim, endDim); }
  unflatten(dim: number, sizes: number[]): Tensor { return aten.unflatten_int(this, dim, sizes); }
  squeeze(dim?: number): Tensor { return dim === undefined ? aten.squeeze(this) : aten.squeeze_dim(this, dim); }
  unsqueeze(dim: number): Tensor { return aten.unsqueeze(this, dim); }
  expand(...shape: number[] | [number[]]): Tensor { return aten.expand(this, flatShape(shape)); }
  expandAs(other: Tensor): Tensor { return aten.expand_as(this, other); }
  narrow(dim: number, start: number, length: number): Tensor { return aten.narrow(this, dim, start, length); }
  /** `x[.., start:end:step, ..]` along one dim; negative and omitted bounds as in Python. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return aten.slice_Tensor(this, dim, start ?? null, end ?? null, step);
  }
  select(dim: number, index: number): Tensor { return aten.select_int(this, dim, index); }
  indexSelect(dim: number, index: Tensor): Tensor { return aten.index_select(this, dim, index); }
  /** Advanced indexing `x[i0, i1, ...]` with index tensors (null = the whole dim). */
  index(indices: (Tensor | null)[]): Tensor { return aten.index_Tensor(this, indices); }
  gather(dim: number, index: Tensor): Tensor { return aten.gather(this, dim, index); }
  scatter(dim: number, index: Tensor, src: Tensor | number): Tensor {
    return typeof src === 'number' ? aten.scatter_value(this, dim, index, src) : aten.scatter_src(this, dim, index, src);
  }
  scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor { return aten.scatter_add(this, dim, index, src); }
  split(splitSize: number | number[], dim = 0): Tensor[] {
    return typeof splitSize === 'number' ? aten.split_Tensor(this, splitSize, dim) : aten.split_with_sizes(this, splitSize, dim);
  }
  chunk(chunks: number, dim = 0): Tensor[] { return aten.chunk(this, chunks, dim); }
  roll(shifts: number | number[], dims: number | number[] = []): Tensor { return aten.roll(this, shifts, dims); }
  /** Sliding windows along `dim` (torch.Tensor.unfold). */
  unfold(dim: number, size: number, step: number): Tensor { return aten.unfold(this, dim, size, step); }
  flip(dims: number | number[]): Tensor { return aten.flip(this, typeof dims === 'number' ? [dims] : dims); }
  repeat(...repeats: number[] | [number[]]): Tensor { return aten.repeat(this, flatShape(repeats)); }
  movedim(source: number, destination: number): Tensor { return aten.movedim_int(this, source, destination); }
  maskedFill(mask: Tensor, value: Tensor | number): Tensor {
    return typeof value === 'number' ? aten.masked_fill_Scalar(this, mask, value) : aten.masked_fill_Tensor(this, mask, value);
  }
  tril(diagonal = 0): Tensor { return aten.tril(this, diagonal); }
  triu(diagonal = 0): Tensor { return aten.triu(this, diagonal); }

  // ---- elementwise ---------------------------------------------------------------------------

  add(other: Tensor | number, alpha?: number): Tensor {
    return typeof other === 'number' ? aten.add_Scalar(this, other, alpha) : aten.add_Tensor(this, other, alpha);
  }
  sub(other: Tensor | number, alpha?: number): Tensor {
    return typeof other === 'number' ? aten.sub_Scalar(this, other, alpha) : aten.sub_Tensor(this, other, alpha);
  }
  mul(other: Tensor | number): Tensor {
    return typeof other === 'number' ? aten.mul_Scalar(this, other) : aten.mul_Tensor(this, other);
  }
  /** True division; `{ roundingMode: 'floor' | 'trunc' }` as in torch.div. */
  div(other: Tensor | number, options: { roundingMode?: 'floor' | 'trunc' } = {}): Tensor {
    if (options.roundingMode) return aten.div_Tensor_mode(this, asTensor(other, this), options.roundingMode);
    return typeof other === 'number' ? aten.div_Scalar(this, other) : aten.div_Tensor(this, other);
  }
  remainder(other: Tensor | number): Tensor {
    return typeof other === 'number' ? aten.remainder_Scalar(this, other) : aten.remainder_Tensor(this, other);
  }
  pow(exponent: Tensor | number): Tensor {
    return typeof exponent === 'number' ? aten.pow_Tensor_Scalar(this, exponent) : aten.pow_Tensor_Tensor(this, exponent);
  }
  neg(): Tensor { return aten.neg(this); }
  sqrt(): Tensor { return aten.sqrt(this); }
  rsqrt(): Tensor { return aten.rsqrt(this); }
  exp(): Tensor { return aten.exp(this); }
  log(): Tensor { return aten.log(this); }
  log1p(): Tensor { return aten.log1p(this); }
  abs(): Tensor { return aten.abs(this); }
  sign(): Tensor { return aten.sign(this); }
  floor(): Tensor { return aten.floor(this); }
  ceil(): Tensor { return aten.ceil(this); }
  /** Round half to even, like torch.round. */
  round(decimals = 0): Tensor { return decimals === 0 ? aten.round(this) : aten.round_decimals(this, decimals); }
  trunc(): Tensor { return aten.trunc(this); }
  sin(): Tensor { return aten.sin(this); }
  cos(): Tensor { return aten.cos(this); }
  erf(): Tensor { return aten.erf(this); }
  reciprocal(): Tensor { return aten.reciprocal(this); }
  sigmoid(): Tensor { return aten.sigmoid(this); }
  tanh(): Tensor { return aten.tanh(this); }
  relu(): Tensor { return aten.relu(this); }
  softmax(dim: number): Tensor { return aten.softmax_int(this, dim); }
  logSoftmax(dim: number): Tensor { return aten.log_softmax_int(this, dim); }
  maximum(other: Tensor): Tensor { return aten.maximum(this, other); }
  minimum(other: Tensor): Tensor { return aten.minimum(this, other); }
  clamp(min?: number | Tensor | null, max?: number | Tensor | null): Tensor {
    if (min instanceof Tensor || max instanceof Tensor) {
      return aten.clamp_Tensor(this, asOptionalTensor(min, this), asOptionalTensor(max, this));
    }
    return aten.clamp(this, min ?? null, max ?? null);
  }
  lerp(end: Tensor, weight: number): Tensor { return aten.lerp_Scalar(this, end, weight); }
  isnan(): Tensor { return aten.isnan(this); }
  isfinite(): Tensor { return aten.isfinite(this); }

  // ---- comparisons ---------------------------------------------------------------------------

  eq(other: Tensor | Scalar): Tensor { return other instanceof Tensor ? aten.eq_Tensor(this, other) : aten.eq_Scalar(this, other); }
  ne(other: Tensor | Scalar): Tensor { return other instanceof Tensor ? aten.ne_Tensor(this, other) : aten.ne_Scalar(this, other); }
  lt(other: Tensor | Scalar): Tensor { return other instanceof Tensor ? aten.lt_Tensor(this, other) : aten.lt_Scalar(this, other); }
  le(other: Tensor | Scalar): Tensor { return other instanceof Tensor ? aten.le_Tensor(this, other) : aten.le_Scalar(this, other); }
  gt(other: Tensor | Scalar): Tensor { return other instanceof Tensor ? aten.gt_Tensor(this, other) : aten.gt_Scalar(this, other); }
  ge(other: Tensor | Scalar): Tensor { return other instanceof Tensor ? aten.ge_Tensor(this, other) : aten.ge_Scalar(this, other); }
  logicalAnd(other: Tensor): Tensor { return aten.logical_and(this, other); }
  logicalOr(other: Tensor): Tensor { return aten.logical_or(this, other); }
  logicalNot(): Tensor { return aten.logical_not(this); }
  /** Same shape and exactly equal elements. */
  equal(other: Tensor): boolean { return aten.equal(this, other); }
  allclose(other: Tensor, options: { rtol?: number; atol?: number } = {}): boolean {
    return aten.allclose(this, other, options.rtol ?? 1e-5, options.atol ?? 1e-8);
  }

  // ---- reductions ----------------------------------------------------------------------------

  sum(dim?: number | number[], options: ReduceOptions = {}): Tensor {
    return dim === undefined ? aten.sum(this) : aten.sum_dim_IntList(this, dim, options.keepdim ?? false);
  }
  mean(dim?: number | number[], options: ReduceOptions = {}): Tensor {
    return dim === undefined ? aten.mean(this) : aten.mean_dim(this, dim, options.keepdim ?? false);
  }
  prod(): Tensor { return aten.prod(this); }
  /** Without dim: the maximum element. With dim: values and indices, as torch.max(x, dim). */
  max(): Tensor;
  max(dim: number, options?: ReduceOptions): { values: Tensor; indices: Tensor };
  max(dim?: number, options: ReduceOptions = {}): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return aten.max(this);
    const [values, indices] = aten.max_dim(this, dim, options.keepdim ?? false);
    return { values, indices };
  }
  min(): Tensor;
  min(dim: number, options?: ReduceOptions): { values: Tensor; indices: Tensor };
  min(dim?: number, options: ReduceOptions = {}): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return aten.min(this);
    const [values, indices] = aten.min_dim(this, dim, options.keepdim ?? false);
    return { values, indices };
  }
  amax(dim: number | number[] = [], options: ReduceOptions = {}): Tensor { return aten.amax(this, dim, options.keepdim ?? false); }
  amin(dim: number | number[] = [], options: ReduceOptions = {}): Tensor { return aten.amin(this, dim, options.keepdim ?? false); }
  argmax(dim?: number, options: ReduceOptions = {}): Tensor { return aten.argmax(this, dim ?? null, options.keepdim ?? false); }
  argmin(dim?: number, options: ReduceOptions = {}): Tensor { return aten.argmin(this, dim ?? null, options.keepdim ?? false); }
  logsumexp(dim: number | number[], options: ReduceOptions = {}): Tensor { return aten.logsumexp(this, dim, options.keepdim ?? false); }
  /** Variance with Bessel's correction by default (correction 1), as torch.var. */
  var(dim?: number | number[], options: ReduceOptions & { correction?: number } = {}): Tensor {
    return aten.var_correction(this, dim ?? null, options.correction ?? 1, options.keepdim ?? false);
  }
  std(dim?: number | number[], options: ReduceOptions & { correction?: number } = {}): Tensor {
    return aten.std_correction(this, dim ?? null, options.correction ?? 1, options.keepdim ?? false);
  }
  /** The p-norm over `dim` (all elements by default), as torch.linalg.vector_norm. */
  norm(p = 2, dim?: number | number[], options: ReduceOptions = {}): Tensor {
    return aten.linalg_vector_norm(this, p, dim ?? null, options.keepdim ?? false);
  }
  all(dim?: number, options: ReduceOptions = {}): Tensor { return dim === undefined ? aten.all(this) : aten.all_dim(this, dim, options.keepdim ?? false); }
  any(dim?: number, options: ReduceOptions = {}): Tensor { return dim === undefined ? aten.any(this) : aten.any_dim(this, dim, options.keepdim ?? false); }
  cumsum(dim: number): Tensor { return aten.cumsum(this, dim); }
  sort(dim = -1, options: { descending?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten.sort(this, dim, options.descending ?? false);
    return { values, indices };
  }
  argsort(dim = -1, options: { descending?: boolean } = {}): Tensor { return aten.argsort(this, dim, options.descending ?? false); }
  topk(k: number, dim = -1, options: { largest?: boolean; sorted?: boolean } = {}): { values: Tensor; indices: Tensor } {
    const [values, indices] = aten.topk(this, k, dim, options.largest ?? true, options.sorted ?? true);
    return { values, indices };
  }

  // ---- products ------------------------------------------------------------------------------

  matmul(other: Tensor): Tensor { return aten.matmul(this, other); }
  mm(other: Tensor): Tensor { return aten.mm(this, other); }
  bmm(other: Tensor): Tensor { return aten.bmm(this, other); }

  // ---- in place (optimizers, initialisation); each returns this --------------------------------

  add_(other: Tensor | number, alpha?: number): this {
    if (typeof other === 'number') aten.add__Scalar(this, other, alpha);
    else aten.add__Tensor(this, other, alpha);
    return this;
  }
  sub_(other: Tensor | number, alpha?: number): this {
    if (typeof other === 'number') aten.sub__Scalar(this, other, alpha);
    else aten.sub__Tensor(this, other, alpha);
    return this;
  }
  mul_(other: Tensor | number): this {
    if (typeof other === 'number') aten.mul__Scalar(this, other);
    else aten.mul__Tensor(this, other);
    return this;
  }
  div_(other: Tensor | number): this {
    if (typeof other === 'number') aten.div__Scalar(this, other);
    else aten.div__Tensor(this, other);
    return this;
  }
  addcmul_(tensor1: Tensor, tensor2: Tensor, value = 1): this { aten.addcmul_(this, tensor1, tensor2, value); return this; }
  addcdiv_(tensor1: Tensor, tensor2: Tensor, value = 1): this { aten.addcdiv_(this, tensor1, tensor2, value); return this; }
  lerp_(end: Tensor, weight: number): this { aten.lerp__Scalar(this, end, weight); return this; }
  copy_(src: Tensor): this { aten.copy_(this, src); return this; }
  zero_(): this { aten.zero_(this); return this; }
  fill_(value: Scalar): this { aten.fill__Scalar(this, value); return this; }
  clamp_(min?: number | null, max?: number | null): this { aten.clamp_(this, min ?? null, max ?? null); return this; }
  uniform_(from = 0, to = 1): this { aten.uniform_(this, from, to); return this; }
  normal_(mean = 0, std = 1): this { aten.normal_(this, mean, std); return this; }
  maskedFill_(mask: Tensor, value: number): this { aten.masked_fill__Scalar(this, mask, value); return this; }

  /** libtorch's printout of the values, shape and dtype. */
  print(): void {
    console.log(this.toString());
  }
}

native.setTensorClass(Tensor);

const DTYPES = new Set<string>(['float32', 'float64', 'bfloat16', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool']);
export function isDType(value: string): value is DType {
  return DTYPES.has(value);
}

function normalizeDevice(device: string): string {
  return device === 'cuda' ? 'cuda:0' : device;
}

function flatShape(shape: number[] | [number[]]): number[] {
  return Array.isArray(shape[0]) ? (shape[0] as number[]) : (shape as number[]);
}

function asTensor(value: Tensor | number, like: Tensor): Tensor {
  return typeof value === 'number' ? aten.scalar_tensor(value, like.dtype, null, like.device) : value;
}

function asOptionalTensor(value: Tensor | number | null | undefined, like: Tensor): Tensor | null {
  return value === null || value === undefined ? null : asTensor(value, like);
}
