/**
 * NeighborhoodAttention2d: per-pixel k×k neighbourhood attention with relative position bias
 * (Hassani et al., "Neighborhood Attention Transformer", CVPR 2023), with NATTEN 0.14.6 semantics
 * (reference-layers.md §6).
 *   §3.1 Eq. (2)  A_i = [q_i·k_ρ1(i) + B(i,ρ1(i)), …, q_i·k_ρk²(i) + B(i,ρk²(i))]  → forward() logits
 *   §3.1 Eq. (3)  V_i = [v_ρ1(i), …, v_ρk²(i)]ᵀ                                      → gatherWindows(v)
 *   §3.1 Eq. (4)  NA_k(i) = softmax(A_i / √d) V_i                                   → forward() output
 *   ρ_j(i): the j-th nearest neighbour of i, so a border query keeps k² keys: its window is the one
 *   of the nearest pixel with a full window (clamped inside the map). Dilation (keys every d-th
 *   pixel on the query's residue class) is DiNAT's (Hassani & Shi 2022, §3), in NATTEN 0.14.
 *   (Eq. (1) of the paper is global self-attention softmax(QKᵀ/√d + B)V. Numbers as in the NAT
 *   paper, "Neighborhood Attention Transformer", arXiv 2204.07143; docs/papers.md.)
 * Legend: k kernel size, d dilation (keys every d-th pixel, on the query's residue class mod d),
 * ns = ⌊k/2⌋, T = k², nh heads, dh = dim / nh, B(·) = rpb[h, Δy/d + k − 1, Δx/d + k − 1].
 * Reference: SHI-Labs/NATTEN v0.14.6 (3b54c761), src/natten/natten2d.py class
 * NeighborhoodAttention2D + csrc/cpu (get_window_start, get_pb_start).
 * Fixtures: natten-na2d-open (6×6, k 3), natten-na2d-smallinput-open (3×4, k 5: padding path).
 * Implementation (window-gather.ts): the fused window kernel (native/kernels/window_attention.cc,
 * windows read in place from the clamped window starts) when the addon has it; otherwise windows as
 * index tensors and one gather for K and V (O(B·nh·H·W·k²·dh) memory) with einsums. Either way
 * countMacs sees q·k and the weighted sum. The rpb is indexed by each key's true relative offset, which equals NATTEN's
 * get_pb_start rule for clamped windows (checked algebraically for d ≥ 1).
 * Deviations:
 *   1. qkScale must be a positive number or undefined; NATTEN's `qk_scale or head_dim**-0.5` also
 *      falls back on 0, which here throws RangeError.
 *   2. dim not divisible by numHeads throws RangeError (NATTEN fails later in a reshape).
 *   3. forwardNchw() adds an NCHW entry point; forward() keeps NATTEN's (B, H, W, C).
 *   4. The padded tokens of the small-input path are, as in NATTEN, real tokens (their q, k, v are
 *      the qkv biases) that the cropped queries attend to; kept for parity, not masked.
 *   5. On CPU, without attention dropout, Eq. (2)–(4) run as one fused kernel
 *      (`vicinity::window_softmax_attention`, window_softmax.cc): q·k + rpb, softmax and ·V per
 *      query, nothing k²-sized kept for backward. Otherwise (kernel mode 'composite', dropout,
 *      other devices) the window products run separately (window_qk / window_av, or gathers).
 */
import { recordAttention } from './attention-capture.js';
import { Linear } from '../nn/layers/linear.js';
import { booleanOption, divisibleBy, integerAtLeast, knownOptions, numberInRange, optionNames, positiveNumber } from '../nn/layers/validation.js';
import { Module } from '../nn/module.js';
import { truncNormal_ } from '../nn/init.js';
import { newParameter } from '../nn/layers/new-parameter.js';
import type { Parameter } from '../nn/parameter.js';
import { useFused } from '../ops/fused.js';
import * as F from '../ops/functional.js';
import * as aten from '../ops/generated/ops.gen.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ReferenceBuilders } from './reference-builders.js';
import { fusedWindowAttention, fusedWindowsActive, gatherWindows, windowIndex, windowSoftmaxAttentionQkv, windowStarts } from './window-gather.js';

