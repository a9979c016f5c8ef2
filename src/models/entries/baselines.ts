/**
 * The convolutional baselines: the ResNet / ResNeXt / WRN rows of LA-layer Tables 1–2 and LESA
 * Table 2 (model-specs.md §1), torchvision's ResNet-18/34, the small-image networks the project
 * trains on 28–32 px data, and the foundation's SmallConvNet.
 *
 * params / macs are exact at the defaults (model-specs.md §0 conventions, batch 1), measured with
 * vicinity and equal to model-specs.md §1's torchvision cross-check (parameters exactly, MACs to
 * its three decimals).
 *
 * Recipes (names the training code resolves):
 *   'torchvision-imagenet'  SGD momentum 0.9, lr 0.1 per 256 images, wd 1e-4, 90 epochs, ×0.1 every 30
 *   'cifar-sgd'             SGD momentum 0.9, lr 0.1, wd 5e-4, cosine (bench/resnet18-step.ts)
 *   'fashion-mnist-sgd'     the nano models: SGD Nesterov 0.9, lr 0.1 @ 128, wd 5e-4, ½ warm-up epoch, cosine, 5 epochs, flip
 */
import { SmallConvNet } from '../small-convnet.js';
import type { ModelEntry, ResolvedModelOptions } from '../registry.js';
import { resnetFamily, type ResNetFamilyOptions } from '../resnet-family.js';

/** The options createModel passes, in the builder's terms. */
const common = (o: ResolvedModelOptions): Partial<ResNetFamilyOptions> => ({
  numClasses: o.numClasses, inChannels: o.inChannels, inputSize: o.inputSize, dropPathRate: o.dropPathRate,
});

const imagenet = { inputSize: 224, inChannels: 3, numClasses: 1000, recipe: 'torchvision-imagenet' };

export const baselineModels: Record<string, ModelEntry> = {
  resnet18: {
    ...imagenet, paper: 'He et al. 2016 (torchvision resnet18)', description: 'ResNet-18, basic blocks [2, 2, 2, 2]',
    params: 11_689_512, macs: 1_814_073_344, paperReports: '11.7 M / 1.81 G (torchvision)',
    build: (o) => resnetFamily({ depths: [2, 2, 2, 2], block: 'basic', ...common(o) }),
  },
  resnet34: {
    ...imagenet, paper: 'He et al. 2016 (torchvision resnet34)', description: 'ResNet-34, basic blocks [3, 4, 6, 3]',
    params: 21_797_672, macs: 3_663_761_408, paperReports: '21.8 M / 3.66 G (torchvision)',
    build: (o) => resnetFamily({ depths: [3, 4, 6, 3], block: 'basic', ...common(o) }),
  },
  resnet50: {
    ...imagenet, paper: 'LA-layer Tables 1–2; LESA Table 2', description: 'ResNet-50 (v1.5), bottlenecks [3, 4, 6, 3]',
    params: 25_557_032, macs: 4_089_184_256, paperReports: '25.5 M / 4.1 G (LA); 25.56 M (LESA)',
    build: (o) => resnetFamily({ depths: [3, 4, 6, 3], ...common(o) }),
  },
  resnet101: {
    ...imagenet, paper: 'LA-layer Table 2', description: 'ResNet-101 (v1.5), bottlenecks [3, 4, 23, 3]',
    params: 44_549_160, macs: 7_801_405_440, paperReports: '44.6 M / 7.9 G',
    build: (o) => resnetFamily({ depths: [3, 4, 23, 3], ...common(o) }),
  },
  resnext50_32x4d: {
    ...imagenet, paper: 'LA-layer Tables 1–2', description: 'ResNeXt-50 32×4d: 3×3 convs in 32 groups of 4',
    params: 25_028_904, macs: 4_230_479_872, paperReports: '25.0 M / 4.2 G',
    build: (o) => resnetFamily({ depths: [3, 4, 6, 3], cardinality: 32, widthPerGroup: 4, ...common(o) }),
  },
  resnext101_32x4d: {
    ...imagenet, paper: 'LA-layer Table 2', description: 'ResNeXt-101 32×4d (LA\'s "ResNeXt-101"; not in torchvision)',
    params: 44_177_704, macs: 7_969_996_800, paperReports: '44.2 M / 8.0 G',
    build: (o) => resnetFamily({ depths: [3, 4, 23, 3], cardinality: 32, widthPerGroup: 4, ...common(o) }),
  },
  wide_resnet50_2: {
    ...imagenet, paper: 'LESA Table 2', description: 'Wide ResNet-50-2: bottleneck widths doubled',
    params: 68_883_240, macs: 11_398_021_120, paperReports: '68.88 M',
    build: (o) => resnetFamily({ depths: [3, 4, 6, 3], widthPerGroup: 128, ...common(o) }),
  },
  resnet18_cifar: {
    paper: 'bench/resnet18-step.ts (the project benchmark)', recipe: 'cifar-sgd',
    description: 'ResNet-18 for 32 px: 3×3/1 stem conv 64, no max-pool, basic blocks [2, 2, 2, 2]',
    inputSize: 32, inChannels: 3, numClasses: 10, params: 11_173_962, macs: 555_422_720,
    build: (o) => resnetFamily({ depths: [2, 2, 2, 2], block: 'basic', stem: 'cifar', ...common(o) }),
  },
  // Sized for 28×28 Fashion-MNIST on two CPU cores: 1.23 M parameters, 52 M MACs; the narrowest
  // ResNet with all four stages (one basic block each, widths 32–256, strides 1/2/2/2 → 28, 14, 7, 4).
  resnet_nano: {
    paper: 'vicinity (small-image baseline)', recipe: 'fashion-mnist-sgd',
    description: 'ResNet for 28 px: 3×3/1 stem conv 32, basic blocks [1, 1, 1, 1], widths 32/64/128/256',
    inputSize: 28, inChannels: 1, numClasses: 10, params: 1_228_394, macs: 51_837_952,
    build: (o) => resnetFamily({ depths: [1, 1, 1, 1], block: 'basic', stem: 'cifar', stemWidth: 32, widths: [32, 64, 128, 256], ...common(o) }),
  },
  small_convnet: {
    paper: 'vicinity (foundation smoke-test model)', recipe: 'fashion-mnist-sgd',
    description: 'two conv-BN-ReLU-max-pool stages (32, 64) and a linear classifier',
    inputSize: 28, inChannels: 1, numClasses: 10, fixedInputSize: true, params: 50_282, macs: 3_869_824,
    build: (o) => {
      if (o.dropPathRate !== 0) throw new RangeError(`small_convnet: has no residual branches for stochastic depth; dropPathRate must be 0, got ${o.dropPathRate}`);
      const size = typeof o.inputSize === 'number' ? o.inputSize : o.inputSize[0];
      if (typeof o.inputSize !== 'number' && o.inputSize[0] !== o.inputSize[1]) {
        throw new RangeError(`small_convnet: takes square inputs only, got inputSize [${o.inputSize.join(', ')}]; pass one side`);
      }
      return new SmallConvNet({ inChannels: o.inChannels, numClasses: o.numClasses, inputSize: size });
    },
  },
};
