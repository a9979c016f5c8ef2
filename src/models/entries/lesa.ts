/**
 * LESA: Locally Enhanced Self-Attention (Yang et al.), Tables 2 and 7 (model-specs.md §3): ResNet-50
 * and WRN-50-2 whose bottleneck 3×3 convs are replaced by SA, LESA or static LESA
 * (models/lesa-ops.ts), all on one builder (resnet-family.ts), plus a small-image LESA network.
 *
 *   Table 2 (stages 3 + 4):  stageStrides (1, 2, 2, 1); every block of layer3/layer4 replaced except
 *                            layer3.0, which keeps its stride-2 3×3 conv; all attention at 14×14.
 *   Table 7 (stage 4 only):  the same strides; only layer4 replaced.
 * The convolution rows of Table 2 are `resnet50` / `wide_resnet50_2` (entries/baselines.ts).
 *
 * Reference: Chenglin-Yang/LESA_classification@1d6b9f68, config/lesa_resnet.py, config/lesa_wrn.py,
 * lib/models/resnet.py (`strides=(1,2,2,1)`, `stage_with_lesa=(F,F,T,T)`,
 * `stage_with_first_conv=[T,T,T,F]`, `stage_spatial_res=[56,28,14,14]`). Our state dict equals the
 * official one with DataParallel's `module.` prefix stripped:
 *   await loadWeights(model, 'checkpoint.pth', { stripPrefix: 'module.' });
 *
 * params / macs are exact at the defaults (model-specs.md §0, batch 1, 224 px), measured with
 * vicinity; params equal model-specs.md §3.2 (LESA-R50 23,777,512 and LESA-R50-s4 = the official
 * code), MACs its §7 table. The networks are tied to their inputSize: the relative-position table
 * is sized for the stage-3/4 maps (14×14 at 224), so `fixedInputSize` is set.
 *
 * Recipe 'lesa-sgd' (paper §3.1, the official README and train.py defaults): SGD with Nesterov
 * momentum 0.9, cosine schedule from lr 0.05, 5 linear warm-up epochs + 90 epochs, batch 128 on
 * 4 GPUs (train.py's --batch_size 128 feeds one DataParallel model, so 128 is the global batch),
 * weight decay 8e-5, no label smoothing.
 */
import type { ModelEntry, ResolvedModelOptions } from '../registry.js';
import { resnetFamily, type ResNetFamilyOptions } from '../resnet-family.js';
import { lesaOp, lesaSelfAttentionOp, staticLesaOp } from '../lesa-ops.js';
import type { SpatialOpFactory } from '../spatial-ops.js';

/** The options createModel passes, in the builder's terms. */
const common = (o: ResolvedModelOptions): Partial<ResNetFamilyOptions> => ({
  numClasses: o.numClasses, inChannels: o.inChannels, inputSize: o.inputSize, dropPathRate: o.dropPathRate,
});

/** Table 2: layer3 (but its first block) and layer4 replaced; last stage at stride 1. */
function stages34(op: SpatialOpFactory, widthPerGroup: number, o: ResolvedModelOptions) {
  return resnetFamily({
    depths: [3, 4, 6, 3], widthPerGroup, stageStrides: [1, 2, 2, 1],
    spatialOp: [null, null, op, op], replace: (stage, block) => !(stage === 2 && block === 0), ...common(o),
  });
}

/** Table 7: layer4 only replaced; last stage at stride 1. */
function stage4(op: SpatialOpFactory, o: ResolvedModelOptions) {
  return resnetFamily({ depths: [3, 4, 6, 3], stageStrides: [1, 2, 2, 1], spatialOp: [null, null, null, op], ...common(o) });
}

const imagenet = { inputSize: 224, inChannels: 3, numClasses: 1000, fixedInputSize: true, recipe: 'lesa-sgd' };

export const lesaModels: Record<string, ModelEntry> = {
  sa_resnet50: {
    ...imagenet, paper: 'LESA Table 2', description: 'ResNet-50, layer3–4 3×3 convs (but layer3.0) → global self-attention (LESA binary term), bn2 kept',
    params: 18_056_424, macs: 5_058_684_928, paperReports: '18.06 M',
    build: (o) => stages34(lesaSelfAttentionOp(), 64, o),
  },
  lesa_resnet50: {
    ...imagenet, paper: 'LESA Table 2', description: 'LESA-ResNet-50: layer3–4 3×3 convs (but layer3.0) → LESA, bn2 dropped',
    params: 23_777_512, macs: 6_177_810_432, paperReports: '23.78 M',
    build: (o) => stages34(lesaOp(), 64, o),
  },
  sa_wrn50: {
    ...imagenet, paper: 'LESA Table 2', description: 'WRN-50-2, layer3–4 3×3 convs (but layer3.0) → global self-attention, bn2 kept',
    params: 38_284_072, macs: 12_052_516_864, paperReports: '37.74 M',
    build: (o) => stages34(lesaSelfAttentionOp(), 128, o),
  },
  lesa_wrn50: {
    ...imagenet, paper: 'LESA Table 2', description: 'LESA-WRN-50-2: layer3–4 3×3 convs (but layer3.0) → LESA, bn2 dropped',
    params: 61_145_896, macs: 16_529_018_880, paperReports: '60.61 M',
    build: (o) => stages34(lesaOp(), 128, o),
  },
  sa_resnet50_s4: {
    ...imagenet, paper: 'LESA Table 7', description: 'ResNet-50, layer4 3×3 convs → global self-attention, bn2 kept',
    params: 20_214_584, macs: 5_336_158_208, paperReports: '20.21 M',
    build: (o) => stage4(lesaSelfAttentionOp(), o),
  },
  static_lesa_resnet50_s4: {
    ...imagenet, paper: 'LESA Table 7', description: 'ResNet-50, layer4 3×3 convs → static LESA (½ unary + ½ binary), bn2 kept',
    params: 27_295_544, macs: 6_723_424_256, paperReports: '27.30 M',
    build: (o) => stage4(staticLesaOp(), o),
  },
  lesa_resnet50_s4: {
    ...imagenet, paper: 'LESA Table 7', description: 'LESA-ResNet-50, layer4 3×3 convs → LESA, bn2 dropped',
    params: 24_251_192, macs: 6_126_129_152, paperReports: '24.25 M',
    build: (o) => stage4(lesaOp(), o),
  },
  // Sized for 28×28 Fashion-MNIST on two CPU cores: the Table 2 layout scaled down (3×3/1 stem conv
  // 32, bottlenecks [1, 1, 2, 2] of widths 16/32/64/128, strides 1/2/2/1 → maps 28, 14, 7, 7);
  // layer3.1, layer4.0 and layer4.1 are LESA with the embedding sized from inputSize (7×7 at 28 px).
  lesa_resnet_nano: {
    paper: 'vicinity (small-image LESA, Table 2 layout)', recipe: 'fashion-mnist-sgd',
    description: 'LESA ResNet for 28 px: 3×3/1 stem, bottlenecks [1, 1, 2, 2], widths 16–128, LESA in layer3.1 and layer4',
    inputSize: 28, inChannels: 1, numClasses: 10, fixedInputSize: true, params: 803_850, macs: 51_314_784,
    build: (o) => resnetFamily({
      depths: [1, 1, 2, 2], widths: [16, 32, 64, 128], stem: 'cifar', stemWidth: 32, stageStrides: [1, 2, 2, 1],
      spatialOp: [null, null, lesaOp(), lesaOp()], replace: (stage, block) => !(stage === 2 && block === 0), ...common(o),
    }),
  },
};
