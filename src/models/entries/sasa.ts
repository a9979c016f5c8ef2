/**
 * Window-attention ResNet-50s: SASA's "conv-stem + attention" ResNet-50 (Ramachandran et al.,
 * "Stand-Alone Self-Attention in Vision Models", NeurIPS 2019, §3.1 and Table 1) and the same network
 * with NATTEN neighbourhood attention (Hassani et al. 2023), plus 28 px `*_nano` variants.
 * No section of model-specs.md covers them; the reading (docs/models/sasa.md):
 *   - torchvision's ResNet-50 v1.5 skeleton with its convolutional stem (7×7/2 conv, max-pool);
 *   - EVERY bottleneck's 3×3 conv (`conv2`) replaced by 7×7-window attention with 8 heads
 *     (SASA §3.1: k = 7, 8 heads; leaderj1001 model.py: AttentionConv(width, width, 7, groups=8));
 *   - stride-2 blocks attend at stride 1 and then average-pool 2×2 (SASA §3.1), the shortcut keeps
 *     torchvision's 1×1/2 conv + BN; bn2 kept after the attention (window-ops.ts).
 * params / macs are exact at the defaults, measured with vicinity's countMacs at batch 1. MACs follow
 * model-specs.md §0: convolutions, linears and the window products, which the attention layers form
 * as einsums (sasa.ts: q·k, q·r and the weighted sum; neighborhood-attention.ts: q·k and the
 * weighted sum), each Σ over blocks of C·49·H_in·W_in (docs/models/sasa.md).
 *
 * Recipe 'sasa-sgd' (SASA §4.1, ImageNet; "Stand-Alone Self-Attention in Vision Models", numbers
 * as published in arXiv 1906.05909): SGD with Nesterov momentum 0.9, lr 0.1 × batch/256 with a linear
 * warm-up of 10 epochs then cosine decay, weight decay 1e-4, label smoothing 0.1, 90 epochs (batch
 * 4096 in the paper); standard Inception-style random-resized-crop 224 and horizontal flip.
 */
import type { ModelEntry, ResolvedModelOptions } from '../registry.js';
import { resnetFamily, type ResNetFamilyOptions } from '../resnet-family.js';
import type { SpatialOpFactory } from '../spatial-ops.js';
import { neighborhoodOp, sasaOp } from '../window-ops.js';

/** The options createModel passes, in the builder's terms. */
const common = (o: ResolvedModelOptions): Partial<ResNetFamilyOptions> => ({
  numClasses: o.numClasses, inChannels: o.inChannels, inputSize: o.inputSize, dropPathRate: o.dropPathRate,
});

const window = { kernelSize: 7, numHeads: 8 };
const imagenet = { inputSize: 224, inChannels: 3, numClasses: 1000, recipe: 'sasa-sgd' };
const nano = { inputSize: 28, inChannels: 1, numClasses: 10, recipe: 'fashion-mnist-sgd' };

/** ResNet-50 with every 3×3 conv replaced by `op`. */
const resnet50 = (op: SpatialOpFactory) => (o: ResolvedModelOptions) =>
  resnetFamily({ depths: [3, 4, 6, 3], spatialOp: op, ...common(o) });

/** 28 px: 3×3/1 stem conv 32, one bottleneck per stage, planes 32–256 (outputs 128–1024), 28 → 28, 14, 7, 4. */
const resnetNano = (op: SpatialOpFactory) => (o: ResolvedModelOptions) =>
  resnetFamily({ depths: [1, 1, 1, 1], stem: 'cifar', stemWidth: 32, widths: [32, 64, 128, 256], spatialOp: op, ...common(o) });

export const sasaModels: Record<string, ModelEntry> = {
  sasa_resnet50: {
    ...imagenet, paper: 'SASA Table 1 (ResNet-50, conv-stem + attention)', paperReports: '18.0 M / 3.5 G',
    description: 'ResNet-50 with every 3×3 conv replaced by SASA (7×7 window, 8 heads, 2×2 avg-pool for stride)',
    params: 18_038_632, macs: 3_483_158_528,
    build: resnet50(sasaOp(window)),
  },
  na_resnet50: {
    ...imagenet, paper: 'SASA Table 1 layout with NATTEN 0.14 neighbourhood attention',
    description: 'ResNet-50 with every 3×3 conv replaced by NeighborhoodAttention2d (7×7, 8 heads, 2×2 avg-pool for stride)',
    params: 19_306_408, macs: 3_710_857_216,
    build: resnet50(neighborhoodOp(window)),
  },
  sasa_resnet_nano: {
    ...nano, paper: 'vicinity (small-image SASA ResNet)',
    description: 'SASA ResNet for 28 px: 3×3/1 stem 32, bottlenecks [1, 1, 1, 1], planes 32–256, SASA 7×7, 8 heads',
    params: 1_498_122, macs: 106_484_992,
    build: resnetNano(sasaOp(window)),
  },
  na_resnet_nano: {
    ...nano, paper: 'vicinity (small-image neighbourhood-attention ResNet)',
    description: 'NA ResNet for 28 px: 3×3/1 stem 32, bottlenecks [1, 1, 1, 1], planes 32–256, NA 7×7, 8 heads',
    params: 1_589_130, macs: 111_389_696,
    build: resnetNano(neighborhoodOp(window)),
  },
};
