/**
 * HaloAttention: blocked local self-attention of HaloNet (Vaswani et al., "Scaling Local
 * Self-Attention for Parameter Efficient Visual Backbones", CVPR 2021, arXiv 2103.12731, read from
 * slides presenting it; equations numbered in order of appearance there; docs/papers.md).
 *   Eq. (1)  y_ij = Σ_{a,b ∈ N(i,j)} f(i,j,a,b) x_ab, N(i,j) = the (b + 2h)² halo window of the
 *            b×b block holding (i, j) ("Blocked local self-attention")          → forward()
 *   Eq. (3)  f = softmax_ab((W_Q x_ij)ᵀ W_K x_ab + (W_Q x_ij)ᵀ r_{a−i,b−j}) W_V  → attend()
 *   Eq. (4)  r_{a−i,b−j} from one table per axis                               → rel-pos.ts, Eq. (R)
 *   "Down-sampling with local self-attention, like a strided convolution"      → blockStride / avgDown
 * Reference: huggingface/pytorch-image-models@aa4b5850, timm/layers/halo_attn.py, class HaloAttn
 * (reference-layers.md §1), names, channel layouts, init and quirks kept for checkpoint parity:
 * `kv` channels are interleaved per head [k_h (dqk) | v_h (dv)]; keys are zero-padded by the halo
 * AFTER the projection and (by default) not masked; with stride 2 and blockSize even the queries
 * are the even pixels but the relative offsets stay in downsampled units (timm's FIXME geometry).
 * Fixtures: halo-attn-open, halo-attn-avgdown-open.
 * Deviations: 1. `padding: 'mask'` (not in timm) accepts any H, W ≥ 1: the map is zero-padded to a
 * block multiple, every key outside the real map (halo and block padding) gets logit −∞ before the
 * softmax, and the output is cropped (to ⌈H/2⌉ with strided queries, ⌊H/2⌋ after the average pool).
 * 2. timm's bare asserts become ShapeError/RangeError naming the values and the fix. 3. `feat_size`
 * (unused by timm) is accepted by the reference builder and ignored. 4. The 2×2 average pool of
 * stride 2 with odd sizes needs H, W ≥ 2 (else ShapeError).
 * Legend: b blockSize, h haloSize, win = b + 2h, bds the query block side (b or b/2), nh heads,
 * dqk/dv the q·k/v head widths, B batch.
 */
import { recordAttention } from './attention-capture.js';
import * as F from '../ops/functional.js';
import { useFused } from '../ops/fused.js';
import * as aten from '../ops/generated/ops.gen.js';
import { init, Module, Conv2d } from '../nn/index.js';
import { booleanOption, divisibleBy, integerAtLeast, knownOptions, oneOf, optionNames, positiveNumber, referenceOptions } from '../nn/layers/validation.js';
import { ones } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import type { ReferenceBuilders } from './reference-builders.js';
import { qkHeadWidth } from './make-divisible.js';
import { haloGeometry, relPosLogits2d, RelPosEmbedding2d } from './rel-pos.js';

export type HaloPadding = 'none' | 'mask';

/** Options: the camelCase of timm HaloAttn's arguments, plus `padding`. */
export interface HaloAttentionOptions {
  /** Input channels. */
  dim: number;
  /** Output channels (default dim); must divide by numHeads. */
  dimOut?: number;
  /** 1, or 2: strided queries (blockSize even, avgDown false) or attention then a 2×2 average pool. */
  stride?: number;
  /** Default 8. */
  numHeads?: number;
  /** q/k width per head; default makeDivisible(dimOut · qkRatio, 8) / numHeads, floored. */
  dimHead?: number;
  /** Query block side b; default 8. */
  blockSize?: number;
  /** Halo h around each block; default 3. */
  haloSize?: number;
  /** q/k width relative to dimOut when dimHead is not given; default 1. */
  qkRatio?: number;
  /** Biases on the q and kv projections; default false. */
  qkvBias?: boolean;
  /** stride 2 by full-resolution attention and a 2×2 average pool; default false. */
  avgDown?: boolean;
  /** (q·k + rel)·scale instead of q·k·scale + rel; default false. */
  scalePosEmbed?: boolean;
  /** 'none' (timm, default): H, W multiples of blockSize, halo keys unmasked. 'mask': see Deviation 1. */
  padding?: HaloPadding;
}

