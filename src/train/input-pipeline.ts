/**
 * From a recipe and a dataset to the loader's transform and mixing specs (data/transforms/spec.ts),
 * following timm's `create_transform` split into small and large images:
 *
 *   small (input side ≤ 64, e.g. 28 px Fashion-MNIST, 32 px CIFAR)
 *     train  random crop of the input size after zero padding (recipe.cropPadding), hflip
 *     eval   the image at the input size (resized only when the dataset's size differs)
 *   large (ImageNet-style)
 *     train  RandomResizedCrop (scale 0.08–1, ratio 3/4–4/3), hflip
 *     eval   resize the shorter side to size / 0.875, centre-crop the size (timm's crop_pct)
 *
 * Both then add the recipe's RandAugment and random erasing (train) and normalise with the
 * dataset's mean and std. Mixup/CutMix is a batch-level step (`mixSpec`) with label smoothing
 * folded into its soft targets, as timm's Mixup does.
 */
import { datasetStats } from '../data/load-dataset.js';
import type { MixSpec, TransformSpec } from '../data/transforms/spec.js';
import type { RecipeSettings } from './train-config.js';

/** Inputs up to this side take the small-image path (no resized crops of 28–32 px images). */
export const SMALL_IMAGE_MAX_SIDE = 64;

/** timm's eval crop_pct (resize to size / 0.875, centre-crop). */
export const EVAL_CROP_PCT = 0.875;

/** timm's RandomResizedCrop defaults. */
const RRC_SCALE: [number, number] = [0.08, 1];
const RRC_RATIO: [number, number] = [3 / 4, 4 / 3];

/** True when images of this size take the small-image path. */
export function isSmallInput(inputSize: [number, number]): boolean {
  return Math.max(inputSize[0], inputSize[1]) <= SMALL_IMAGE_MAX_SIDE;
}

/** Mean and std for `channels` channels (datasetStats repeats or combines the dataset's own). */
function normalisation(dataset: string, channels: 1 | 3): { mean: number[]; std: number[] } {
  const { mean, std } = datasetStats(dataset, channels);
  return { mean, std };
}

/**
 * The training transform of a recipe for a dataset (by registry name) at the model's input size.
 *
 * Example:
 *   trainTransform(resolveRecipe('fashion-mnist-sgd'), 'fashion-mnist', [28, 28], 1)
 *   // { size: [28, 28], channels: 1, train: true, randomCropPadding: 2, hflip: 0.5, mean: [0.286], ... }
 */
export function trainTransform(
  recipe: RecipeSettings, dataset: string, inputSize: [number, number], channels: 1 | 3,
): TransformSpec {
  const spec: TransformSpec = { size: [...inputSize], channels, ...normalisation(dataset, channels), train: true };
  if (isSmallInput(inputSize)) {
    if (recipe.cropPadding > 0) spec.randomCropPadding = recipe.cropPadding;
  } else {
    spec.randomResizedCrop = { scale: [...RRC_SCALE], ratio: [...RRC_RATIO] };
    // DeiT/LSAG resize bicubically (timm's 'bicubic' with RandAugment recipes); torchvision bilinearly.
    spec.interpolation = recipe.randAugment ? 'bicubic' : 'bilinear';
  }
  if (recipe.hflip > 0) spec.hflip = recipe.hflip;
  if (recipe.randAugment) spec.randAugment = recipe.randAugment;
  if (recipe.randomErasing > 0) spec.randomErasing = { probability: recipe.randomErasing, mode: 'pixel', count: 1 };
  return spec;
}

/**
 * The evaluation transform: deterministic, at the model's input size (file header).
 *
 * Example:
 *   evalTransform('imagefolder', [224, 224], 3)   // { ..., centerCropPct: 0.875, train: false }
 */
export function evalTransform(dataset: string, inputSize: [number, number], channels: 1 | 3): TransformSpec {
  const spec: TransformSpec = { size: [...inputSize], channels, ...normalisation(dataset, channels), train: false };
  if (!isSmallInput(inputSize)) spec.centerCropPct = EVAL_CROP_PCT;
  return spec;
}

/**
 * Batch mixing for a recipe with mixup or CutMix (timm Mixup defaults: every batch mixed,
 * CutMix chosen half the time when both are on), else null. The recipe's label smoothing moves
 * into the soft targets, so the loss is then plain soft-target cross-entropy.
 */
export function mixSpec(recipe: RecipeSettings, numClasses: number): MixSpec | null {
  if (!(recipe.mixup > 0) && !(recipe.cutmix > 0)) return null;
  return {
    mixupAlpha: recipe.mixup, cutmixAlpha: recipe.cutmix, prob: 1, switchProb: 0.5,
    labelSmoothing: recipe.labelSmoothing, numClasses,
  };
}
