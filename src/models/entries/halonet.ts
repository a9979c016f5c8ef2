/**
 * HaloNet H0–H7 (Vaswani et al., "Scaling Local Self-Attention for Parameter Efficient Visual
 * Backbones", CVPR 2021, arXiv 2103.12731; Table 2 of slides presenting it), read as
 * docs/design/model-specs.md §4:
 *   stem   7×7/2 conv 64, BN, act, 3×3/2 max-pool                                → s/4
 *   stage i (c_i = 64, 128, 256, 512; depths 3, 3, l_3, 3; strides 1, 2, 2, 2):
 *          1×1 c_i → attention(b, h) c_i → r_v·c_i → 1×1 r_b·c_i (+ shortcut)
 *   head   [1×1 conv d_f, BN, act (H3–H7)] → global average pool → fc 1000
 * All 3×3 slots are halo attention (halonet-ops.ts); "1×1, 64·r_b" is read literally (block
 * output r_b·c_i, not 4·r_b·c_i). The builder is resnetFamily with widths, a fractional
 * `expansion` (r_b), `spatialOutWidths` (r_v·c_i) and `headChannels` (d_f) — no HaloNet class.
 *
 * Slides' variants, as options of `haloNet` (none changes the registered defaults):
 *   convStages: n        Table 4 / Table 6 "Conv-12": stages 1..n keep the 3×3 conv (n = 2)
 *   patchStem: true      Table 6 "4×4 patch": the stem is a linear projection of 4×4 patches
 *   squeezeExcite: r     Table 3 "+SE": SE (timm SEModule, bottleneck max(8, round(C·r))) after
 *                        each attention layer
 *   activation: 'silu'   Table 3 "SiLU/Sw1" (the final recipe); default ReLU (the baseline)
 *   dF                   the final 1×1 conv width (H3: the table's 1024; 1280 reproduces 12.3 M)
 *
 * Recipe 'halonet': label smoothing + RandAugment, the slides' Table 3 (HaloNet, ImageNet top-1):
 * baseline 78.6 → + LS 79.7 → + LS, RA 79.9 → + LS, SE, SiLU/Sw1, RA 80.5 (ResNet-50: 77.6 → 79.5).
 * The slides give no magnitudes, epochs or optimizer; the training code is expected to use timm's
 * defaults (label smoothing 0.1, rand-m9-mstd0.5). halonet_nano uses 'fashion-mnist-sgd'.
 */
import type { ModelEntry, ResolvedModelOptions } from '../registry.js';
import { resnetFamily, type Activation, type ResNet, type StemSpec } from '../resnet-family.js';
import { Conv2d } from '../../nn/index.js';
import { haloAttentionOp, type HaloOpPadding } from '../halonet-ops.js';
import { conv3x3Op, type SpatialOpFactory } from '../spatial-ops.js';

/** One row of the slides' Table 2. */
export interface HaloNetConfig {
  /** Query block side b. */
  blockSize: number;
  /** Halo h. */
  haloSize: number;
  /** r_v: value width / c_i. */
  valueRatio: number;
  /** r_b: block output / c_i. */
  blockRatio: number;
  /** l_3: blocks in stage 3. */
  stage3Depth: number;
  /** d_f: the final 1×1 conv; undefined for H0–H2. */
  dF?: number;
}