const HALO_ATTENTION_OPTION_NAMES = optionNames<HaloAttentionOptions>({
  dim: 1, dimOut: 1, stride: 1, numHeads: 1, dimHead: 1, blockSize: 1, haloSize: 1, qkRatio: 1, qkvBias: 1, avgDown: 1, scalePosEmbed: 1, padding: 1,
});

/** The tensors attend() computes with: the module's parameters, or stand-ins (gradcheck). */
export interface HaloAttentionWeights {
  qWeight: Tensor;
  qBias: Tensor | null;
  kvWeight: Tensor;
  kvBias: Tensor | null;
  heightRel: Tensor;
  widthRel: Tensor;
}

/**
 * Blocked local multi-head self-attention with 2-D relative logits (timm HaloAttn).
 *
 * Shape: (B, dim, H, W) → (B, dimOut, H/stride, W/stride); with `padding: 'mask'` any H, W ≥ 1 →
 * (B, dimOut, ⌈H/2⌉, ⌈W/2⌉) for strided queries, (⌊H/2⌋, ⌊W/2⌋) for the average pool.
 *
 * Parameters (timm init): `q.weight` (nh·dqk, dim, 1, 1) and `kv.weight` (nh·(dqk + dv), dim, 1, 1)
 * trunc_normal(std dim^-0.5, cut ±2); `q.bias`, `kv.bias` (qkvBias) Conv2d default uniform;
 * `pos_embed.height_rel`, `pos_embed.width_rel` (2·win − 1, dqk) trunc_normal(std dqk^-0.5).
 *
 * Errors: RangeError/TypeError for bad options (dimOut not divisible by numHeads, stride not 1 or
 * 2, a q/k width of 0, …); ShapeError for an input that is not (B, dim, H, W), or (padding 'none')
 * whose H or W is not a multiple of blockSize.
 *
 * @example
 * const attn = new HaloAttention({ dim: 64, numHeads: 4, blockSize: 8, haloSize: 3 });
 * const y = attn.forward(randn([2, 64, 32, 32]));   // (2, 64, 32, 32)
 */
export class HaloAttention extends Module {
  readonly dim: number;
  readonly dimOut: number;
  readonly numHeads: number;
  /** dqk: q and k width per head. */
  readonly dimHeadQk: number;
  /** dv: v width per head (dimOut / numHeads). */
  readonly dimHeadV: number;
  readonly scale: number;
  readonly blockSize: number;
  readonly haloSize: number;
  readonly winSize: number;
  /** 2 when queries are strided (stride 2, blockSize even, no avgDown), else 1. */
  readonly blockStride: number;
  /** bds = blockSize / blockStride: the query block side. */
  readonly blockSizeDs: number;
  readonly useAvgPool: boolean;
  readonly scalePosEmbed: boolean;
  readonly padding: HaloPadding;
  readonly q: Conv2d;
  readonly kv: Conv2d;
  readonly posEmbed: RelPosEmbedding2d;

