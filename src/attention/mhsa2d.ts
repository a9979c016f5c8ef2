/**
 * MultiHeadSelfAttention2d: the global multi-head self-attention of BoTNet (Srinivas et al., CVPR
 * 2021, "Bottleneck Transformers for Visual Recognition", arXiv 2101.11605; docs/papers.md).
 *   §3 Fig. 4  z = softmax(q kᵀ + q rᵀ) v over all H·W positions, per head     → attend()
 *   §3 Fig. 4  r = R_h + R_w, relative logits from one table per axis          → rel-pos.ts, Eq. (R)
 *   stride-2 BoT block (c5): 2×2 average pooling after the MHSA                  → attend()
 * Reference: huggingface/pytorch-image-models@aa4b5850, timm/layers/bottleneck_attn.py, class
 * BottleneckAttn (reference-layers.md §9): one `qkv` 1×1 conv laid out [q all heads | k all heads |
 * v all heads] (NOT HaloAttn's per-head interleaving), `pos_embed.height_rel` (2H − 1, dqk) and
 * `pos_embed.width_rel` (2W − 1, dqk), rel logits from the unscaled q, no output projection.
 * Fixture: botnet-attn-open.
 * Deviations: 1. `relPosResize: 'linear'` (not in timm) accepts an input other than featSize: both
 * tables are resampled to 2H' − 1 and 2W' − 1 rows by 1-D linear interpolation along the position
 * axis with align-corners semantics (resizeRelPosTable in rel-pos.ts). 2. timm's bare asserts become
 * ShapeError/RangeError naming the values and the fix. 3. stride must be 1 or 2: timm silently treats
 * any stride ≠ 2 as 1. 4. Stride 2 needs H, W ≥ 2 (the 2×2 pool floors odd sizes, as timm's).
 * 5. On a square map the attention runs fused (ops/fused.ts) as HaloAttention's kernel with one
 * block covering the map and no halo (`vicinity::halo_attention`, the same relative indexing),
 * reading qkv's q and [k | v] channel slices in place and writing the output map: the same values
 * without the (B·nh, L, L) logits or layout copies, and backward recomputes them (flash-style).
 * Legend: nh heads, dqk/dv the q·k/v head widths, B batch, L = H·W tokens in raster order.
 */
import { recordAttention } from './attention-capture.js';
import { useFused } from '../ops/fused.js';
import * as F from '../ops/functional.js';
import * as aten from '../ops/generated/ops.gen.js';
import { init, Module, Conv2d } from '../nn/index.js';
import { booleanOption, divisibleBy, integerAtLeast, knownOptions, oneOf, optionNames, positiveNumber, referenceOptions, sizeTuple } from '../nn/layers/validation.js';
import { tidy } from '../tensor/scope.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ReferenceBuilders } from './reference-builders.js';
import { qkHeadWidth } from './make-divisible.js';
import { globalGeometry, relPosLogits2d, RelPosEmbedding2d, resizeRelPosTable } from './rel-pos.js';

export type RelPosResize = 'none' | 'linear';

/** Options: the camelCase of timm BottleneckAttn's arguments, plus `relPosResize`. */
export interface MultiHeadSelfAttention2dOptions {
  /** Input channels. */
  dim: number;
  /** Output channels (default dim); must divide by numHeads. */
  dimOut?: number;
  /** The input's [H, W] (a number: square); sizes the relative tables. Required. */
  featSize: number | [number, number];
  /** 1, or 2: a 2×2 average pool after the attention. Default 1. */
  stride?: number;
  /** Default 4. */
  numHeads?: number;
  /** q/k width per head; default makeDivisible(dimOut · qkRatio, 8) / numHeads, floored. */
  dimHead?: number;
  /** q/k width relative to dimOut when dimHead is not given; default 1. */
  qkRatio?: number;
  /** Bias on the qkv projection; default false. */
  qkvBias?: boolean;
  /** (q·k + rel)·scale instead of q·k·scale + rel; default false. */
  scalePosEmbed?: boolean;
  /** 'none' (timm, default): the input must be featSize. 'linear': resample the tables (Deviation 1). */
  relPosResize?: RelPosResize;
}

