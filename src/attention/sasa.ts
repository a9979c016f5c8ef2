/**
 * SASA: stand-alone local self-attention (Ramachandran et al., "Stand-Alone Self-Attention in
 * Vision Models", NeurIPS 2019), and AttentionConvCompat, the leaderj1001 reimplementation
 * bug-for-bug — which is NOT SASA (per-channel softmax; reference-layers.md §5).
 *   §2.2 Eq. (2)  y_ij = Σ_{ab∈N_k(i,j)} softmax_ab(q_ijᵀ k_ab) v_ab               → SASA.forward()
 *   §2.2 Eq. (3)  y_ij = Σ_{ab∈N_k(i,j)} softmax_ab(q_ijᵀ k_ab + q_ijᵀ r_{a−i,b−j}) v_ab
 *                 r_{a−i,b−j} = concat(r_row[a−i] (d/2), r_col[b−j] (d/2))           → relativeEmbedding()
 *   §2.2 multi-head: N heads split the channels depthwise; each head attends with its own
 *                 d = outChannels/N channels and the outputs are concatenated.
 *   §3.1 "a 2×2 average pooling with stride 2 follows the attention layer whenever spatial
 *                 downsampling is required"                                          → stride option
 * Legend: k kernel size, ns = ⌊k/2⌋, T = k², nh heads, dh = outChannels/nh, q/k/v 1×1 projections.
 * Reference for the parameter names and shapes (and, in AttentionConvCompat, the computation):
 * leaderj1001/Stand-Alone-Self-Attention@a983f0f6, attention.py, class AttentionConv.
 * Fixtures: sasa-open (AttentionConvCompat only; no reference of the paper's SASA exists).
 * Deviations of SASA from the paper and from leaderj1001:
 *   1. Keys outside the map are masked (logit −∞), so every window holds only real pixels;
 *      leaderj1001 zero-pads the input, so padded keys/values are 0 (or the conv bias) and get
 *      attention weight. The paper does not say how it treats the border.
 *   2. Full 1×1 projections W ∈ R^{dout×din} (Conv2d `query_conv`, …), as leaderj1001; the paper's
 *      per-head W^n ∈ R^{dout/N × din/N} (grouped by input channels too) is the block-diagonal
 *      special case.
 *   3. r_row/r_col are per head: head h uses channels h·dh/2 … (h+1)·dh/2 − 1 of `rel_h`
 *      (row offsets, first half of the head's channels) and of `rel_w` (column offsets, second
 *      half). The shapes are leaderj1001's (outChannels/2, 1, 1, k, 1)/(…, 1, k), so its
 *      checkpoints load (their meaning differs: there every channel is a head).
 *   4. No logit scaling by default (Eqs. (2)–(3) have none); qkScale sets one (e.g. dh^-0.5).
 *   5. stride s > 1 average-pools s×s with stride s after the attention (the paper's 2×2 for s = 2,
 *      leaderj1001 model.py's F.avg_pool2d(out, (s, s))); odd sizes round down (floor mode).
 *   6. On CPU Eq. (3) runs as one fused kernel (`vicinity::window_softmax_attention`,
 *      window_softmax.cc): q·(k + r) per window element, off-map keys masked, softmax and ·v per
 *      query, nothing k²-sized kept for backward; kernel mode 'composite' (attention capture, ONNX
 *      export, MAC counting) runs the window products separately.
 * Deviations of AttentionConvCompat from leaderj1001 (computation otherwise bug-for-bug):
 *   1. stride ≠ 1 throws RangeError (the reference crashes in a view).
 *   2. padding ≠ (k − 1)/2 throws RangeError (the reference crashes or silently returns garbage).
 */