  constructor(o: HaloAttentionOptions) {
    super();
    knownOptions('HaloAttention', o, HALO_ATTENTION_OPTION_NAMES);
    const layer = 'HaloAttention';
    this.dim = integerAtLeast(layer, 'dim', o.dim, 1);
    this.dimOut = integerAtLeast(layer, 'dimOut', o.dimOut ?? this.dim, 1);
    this.numHeads = integerAtLeast(layer, 'numHeads', o.numHeads ?? 8, 1);
    divisibleBy(layer, 'dimOut', this.dimOut, 'numHeads', this.numHeads, 'change one of them');
    const stride = integerAtLeast(layer, 'stride', o.stride ?? 1, 1);
    if (stride > 2) throw new RangeError(`${layer}: stride must be 1 or 2 (as timm HaloAttn), got ${stride}`);
    this.blockSize = integerAtLeast(layer, 'blockSize', o.blockSize ?? 8, 1);
    this.haloSize = integerAtLeast(layer, 'haloSize', o.haloSize ?? 3, 0);
    const qkRatio = positiveNumber(layer, 'qkRatio', o.qkRatio ?? 1);
    this.dimHeadQk = qkHeadWidth(layer, { dimOut: this.dimOut, numHeads: this.numHeads, qkRatio, dimHead: o.dimHead });
    this.dimHeadV = this.dimOut / this.numHeads;
    this.scale = this.dimHeadQk ** -0.5;
    this.scalePosEmbed = booleanOption(layer, 'scalePosEmbed', o.scalePosEmbed ?? false);
    this.padding = oneOf(layer, 'padding', o.padding ?? 'none', ['none', 'mask'] as const);
    this.winSize = this.blockSize + 2 * this.haloSize;
    const avgDown = booleanOption(layer, 'avgDown', o.avgDown ?? false);
    this.useAvgPool = stride === 2 && (avgDown || this.blockSize % stride !== 0);
    this.blockStride = stride === 2 && !this.useAvgPool ? 2 : 1;
    this.blockSizeDs = this.blockSize / this.blockStride;
    const bias = booleanOption(layer, 'qkvBias', o.qkvBias ?? false);
    const nh = this.numHeads;
    this.q = this.register('q', new Conv2d({
      inChannels: this.dim, outChannels: nh * this.dimHeadQk, kernelSize: 1, stride: this.blockStride, bias,
    }));
    this.kv = this.register('kv', new Conv2d({
      inChannels: this.dim, outChannels: nh * (this.dimHeadQk + this.dimHeadV), kernelSize: 1, bias,
    }));
    this.posEmbed = this.register('pos_embed', new RelPosEmbedding2d({
      heightRows: 2 * this.winSize - 1, widthRows: 2 * this.winSize - 1, dimHead: this.dimHeadQk, scale: this.scale,
    }));
    this.resetParameters();
  }

  /** timm's reset_parameters: trunc_normal q/kv weights (std dim^-0.5) and tables (std dqk^-0.5). */
  resetParameters(): void {
    const std = this.dim ** -0.5;
    init.truncNormal_(this.q.weight, { std });
    init.truncNormal_(this.kv.weight, { std });
    init.truncNormal_(this.posEmbed.heightRel, { std: this.scale });
    init.truncNormal_(this.posEmbed.widthRel, { std: this.scale });
  }

  /** The module's own parameters, as attend() takes them. */
  weights(): HaloAttentionWeights {
    return {
      qWeight: this.q.weight, qBias: this.q.bias, kvWeight: this.kv.weight, kvBias: this.kv.bias,
      heightRel: this.posEmbed.heightRel, widthRel: this.posEmbed.widthRel,
    };
  }

  forward(x: Tensor): Tensor {
    return this.attend(x, this.weights());
  }