export interface HaloNetOptions extends HaloNetConfig {
  numClasses?: number;
  inChannels?: number;
  inputSize?: number | [number, number];
  dropPathRate?: number;
  /** Stage widths c_i; default [64, 128, 256, 512]. */
  widths?: number[];
  /** Blocks per stage; default [3, 3, stage3Depth, 3]. */
  depths?: number[];
  /** Attention heads; default 8. */
  numHeads?: number;
  /** The first `convStages` stages keep the 3×3 conv (slides' Conv-12 = 2); default 0. */
  convStages?: number;
  /** A 4×4/4 linear patch projection (`stem.weight`, `stem.bias`) instead of the 7×7 stem; default false. */
  patchStem?: boolean;
  /** SE ratio after each attention layer (the slides' "+SE"); default none. */
  squeezeExcite?: number;
  /** Default 'relu' (the slides' baseline); 'silu' is the final recipe's. */
  activation?: Activation;
  /** 'imagenet' (default) or 'cifar' (3×3/1 stem, for small images). */
  stem?: 'imagenet' | 'cifar';
  stemWidth?: number;
  /** Halo padding; default 'auto' ('mask' only where a map does not divide by b). */
  padding?: HaloOpPadding;
}

/** The slides' 4×4 patch stem: a linear projection of each 4×4 patch, as ViT's patch embedding. */
function patchStem(): StemSpec {
  return {
    stride: 4,
    build: ({ inChannels, outChannels }) => new Conv2d({ inChannels, outChannels, kernelSize: 4, stride: 4 }),
  };
}

/**
 * Builds a HaloNet from a Table 2 row and the variant options (see the file header).
 *
 * Errors: RangeError naming the option for convStages outside [0, stages] and for widths the
 * heads do not divide; resnetFamily's and HaloAttention's errors otherwise (a map that does not
 * divide by b with padding 'none' throws ShapeError in forward).
 */
export function haloNet(o: HaloNetOptions): ResNet {
  const widths = o.widths ?? [64, 128, 256, 512];
  const depths = o.depths ?? [3, 3, o.stage3Depth, 3];
  const convStages = o.convStages ?? 0;
  if (!Number.isInteger(convStages) || convStages < 0 || convStages > depths.length) {
    throw new RangeError(`haloNet: convStages must be an integer in [0, ${depths.length}] (Conv-12 is 2), got ${convStages}`);
  }
  const attention = haloAttentionOp({
    blockSize: o.blockSize, haloSize: o.haloSize, numHeads: o.numHeads, padding: o.padding, squeezeExcite: o.squeezeExcite,
  });
  const spatialOp: SpatialOpFactory[] = depths.map((_, s) => (s < convStages ? conv3x3Op : attention));
  return resnetFamily({
    depths, widths, expansion: o.blockRatio,
    spatialOutWidths: widths.map((c) => c * o.valueRatio),
    spatialOp, headChannels: o.dF, activation: o.activation,
    stem: o.patchStem ? patchStem() : o.stem, stemWidth: o.stemWidth,
    numClasses: o.numClasses, inChannels: o.inChannels, inputSize: o.inputSize, dropPathRate: o.dropPathRate,
  });
}

/** Table 2 of the slides: b, h, r_v, r_b, l_3, d_f (s is each entry's inputSize). */
export const HALONET_CONFIGS: Record<string, HaloNetConfig & { inputSize: number }> = {
  h0: { blockSize: 8, haloSize: 3, valueRatio: 1, blockRatio: 0.5, stage3Depth: 7, inputSize: 256 },
  h1: { blockSize: 8, haloSize: 3, valueRatio: 1, blockRatio: 1, stage3Depth: 10, inputSize: 256 },
  h2: { blockSize: 8, haloSize: 3, valueRatio: 1, blockRatio: 1.25, stage3Depth: 11, inputSize: 256 },
  h3: { blockSize: 10, haloSize: 3, valueRatio: 1, blockRatio: 1.5, stage3Depth: 12, dF: 1024, inputSize: 320 },
  h4: { blockSize: 12, haloSize: 2, valueRatio: 1, blockRatio: 3, stage3Depth: 12, dF: 1280, inputSize: 384 },
  h5: { blockSize: 14, haloSize: 2, valueRatio: 2.5, blockRatio: 2, stage3Depth: 23, dF: 1536, inputSize: 448 },
  h6: { blockSize: 8, haloSize: 4, valueRatio: 3, blockRatio: 2.75, stage3Depth: 24, dF: 1536, inputSize: 512 },
  h7: { blockSize: 10, haloSize: 3, valueRatio: 4, blockRatio: 3.5, stage3Depth: 26, dF: 2048, inputSize: 600 },
};

