/**
 * ONNX forms (opset 17) of ATen's tensor ops: views and reshapes, indexing, concatenation,
 * element-wise arithmetic with ATen's type promotion made explicit (Cast to the result dtype),
 * comparisons, reductions and tensor creation.
 *
 * Reshape-like ops (reshape, view, flatten, squeeze, unsqueeze, unflatten) all become one Reshape
 * to the traced result shape, whose batch-dependent entries are computed from the input's shape
 * (graph.ts), so the batch stays dynamic. Expand does the same with Expand.
 */
import type { DType } from '../tensor/tensor.js';
import { onnxCode, type CallView, type GraphBuilder, type OpTranslation } from './graph.js';

const FLOATS = new Set<DType>(['float32', 'float64', 'float16', 'bfloat16']);

const reshapeToResult: OpTranslation = (g, c) => {
  g.op('Reshape', [c.tensor(0), g.shape(c.output().shape)], {}, c.outName());
};
const identity: OpTranslation = (g, c) => { g.op('Identity', [c.tensor(0)], {}, c.outName()); };

function permutation(rank: number, dims: number[]): number[] {
  return dims.map((d) => (d < 0 ? d + rank : d));
}

function transpose(g: GraphBuilder, c: CallView): void {
  const rank = c.rank(0);
  const perm = Array.from({ length: rank }, (_, i) => i);
  const a = c.dim(1, rank);
  const b = c.dim(2, rank);
  [perm[a], perm[b]] = [perm[b], perm[a]];
  g.op('Transpose', [c.tensor(0)], { perm }, c.outName());
}

function select(g: GraphBuilder, c: CallView): void {
  const rank = c.rank(0);
  const dim = c.dim(1, rank);
  const size = c.value(0).shape[dim];
  let index = c.int(2);
  if (index < 0) {
    if (typeof size !== 'number') throw c.error('a negative index along the batch dimension cannot be exported');
    index += size;
  }
  g.op('Gather', [c.tensor(0), g.constant(index, 'int64', [])], { axis: dim }, c.outName());
}

/** Slice of one dim [start, end) by step; `end` past the size is clamped by ONNX itself. */
function sliceDim(g: GraphBuilder, x: string, dim: number, start: number, end: number, step = 1, out?: string): string {
  return g.op('Slice', [x, g.constant([start], 'int64'), g.constant([end], 'int64'), g.constant([dim], 'int64'),
    g.constant([step], 'int64')], {}, out);
}

const INT64_MAX = 9_007_199_254_740_991;  // clamped by Slice; Number.MAX_SAFE_INTEGER stays exact

function slice(g: GraphBuilder, c: CallView): void {
  const rank = c.rank(0);
  const dim = c.dim(1, rank);
  const start = c.int(2, 0);
  const end = c.raw(3) === null || c.raw(3) === undefined ? INT64_MAX : Math.min(c.int(3), INT64_MAX);
  sliceDim(g, c.tensor(0), dim, start, end, c.int(4, 1), c.outName());
}

function narrow(g: GraphBuilder, c: CallView): void {
  const dim = c.dim(1, c.rank(0));
  const start = c.int(2);
  sliceDim(g, c.tensor(0), dim, start, start + c.int(3), 1, c.outName());
}

function split(g: GraphBuilder, c: CallView): void {
  const rank = c.rank(0);
  const dim = c.dim(2, rank);
  const sizes = Array.from({ length: c.outputCount }, (_, k) => c.output(k).shape[dim] as number);
  const outs = Array.from({ length: c.outputCount }, (_, k) => c.outName(k));
  g.node('Split', [c.tensor(0), g.constant(sizes, 'int64')], { axis: dim }, outs);
}

function cat(g: GraphBuilder, c: CallView): void {
  const dtype = c.output().dtype;
  const rank = c.output().shape.length;
  const inputs = c.tensors(0).map((name, k) => g.cast(name, c.value(0, k).dtype, dtype));
  g.op('Concat', inputs, { axis: c.dim(1, rank) }, c.outName());
}

function stack(g: GraphBuilder, c: CallView): void {
  const dtype = c.output().dtype;
  const dim = c.dim(1, c.output().shape.length);
  const axes = g.constant([dim], 'int64');
  const inputs = c.tensors(0).map((name, k) => g.op('Unsqueeze', [g.cast(name, c.value(0, k).dtype, dtype), axes]));
  g.op('Concat', inputs, { axis: dim }, c.outName());
}

