/**
 * LA-ResNet / LA-ResNeXt: the LA-layer rows of "Local Attention Layers for Vision Transformers"
 * (Tables 1–2; model-specs.md §2), and a small-image LA-ResNet for 28 px data.
 *   Every bottleneck 3×3 conv of all four stages becomes an LALayer (la-ops.ts): C_in = C_out =
 *   the bottleneck width, the conv's stride, k = 3, m = 8 heads, l = 7 (paper §4.1), offsets one
 *   (dy, dx) per head and kernel point, an offset conv C → C/4 (model-specs §2.2's best fit);
 *   ResNeXt: groups = 32 for q/k/v and the offset 3×3 conv (model-specs §2.3 `BEST_X`).
 *
 * params / macs are exact at the defaults, measured with vicinity under model-specs.md §0
 * (headline MACs include the LA q·key and Σ w·v products, not the bilinear key sampling). They
 * equal model-specs §7's reference builder: LA-R50 20,978,392 / 3.393 G; LA-R101 35,950,360 /
 * 6.332 G; LA-X50 24.713 M / 4.283 G; LA-X101 43.655 M / 8.012 G. docs/models/la.md explains the
 * gaps to the paper (LA-R101 5.7 G, LA-X50 24.2 M, LA-X101 39.5 M / 7.6 G cannot be met).
 *
 * Recipe 'la-sgd' (paper §4.1, "the same training setup as Li et al. (2022)"): SGD, momentum 0.9
 * (the paper does not say Nesterov), batch 512 on 8 GPUs, 100 epochs, weight decay 1e-4, initial
 * lr 0.4 reached by a linear warm-up over the first 5 epochs, then cosine decay (Loshchilov &
 * Hutter). The nano models train with 'fashion-mnist-sgd' like resnet_nano, their baseline.
 */
import type { LAAggregation } from '../../attention/la-layer.js';
import { laLayerOp } from '../la-ops.js';
import type { Classifier, ModelEntry, ResolvedModelOptions } from '../registry.js';
import { resnetFamily, type ResNetFamilyOptions } from '../resnet-family.js';

/**
 * The aggregation of every LA model: 'softmax' (Eq. 6 over the k² deformed points) trained better
 * than 'normalized' on Fashion-MNIST at equal epochs (89.91% vs 89.66% top-1, 2 epochs) and at
 * equal time (88.55% vs 86.11%, 240 s), and is 1.6× faster on CPU (docs/results.md).
 * LALayer's own default stays la-layer.md's 'normalized'.
 */
export const LA_MODEL_AGGREGATION = 'softmax' as const;

/** The paper's LA-layer hyper-parameters (§4.1): k = 3, m = 8, L = 7. */
const PAPER_LA = { heads: 8, constraint: 7, kernelSize: 3, aggregation: LA_MODEL_AGGREGATION } as const;

/**
 * The options createModel passes, in the builder's terms, and zero-initialised residual branches
 * (the last BN's weight = 0). Li et al. (2022), whose setup the paper follows, train with timm,
 * whose ResNet zero-inits the last BN by default. It also keeps a fresh model finite in eval
 * mode: an LA-layer's output is quadratic in its input's scale (q·v), so with BN at its initial
 * statistics 23 stacked stage-3 blocks can overflow to inf (measured: ~1 in 4 fresh LA-ResNet-101s
 * at 224 px), and inf offsets give NaN sampling positions.
 */
const common = (o: ResolvedModelOptions): Partial<ResNetFamilyOptions> => ({
  numClasses: o.numClasses, inChannels: o.inChannels, inputSize: o.inputSize, dropPathRate: o.dropPathRate,
  zeroInitResidual: true,
});

const imagenet = { inputSize: 224, inChannels: 3, numClasses: 1000, recipe: 'la-sgd' };

/** Options of the small-image LA-ResNet (`la_resnet_nano*`). */
export interface LaResNetNanoOptions extends Partial<ResolvedModelOptions> {
  /** The LA-layers' Eq. (8) reading: 'softmax' (default, LA_MODEL_AGGREGATION) or 'normalized'. */
  aggregation?: Exclude<LAAggregation, 'literal'>;
  /**
   * Stage 1 at stride 2 (maps 14, 7, 4, 4 px instead of 28, 14, 7, 4): ~2.5× less LA work per
   * image, for CPU training in minutes (`la_resnet_nano_s2`, the main job's model).
   */
  halfResolution?: boolean;
}