const MULTI_HEAD_SELF_ATTENTION2D_OPTION_NAMES = optionNames<MultiHeadSelfAttention2dOptions>({
  dim: 1, dimOut: 1, featSize: 1, stride: 1, numHeads: 1, dimHead: 1, qkRatio: 1, qkvBias: 1, scalePosEmbed: 1, relPosResize: 1,
});

/** The tensors attend() computes with: the module's parameters, or stand-ins (gradcheck). */
export interface MultiHeadSelfAttention2dWeights {
  qkvWeight: Tensor;
  qkvBias: Tensor | null;
  heightRel: Tensor;
  widthRel: Tensor;
}

/**
 * Global multi-head self-attention over a feature map with 2-D relative logits (timm BottleneckAttn).
 *
 * Shape: (B, dim, H, W) → (B, dimOut, H, W), or (B, dimOut, ⌊H/2⌋, ⌊W/2⌋) with stride 2. (H, W)
 * must equal featSize unless relPosResize is 'linear'. Memory grows as (H·W)² per head.
 *
 * Parameters (timm init): `qkv.weight` (2·nh·dqk + nh·dv, dim, 1, 1) trunc_normal(std dim^-0.5,
 * cut ±2); `qkv.bias` (qkvBias) Conv2d default uniform; `pos_embed.height_rel` (2H − 1, dqk) and
 * `pos_embed.width_rel` (2W − 1, dqk) trunc_normal(std dqk^-0.5).
 *
 * Errors: RangeError/TypeError for bad options (missing featSize, dimOut not divisible by numHeads,
 * stride not 1 or 2, a q/k width of 0, …); ShapeError for an input that is not (B, dim, H, W), whose
 * size differs from featSize (relPosResize 'none'), or smaller than 2×2 with stride 2.
 *
 * @example
 * const mhsa = new MultiHeadSelfAttention2d({ dim: 64, numHeads: 4, featSize: [16, 16] });
 * const y = mhsa.forward(randn([2, 64, 16, 16]));   // (2, 64, 16, 16)
 */
export class MultiHeadSelfAttention2d extends Module {
  readonly dim: number;
  readonly dimOut: number;
  readonly featSize: [number, number];
  readonly stride: number;
  readonly numHeads: number;
  readonly dimHeadQk: number;
  readonly dimHeadV: number;
  readonly scale: number;
  readonly scalePosEmbed: boolean;
  readonly relPosResize: RelPosResize;
  readonly qkv: Conv2d;
  readonly posEmbed: RelPosEmbedding2d;

  constructor(o: MultiHeadSelfAttention2dOptions) {
    super();
    knownOptions('MultiHeadSelfAttention2d', o, MULTI_HEAD_SELF_ATTENTION2D_OPTION_NAMES);
    const layer = 'MultiHeadSelfAttention2d';
    this.dim = integerAtLeast(layer, 'dim', o.dim, 1);
    if (o.featSize === undefined || o.featSize === null) {
      throw new TypeError(`${layer}: featSize (the input's [H, W]) is required; timm BottleneckAttn sizes its ` +
        'relative tables from it');
    }
    const [fh, fw] = sizeTuple(layer, 'featSize', o.featSize, 2, 1);
    this.featSize = [fh, fw];
    this.dimOut = integerAtLeast(layer, 'dimOut', o.dimOut ?? this.dim, 1);
    this.numHeads = integerAtLeast(layer, 'numHeads', o.numHeads ?? 4, 1);
    divisibleBy(layer, 'dimOut', this.dimOut, 'numHeads', this.numHeads, 'change one of them');
    this.stride = integerAtLeast(layer, 'stride', o.stride ?? 1, 1);
    if (this.stride > 2) throw new RangeError(`${layer}: stride must be 1 or 2, got ${this.stride}`);
    const qkRatio = positiveNumber(layer, 'qkRatio', o.qkRatio ?? 1);
    this.dimHeadQk = qkHeadWidth(layer, { dimOut: this.dimOut, numHeads: this.numHeads, qkRatio, dimHead: o.dimHead });
    this.dimHeadV = this.dimOut / this.numHeads;
    this.scale = this.dimHeadQk ** -0.5;
    this.scalePosEmbed = booleanOption(layer, 'scalePosEmbed', o.scalePosEmbed ?? false);
    this.relPosResize = oneOf(layer, 'relPosResize', o.relPosResize ?? 'none', ['none', 'linear'] as const);
    const nh = this.numHeads;
    this.qkv = this.register('qkv', new Conv2d({
      inChannels: this.dim, outChannels: nh * (2 * this.dimHeadQk + this.dimHeadV), kernelSize: 1,
      bias: booleanOption(layer, 'qkvBias', o.qkvBias ?? false),
    }));
    this.posEmbed = this.register('pos_embed', new RelPosEmbedding2d({
      heightRows: 2 * fh - 1, widthRows: 2 * fw - 1, dimHead: this.dimHeadQk, scale: this.scale,
    }));
    this.resetParameters();
  }

