/**
 * The transform and mix specs the trainer gives the loader: small images get padded random crops
 * and the image as is for evaluation, large ones RandomResizedCrop and a 0.875 centre crop; the
 * recipe's RandAugment, erasing and flip pass through; mixing only with mixup/CutMix.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { evalTransform, isSmallInput, mixSpec, trainTransform } from '../../src/train/input-pipeline.js';
import { resolveRecipe } from '../../src/train/recipes.js';

test('small images: padded random crop (when the recipe pads) and flip for training, the image at its size for evaluation', () => {
  const recipe = resolveRecipe('fashion-mnist-sgd');
  assert.deepEqual(trainTransform(recipe, 'fashion-mnist', [28, 28], 1), {
    size: [28, 28], channels: 1, mean: [0.286], std: [0.353], train: true, hflip: 0.5,
  });
  assert.equal(trainTransform({ ...recipe, cropPadding: 2 }, 'fashion-mnist', [28, 28], 1).randomCropPadding, 2);
  assert.deepEqual(evalTransform('fashion-mnist', [28, 28], 1), {
    size: [28, 28], channels: 1, mean: [0.286], std: [0.353], train: false,
  });
  const cifar = trainTransform(resolveRecipe('cifar-sgd'), 'cifar10', [32, 32], 3);
  assert.equal(cifar.randomCropPadding, 4);
  assert.deepEqual(cifar.mean, [0.4914, 0.4822, 0.4465]);
  // Fashion-MNIST statistics repeated for a 3-channel model.
  assert.deepEqual(evalTransform('fashion-mnist', [28, 28], 3).mean, [0.286, 0.286, 0.286]);
  assert.equal(isSmallInput([64, 64]), true);
  assert.equal(isSmallInput([65, 64]), false);
});

test('large images: RandomResizedCrop for training, resize + centre crop 0.875 for evaluation', () => {
  const train = trainTransform(resolveRecipe('torchvision-imagenet'), 'imagefolder', [224, 224], 3);
  assert.deepEqual(train, {
    size: [224, 224], channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], train: true,
    randomResizedCrop: { scale: [0.08, 1], ratio: [0.75, 4 / 3] }, interpolation: 'bilinear', hflip: 0.5,
  });
  assert.deepEqual(evalTransform('imagefolder', [224, 224], 3), {
    size: [224, 224], channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], train: false, centerCropPct: 0.875,
  });
});

test("LSAG's DeiT augmentation: RandAugment, random erasing, bicubic, and mixup/CutMix with label smoothing", () => {
  const recipe = resolveRecipe('lsag-adamw');
  const spec = trainTransform(recipe, 'imagefolder', [224, 224], 3);
  assert.equal(spec.randAugment, 'rand-m9-mstd0.5-inc1');
  assert.deepEqual(spec.randomErasing, { probability: 0.25, mode: 'pixel', count: 1 });
  assert.equal(spec.interpolation, 'bicubic');
  assert.deepEqual(mixSpec(recipe, 1000), {
    mixupAlpha: 0.8, cutmixAlpha: 1, prob: 1, switchProb: 0.5, labelSmoothing: 0.1, numClasses: 1000,
  });
  assert.equal(mixSpec(resolveRecipe('halonet'), 1000), null);
  assert.deepEqual(mixSpec({ ...resolveRecipe('cifar-sgd'), cutmix: 1 }, 10),
    { mixupAlpha: 0, cutmixAlpha: 1, prob: 1, switchProb: 0.5, labelSmoothing: 0, numClasses: 10 });
  const small = trainTransform(recipe, 'cifar10', [32, 32], 3);
  assert.equal(small.randAugment, 'rand-m9-mstd0.5-inc1');
  assert.equal(small.randomResizedCrop, undefined);
});