export interface NeighborhoodAttention2dOptions {
  /** Channels C of the (B, H, W, C) input and output. */
  dim: number;
  numHeads: number;
  /** Window size k: odd, > 1 (NATTEN 0.14's assertion). */
  kernelSize: number;
  /** Default 1. */
  dilation?: number;
  /** Relative position bias `rpb` (NATTEN's `bias`); default true. */
  bias?: boolean;
  /** Bias of the qkv Linear; default true. */
  qkvBias?: boolean;
  /** Query scale; default dh^-0.5. */
  qkScale?: number;
  /** Dropout on the attention weights; default 0. */
  attnDrop?: number;
  /** Dropout after proj; default 0. */
  projDrop?: number;
}

const NEIGHBORHOOD_ATTENTION2D_OPTION_NAMES = optionNames<NeighborhoodAttention2dOptions>({
  dim: 1, numHeads: 1, kernelSize: 1, dilation: 1, bias: 1, qkvBias: 1, qkScale: 1, attnDrop: 1, projDrop: 1,
});

/** The tensors neighborhoodAttention2d needs; null where a bias is switched off. */
export interface NeighborhoodAttention2dWeights {
  qkvWeight: Tensor;
  qkvBias: Tensor | null;
  rpb: Tensor | null;
  projWeight: Tensor;
  projBias: Tensor | null;
}

export interface NeighborhoodAttention2dConfig {
  numHeads: number;
  kernelSize: number;
  dilation: number;
  scale: number;
  attnDrop: number;
  projDrop: number;
  training: boolean;
}

/**
 * The functional form of NeighborhoodAttention2d.forward (x (B, H, W, C) → (B, H, W, C)); the
 * module calls it with its parameters, gradcheck with free tensors.
 */
export function neighborhoodAttention2d(x: Tensor, w: NeighborhoodAttention2dWeights, c: NeighborhoodAttention2dConfig): Tensor {
  const [B, H0, W0, C] = x.shape;
  const { numHeads: nh, kernelSize: k, dilation: d } = c;
  const dh = C / nh;
  const T = k * k;
  // Small-input path: pad bottom/right to the window size before qkv, crop after (NATTEN 0.14).
  const padBottom = Math.max(0, k * d - H0);
  const padRight = Math.max(0, k * d - W0);
  const xp = padBottom > 0 || padRight > 0 ? F.pad(x, [0, 0, 0, padRight, 0, padBottom]) : x;
  const [H, W] = [H0 + padBottom, W0 + padRight];
  const qkv = F.linear(xp, w.qkvWeight, w.qkvBias);  // (B, H, W, 3C), channels [q, k, v] × nh × dh
  // split, not select: its backward writes the three gradients into one (B, H, W, 3C) tensor, where
  // select's would make a zero-filled copy of it per part and add them.
  const [query, key, value] = qkv
    .split([C, C, C], 3)                               // (B, H, W, C) each
    .map((t) => t.reshape([B, H * W, nh, dh]).permute([0, 2, 1, 3])); // (B, nh, H·W, dh)
  const placement = { kernelSize: k, dilation: d, placement: 'clamped', device: x.device } as const;
  const index = windowIndex(H, W, placement);
  const bias = w.rpb                                   // (nh, H·W, T): B(i, ρ(i))
    ? w.rpb.reshape([nh, (2 * k - 1) ** 2]).indexSelect(1, index.offsets).reshape([nh, H * W, T])
    : null;
  const weights = (qk: Tensor) => {                    // Eq. (2) + B(i, ρ(i)), Eq. (4) softmax
    const attention = (bias ? qk.add(bias) : qk).softmax(-1);
    recordAttention('neighborhood', attention, { height: H, width: W }, { keys: index.keys, valid: index.valid });
    return F.dropout(attention, c.attnDrop, c.training);
  };
  // q·k and the weighted sum count B·nh·H·W·T·dh MACs each, as the composite path's einsums
  // (countMacs runs the composite path).
  const dropping = c.training && c.attnDrop > 0;
  const composite = (q: Tensor) => fusedWindowsActive(x.device) // (B, nh, H·W, dh), Eq. (4) · V
    ? fusedWindowAttention(q, key, value, H, W, windowStarts(H, W, placement), weights)
    : aten.einsum('bnpt,bnptd->bnpd', [
      weights(aten.einsum('bnpd,bnptd->bnpt', [q, gatherWindows(key, index.keys, T)])), // Eq. (2) q·k
      gatherWindows(value, index.keys, T)]);           // Eq. (3) V_i
  // The fused kernel takes qkv whole (its gradient comes back packed, with no concatenation).
  const heads = !dropping && useFused(['vicinity::window_softmax_attention_qkv'], x.device)
    ? windowSoftmaxAttentionQkv(qkv, nh, windowStarts(H, W, placement), { bias, scale: c.scale }) // Eq. (4) 1/√d inside
    : composite(query.mul(c.scale));                   // Eq. (4) 1/√d
  let out = heads.permute([0, 2, 1, 3])                // (B, H·W, nh, dh)
    .reshape([B, H, W, C]);                            // (B, H, W, C), channel h·dh + e
  if (padBottom > 0 || padRight > 0) out = out.narrow(1, 0, H0).narrow(2, 0, W0); // (B, H0, W0, C)
  return F.dropout(F.linear(out, w.projWeight, w.projBias), c.projDrop, c.training);
}