/** halonet_nano's configuration (see its entry). */
export const HALONET_NANO: HaloNetOptions = {
  blockSize: 4, haloSize: 2, valueRatio: 1, blockRatio: 2, stage3Depth: 2, depths: [1, 1, 2, 1],
  widths: [32, 64, 128, 256], numHeads: 4, stem: 'cifar', stemWidth: 32,
};

const common = (o: ResolvedModelOptions) => ({
  numClasses: o.numClasses, inChannels: o.inChannels, inputSize: o.inputSize, dropPathRate: o.dropPathRate,
});

function tableRow(
  key: string, params: number, macs: number, paperParams: string, extra: Partial<HaloNetOptions> = {}, note = '',
): ModelEntry {
  const { inputSize, ...config } = HALONET_CONFIGS[key];
  const c = { ...config, ...extra };
  return {
    paper: 'HaloNet slides Table 2', recipe: 'halonet', inputSize, inChannels: 3, numClasses: 1000,
    description: `HaloNet-${key.toUpperCase()}${note}: b ${c.blockSize}, h ${c.haloSize}, r_v ${c.valueRatio}, ` +
      `r_b ${c.blockRatio}, l_3 ${c.stage3Depth}, d_f ${c.dF ?? '–'}, ${inputSize} px`,
    params, macs, paperReports: `${paperParams} M (no FLOPs in the slides)`,
    build: (o) => haloNet({ ...c, ...common(o) }),
  };
}

export const haloNetModels: Record<string, ModelEntry> = {
  halonet_h0: tableRow('h0', 5_500_952, 2_352_932_864, '5.5'),
  halonet_h1: tableRow('h1', 8_100_056, 2_988_232_704, '8.1'),
  halonet_h2: tableRow('h2', 9_404_312, 3_312_763_904, '9.4'),
  // The table's d_f = 1024 gives 11.84 M (−3.7%); 1280 gives 12.29 M (model-specs.md §4.2).
  halonet_h3: tableRow('h3', 11_841_304, 6_179_532_800, '12.3'),
  halonet_h3_df1280: tableRow('h3', 12_294_424, 6_199_449_600, '12.3', { dF: 1280 }, ' (d_f 1280)'),
  halonet_h4: tableRow('h4', 19_101_976, 11_998_447_616, '19.1'),
  halonet_h5: tableRow('h5', 30_717_272, 32_246_239_232, '30.7'),
  halonet_h6: tableRow('h6', 43_456_792, 52_787_113_984, '43.4'),
  halonet_h7: tableRow('h7', 67_433_240, 112_982_959_360, '67'),
  // Sized for 28×28 Fashion-MNIST on two CPU cores: 0.83 M parameters, 69 M MACs. CIFAR stem
  // (3×3/1, 32), c = 32…256, depths [1, 1, 2, 1], r_v 1, r_b 2, b 4 / h 2 (window 8), 4 heads;
  // maps 28, 14, 7, 4: the 14 and 7 maps do not divide by 4, so those layers pad and mask
  // (padding 'auto').
  halonet_nano: {
    paper: 'vicinity (small-image HaloNet)', recipe: 'fashion-mnist-sgd',
    description: 'HaloNet for 28 px: 3×3/1 stem 32, depths [1, 1, 2, 1], c 32–256, r_v 1, r_b 2, b 4, h 2, 4 heads',
    inputSize: 28, inChannels: 1, numClasses: 10, params: 827_834, macs: 68_542_464,
    modelArgs: ['blockSize', 'haloSize'],
    build: (o) => haloNet({ ...HALONET_NANO, ...o.modelArgs, ...common(o) }),
  },
};
