/**
 * HaloNet's spatial operator for the ResNet-family builder: `haloAttentionOp` fills each block's
 * 3×3 slot (`conv2`) with HaloAttention (src/attention/halo-attention.ts), read as
 * model-specs.md §4.1 reads the HaloNet slides' Table 2:
 *   - q = 1×1 c → c and kv = 1×1 c → c + r_v·c, no bias: the q/k width is the block's bottleneck
 *     width c (ctx.inChannels), so d_qk = c / heads; the value width is r_v·c (ctx.outChannels),
 *     d_v = r_v·c / heads; no output projection (the block's conv3 plays that role).
 *   - 8 heads; relative tables of 2(b + 2h) − 1 rows × d_qk per axis, shared by the heads.
 *   - stride 2 (first block of stages 2–4): the queries are subsampled inside each b×b block
 *     (query block b/2), keys/values come from the full-resolution (b + 2h)² window ("down-sampling
 *     with local self-attention, just like a strided convolution with stride b"). b must be even
 *     for this (timm falls back to attention + 2×2 average pooling for odd b; so does HaloAttention).
 *   - A map that is not a multiple of b (H7 at 600 px: 75, 38, 19) is zero-padded to one inside
 *     the layer and the output cropped back to ⌈H/stride⌉ (padding 'mask', which also masks the
 *     padded keys; parameters are unchanged and the MACs include the padding, as in the spec).
 * `squeezeExcite` adds the slides' "+SE" variant: channel attention after the attention output.
 * Checkpoint keys are timm HaloAttn's: `conv2.q.weight`, `conv2.kv.weight`,
 * `conv2.pos_embed.{height_rel,width_rel}` (+ `conv2.se.fc1`, `conv2.se.fc2` with SE, timm's
 * SEModule names).
 */
import { HaloAttention, type HaloAttentionOptions, type HaloPadding } from '../attention/halo-attention.js';
import { SqueezeExcite } from '../nn/layers/channel-attention.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SpatialOp, SpatialOpContext, SpatialOpFactory } from './spatial-ops.js';
import { knownOptions, optionNames } from '../nn/layers/validation.js';

/** 'auto': 'none' where the block's feature map divides by b at the model's inputSize, else 'mask'. */
export type HaloOpPadding = HaloPadding | 'auto';

export interface HaloAttentionOpOptions {
  /** Query block side b: one for all stages, or one per stage. */
  blockSize: number | number[];
  /** Halo h: one for all stages, or one per stage. */
  haloSize: number | number[];
  /** Heads; default 8 (model-specs.md §4.2: 8 everywhere). */
  numHeads?: number;
  /** Default 'auto'. */
  padding?: HaloOpPadding;
  /** SE reduction: SE bottleneck = max(8, round(C · ratio)); undefined (default) leaves SE out. */
  squeezeExcite?: number;
}

const HALO_ATTENTION_OP_OPTION_NAMES = optionNames<HaloAttentionOpOptions>({ blockSize: 1, haloSize: 1, numHeads: 1, padding: 1, squeezeExcite: 1 });

/** timm's SEModule, shared with the timm ByobNet models (src/nn/layers/channel-attention.ts). */
export { SqueezeExcite };

/** HaloAttention followed by SE; the attention's keys stay at the top level (q, kv, pos_embed). */
export class HaloAttentionSe extends HaloAttention {
  readonly se: SqueezeExcite;

  constructor(o: HaloAttentionOptions & { seRatio: number }) {
    const { seRatio, ...attention } = o;
    super(attention);
    const channels = this.dimOut;
    this.se = this.register('se', new SqueezeExcite({ channels, reducedChannels: Math.max(8, Math.round(channels * seRatio)) }));
  }

  override forward(x: Tensor): Tensor {
    return this.se.forward(super.forward(x));
  }
}

function perStage(name: string, value: number | number[], stage: number): number {
  const v = Array.isArray(value) ? value[stage] : value;
  if (v === undefined) {
    throw new RangeError(`haloAttentionOp: ${name} ${JSON.stringify(value)} has no entry for stage ${stage}; ` +
      'give one value, or one per stage');
  }
  return v;
}

/**
 * The HaloNet spatial op (see the file header for the reading).
 *
 * Errors: RangeError when the bottleneck width c is not divisible by numHeads (d_qk = c / heads),
 * or a per-stage list is too short; HaloAttention's own errors otherwise.
 *
 * @example
 * resnetFamily({ depths: [3, 3, 7, 3], widths: [64, 128, 256, 512], expansion: 0.5,
 *   spatialOp: haloAttentionOp({ blockSize: 8, haloSize: 3 }), inputSize: 256 });
 */
export function haloAttentionOp(o: HaloAttentionOpOptions): SpatialOpFactory {
  knownOptions('haloAttentionOp', o, HALO_ATTENTION_OP_OPTION_NAMES);
  const numHeads = o.numHeads ?? 8;
  const factory = (ctx: SpatialOpContext): SpatialOp => {
    const blockSize = perStage('blockSize', o.blockSize, ctx.stage);
    const haloSize = perStage('haloSize', o.haloSize, ctx.stage);
    if (ctx.inChannels % numHeads !== 0) {
      throw new RangeError(`haloAttentionOp: stage ${ctx.stage} bottleneck width ${ctx.inChannels} (the q/k width) ` +
        `is not divisible by numHeads ${numHeads}; change widths or numHeads`);
    }
    const divides = ctx.featureSize.every((s) => s % blockSize === 0);
    const padding: HaloPadding = (o.padding ?? 'auto') === 'auto' ? (divides ? 'none' : 'mask') : o.padding as HaloPadding;
    const options = {
      dim: ctx.inChannels, dimOut: ctx.outChannels, stride: ctx.stride, numHeads,
      dimHead: ctx.inChannels / numHeads, blockSize, haloSize, padding,
    };
    return o.squeezeExcite === undefined ? new HaloAttention(options) : new HaloAttentionSe({ ...options, seRatio: o.squeezeExcite });
  };
  return Object.assign(factory, { keepBn2: true, label: 'halo' });
}