/**
 * Neighbourhood attention over a channels-last feature map, NATTEN 0.14.6's
 * NeighborhoodAttention2D: each pixel attends to the k×k window (dilated by d) nearest to it,
 * shifted inward at the borders, with a learned relative position bias.
 *
 * Shape: forward: (B, H, W, dim) → (B, H, W, dim); forwardNchw: (B, dim, H, W) → (B, dim, H, W).
 * H or W smaller than k·d is zero-padded to k·d and cropped back (NATTEN's small-input path).
 *
 * Parameters: `qkv.weight` (3·dim, dim), `qkv.bias` (3·dim) (qkvBias), `rpb` (nh, 2k−1, 2k−1)
 * (bias; trunc_normal std 0.02 on [−2, 2]), `proj.weight` (dim, dim), `proj.bias` (dim); Linear
 * weights and biases PyTorch's default init. qkv output channels are laid out [q, k, v] × nh × dh.
 *
 * Errors: RangeError/TypeError for a bad option (kernelSize even or 1, dim not divisible by
 * numHeads, dilation < 1, dropout outside [0, 1]); ShapeError for an input that is not
 * (B, H, W, dim).
 *
 * @example
 * const na = new NeighborhoodAttention2d({ dim: 64, numHeads: 4, kernelSize: 7 });
 * const y = na.forward(x);   // (2, 14, 14, 64) → (2, 14, 14, 64)
 */
export class NeighborhoodAttention2d extends Module {
  readonly dim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly kernelSize: number;
  readonly dilation: number;
  readonly scale: number;
  readonly attnDrop: number;
  readonly projDrop: number;
  readonly qkv: Linear;
  /** (nh, 2k−1, 2k−1), or null with `bias: false`. */
  readonly rpb: Parameter | null;
  readonly proj: Linear;