  /** forward() with explicitly given weights (the functional form; gradcheck uses it). */
  attend(x: Tensor, w: HaloAttentionWeights): Tensor {
    const [batch, , height, width] = this.checkInput(x);
    const b = this.blockSize;
    const [nby, nbx] = [Math.ceil(height / b), Math.ceil(width / b)];
    const [padH, padW] = [nby * b - height, nbx * b - width];
    const input = padH + padW > 0 ? F.pad(x, [0, padW, 0, padH]) : x;  // (B, dim, nby·b, nbx·b)
    const queries = () => F.conv2d(input, w.qWeight, w.qBias, { stride: this.blockStride });  // q map (B, nh·dqk, nby·bds, nbx·bds)
    if (useFused(['vicinity::halo_attention_projected'], x.device)) {
      // Eq. (1)–(4) in one kernel (native/kernels/halo_attention.cc) with the kv projection inside:
      // the same values as below, without the unfolded windows, the logits tensors or block-layout
      // copies, and ∂kv is formed a few images at a time and taken on to ∂x and ∂W (the map alone
      // was most of the layer's backward peak); padding 'mask' masks beyond H×W.
      // tidy: no handle here keeps the q map alive; autograd holds it (the kernel saved it)
      // until the kernel's backward has run, then frees it, as PyTorch's reference counting does.
      const mask = this.padding === 'mask' ? [height, width] : [0, 0];
      const out = tidy(() => aten.vicinity_halo_attention_projected(queries(), input, w.kvWeight, w.kvBias, w.heightRel,
        w.widthRel, this.numHeads, b, this.haloSize, mask[0], mask[1], this.scale, this.scalePosEmbed));  // (B, nh·dv, nby·bds, nbx·bds)
      return this.cropAndPool(out, height, width);
    }
    const [qMap, kvMap] = [queries(), F.conv2d(input, w.kvWeight, w.kvBias)];  // kv map (B, nh·(dqk+dv), nby·b, nbx·b)
    const q = this.queryBlocks(qMap, batch, nby, nbx);                     // (B·nh, blocks, bds², dqk)
    const [k, v] = this.keyValueWindows(kvMap, batch, nby, nbx);
    const [nb, bds2, dqk] = [nby * nbx, this.blockSizeDs ** 2, this.dimHeadQk];
    const rel = relPosLogits2d(q.reshape([-1, bds2, dqk]), w.heightRel, w.widthRel,
      haloGeometry(this.blockSizeDs, this.winSize))                        // Eq. (4)  (B·nh·blocks, bds², win²)
      .reshape([batch * this.numHeads, nb, bds2, this.winSize ** 2]);      // (B·nh, blocks, bds², win²)
    const content = q.matmul(k.transpose(-1, -2));                         // Eq. (3)  (B·nh, blocks, bds², win²)
    let logits = this.scalePosEmbed ? content.add(rel).mul(this.scale)     // Eq. (3) q·k + q·r
      : content.mul(this.scale).add(rel);
    if (this.padding === 'mask') {
      logits = logits.maskedFill(this.outsideMap(height, width, nby, nbx, x.device as Device), -Infinity);
    }
    const attention = logits.softmax(-1);                                  // (B·nh, blocks, bds², win²)
    recordAttention('halo', attention, { batch, heads: this.numHeads, blocksY: nby, blocksX: nbx, blockSize: b,
      haloSize: this.haloSize, blockStride: this.blockStride, height, width });
    const out = this.foldBlocks(attention.matmul(v), batch, nby, nbx);   // Eq. (1)
    return this.cropAndPool(out, height, width);
  }

  /** (B, dim, H, W) with dim channels; in padding 'none' H and W multiples of blockSize. */
  private checkInput(x: Tensor): number[] {
    const s = x.shape;
    if (s.length !== 4 || s[1] !== this.dim) {
      throw new ShapeError(`HaloAttention: expected input (B, dim=${this.dim}, H, W), got shape [${s.join(', ')}]`);
    }
    const [, , height, width] = s;
    if (height < 1 || width < 1) throw new ShapeError(`HaloAttention: the input map is empty (${height}×${width})`);
    if (this.padding === 'none') {
      for (const [name, size] of [['height', height], ['width', width]] as const) {
        if (size % this.blockSize !== 0) {
          throw new ShapeError(`HaloAttention: ${name} ${size} is not a multiple of blockSize ${this.blockSize}; ` +
            `pass { padding: 'mask' } to accept any size (or resize the input to a multiple of ${this.blockSize})`);
        }
      }
    }
    if (this.useAvgPool && (height < 2 || width < 2)) {
      throw new ShapeError(`HaloAttention: stride 2 by average pooling needs H, W ≥ 2, got ${height}×${width}`);
    }
    return s;
  }

  /** (B, nh·dqk, nby·bds, nbx·bds) → (B·nh, blocks, bds², dqk), queries raster within a block. */
  private queryBlocks(q: Tensor, batch: number, nby: number, nbx: number): Tensor {
    const [bds, dqk] = [this.blockSizeDs, this.dimHeadQk];
    return q.reshape([batch * this.numHeads, dqk, nby, bds, nbx, bds])  // (B·nh, dqk, nby, bds, nbx, bds)
      .permute([0, 2, 4, 3, 5, 1])                                      // (B·nh, nby, nbx, bds, bds, dqk)
      .reshape([batch * this.numHeads, nby * nbx, bds * bds, dqk]);    // (B·nh, blocks, bds², dqk)
  }

