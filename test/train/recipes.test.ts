/**
 * Recipes: every model entry's recipe exists, the papers' numbers are the entries' headers',
 * overrides replace recipe values, lr scales linearly with an overridden batch size only, and
 * bad names and values are errors that name the problem.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { listModels, modelInfo } from '../../src/models/registry.js';
import { RECIPES, recipeFor, recipeNames, resolveRecipe } from '../../src/train/recipes.js';

test('every registered model names a known recipe, and every recipe is used', () => {
  const used = new Set<string>();
  for (const name of listModels()) {
    const recipe = modelInfo(name).recipe;
    assert.ok(recipe in RECIPES, `${name} names recipe '${recipe}', which recipes.ts lacks`);
    used.add(recipe);
  }
  assert.deepEqual([...used].sort(), recipeNames());
  assert.deepEqual(recipeNames(), [
    'cifar-sgd', 'fashion-mnist-sgd', 'halonet', 'la-sgd', 'lesa-sgd', 'lsag-adamw', 'sasa-sgd', 'torchvision-imagenet',
  ]);
});

test("the recipes hold the papers' numbers", () => {
  const pick = (name: string, keys: string[]) =>
    Object.fromEntries(keys.map((k) => [k, (RECIPES[name] as unknown as Record<string, unknown>)[k]]));
  assert.deepEqual(pick('la-sgd', ['optimizer', 'lr', 'batchSize', 'epochs', 'weightDecay', 'warmupEpochs', 'schedule', 'momentum']),
    { optimizer: 'sgd', lr: 0.4, batchSize: 512, epochs: 100, weightDecay: 1e-4, warmupEpochs: 5, schedule: 'cosine', momentum: 0.9 });
  assert.deepEqual(pick('lesa-sgd', ['nesterov', 'lr', 'batchSize', 'epochs', 'weightDecay', 'warmupEpochs', 'labelSmoothing']),
    { nesterov: true, lr: 0.05, batchSize: 128, epochs: 95, weightDecay: 8e-5, warmupEpochs: 5, labelSmoothing: 0 });
  assert.deepEqual(pick('lsag-adamw', [
    'optimizer', 'lr', 'batchSize', 'beta2', 'eps', 'weightDecay', 'epochs', 'minLr', 'warmupEpochs', 'warmupLr', 'clipGrad',
    'labelSmoothing', 'randAugment', 'mixup', 'cutmix', 'randomErasing', 'dropPath',
  ]), {
    optimizer: 'adamw', lr: 5e-4, batchSize: 512, beta2: 0.999, eps: 1e-8, weightDecay: 0.05, epochs: 300, minLr: 1e-5,
    warmupEpochs: 5, warmupLr: 1e-6, clipGrad: 5, labelSmoothing: 0.1, randAugment: 'rand-m9-mstd0.5-inc1', mixup: 0.8,
    cutmix: 1, randomErasing: 0.25, dropPath: 0.1,
  });
  assert.deepEqual(pick('halonet', ['labelSmoothing', 'randAugment']), { labelSmoothing: 0.1, randAugment: 'rand-m9-mstd0.5' });
  assert.deepEqual(pick('torchvision-imagenet', ['schedule', 'stepEpochs', 'stepGamma', 'lr', 'batchSize', 'weightDecay', 'epochs']),
    { schedule: 'step', stepEpochs: 30, stepGamma: 0.1, lr: 0.1, batchSize: 256, weightDecay: 1e-4, epochs: 90 });
  assert.deepEqual(pick('sasa-sgd', ['nesterov', 'lr', 'batchSize', 'warmupEpochs', 'weightDecay', 'labelSmoothing', 'epochs']),
    { nesterov: true, lr: 0.1, batchSize: 256, warmupEpochs: 10, weightDecay: 1e-4, labelSmoothing: 0.1, epochs: 90 });
  assert.deepEqual(pick('fashion-mnist-sgd', ['nesterov', 'lr', 'batchSize', 'weightDecay', 'epochs', 'cropPadding', 'hflip', 'warmupEpochs']),
    { nesterov: true, lr: 0.1, batchSize: 128, weightDecay: 5e-4, epochs: 5, cropPadding: 0, hflip: 0.5, warmupEpochs: 0.5 });
  for (const [name, r] of Object.entries(RECIPES)) {
    assert.ok(r.description.length > 20 && r.source.length > 10, `${name}: description and source`);
  }
});

test('resolveRecipe copies a recipe and lists the names for an unknown one', () => {
  const r = resolveRecipe('la-sgd');
  r.lr = 1;
  assert.equal(RECIPES['la-sgd'].lr, 0.4);
  assert.throws(() => resolveRecipe('la_sgd'), (e: Error) =>
    e instanceof RangeError && e.message.includes("unknown recipe 'la_sgd'") && e.message.includes('la-sgd, lesa-sgd, lsag-adamw'));
  assert.throws(() => resolveRecipe('toString'), /unknown recipe 'toString'/);
});

test("recipeFor: the model entry's recipe, overridden by the config's values", () => {
  const plain = recipeFor({ model: 'small_convnet' });
  assert.equal(plain.name, 'fashion-mnist-sgd');
  assert.deepEqual(plain.overridden, []);
  assert.equal(plain.lrScaledFrom, undefined);
  const r = recipeFor({ model: 'small_convnet', epochs: 2, lr: 0.05, labelSmoothing: 0.1, weightDecay: undefined });
  assert.equal(r.epochs, 2);
  assert.equal(r.lr, 0.05);
  assert.equal(r.labelSmoothing, 0.1);
  assert.equal(r.weightDecay, 5e-4);
  assert.deepEqual(r.overridden, ['lr', 'epochs', 'labelSmoothing']);
  const other = recipeFor({ model: 'small_convnet', recipe: 'lsag-adamw' });
  assert.equal(other.name, 'lsag-adamw');
  assert.equal(other.optimizer, 'adamw');
  assert.throws(() => recipeFor({ model: 'no_such_model' }), /unknown model 'no_such_model'/);
});

test('recipeFor scales lr linearly with an overridden batch size, unless lr is given', () => {
  const scaled = recipeFor({ model: 'la_resnet50', batchSize: 128 });
  assert.equal(scaled.lr, 0.1);
  assert.deepEqual(scaled.lrScaledFrom, { lr: 0.4, batchSize: 512 });
  assert.equal(recipeFor({ model: 'lsag_tiny_cifar', batchSize: 256 }).lr, 2.5e-4);
  const explicit = recipeFor({ model: 'la_resnet50', batchSize: 128, lr: 0.2 });
  assert.equal(explicit.lr, 0.2);
  assert.equal(explicit.lrScaledFrom, undefined);
  assert.equal(recipeFor({ model: 'la_resnet50', batchSize: 512 }).lrScaledFrom, undefined);
});

test('recipeFor rejects out-of-range settings by name and value', () => {
  assert.throws(() => recipeFor({ model: 'small_convnet', epochs: 0 }), /recipe 'fashion-mnist-sgd': epochs must be an integer ≥ 1, got 0/);
  assert.throws(() => recipeFor({ model: 'small_convnet', batchSize: 1.5 }), /batchSize must be an integer ≥ 1, got 1.5/);
  assert.throws(() => recipeFor({ model: 'small_convnet', lr: -1 }), /lr must be a finite number ≥ 0, got -1/);
  assert.throws(() => recipeFor({ model: 'small_convnet', labelSmoothing: 1 }), /labelSmoothing must be a number in \[0, 1\), got 1/);
  assert.throws(() => recipeFor({ model: 'small_convnet', epochs: 2, warmupEpochs: 3 }), /warmupEpochs must be at most epochs \(2\)/);
  assert.throws(() => recipeFor({ model: 'resnet50', warmupEpochs: 1 }), /StepSchedule has no warm-up/);
  assert.throws(() => recipeFor({ model: 'small_convnet', optimizer: 'lamb' as 'sgd' }), /optimizer must be 'sgd' or 'adamw', got "lamb"/);
  assert.equal(recipeFor({ model: 'small_convnet', hflip: 1 }).hflip, 1);
});