import { recordAttention } from './attention-capture.js';
import { Conv2d } from '../nn/layers/conv.js';
import { newParameter } from '../nn/layers/new-parameter.js';
import { booleanOption, integerAtLeast, knownOptions, optionNames, positiveNumber } from '../nn/layers/validation.js';
import { kaimingNormal_, normal_ } from '../nn/init.js';
import { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { useFused } from '../ops/fused.js';
import * as F from '../ops/functional.js';
import * as aten from '../ops/generated/ops.gen.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ReferenceBuilders } from './reference-builders.js';
import { gatherWindows, windowIndex, windowSoftmaxAttention, windowStarts } from './window-gather.js';

/** The tensors of both layers, under leaderj1001's names (camelCased). */
export interface AttentionConvWeights {
  queryWeight: Tensor;
  queryBias: Tensor | null;
  keyWeight: Tensor;
  keyBias: Tensor | null;
  valueWeight: Tensor;
  valueBias: Tensor | null;
  /** (outChannels/2, 1, 1, k, 1): row-offset embedding. */
  relH: Tensor;
  /** (outChannels/2, 1, 1, 1, k): column-offset embedding. */
  relW: Tensor;
}

export interface SasaConfig {
  numHeads: number;
  kernelSize: number;
  stride: number;
  scale: number;
}

/**
 * Per-head r of Eq. (3): (nh, T, dh), window element t = a·k + b holding
 * concat(rel_h[head's half, a], rel_w[head's half, b]).
 */
export function relativeEmbedding(relH: Tensor, relW: Tensor, numHeads: number, kernelSize: number): Tensor {
  const half = relH.shape[0] / numHeads;
  const k = kernelSize;
  const rows = relH.reshape([numHeads, half, k, 1]).expand([numHeads, half, k, k]); // (nh, dh/2, k, k) r_row[a]
  const cols = relW.reshape([numHeads, half, 1, k]).expand([numHeads, half, k, k]); // (nh, dh/2, k, k) r_col[b]
  return F.cat([rows, cols], 1)                        // (nh, dh, k, k), Eq. (3) concat
    .reshape([numHeads, 2 * half, k * k])              // (nh, dh, T)
    .permute([0, 2, 1]);                               // (nh, T, dh)
}

/** Splits a 1×1 projection (B, O, H, W) into heads (B, nh, H·W, dh). */
function heads(t: Tensor, numHeads: number): Tensor {
  const [B, O, H, W] = t.shape;
  return t.reshape([B, numHeads, O / numHeads, H * W]) // (B, nh, dh, H·W)
    .permute([0, 1, 3, 2]);                            // (B, nh, H·W, dh)
}

/** The functional form of SASA.forward: x (B, I, H, W) → (B, O, ⌊H/s⌋, ⌊W/s⌋). */
export function standAloneSelfAttention2d(x: Tensor, w: AttentionConvWeights, c: SasaConfig): Tensor {
  const [B, , H, W] = x.shape;
  const { numHeads: nh, kernelSize: k } = c;
  const [query, key, value] = F.conv2dSplit(x, [w.queryWeight, w.keyWeight, w.valueWeight],
    [w.queryBias, w.keyBias, w.valueBias]).map((t) => heads(t, nh));         // 3 × (B, nh, H·W, dh), q unscaled
  const placement = { kernelSize: k, placement: 'centred', device: x.device } as const;
  const index = windowIndex(H, W, placement);
  const r = relativeEmbedding(w.relH, w.relW, nh, k);  // (nh, T, dh)
  const outside = index.valid ? index.valid.logicalNot() : null; // (H·W, T) keys off the map
  // Raw q·k logits → weights; the mask is deviation 1.
  const weights = (qk: Tensor, qc: Tensor) => {
    // r expanded over the batch so that einsum runs one bmm per (image, head) and returns (b, nh,
    // H·W, T) contiguous; 'bnpd,ntd' permutes q and the result, a copy of each. Same MACs.
    const rb = r.unsqueeze(0).expand([qc.shape[0], ...r.shape]);      // (b, nh, T, dh)
    const logits = qk.add(aten.einsum('bnpd,bntd->bnpt', [qc, rb]));  // Eq. (3) + qᵀr
    const attention = (outside ? logits.maskedFill(outside, -Infinity) : logits).softmax(-1); // Eq. (3) softmax_ab
    recordAttention('sasa', attention, { height: H, width: W }, { keys: index.keys, valid: index.valid });
    return attention;
  };
  // The window products count B·nh·H·W·T·dh MACs each (model-specs.md §0), as the composite
  // path's einsums (countMacs runs the composite path).
  const fused = useFused(['vicinity::window_softmax_attention'], x.device);
  const q = fused ? query : query.mul(c.scale);      // the kernel applies the scale itself
  const y = fused                                    // (B, nh, H·W, dh), Eq. (3) Σ · v_ab
    ? windowSoftmaxAttention(q, key, value, H, W, windowStarts(H, W, placement), { keyEmbed: r, scale: c.scale })
    : aten.einsum('bnpt,bnptd->bnpd', [
      weights(aten.einsum('bnpd,bnptd->bnpt', [q, gatherWindows(key, index.keys, k * k)]), q), // Eq. (3) qᵀk
      gatherWindows(value, index.keys, k * k)]);
  const out = y.permute([0, 1, 3, 2])                  // (B, nh, dh, H·W)
    .reshape([B, nh * y.shape[3], H, W]);              // (B, O, H, W), channel h·dh + e
  return c.stride > 1 ? F.avgPool2d(out, c.stride) : out; // §3.1 downsampling
}

/**
 * The functional form of AttentionConvCompat.forward (leaderj1001 AttentionConv.forward):
 * x (B, I, H, W) → (B, O, H, W), with padding = (k − 1)/2. `groups` is not needed: it only
 * reshapes in the reference.
 */
export function attentionConvCompat(x: Tensor, w: AttentionConvWeights, kernelSize: number): Tensor {
  const [B, , H, W] = x.shape;
  const k = kernelSize;
  const p = (k - 1) / 2;
  const O = w.queryWeight.shape[0];
  const xp = F.pad(x, [p, p, p, p]);                   // (B, I, H+2p, W+2p), zeros
  const q = F.conv2d(x, w.queryWeight, w.queryBias).unsqueeze(-1); // (B, O, H, W, 1)
  const window = (t: Tensor) => t.unfold(2, k, 1).unfold(3, k, 1); // (B, O, H, W, k, k) [dy, dx]
  const [kRows, kCols] = window(F.conv2d(xp, w.keyWeight, w.keyBias)).split(O / 2, 1); // 2 × (B, O/2, H, W, k, k)
  const keys = F.cat([kRows.add(w.relH), kCols.add(w.relW)], 1) // (B, O, H, W, k, k): + rel_h[c, dy], rel_w[c, dx]
    .reshape([B, O, H, W, k * k]);                     // (B, O, H, W, T)
  const values = window(F.conv2d(xp, w.valueWeight, w.valueBias))
    .reshape([B, O, H, W, k * k]);                     // (B, O, H, W, T)
  const attn = q.mul(keys).softmax(-1);                // (B, O, H, W, T): per channel, unscaled
  return attn.mul(values).sum(-1);                     // (B, O, H, W)
}

interface Projections {
  queryConv: Conv2d;
  keyConv: Conv2d;
  valueConv: Conv2d;
  relH: Parameter;
  relW: Parameter;
}

/**
 * Registers leaderj1001's parameters on `m` with its init: 1×1 convs kaiming_normal (fan_out,
 * relu) (biases PyTorch's default), rel_h/rel_w N(0, 1).
 */
function registerProjections(m: Module, inChannels: number, outChannels: number, kernelSize: number, bias: boolean): Projections {
  const conv = (name: string) => {
    const c = m.register(name, new Conv2d({ inChannels, outChannels, kernelSize: 1, bias }));
    kaimingNormal_(c.weight, { mode: 'fanOut', nonlinearity: 'relu' });
    return c;
  };
  const [queryConv, keyConv, valueConv] = [conv('query_conv'), conv('key_conv'), conv('value_conv')];
  const relH = m.registerParameter('rel_h', normal_(newParameter([outChannels / 2, 1, 1, kernelSize, 1]), { std: 1 }) as Parameter);
  const relW = m.registerParameter('rel_w', normal_(newParameter([outChannels / 2, 1, 1, 1, kernelSize]), { std: 1 }) as Parameter);
  return { queryConv, keyConv, valueConv, relH, relW };
}

function weightsOf(p: Projections): AttentionConvWeights {
  return {
    queryWeight: p.queryConv.weight, queryBias: p.queryConv.bias,
    keyWeight: p.keyConv.weight, keyBias: p.keyConv.bias,
    valueWeight: p.valueConv.weight, valueBias: p.valueConv.bias,
    relH: p.relH, relW: p.relW,
  };
}

function checkNchw(layer: string, x: Tensor, inChannels: number, minSize: number): void {
  const shape = x.shape;
  if (shape.length !== 4 || shape[1] !== inChannels) {
    throw new ShapeError(`${layer}: expected input (B, inChannels=${inChannels}, H, W), got shape [${shape.join(', ')}]`);
  }
  if (minSize > 1 && (shape[2] < minSize || shape[3] < minSize)) {
    throw new ShapeError(`${layer}: H and W must be ≥ stride ${minSize} to average-pool, got ${shape[2]}×${shape[3]}; ` +
      'use a larger input or stride 1');
  }
}

export interface SASAOptions {
  inChannels: number;
  outChannels: number;
  /** Window size k; odd (the window is centred on the query). */
  kernelSize: number;
  /** Heads N (leaderj1001's `groups`); outChannels/numHeads must be even. Default 1. */
  numHeads?: number;
  /** Downsampling by s×s average pooling after the attention (§3.1); default 1. */
  stride?: number;
  /** Biases on the 1×1 projections; default false (leaderj1001). */
  bias?: boolean;
  /** Logit scale; default 1 (Eqs. (2)–(3) have none). */
  qkScale?: number;
}

const SASA_OPTION_NAMES = optionNames<SASAOptions>({
  inChannels: 1, outChannels: 1, kernelSize: 1, numHeads: 1, stride: 1, bias: 1, qkScale: 1,
});

/**
 * SASA (Eq. (3)): multi-head dot-product attention over the k×k window centred on each pixel,
 * with relative row/column embeddings; keys outside the map are masked.
 *
 * Shape: (B, inChannels, H, W) → (B, outChannels, ⌊H/stride⌋, ⌊W/stride⌋).
 *
 * Parameters: `query_conv.weight`, `key_conv.weight`, `value_conv.weight` (O, I, 1, 1)
 * kaiming_normal (fan_out, relu); `.bias` (O) with bias: true; `rel_h` (O/2, 1, 1, k, 1) and
 * `rel_w` (O/2, 1, 1, 1, k) N(0, 1); head h owns channels h·dh/2 … of each (deviation 3).
 *
 * Errors: RangeError/TypeError for a bad option (even kernelSize, outChannels not divisible by
 * numHeads, odd head width); ShapeError for an input that is not (B, inChannels, H, W) or is
 * smaller than stride.
 *
 * @example
 * const sa = new SASA({ inChannels: 64, outChannels: 64, kernelSize: 7, numHeads: 8, stride: 2 });
 * const y = sa.forward(x);   // (2, 64, 28, 28) → (2, 64, 14, 14)
 */
export class SASA extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly numHeads: number;
  readonly stride: number;
  readonly scale: number;
  readonly queryConv: Conv2d;
  readonly keyConv: Conv2d;
  readonly valueConv: Conv2d;
  readonly relH: Parameter;
  readonly relW: Parameter;

  constructor(o: SASAOptions) {
    super();
    knownOptions('SASA', o, SASA_OPTION_NAMES);
    this.inChannels = integerAtLeast('SASA', 'inChannels', o.inChannels, 1);
    this.outChannels = integerAtLeast('SASA', 'outChannels', o.outChannels, 1);
    this.kernelSize = integerAtLeast('SASA', 'kernelSize', o.kernelSize, 1);
    if (this.kernelSize % 2 === 0) {
      throw new RangeError(`SASA: kernelSize must be odd (the window is centred on its pixel), got ${this.kernelSize}; ` +
        `use ${this.kernelSize + 1}`);
    }
    this.numHeads = integerAtLeast('SASA', 'numHeads', o.numHeads ?? 1, 1);
    const headDim = this.outChannels / this.numHeads;
    if (!Number.isInteger(headDim) || headDim % 2 !== 0) {
      throw new RangeError(`SASA: outChannels/numHeads must be an even integer (r_row and r_col take half of each ` +
        `head), got ${this.outChannels}/${this.numHeads}; choose outChannels divisible by 2·numHeads`);
    }
    this.stride = integerAtLeast('SASA', 'stride', o.stride ?? 1, 1);
    this.scale = o.qkScale === undefined ? 1 : positiveNumber('SASA', 'qkScale', o.qkScale);
    const bias = booleanOption('SASA', 'bias', o.bias ?? false);
    ({ queryConv: this.queryConv, keyConv: this.keyConv, valueConv: this.valueConv, relH: this.relH, relW: this.relW } =
      registerProjections(this, this.inChannels, this.outChannels, this.kernelSize, bias));
  }

  forward(x: Tensor): Tensor {
    checkNchw('SASA', x, this.inChannels, this.stride);
    return standAloneSelfAttention2d(x, this.weights(), this.config());
  }

  weights(): AttentionConvWeights {
    return weightsOf(this);
  }

  config(): SasaConfig {
    return { numHeads: this.numHeads, kernelSize: this.kernelSize, stride: this.stride, scale: this.scale };
  }
}