  constructor(o: NeighborhoodAttention2dOptions) {
    super();
    knownOptions('NeighborhoodAttention2d', o, NEIGHBORHOOD_ATTENTION2D_OPTION_NAMES);
    const name = 'NeighborhoodAttention2d';
    this.dim = integerAtLeast(name, 'dim', o.dim, 1);
    this.numHeads = integerAtLeast(name, 'numHeads', o.numHeads, 1);
    divisibleBy(name, 'dim', this.dim, 'numHeads', this.numHeads, 'choose numHeads among the divisors of dim');
    this.headDim = this.dim / this.numHeads;
    this.kernelSize = integerAtLeast(name, 'kernelSize', o.kernelSize, 1);
    if (this.kernelSize < 3 || this.kernelSize % 2 === 0) {
      throw new RangeError(`${name}: kernelSize must be odd and > 1 (NATTEN 0.14), got ${this.kernelSize}; ` +
        `use ${Math.max(3, this.kernelSize + 1 - (this.kernelSize % 2))}`);
    }
    this.dilation = integerAtLeast(name, 'dilation', o.dilation ?? 1, 1);
    this.scale = o.qkScale === undefined ? this.headDim ** -0.5 : positiveNumber(name, 'qkScale', o.qkScale);
    this.attnDrop = numberInRange(name, 'attnDrop', o.attnDrop ?? 0, 0, 1);
    this.projDrop = numberInRange(name, 'projDrop', o.projDrop ?? 0, 0, 1);
    const qkvBias = booleanOption(name, 'qkvBias', o.qkvBias ?? true);
    this.qkv = this.register('qkv', new Linear({ inFeatures: this.dim, outFeatures: 3 * this.dim, bias: qkvBias }));
    const span = 2 * this.kernelSize - 1;
    const rpb = booleanOption(name, 'bias', o.bias ?? true) ? newParameter([this.numHeads, span, span], 0) : null;
    this.rpb = this.registerParameter('rpb', rpb);
    if (this.rpb) truncNormal_(this.rpb, { std: 0.02, a: -2, b: 2 });
    this.proj = this.register('proj', new Linear({ inFeatures: this.dim, outFeatures: this.dim }));
  }

  /** x (B, H, W, dim) → (B, H, W, dim). */
  forward(x: Tensor): Tensor {
    const shape = x.shape;
    if (shape.length !== 4 || shape[3] !== this.dim) {
      throw new ShapeError(`NeighborhoodAttention2d: expected input (B, H, W, dim=${this.dim}) (channels last), ` +
        `got shape [${shape.join(', ')}]; for (B, C, H, W) call forwardNchw()`);
    }
    return neighborhoodAttention2d(x, this.weights(), this.config());
  }

  /** x (B, dim, H, W) → (B, dim, H, W): forward() between two permutes. */
  forwardNchw(x: Tensor): Tensor {
    const shape = x.shape;
    if (shape.length !== 4 || shape[1] !== this.dim) {
      throw new ShapeError(`NeighborhoodAttention2d.forwardNchw: expected input (B, dim=${this.dim}, H, W), ` +
        `got shape [${shape.join(', ')}]; for (B, H, W, C) call forward()`);
    }
    return this.forward(x.permute([0, 2, 3, 1]))       // (B, H, W, dim)
      .permute([0, 3, 1, 2]);                          // (B, dim, H, W)
  }

  /** The parameters as neighborhoodAttention2d takes them. */
  weights(): NeighborhoodAttention2dWeights {
    return {
      qkvWeight: this.qkv.weight, qkvBias: this.qkv.bias, rpb: this.rpb,
      projWeight: this.proj.weight, projBias: this.proj.bias,
    };
  }

  /** The hyper-parameters and mode as neighborhoodAttention2d takes them. */
  config(): NeighborhoodAttention2dConfig {
    return {
      numHeads: this.numHeads, kernelSize: this.kernelSize, dilation: this.dilation, scale: this.scale,
      attnDrop: this.attnDrop, projDrop: this.projDrop, training: this.training,
    };
  }
}

/** Reads an optional number from a Python ctor, treating None (null) as absent. */
function optional(value: unknown): number | undefined {
  return value === null || value === undefined ? undefined : (value as number);
}

/** Builders from the reference's snake_case constructor (fixture spec.ctor), by spec.kind. */
export const referenceBuilders: ReferenceBuilders = {
  'natten.natten2d.NeighborhoodAttention2D': (ctor) => new NeighborhoodAttention2d({
    dim: ctor.dim as number,
    numHeads: ctor.num_heads as number,
    kernelSize: ctor.kernel_size as number,
    dilation: optional(ctor.dilation),
    bias: ctor.bias as boolean | undefined,
    qkvBias: ctor.qkv_bias as boolean | undefined,
    qkScale: optional(ctor.qk_scale) || undefined, // Python's `qk_scale or head_dim**-0.5`
    attnDrop: optional(ctor.attn_drop),
    projDrop: optional(ctor.proj_drop),
  }),
};