function roll(g: GraphBuilder, c: CallView): void {
  const shifts = c.ints(1);
  const dims = c.ints(2, []);
  if (dims.length !== shifts.length) throw c.error('roll without dims (over the flattened tensor) is not exported');
  let x = c.tensor(0);
  const rank = c.rank(0);
  dims.forEach((d0, k) => {
    const d = d0 < 0 ? d0 + rank : d0;
    const n = c.value(0).shape[d];
    if (typeof n !== 'number') throw c.error('roll along the batch dimension is not exported');
    const s = ((shifts[k] % n) + n) % n;
    if (s === 0) return;
    x = g.op('Concat', [sliceDim(g, x, d, n - s, n), sliceDim(g, x, d, 0, n - s)], { axis: d });
  });
  g.op('Identity', [x], {}, c.outName());
}

const PAD_MODES: Record<string, string> = { constant: 'constant', reflect: 'reflect', replicate: 'edge' };

function pad(g: GraphBuilder, c: CallView, modeArg: number | null, valueArg: number): void {
  const rank = c.rank(0);
  const torchPads = c.ints(1);
  const mode = modeArg === null ? 'constant' : String(c.raw(modeArg));
  if (mode === 'circular') {
    circularPad(g, c, torchPads);
    return;
  }
  if (!PAD_MODES[mode]) throw c.error(`pad mode '${mode}' has no ONNX form in opset 17`);
  const begin = new Array(rank).fill(0);
  const end = new Array(rank).fill(0);
  for (let k = 0; k < torchPads.length / 2; k++) {   // (last dim's before, after, previous dim's …)
    begin[rank - 1 - k] = torchPads[2 * k];
    end[rank - 1 - k] = torchPads[2 * k + 1];
  }
  const inputs = [c.tensor(0), g.constant([...begin, ...end], 'int64')];
  if (mode === 'constant') inputs.push(g.constant(c.number(valueArg, 0), c.dtype(0), []));
  g.op('Pad', inputs, { mode: PAD_MODES[mode] }, c.outName());
}

/** Circular padding (opset 19's 'wrap'): each dim becomes x[n−l:] ‖ x ‖ x[:r]. */
function circularPad(g: GraphBuilder, c: CallView, torchPads: number[]): void {
  const rank = c.rank(0);
  let x = c.tensor(0);
  for (let k = 0; k < torchPads.length / 2; k++) {
    const d = rank - 1 - k;
    const n = c.value(0).shape[d] as number;
    const [before, after] = [torchPads[2 * k], torchPads[2 * k + 1]];
    if (before < 0 || after < 0 || before > n || after > n) throw c.error(`circular padding of ${before}, ${after} on a size-${n} dim is not exported`);
    const parts = [...(before ? [sliceDim(g, x, d, n - before, n)] : []), x, ...(after ? [sliceDim(g, x, d, 0, after)] : [])];
    if (parts.length > 1) x = g.op('Concat', parts, { axis: d });
  }
  g.op('Identity', [x], {}, c.outName());
}

/** Tensor.unfold(dim, size, step): windows gathered by a constant index, the window dim last. */
function unfold(g: GraphBuilder, c: CallView): void {
  const rank = c.rank(0);
  const dim = c.dim(1, rank);
  const size = c.int(2);
  const step = c.int(3);
  const n = c.output().shape[dim] as number;
  const index: number[] = [];
  for (let w = 0; w < n; w++) for (let t = 0; t < size; t++) index.push(w * step + t);
  const gathered = g.op('Gather', [c.tensor(0), g.constant(index, 'int64', [n, size])], { axis: dim });  // dim → (n, size)
  const perm = Array.from({ length: rank + 1 }, (_, i) => i).filter((i) => i !== dim + 1);
  perm.push(dim + 1);
  g.op('Transpose', [gathered], { perm }, c.outName());
}

/** The dtype both operands are computed in: the result's for arithmetic, the promotion for comparisons. */
function computeType(c: CallView, result: DType): DType {
  if (result !== 'bool') return result;
  const a = c.dtype(0);
  if (!c.isTensor(1)) {
    const s = c.raw(1);
    return typeof s === 'number' && !Number.isInteger(s) && !FLOATS.has(a) ? 'float32' : a;
  }
  const b = c.dtype(1);
  if (a === b) return a;
  if (FLOATS.has(a) !== FLOATS.has(b)) return FLOATS.has(a) ? a : b;
  return a === 'bool' ? b : a;
}