export interface AttentionConvCompatOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: number;
  /** Must be 1 (the reference crashes otherwise). */
  stride?: number;
  /** Must be (kernelSize − 1)/2; default 0 as in the reference, so pass it. */
  padding?: number;
  /** Only reshapes in the reference; outChannels must be divisible by it. Default 1. */
  groups?: number;
  /** Default false. */
  bias?: boolean;
}

const ATTENTION_CONV_COMPAT_OPTION_NAMES = optionNames<AttentionConvCompatOptions>({
  inChannels: 1, outChannels: 1, kernelSize: 1, stride: 1, padding: 1, groups: 1, bias: 1,
});

/**
 * leaderj1001 `AttentionConv`, bug-for-bug — NOT SASA: every channel is its own one-dimensional
 * head (logit q_c·(k_c + r_c), softmax per channel, no sum over a head, no scaling), and the
 * zero-padded border keys (values 0, or the conv bias) are attended to. Use it to load and run
 * that repository's models; use SASA for the paper's layer.
 *
 * Shape: (B, inChannels, H, W) → (B, outChannels, H, W).
 *
 * Parameters: as SASA (same names, shapes and init).
 *
 * Errors: RangeError/TypeError for stride ≠ 1, padding ≠ (k − 1)/2, odd outChannels, outChannels
 * not divisible by groups; ShapeError for an input that is not (B, inChannels, H, W).
 *
 * @example
 * const ac = new AttentionConvCompat({ inChannels: 8, outChannels: 16, kernelSize: 3, padding: 1, groups: 4 });
 */