/**
 * The small-image LA-ResNet: resnet_nano (3×3/1 stem conv 32, basic blocks [1, 1, 1, 1], widths
 * 32/64/128/256, strides 1/2/2/2 → 28, 14, 7, 4 px at 28 px input) with each block's second 3×3
 * conv (`conv2`, stride 1) an LALayer with 4 heads (d = 8–64), k = 3 and constraint l = 3 (the
 * smallest of the paper's 2–4·k would exceed the 4–7 px late maps). A basic block's first conv
 * keeps the stride, so the LA-layers always run at stride 1.
 *
 * Errors: resnetFamily's / LALayer's RangeError for options they cannot take.
 */
export function laResNetNano(o: LaResNetNanoOptions = {}): Classifier {
  return resnetFamily({
    depths: [1, 1, 1, 1], block: 'basic', stem: 'cifar', stemWidth: 32, widths: [32, 64, 128, 256],
    stageStrides: o.halfResolution ? [2, 2, 2, 1] : [1, 2, 2, 2],
    spatialOp: laLayerOp({
      heads: o.modelArgs?.heads ?? 4, constraint: o.modelArgs?.constraint ?? 3, kernelSize: o.modelArgs?.kernelSize ?? 3,
      aggregation: o.aggregation ?? LA_MODEL_AGGREGATION,
    }),
    numClasses: o.numClasses ?? 10, inChannels: o.inChannels ?? 1, inputSize: o.inputSize ?? 28,
    dropPathRate: o.dropPathRate ?? 0,
  });
}

const nano = {
  paper: 'vicinity (small-image LA-ResNet; LA-layer §3.1)', recipe: 'fashion-mnist-sgd',
  inputSize: 28, inChannels: 1, numClasses: 10, params: 910_754, macs: 40_602_112,
  modelArgs: ['kernelSize', 'constraint', 'heads'],
};

export const laModels: Record<string, ModelEntry> = {
  la_resnet50: {
    ...imagenet, paper: 'LA-layer Tables 1–2', description: 'LA-ResNet-50: every bottleneck 3×3 conv an LA-layer (k 3, 8 heads, L 7)',
    params: 20_978_392, macs: 3_392_992_256, paperReports: '21.0 M / 3.4 G',
    build: (o) => resnetFamily({ depths: [3, 4, 6, 3], spatialOp: laLayerOp(PAPER_LA), ...common(o) }),
  },
  la_resnet101: {
    ...imagenet, paper: 'LA-layer Table 2', description: 'LA-ResNet-101: every bottleneck 3×3 conv an LA-layer (k 3, 8 heads, L 7)',
    params: 35_950_360, macs: 6_332_402_688, paperReports: '35.9 M / 5.7 G',
    build: (o) => resnetFamily({ depths: [3, 4, 23, 3], spatialOp: laLayerOp(PAPER_LA), ...common(o) }),
  },
  la_resnext50_32x4d: {
    ...imagenet, paper: 'LA-layer Tables 1–2', description: 'LA-ResNeXt-50 32×4d: LA-layers with q/k/v and offset conv in 32 groups',
    params: 24_713_224, macs: 4_283_164_672, paperReports: '24.2 M / 4.2 G',
    build: (o) => resnetFamily({ depths: [3, 4, 6, 3], cardinality: 32, widthPerGroup: 4, spatialOp: laLayerOp(PAPER_LA), ...common(o) }),
  },
  la_resnext101_32x4d: {
    ...imagenet, paper: 'LA-layer Table 2', description: 'LA-ResNeXt-101 32×4d: LA-layers with q/k/v and offset conv in 32 groups',
    params: 43_655_304, macs: 8_012_445_696, paperReports: '39.5 M / 7.6 G (not reachable: model-specs §2.3)',
    build: (o) => resnetFamily({ depths: [3, 4, 23, 3], cardinality: 32, widthPerGroup: 4, spatialOp: laLayerOp(PAPER_LA), ...common(o) }),
  },
  la_resnet_nano: {
    ...nano, description: 'LA-ResNet for 28 px: resnet_nano with LA-layers (4 heads, L 3, softmax aggregation) as conv2',
    build: (o) => laResNetNano({ ...o, aggregation: 'softmax' }),
  },
  la_resnet_nano_normalized: {
    ...nano, description: 'la_resnet_nano with the normalized (la-layer.md) aggregation',
    build: (o) => laResNetNano({ ...o, aggregation: 'normalized' }),
  },
  la_resnet_nano_s2: {
    ...nano, params: 911_842, macs: 19_341_056,
    description: 'la_resnet_nano with stage 1 at stride 2 (14, 7, 4, 4 px) and softmax aggregation: the main job\'s fast CPU model',
    build: (o) => laResNetNano({ ...o, halfResolution: true }),
  },
};
