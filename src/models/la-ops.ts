/**
 * The LA-layer as the ResNet family's spatial op (Local Attention Layers for Vision Transformers,
 * Table 1; docs/design/la-layer.md "Where it goes"; docs/design/model-specs.md §2.1 and §2.3).
 *   Every bottleneck 3×3 conv (`conv2`) becomes an LALayer with C_in = C_out = the bottleneck
 *   width, the conv's stride and the conv's groups (ResNeXt: 32, model-specs §2.3 `BEST_X`: grouped
 *   q/k/v and 3×3 offset conv, ungrouped 1×1 offset head — exactly LALayer's `groups`). BN2 and
 *   the ReLU after it stay (keepBn2 true).
 * Keys: `layer3.1.conv2.q.weight`, `….k.weight`, `….v.weight`, `….offset.0.weight`,
 * `….offset.0.bias`, `….offset.2.weight`.
 */
import { LALayer, type LAAggregation, type LAOffsets, type LARounding } from '../attention/la-layer.js';
import type { SpatialOpContext, SpatialOpFactory } from './spatial-ops.js';
import { knownOptions, optionNames } from '../nn/layers/validation.js';

/** LALayer's options that are the same in every block (the rest come from the block). */
export interface LALayerOpOptions {
  /** m, attention heads. Paper: 8. */
  heads: number;
  /** l, Eq. (7)'s constraint size. Paper: 7. */
  constraint: number;
  /** k, the window side. Default 3 (paper). */
  kernelSize?: number;
  /** Default 'per-point' (model-specs §2.2's best fit). */
  offsets?: LAOffsets;
  /** Default 'ste'. */
  rounding?: LARounding;
  /** Default 'normalized'. */
  aggregation?: LAAggregation;
}

const LA_LAYER_OP_OPTION_NAMES = optionNames<LALayerOpOptions>({ heads: 1, constraint: 1, kernelSize: 1, offsets: 1, rounding: 1, aggregation: 1 });

/**
 * A SpatialOpFactory building one LALayer per replaced block.
 *
 * Errors: the LALayer's RangeError when a block's width does not fit (width % heads, ⌊width/4⌋
 * not divisible by the groups), prefixed with the block it was building.
 *
 * @example
 * resnetFamily({ depths: [3, 4, 6, 3], spatialOp: laLayerOp({ heads: 8, constraint: 7 }) });
 */
export function laLayerOp(o: LALayerOpOptions): SpatialOpFactory {
  knownOptions('laLayerOp', o, LA_LAYER_OP_OPTION_NAMES);
  const build = (ctx: SpatialOpContext): LALayer => {
    try {
      return new LALayer({
        inChannels: ctx.inChannels, outChannels: ctx.outChannels, stride: ctx.stride, groups: ctx.groups,
        heads: o.heads, constraint: o.constraint, kernelSize: o.kernelSize ?? 3,
        offsets: o.offsets ?? 'per-point', rounding: o.rounding ?? 'ste', aggregation: o.aggregation ?? 'normalized',
      });
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new RangeError(`laLayerOp: cannot build layer${ctx.stage + 1}.${ctx.blockIndex}.conv2 ` +
        `(width ${ctx.inChannels}, groups ${ctx.groups}): ${error.message}`);
    }
  };
  return Object.assign(build, { keepBn2: true, label: 'la' });
}