export class AttentionConvCompat extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly groups: number;
  readonly queryConv: Conv2d;
  readonly keyConv: Conv2d;
  readonly valueConv: Conv2d;
  readonly relH: Parameter;
  readonly relW: Parameter;

  constructor(o: AttentionConvCompatOptions) {
    super();
    knownOptions('AttentionConvCompat', o, ATTENTION_CONV_COMPAT_OPTION_NAMES);
    const name = 'AttentionConvCompat';
    this.inChannels = integerAtLeast(name, 'inChannels', o.inChannels, 1);
    this.outChannels = integerAtLeast(name, 'outChannels', o.outChannels, 2);
    this.kernelSize = integerAtLeast(name, 'kernelSize', o.kernelSize, 1);
    this.groups = integerAtLeast(name, 'groups', o.groups ?? 1, 1);
    if (this.outChannels % 2 !== 0 || this.outChannels % this.groups !== 0) {
      throw new RangeError(`${name}: outChannels ${this.outChannels} must be even and divisible by groups ${this.groups}`);
    }
    const stride = integerAtLeast(name, 'stride', o.stride ?? 1, 1);
    if (stride !== 1) {
      throw new RangeError(`${name}: stride ${stride} is not supported (leaderj1001 AttentionConv crashes for ` +
        'stride > 1); use stride 1 and average-pool after, as its model.py does');
    }
    const padding = integerAtLeast(name, 'padding', o.padding ?? 0, 0);
    if (this.kernelSize % 2 === 0 || padding !== (this.kernelSize - 1) / 2) {
      throw new RangeError(`${name}: padding must be (kernelSize − 1)/2 with an odd kernelSize, got kernelSize ` +
        `${this.kernelSize}, padding ${padding} (the reference crashes or returns garbage otherwise); ` +
        `pass padding ${Math.floor((this.kernelSize - 1) / 2)} with an odd kernelSize`);
    }
    const bias = booleanOption(name, 'bias', o.bias ?? false);
    ({ queryConv: this.queryConv, keyConv: this.keyConv, valueConv: this.valueConv, relH: this.relH, relW: this.relW } =
      registerProjections(this, this.inChannels, this.outChannels, this.kernelSize, bias));
  }

  forward(x: Tensor): Tensor {
    checkNchw('AttentionConvCompat', x, this.inChannels, 1);
    return attentionConvCompat(x, this.weights(), this.kernelSize);
  }

  weights(): AttentionConvWeights {
    return weightsOf(this);
  }
}

/** Builders from the reference's snake_case constructor (fixture spec.ctor), by spec.kind. */
export const referenceBuilders: ReferenceBuilders = {
  'attention.AttentionConv': (ctor) => new AttentionConvCompat({
    inChannels: ctor.in_channels as number,
    outChannels: ctor.out_channels as number,
    kernelSize: ctor.kernel_size as number,
    stride: ctor.stride as number | undefined,
    padding: ctor.padding as number | undefined,
    groups: ctor.groups as number | undefined,
    bias: ctor.bias as boolean | undefined,
  }),
};