/** Operand i as an ONNX name in `dtype`: a tensor cast, or a scalar constant. */
function operand(g: GraphBuilder, c: CallView, i: number, dtype: DType): string {
  if (c.isTensor(i)) return g.cast(c.tensor(i), c.dtype(i), dtype);
  const s = c.raw(i);
  return g.constant(typeof s === 'boolean' ? Number(s) : c.number(i), dtype, []);
}

/** a op b, with ATen's alpha (add/sub: a ± alpha·b) and type promotion. */
function binary(opType: string, options: { alpha?: boolean; reverse?: boolean; not?: boolean } = {}): OpTranslation {
  return (g, c) => {
    const result = c.output().dtype;
    const type = computeType(c, result);
    let a = operand(g, c, 0, type);
    let b = operand(g, c, 1, type);
    if (options.alpha && c.number(2, 1) !== 1) {
      const alpha = g.constant(c.number(2), type, []);
      if (options.reverse) a = g.op('Mul', [a, alpha]);   // rsub: other − alpha·self
      else b = g.op('Mul', [b, alpha]);
    }
    if (options.reverse) [a, b] = [b, a];
    if (options.not) {
      g.op('Not', [g.op(opType, [a, b])], {}, c.outName());
      return;
    }
    const out = g.op(opType, [a, b], {}, type === result ? c.outName() : undefined);
    if (type !== result) g.op('Cast', [out], { to: onnxCode(result) }, c.outName());
  };
}

function divide(g: GraphBuilder, c: CallView): void {
  const mode = c.op === 'aten::div.Tensor_mode' ? c.raw(2) : null;
  const result = c.output().dtype;
  if (mode !== null && !FLOATS.has(result)) throw c.error(`integer division with rounding_mode '${String(mode)}' is not exported`);
  const q = g.op('Div', [operand(g, c, 0, result), operand(g, c, 1, result)], {}, mode === null ? c.outName() : undefined);
  if (mode === 'floor') g.op('Floor', [q], {}, c.outName());
  else if (mode === 'trunc') {
    // trunc(q) = sign(q)·floor(|q|)
    g.op('Mul', [g.op('Sign', [q]), g.op('Floor', [g.op('Abs', [q])])], {}, c.outName());
  }
}

function clamp(g: GraphBuilder, c: CallView, lowArg: number | null, highArg: number | null): void {
  const dtype = c.output().dtype;
  let x = g.cast(c.tensor(0), c.dtype(0), dtype);
  const bound = (i: number | null) => (i === null || c.raw(i) === null || c.raw(i) === undefined ? null : operand(g, c, i, dtype));
  const low = bound(lowArg);
  const high = bound(highArg);
  if (low) x = g.op('Max', [x, low]);
  if (high) x = g.op('Min', [x, high]);
  g.op('Identity', [x], {}, c.outName());
}

function reduce(opType: string, axesAsInput: boolean): OpTranslation {
  return (g, c) => {
    const rank = c.rank(0);
    const dims = c.raw(1) === null || c.raw(1) === undefined || typeof c.raw(1) === 'boolean' ? [] : c.ints(1);
    const axes = permutation(rank, dims);
    const keepdims = c.raw(2) === true ? 1 : 0;
    const dtype = c.output().dtype;
    const x = g.cast(c.tensor(0), c.dtype(0), dtype);
    if (axes.length === 0) {
      g.op(opType, [x], { keepdims }, c.outName());
    } else if (axesAsInput) {
      g.op(opType, [x, g.constant(axes, 'int64')], { keepdims }, c.outName());
    } else g.op(opType, [x], { axes, keepdims }, c.outName());
  };
}

function whole(opType: string): OpTranslation {
  return (g, c) => {
    const dtype = c.output().dtype;
    g.op(opType, [g.cast(c.tensor(0), c.dtype(0), dtype)], { keepdims: 0 }, c.outName());
  };
}

function maskedFill(g: GraphBuilder, c: CallView): void {
  const dtype = c.output().dtype;
  const value = c.isTensor(2) ? g.cast(c.tensor(2), c.dtype(2), dtype) : g.constant(c.number(2), dtype, []);
  g.op('Where', [c.tensor(1), value, c.tensor(0)], {}, c.outName());
}

function where(g: GraphBuilder, c: CallView): void {
  const dtype = c.output().dtype;
  g.op('Where', [c.tensor(0), operand(g, c, 1, dtype), operand(g, c, 2, dtype)], {}, c.outName());
}

