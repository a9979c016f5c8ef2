/**
 * Window-attention spatial ops for the ResNet-family builder (resnet-family.ts): SASA (Ramachandran
 * et al. 2019) and NATTEN neighbourhood attention (Hassani et al. 2023) in the bottleneck's 3×3 slot.
 *   SASA §3.1: "we replace every spatial convolution … with a stand-alone self-attention layer";
 *   "a 2×2 average pooling with stride 2 follows the attention layer whenever spatial downsampling
 *   is required" → the op attends at stride 1 and average-pools s×s after it.
 * Both ops keep the operators' own checkpoint keys under `conv2`: `layer3.1.conv2.query_conv.weight`,
 * `.key_conv`, `.value_conv`, `.rel_h`, `.rel_w` (SASA, leaderj1001's names) and
 * `layer3.1.conv2.qkv.*`, `.rpb`, `.proj.*` (NATTEN 0.14's NeighborhoodAttention2D).
 * Deviations:
 *   1. Odd feature maps are pooled with ceil_mode (the builder's ⌈H/s⌉ contract, as a strided conv);
 *      SASA's own `stride` option pools in floor mode. Even sizes — every ResNet-50 stage at 224 —
 *      are the same either way.
 *   2. NeighborhoodBlockOp takes NCHW in `forward` (the builder's contract): it is
 *      NeighborhoodAttention2d.forwardNchw (the functional form between the same two permutes).
 */
import { NeighborhoodAttention2d, neighborhoodAttention2d } from '../attention/neighborhood-attention.js';
import { SASA } from '../attention/sasa.js';
import * as F from '../ops/functional.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SpatialOp, SpatialOpContext, SpatialOpFactory } from './spatial-ops.js';
import { knownOptions, optionNames } from '../nn/layers/validation.js';

/** s×s average pooling with stride s, ceil mode (a partial last window averages what it covers). */
function poolForStride(y: Tensor, stride: number): Tensor {
  return stride > 1 ? F.avgPool2d(y, stride, { ceilMode: true }) : y;
}

/** The window options both ops take. */
export interface WindowOpOptions {
  /** Window side k (odd); the papers' 7. */
  kernelSize: number;
  /** Heads; the papers' 8. */
  numHeads: number;
}

const WINDOW_OP_OPTION_NAMES = optionNames<WindowOpOptions>({ kernelSize: 1, numHeads: 1 });

/**
 * SASA in a bottleneck: attention at stride 1 over the k×k window, then s×s average pooling.
 *
 * Shape: (B, C_in, H, W) → (B, C_out, ⌈H/s⌉, ⌈W/s⌉). Parameters: SASA's (no biases; rel_h/rel_w N(0, 1)).
 */
export class SasaBlockOp extends SASA {
  readonly poolStride: number;

  constructor(o: WindowOpOptions & { inChannels: number; outChannels: number; stride: number }) {
    super({ inChannels: o.inChannels, outChannels: o.outChannels, kernelSize: o.kernelSize, numHeads: o.numHeads });
    this.poolStride = o.stride;
  }

  override forward(x: Tensor): Tensor {
    return poolForStride(super.forward(x), this.poolStride);   // §3.1 attention, then 2×2 avg-pool
  }
}

/**
 * NATTEN 0.14 NeighborhoodAttention2D on NCHW maps, then s×s average pooling.
 *
 * Shape: (B, dim, H, W) → (B, dim, ⌈H/s⌉, ⌈W/s⌉). Parameters: `qkv`, `rpb`, `proj` as NeighborhoodAttention2d.
 */
export class NeighborhoodBlockOp extends NeighborhoodAttention2d {
  readonly poolStride: number;

  constructor(o: WindowOpOptions & { dim: number; stride: number }) {
    super({ dim: o.dim, numHeads: o.numHeads, kernelSize: o.kernelSize });
    this.poolStride = o.stride;
  }

  /** (B, dim, H, W) → (B, dim, ⌈H/s⌉, ⌈W/s⌉). */
  override forward(x: Tensor): Tensor {
    const shape = x.shape;
    if (shape.length !== 4 || shape[1] !== this.dim) {
      throw new ShapeError(`NeighborhoodBlockOp: expected input (B, dim=${this.dim}, H, W) (channels first, the ` +
        `ResNet slot's layout), got shape [${shape.join(', ')}]`);
    }
    const y = neighborhoodAttention2d(x.permute([0, 2, 3, 1]), this.weights(), this.config())   // (B, H, W, dim)
      .permute([0, 3, 1, 2]);                                                                    // (B, dim, H, W)
    return poolForStride(y, this.poolStride);
  }

  override forwardNchw(x: Tensor): Tensor {
    return this.forward(x);
  }
}

function checkSlot(label: string, ctx: SpatialOpContext): void {
  if (ctx.groups !== 1) {
    throw new RangeError(`${label}: replaces an ungrouped 3×3 conv, got groups ${ctx.groups} (stage ${ctx.stage}, ` +
      `block ${ctx.blockIndex}); use cardinality 1`);
  }
}

/** SASA k×k, `numHeads` heads, avg-pool for stride (SASA §3.1); input and output widths from the slot. */
export function sasaOp(o: WindowOpOptions): SpatialOpFactory {
  knownOptions('sasaOp', o, WINDOW_OP_OPTION_NAMES);
  return Object.assign(
    (ctx: SpatialOpContext): SpatialOp => {
      checkSlot('sasaOp', ctx);
      return new SasaBlockOp({ ...o, inChannels: ctx.inChannels, outChannels: ctx.outChannels, stride: ctx.stride });
    },
    { keepBn2: true, label: 'sasa' },
  );
}

/** NATTEN neighbourhood attention k×k, `numHeads` heads, avg-pool for stride; widths in = out. */
export function neighborhoodOp(o: WindowOpOptions): SpatialOpFactory {
  knownOptions('neighborhoodOp', o, WINDOW_OP_OPTION_NAMES);
  return Object.assign(
    (ctx: SpatialOpContext): SpatialOp => {
      checkSlot('neighborhoodOp', ctx);
      if (ctx.inChannels !== ctx.outChannels) {
        throw new RangeError(`neighborhoodOp: NeighborhoodAttention2d keeps its width, got ${ctx.inChannels} → ` +
          `${ctx.outChannels} channels (stage ${ctx.stage}); leave spatialOutWidths unset`);
      }
      return new NeighborhoodBlockOp({ ...o, dim: ctx.inChannels, stride: ctx.stride });
    },
    { keepBn2: true, label: 'neighborhood' },
  );
}
