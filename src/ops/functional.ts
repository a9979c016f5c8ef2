/**
 * torch.nn.functional and torch.* free functions, with options objects for keyword arguments.
 * Thin: each function picks the libtorch operator and converts options; semantics (defaults,
 * broadcasting, autograd) are libtorch's.
 */
import type { DType } from '../native/binding.js';
import { Tensor } from '../tensor/tensor.js';
import * as aten from './generated/ops.gen.js';

type Pair = number | [number, number];

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}

export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: Conv2dOptions = {}): Tensor {
  return aten.conv2d(x, weight, bias, o.stride ?? 1, o.padding ?? 0, o.dilation ?? 1, o.groups ?? 1);
}

/**
 * conv2d of one x by several weights of one geometry (and their biases: all given or all null), as
 * one conv over the weights concatenated along the output channels, split back: one pass over x
 * and one GEMM each way instead of one per weight; the outputs are channel slices (views) of the
 * one map. With groups > 1 (a concatenation would mix the weights' rows across groups) or mixed
 * biases, one conv per weight.
 */
export function conv2dSplit(x: Tensor, weights: Tensor[], biases: (Tensor | null)[] | null = null, o: Conv2dOptions = {}): Tensor[] {
  const b = biases ?? weights.map(() => null);
  if (b.length !== weights.length) {
    throw new RangeError(`conv2dSplit: ${weights.length} weights but ${b.length} biases; give one bias (or null) per weight`);
  }
  const withBias = b.filter((t) => t !== null).length;
  if ((o.groups ?? 1) !== 1 || (withBias > 0 && withBias < b.length)) return weights.map((w, i) => conv2d(x, w, b[i], o));
  const bias = withBias > 0 ? aten.cat(b as Tensor[], 0) : null;
  return conv2d(x, aten.cat(weights, 0), bias, o).split(weights.map((w) => w.shape[0]), 1);
}

export function conv1d(x: Tensor, weight: Tensor, bias: Tensor | null = null, o: { stride?: number; padding?: number; dilation?: number; groups?: number } = {}): Tensor {
  return aten.conv1d(x, weight, bias, o.stride ?? 1, o.padding ?? 0, o.dilation ?? 1, o.groups ?? 1);
}

export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  return aten.linear(x, weight, bias);
}

export interface PoolOptions {
  stride?: Pair;
  padding?: Pair;
  ceilMode?: boolean;
}

export function maxPool2d(x: Tensor, kernelSize: Pair, o: PoolOptions & { dilation?: Pair } = {}): Tensor {
  return aten.max_pool2d(x, kernelSize, o.stride ?? kernelSize, o.padding ?? 0, o.dilation ?? 1, o.ceilMode ?? false);
}

export function avgPool2d(x: Tensor, kernelSize: Pair, o: PoolOptions & { countIncludePad?: boolean; divisorOverride?: number } = {}): Tensor {
  return aten.avg_pool2d(x, kernelSize, o.stride ?? kernelSize, o.padding ?? 0, o.ceilMode ?? false,
    o.countIncludePad ?? true, o.divisorOverride ?? null);
}

export function adaptiveAvgPool2d(x: Tensor, outputSize: Pair): Tensor {
  return aten.adaptive_avg_pool2d(x, outputSize);
}

export function adaptiveMaxPool2d(x: Tensor, outputSize: Pair): Tensor {
  return aten.adaptive_max_pool2d(x, outputSize)[0];
}

export interface BatchNormOptions {
  weight?: Tensor | null;
  bias?: Tensor | null;
  training?: boolean;
  momentum?: number;
  eps?: number;
}

/** Normalises over every dim but 1; in training mode updates the running statistics in place. */
export function batchNorm(x: Tensor, runningMean: Tensor | null, runningVar: Tensor | null, o: BatchNormOptions = {}): Tensor {
  return aten.batch_norm(x, o.weight ?? null, o.bias ?? null, runningMean, runningVar, o.training ?? false,
    o.momentum ?? 0.1, o.eps ?? 1e-5, true);
}

export function layerNorm(x: Tensor, normalizedShape: number[], o: { weight?: Tensor | null; bias?: Tensor | null; eps?: number } = {}): Tensor {
  return aten.layer_norm(x, normalizedShape, o.weight ?? null, o.bias ?? null, o.eps ?? 1e-5);
}

export function groupNorm(x: Tensor, numGroups: number, o: { weight?: Tensor | null; bias?: Tensor | null; eps?: number } = {}): Tensor {
  return aten.group_norm(x, numGroups, o.weight ?? null, o.bias ?? null, o.eps ?? 1e-5);
}