  /** Halo windows of the projected map, zero-padded by h after the projection, split per head. */
  private keyValueWindows(kv: Tensor, batch: number, nby: number, nbx: number): [Tensor, Tensor] {
    const [h, win, dqk, dv] = [this.haloSize, this.winSize, this.dimHeadQk, this.dimHeadV];
    const windows = F.pad(kv, [h, h, h, h])                            // (B, nh·(dqk+dv), nby·b + 2h, nbx·b + 2h)
      .unfold(2, win, this.blockSize).unfold(3, win, this.blockSize)    // (B, nh·(dqk+dv), nby, nbx, win, win)
      .reshape([batch * this.numHeads, dqk + dv, nby * nbx, win * win]) // (B·nh, dqk+dv, blocks, win²)
      .permute([0, 2, 3, 1]);                                           // (B·nh, blocks, win², dqk+dv)
    const [k, v] = windows.split([dqk, dv], -1);                        // (B·nh, blocks, win², dqk), (…, dv)
    return [k, v];
  }

  /** (1, blocks, 1, win²) bool: true where the window's key lies outside the real H×W map. */
  private outsideMap(height: number, width: number, nby: number, nbx: number, device: Device): Tensor {
    const [b, h, win] = [this.blockSize, this.haloSize, this.winSize];
    const inside = F.pad(ones([1, 1, height, width], { device }),
      [h, nbx * b - width + h, h, nby * b - height + h])               // (1, 1, nby·b + 2h, nbx·b + 2h)
      .unfold(2, win, b).unfold(3, win, b)                              // (1, 1, nby, nbx, win, win)
      .reshape([1, nby * nbx, 1, win * win]);                           // (1, blocks, 1, win²)
    return inside.eq(0);
  }

  /** (B·nh, blocks, bds², dv) → (B, nh·dv, nby·bds, nbx·bds), channel h·dv + c. */
  private foldBlocks(out: Tensor, batch: number, nby: number, nbx: number): Tensor {
    const [bds, dv, nh] = [this.blockSizeDs, this.dimHeadV, this.numHeads];
    return out.reshape([batch, nh, nby, nbx, bds, bds, dv])             // (B, nh, nby, nbx, bds, bds, dv)
      .permute([0, 1, 6, 2, 4, 3, 5])                                   // (B, nh, dv, nby, bds, nbx, bds)
      .reshape([batch, nh * dv, nby * bds, nbx * bds]);                 // (B, nh·dv, nby·bds, nbx·bds)
  }

  /** Drops the block padding (padding 'mask'), then the 2×2 average pool of the avgDown path. */
  private cropAndPool(out: Tensor, height: number, width: number): Tensor {
    const rows = Math.ceil(height / this.blockStride);
    const cols = Math.ceil(width / this.blockStride);
    const cropped = out.shape[2] === rows && out.shape[3] === cols ? out
      : out.narrow(2, 0, rows).narrow(3, 0, cols);                      // (B, dimOut, ⌈H/s⌉, ⌈W/s⌉)
    return this.useAvgPool ? F.avgPool2d(cropped, 2, { stride: 2 }) : cropped;
  }
}

const REFERENCE_ARGUMENTS: Record<string, keyof HaloAttentionOptions | null> = {
  dim: 'dim', dim_out: 'dimOut', feat_size: null, stride: 'stride', num_heads: 'numHeads', dim_head: 'dimHead',
  block_size: 'blockSize', halo_size: 'haloSize', qk_ratio: 'qkRatio', qkv_bias: 'qkvBias', avg_down: 'avgDown',
  scale_pos_embed: 'scalePosEmbed',
};

/**
 * timm's snake_case constructor arguments → HaloAttentionOptions. None (null) is "not given";
 * `dim_out`/`dim_head` of 0 fall back to their defaults as Python's `or` does; `feat_size` is unused
 * by timm and ignored. Unknown arguments throw TypeError.
 */
export function haloAttentionOptionsFromReference(ctor: Record<string, unknown>): HaloAttentionOptions {
  const options = referenceOptions('HaloAttention', 'timm HaloAttn', ctor, REFERENCE_ARGUMENTS, { zeroIsUnset: ['dim_out', 'dim_head'] });
  return options as unknown as HaloAttentionOptions;
}

export const referenceBuilders: ReferenceBuilders = {
  'timm.layers.halo_attn.HaloAttn': (ctor) => new HaloAttention(haloAttentionOptionsFromReference(ctor)),
};