  /** timm's reset_parameters: trunc_normal qkv weight (std dim^-0.5) and tables (std dqk^-0.5). */
  resetParameters(): void {
    init.truncNormal_(this.qkv.weight, { std: this.dim ** -0.5 });
    init.truncNormal_(this.posEmbed.heightRel, { std: this.scale });
    init.truncNormal_(this.posEmbed.widthRel, { std: this.scale });
  }

  /** The module's own parameters, as attend() takes them. */
  weights(): MultiHeadSelfAttention2dWeights {
    return {
      qkvWeight: this.qkv.weight, qkvBias: this.qkv.bias,
      heightRel: this.posEmbed.heightRel, widthRel: this.posEmbed.widthRel,
    };
  }

  forward(x: Tensor): Tensor {
    return this.attend(x, this.weights());
  }

  /** forward() with explicitly given weights (the functional form; gradcheck uses it). */
  attend(x: Tensor, w: MultiHeadSelfAttention2dWeights): Tensor {
    const [batch, , height, width] = this.checkInput(x);
    const [nh, dqk, dv, tokens] = [this.numHeads, this.dimHeadQk, this.dimHeadV, height * width];
    if (height === width && useFused(['vicinity::halo_attention'], x.device)) {
      // Deviation 5: one halo block of side H, halo 0 (win = H, tables of 2H − 1 rows, as here).
      // The kernel reads the two channel slices of qkv in place (grouped kv: [k all heads | v all
      // heads]) and writes the (B, nh·dv, H, W) map: no per-head copies of q, k, v or the output.
      // tidy: no handle here keeps qkv alive; autograd frees it once the kernel's backward has run.
      const [heightRel, widthRel] = this.tables(w, height, width);
      const out = tidy(() => {
        const [q, kv] = F.conv2d(x, w.qkvWeight, w.qkvBias)              // (B, nh·(2dqk + dv), H, W)
          .split([nh * dqk, nh * (dqk + dv)], 1);                         // (B, nh·dqk, H, W), (B, nh·(dqk+dv), H, W)
        return aten.vicinity_halo_attention(q, kv, heightRel, widthRel, nh, height, 0, 0, 0,
          this.scale, this.scalePosEmbed, true);                          // (B, nh·dv, H, W)
      });
      return this.stride === 2 ? F.avgPool2d(out, 2, { stride: 2 }) : out;
    }
    const [q, k, v] = F.conv2d(x, w.qkvWeight, w.qkvBias)                 // (B, nh·(2dqk + dv), H, W)
      .split([nh * dqk, nh * dqk, nh * dv], 1);                           // (B, nh·dqk, H, W) ×2, (B, nh·dv, H, W)
    const queries = q.reshape([batch * nh, dqk, tokens]).transpose(1, 2); // (B·nh, L, dqk)
    const keys = k.reshape([batch * nh, dqk, tokens]);                    // (B·nh, dqk, L)
    const values = v.reshape([batch * nh, dv, tokens]).transpose(1, 2);  // (B·nh, L, dv)
    const [heightRel, widthRel] = this.tables(w, height, width);
    const rel = relPosLogits2d(queries, heightRel, widthRel, globalGeometry(height, width)); // Fig. 4 q rᵀ  (B·nh, L, L)
    const content = queries.matmul(keys);                                 // Fig. 4 q kᵀ  (B·nh, L, L)
    const logits = this.scalePosEmbed ? content.add(rel).mul(this.scale)   // Fig. 4 q kᵀ + q rᵀ
      : content.mul(this.scale).add(rel);
    const attention = logits.softmax(-1);                                 // (B·nh, L, L)
    recordAttention('mhsa', attention, { batch, heads: nh, height, width });
    const out = attention.matmul(values)                                  // Fig. 4 softmax(·) v  (B·nh, L, dv)
      .transpose(1, 2).reshape([batch, nh * dv, height, width]);         // (B, nh·dv, H, W)
    return this.stride === 2 ? F.avgPool2d(out, 2, { stride: 2 }) : out;
  }