export const relu = (x: Tensor): Tensor => aten.relu(x);
export const silu = (x: Tensor): Tensor => aten.silu(x);
export const sigmoid = (x: Tensor): Tensor => aten.sigmoid(x);
export const tanh = (x: Tensor): Tensor => aten.tanh(x);
export const leakyRelu = (x: Tensor, negativeSlope = 0.01): Tensor => aten.leaky_relu(x, negativeSlope);
export const elu = (x: Tensor, alpha = 1): Tensor => aten.elu(x, alpha);
export const hardsigmoid = (x: Tensor): Tensor => aten.hardsigmoid(x);

/** GELU: exact (erf) by default, `{ approximate: 'tanh' }` for the tanh approximation. */
export function gelu(x: Tensor, o: { approximate?: 'none' | 'tanh' } = {}): Tensor {
  return aten.gelu(x, o.approximate ?? 'none');
}

export function softplus(x: Tensor, o: { beta?: number; threshold?: number } = {}): Tensor {
  return aten.softplus(x, o.beta ?? 1, o.threshold ?? 20);
}

export function softmax(x: Tensor, dim: number, o: { dtype?: DType } = {}): Tensor {
  return aten.softmax_int(x, dim, o.dtype ?? null);
}

export function logSoftmax(x: Tensor, dim: number, o: { dtype?: DType } = {}): Tensor {
  return aten.log_softmax_int(x, dim, o.dtype ?? null);
}

/**
 * softmax(q·kᵀ·scale + mask)·v over the last two dims, as torch's F.scaled_dot_product_attention
 * (libtorch ≥ 2.0; on CPU a flash-attention kernel that keeps no (Lq, Lk) weights for backward).
 * q (…, Lq, E), k (…, Lk, E), v (…, Lk, Ev) → (…, Lq, Ev); scale defaults to E^-0.5.
 * libtorch 1.13 lacks it: layers ask ops/fused.ts `useFused(['aten::scaled_dot_product_attention'], …)`.
 */
export function scaledDotProductAttention(
  q: Tensor, k: Tensor, v: Tensor,
  o: { attnMask?: Tensor | null; dropoutP?: number; isCausal?: boolean; scale?: number | null } = {},
): Tensor {
  return aten.scaled_dot_product_attention(q, k, v, o.attnMask ?? null, o.dropoutP ?? 0, o.isCausal ?? false, o.scale ?? null);
}

/** Inverted dropout: zeroes with probability p and scales the rest by 1/(1-p) while training. */
export function dropout(x: Tensor, p = 0.5, training = true): Tensor {
  if (p < 0 || p > 1) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  return training && p > 0 ? aten.dropout(x, p, true) : x;
}

/**
 * Stochastic depth (timm drop_path): drops whole samples of a residual branch with probability
 * p while training and scales survivors by 1/(1-p).
 */
export function dropPath(x: Tensor, p: number, training: boolean): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropPath: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  if (p === 1) return x.mul(0);  // every sample dropped (timm): avoid 0/0
  const keep = 1 - p;
  const shape = [x.shape[0], ...new Array<number>(x.ndim - 1).fill(1)];
  const mask = aten.bernoulli_p(aten.empty_memory_format(shape, x.dtype, null, x.device), keep);
  return x.mul(mask.div(keep));
}

export interface GridSampleOptions {
  mode?: 'bilinear' | 'nearest' | 'bicubic';
  paddingMode?: 'zeros' | 'border' | 'reflection';
  alignCorners?: boolean;
}

const GRID_MODES = { bilinear: 0, nearest: 1, bicubic: 2 } as const;
const GRID_PADDING = { zeros: 0, border: 1, reflection: 2 } as const;

/** Samples x (N, C, H, W) at grid (N, Ho, Wo, 2) holding (x, y) in [-1, 1] (F.grid_sample). */
export function gridSample(x: Tensor, grid: Tensor, o: GridSampleOptions = {}): Tensor {
  return aten.grid_sampler(x, grid, GRID_MODES[o.mode ?? 'bilinear'], GRID_PADDING[o.paddingMode ?? 'zeros'], o.alignCorners ?? false);
}

export interface InterpolateOptions {
  size?: [number, number];
  scaleFactor?: number | [number, number];
  mode?: 'nearest' | 'bilinear' | 'bicubic';
  alignCorners?: boolean;
}

/** Resizes (N, C, H, W) maps by `size` or `scaleFactor` (F.interpolate). */
export function interpolate(x: Tensor, o: InterpolateOptions): Tensor {
  if ((o.size === undefined) === (o.scaleFactor === undefined)) {
    throw new TypeError('interpolate: give exactly one of size and scaleFactor');
  }
  const scales = o.scaleFactor === undefined ? null
    : typeof o.scaleFactor === 'number' ? [o.scaleFactor, o.scaleFactor] : o.scaleFactor;
  const size = o.size ?? null;
  const mode = o.mode ?? 'nearest';
  if (mode === 'nearest') {
    if (o.alignCorners !== undefined) throw new TypeError("interpolate: alignCorners only applies to 'bilinear' and 'bicubic'");
    return aten.upsample_nearest2d_vec(x, size, scales);
  }
  const align = o.alignCorners ?? false;
  return mode === 'bilinear'
    ? aten.upsample_bilinear2d_vec(x, size, align, scales)
    : aten.upsample_bicubic2d_vec(x, size, align, scales);
}