/** Tensors made by creation ops that depend on the batch: ConstantOfShape of the traced shape. */
function filled(valueArg: number | null, fill = 0): OpTranslation {
  return (g, c) => {
    const v = valueArg === null ? fill : c.number(valueArg);
    const out = c.output();
    const value = g.constant(v, out.dtype, [1]);
    g.op('Expand', [g.op('Reshape', [value, g.constant([], 'int64', [0])]), g.shape(out.shape)], {}, c.outName());
  };
}

const toDtype: OpTranslation = (g, c) => { g.op('Identity', [g.cast(c.tensor(0), c.dtype(0), c.output().dtype)], {}, c.outName()); };

const same = (opType: string): OpTranslation => (g, c) => { g.op(opType, [c.tensor(0)], {}, c.outName()); };

export const TENSOR_OPS: Record<string, OpTranslation> = {
  'aten::reshape': reshapeToResult,
  'aten::view': reshapeToResult,
  'aten::_unsafe_view': reshapeToResult,
  'aten::flatten.using_ints': reshapeToResult,
  'aten::unflatten.int': reshapeToResult,
  'aten::squeeze': reshapeToResult,
  'aten::squeeze.dim': reshapeToResult,
  'aten::unsqueeze': reshapeToResult,
  'aten::expand': (g, c) => { g.op('Expand', [c.tensor(0), g.shape(c.output().shape)], {}, c.outName()); },
  'aten::expand_as': (g, c) => { g.op('Expand', [c.tensor(0), g.shape(c.output().shape)], {}, c.outName()); },
  'aten::permute': (g, c) => { g.op('Transpose', [c.tensor(0)], { perm: permutation(c.rank(0), c.ints(1)) }, c.outName()); },
  'aten::movedim.int': (g, c) => {
    const rank = c.rank(0);
    const from = c.dim(1, rank);
    const to = c.dim(2, rank);
    const perm = Array.from({ length: rank }, (_, i) => i).filter((i) => i !== from);
    perm.splice(to, 0, from);
    g.op('Transpose', [c.tensor(0)], { perm }, c.outName());
  },
  'aten::transpose.int': transpose,
  'aten::select.int': select,
  'aten::slice.Tensor': slice,
  'aten::narrow': narrow,
  'aten::split_with_sizes': split,
  'aten::split.Tensor': split,
  'aten::chunk': (g, c) => {
    const rank = c.rank(0);
    const dim = c.dim(2, rank);
    const sizes = Array.from({ length: c.outputCount }, (_, k) => c.output(k).shape[dim] as number);
    g.node('Split', [c.tensor(0), g.constant(sizes, 'int64')], { axis: dim }, Array.from({ length: c.outputCount }, (_, k) => c.outName(k)));
  },
  'aten::cat': cat,
  'aten::stack': stack,
  'aten::roll': roll,
  'aten::pad': (g, c) => pad(g, c, 2, 3),
  'aten::constant_pad_nd': (g, c) => pad(g, c, null, 2),
  'aten::unfold': unfold,
  'aten::index_select': (g, c) => { g.op('Gather', [c.tensor(0), c.tensor(2)], { axis: c.dim(1, c.rank(0)) }, c.outName()); },
  'aten::gather': (g, c) => { g.op('GatherElements', [c.tensor(0), c.tensor(2)], { axis: c.dim(1, c.rank(0)) }, c.outName()); },
  'aten::flip': (g, c) => {
    let x = c.tensor(0);
    for (const d of permutation(c.rank(0), c.ints(1))) x = sliceDim(g, x, d, -1, -INT64_MAX, -1);
    g.op('Identity', [x], {}, c.outName());
  },
  'aten::masked_fill.Scalar': maskedFill,
  'aten::masked_fill.Tensor': maskedFill,
  'aten::where.self': where,
  'aten::where.ScalarOther': where,
  'aten::where.ScalarSelf': where,
  'aten::where.Scalar': where,
  'aten::add.Tensor': binary('Add', { alpha: true }),
  'aten::add.Scalar': binary('Add', { alpha: true }),
  'aten::sub.Tensor': binary('Sub', { alpha: true }),
  'aten::sub.Scalar': binary('Sub', { alpha: true }),
  'aten::rsub.Scalar': binary('Sub', { alpha: true, reverse: true }),
  'aten::mul.Tensor': binary('Mul'),
  'aten::mul.Scalar': binary('Mul'),
  'aten::div.Tensor': divide,
  'aten::div.Scalar': divide,
  'aten::div.Tensor_mode': divide,
  'aten::maximum': binary('Max'),
  'aten::minimum': binary('Min'),
  'aten::pow.Tensor_Scalar': binary('Pow'),
  'aten::pow.Tensor_Tensor': binary('Pow'),
  'aten::eq.Tensor': binary('Equal'),
  'aten::eq.Scalar': binary('Equal'),
  'aten::ne.Tensor': binary('Equal', { not: true }),
  'aten::ne.Scalar': binary('Equal', { not: true }),
  'aten::lt.Tensor': binary('Less'),
  'aten::lt.Scalar': binary('Less'),
  'aten::le.Tensor': binary('LessOrEqual'),
  'aten::le.Scalar': binary('LessOrEqual'),
  'aten::gt.Tensor': binary('Greater'),
  'aten::gt.Scalar': binary('Greater'),
  'aten::ge.Tensor': binary('GreaterOrEqual'),
  'aten::ge.Scalar': binary('GreaterOrEqual'),
  'aten::logical_and': binary('And'),
  'aten::logical_or': binary('Or'),
  'aten::logical_not': (g, c) => { g.op('Not', [g.cast(c.tensor(0), c.dtype(0), 'bool')], {}, c.outName()); },
  'aten::clamp': (g, c) => clamp(g, c, 1, 2),
  'aten::clamp.Tensor': (g, c) => clamp(g, c, 1, 2),
  'aten::clamp_min': (g, c) => clamp(g, c, 1, null),
  'aten::clamp_max': (g, c) => clamp(g, c, null, 1),
  'aten::neg': same('Neg'),
  'aten::abs': same('Abs'),
  'aten::sign': same('Sign'),
  'aten::floor': same('Floor'),
  'aten::ceil': same('Ceil'),
  'aten::round': same('Round'),
  'aten::sqrt': same('Sqrt'),
  'aten::rsqrt': (g, c) => { g.op('Reciprocal', [g.op('Sqrt', [c.tensor(0)])], {}, c.outName()); },
  'aten::exp': same('Exp'),
  'aten::log': same('Log'),
  'aten::erf': same('Erf'),
  'aten::sin': same('Sin'),
  'aten::cos': same('Cos'),
  'aten::reciprocal': same('Reciprocal'),
  'aten::sum.dim_IntList': reduce('ReduceSum', true),
  'aten::mean.dim': reduce('ReduceMean', false),
  'aten::amax': reduce('ReduceMax', false),
  'aten::amin': reduce('ReduceMin', false),
  'aten::sum': whole('ReduceSum'),
  'aten::mean': whole('ReduceMean'),
  'aten::repeat': (g, c) => {
    const repeats = c.ints(1);
    const rank = c.rank(0);
    const x = repeats.length > rank ? g.op('Reshape', [c.tensor(0), g.shape([...new Array(repeats.length - rank).fill(1), ...c.value(0).shape])]) : c.tensor(0);
    g.op('Tile', [x, g.constant(repeats, 'int64')], {}, c.outName());
  },
  'aten::tril': (g, c) => { g.op('Trilu', [c.tensor(0), g.constant(c.int(1, 0), 'int64', [])], { upper: 0 }, c.outName()); },
  'aten::triu': (g, c) => { g.op('Trilu', [c.tensor(0), g.constant(c.int(1, 0), 'int64', [])], { upper: 1 }, c.outName()); },
  'aten::argmax': (g, c) => {
    if (c.raw(1) === null || c.raw(1) === undefined) throw c.error('argmax over the flattened tensor is not exported; pass a dim');
    g.op('ArgMax', [c.tensor(0)], { axis: c.dim(1, c.rank(0)), keepdims: c.raw(2) === true ? 1 : 0 }, c.outName());
  },
  'aten::_to_copy': toDtype,
  'aten::detach': identity,
  'aten::clone': identity,
  'aten::contiguous': identity,
  'aten::dropout': (g, c) => {
    if (c.raw(2) === true) throw c.error('dropout in training mode cannot be exported; call model.eval() (export does this)');
    identity(g, c);
  },
  'aten::feature_dropout': (g, c) => {
    if (c.raw(2) === true) throw c.error('dropout in training mode cannot be exported; call model.eval() (export does this)');
    identity(g, c);
  },
  'aten::zeros': filled(null, 0),
  'aten::ones': filled(null, 1),
  'aten::full': filled(1),
  'aten::zeros_like': filled(null, 0),
  'aten::ones_like': filled(null, 1),
  'aten::full_like': filled(1),
};