  /** The tables for an H×W input: the learnt ones, or (relPosResize 'linear') resampled ones. */
  private tables(w: MultiHeadSelfAttention2dWeights, height: number, width: number): [Tensor, Tensor] {
    const [fh, fw] = this.featSize;
    const heightRel = height === fh ? w.heightRel : resizeRelPosTable(w.heightRel, 2 * height - 1); // (2H − 1, dqk)
    const widthRel = width === fw ? w.widthRel : resizeRelPosTable(w.widthRel, 2 * width - 1);     // (2W − 1, dqk)
    return [heightRel, widthRel];
  }

  private checkInput(x: Tensor): number[] {
    const s = x.shape;
    const layer = 'MultiHeadSelfAttention2d';
    if (s.length !== 4 || s[1] !== this.dim) {
      throw new ShapeError(`${layer}: expected input (B, dim=${this.dim}, H, W), got shape [${s.join(', ')}]`);
    }
    const [, , height, width] = s;
    const [fh, fw] = this.featSize;
    if (height < 1 || width < 1) throw new ShapeError(`${layer}: the input map is empty (${height}×${width})`);
    if (this.relPosResize === 'none' && (height !== fh || width !== fw)) {
      throw new ShapeError(`${layer}: the input is ${height}×${width} but featSize is [${fh}, ${fw}] (the relative ` +
        `tables have ${2 * fh - 1} and ${2 * fw - 1} rows); build with featSize: [${height}, ${width}] or pass ` +
        "{ relPosResize: 'linear' } to resample the tables");
    }
    if (this.stride === 2 && (height < 2 || width < 2)) {
      throw new ShapeError(`${layer}: stride 2 (2×2 average pool) needs H, W ≥ 2, got ${height}×${width}`);
    }
    return s;
  }
}

const REFERENCE_ARGUMENTS: Record<string, keyof MultiHeadSelfAttention2dOptions> = {
  dim: 'dim', dim_out: 'dimOut', feat_size: 'featSize', stride: 'stride', num_heads: 'numHeads',
  dim_head: 'dimHead', qk_ratio: 'qkRatio', qkv_bias: 'qkvBias', scale_pos_embed: 'scalePosEmbed',
};

/**
 * timm's snake_case constructor arguments → MultiHeadSelfAttention2dOptions. None (null) is "not
 * given"; `dim_out`/`dim_head` of 0 fall back to their defaults as Python's `or` does. Unknown
 * arguments throw TypeError.
 */
export function mhsa2dOptionsFromReference(ctor: Record<string, unknown>): MultiHeadSelfAttention2dOptions {
  const options = referenceOptions('MultiHeadSelfAttention2d', 'timm BottleneckAttn', ctor, REFERENCE_ARGUMENTS, { zeroIsUnset: ['dim_out', 'dim_head'] });
  return options as unknown as MultiHeadSelfAttention2dOptions;
}

export const referenceBuilders: ReferenceBuilders = {
  'timm.layers.bottleneck_attn.BottleneckAttn': (ctor) => new MultiHeadSelfAttention2d(mhsa2dOptionsFromReference(ctor)),
};