const REDUCTIONS = { none: 0, mean: 1, sum: 2 } as const;
export type Reduction = keyof typeof REDUCTIONS;

export interface CrossEntropyOptions {
  weight?: Tensor | null;
  ignoreIndex?: number;
  reduction?: Reduction;
  labelSmoothing?: number;
}

/** Cross entropy from logits (N, C, ...) and class indices (N, ...) or class probabilities. */
export function crossEntropy(logits: Tensor, target: Tensor, o: CrossEntropyOptions = {}): Tensor {
  return aten.cross_entropy_loss(logits, target, o.weight ?? null, REDUCTIONS[o.reduction ?? 'mean'],
    o.ignoreIndex ?? -100, o.labelSmoothing ?? 0);
}

export function nllLoss(logProbs: Tensor, target: Tensor, o: Omit<CrossEntropyOptions, 'labelSmoothing'> = {}): Tensor {
  return aten.nll_loss(logProbs, target, o.weight ?? null, REDUCTIONS[o.reduction ?? 'mean'], o.ignoreIndex ?? -100);
}

export function mseLoss(x: Tensor, target: Tensor, o: { reduction?: Reduction } = {}): Tensor {
  return aten.mse_loss(x, target, REDUCTIONS[o.reduction ?? 'mean']);
}

/** int64 class indices → one-hot int64 (numClasses -1 infers it from the data). */
export function oneHot(indices: Tensor, numClasses = -1): Tensor {
  return aten.one_hot(indices, numClasses);
}

/**
 * Pads the last dims: `pads` lists (left, right) pairs starting from the last dim, as F.pad.
 * Modes 'constant' (with value), 'reflect', 'replicate' and 'circular'.
 */
export function pad(x: Tensor, pads: number[], o: { mode?: 'constant' | 'reflect' | 'replicate' | 'circular'; value?: number } = {}): Tensor {
  const mode = o.mode ?? 'constant';
  if (mode !== 'constant' && o.value !== undefined) throw new TypeError(`pad: value only applies to mode 'constant', not '${mode}'`);
  return aten.pad(x, pads, mode, mode === 'constant' ? (o.value ?? 0) : null);
}

export const cat = (tensors: Tensor[], dim = 0): Tensor => aten.cat(tensors, dim);
export const stack = (tensors: Tensor[], dim = 0): Tensor => aten.stack(tensors, dim);
export const einsum = (equation: string, ...tensors: Tensor[]): Tensor => aten.einsum(equation, tensors);
export const matmul = (a: Tensor, b: Tensor): Tensor => aten.matmul(a, b);
export const outer = (a: Tensor, b: Tensor): Tensor => aten.outer(a, b);
export const pixelShuffle = (x: Tensor, upscaleFactor: number): Tensor => aten.pixel_shuffle(x, upscaleFactor);
export const pixelUnshuffle = (x: Tensor, downscaleFactor: number): Tensor => aten.pixel_unshuffle(x, downscaleFactor);

export interface UnfoldOptions {
  dilation?: Pair;
  padding?: Pair;
  stride?: Pair;
}

/** Sliding k×k patches of (N, C, H, W) as columns (N, C·kH·kW, L), as F.unfold (im2col). */
export function unfold(x: Tensor, kernelSize: Pair, o: UnfoldOptions = {}): Tensor {
  return aten.im2col(x, kernelSize, o.dilation ?? 1, o.padding ?? 0, o.stride ?? 1);
}

/** The adjoint of unfold: sums columns (N, C·kH·kW, L) back into (N, C, H, W), as F.fold (col2im). */
export function fold(columns: Tensor, outputSize: Pair, kernelSize: Pair, o: UnfoldOptions = {}): Tensor {
  return aten.col2im(columns, outputSize, kernelSize, o.dilation ?? 1, o.padding ?? 0, o.stride ?? 1);
}

/** Elementwise choice: condition ? a : b, with scalars broadcast. */
export function where(condition: Tensor, a: Tensor | number, b: Tensor | number): Tensor {
  if (a instanceof Tensor && b instanceof Tensor) return aten.where_self(condition, a, b);
  if (a instanceof Tensor) return aten.where_ScalarOther(condition, a, b as number);
  if (b instanceof Tensor) return aten.where_ScalarSelf(condition, a, b);
  return aten.where_Scalar(condition, a, b);
}
