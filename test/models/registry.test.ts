import assert from 'node:assert/strict';
import test from 'node:test';
import { countMacs } from '../../src/analysis/macs.js';
import { createModel, listModels, modelInfo, UnknownModelError } from '../../src/models/registry.js';
import { ResNet } from '../../src/models/resnet-family.js';
import { SmallConvNet } from '../../src/models/small-convnet.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { trainOneStep } from '../support/train-step.js';

/**
 * model-specs.md §1 (the torchvision 0.14 cross-check: exact parameters, GMACs to 3 decimals at
 * 224), torchvision's published ResNet-18/34 counts, and the benchmark network
 * (bench/resnet18-step.ts): oracle values, independent of the registry's own targets.
 */
const SPEC: Record<string, { params: number; gmacs?: number }> = {
  resnet18: { params: 11_689_512, gmacs: 1.814 },
  resnet34: { params: 21_797_672, gmacs: 3.664 },
  resnet50: { params: 25_557_032, gmacs: 4.089 },
  resnet101: { params: 44_549_160, gmacs: 7.801 },
  resnext50_32x4d: { params: 25_028_904, gmacs: 4.230 },
  resnext101_32x4d: { params: 44_177_704, gmacs: 7.970 },
  wide_resnet50_2: { params: 68_883_240, gmacs: 11.398 },
  resnet18_cifar: { params: 11_173_962 },
  small_convnet: { params: 50_282 },
};

// Counting MACs means a batch-1 forward at the model's own resolution: above this budget (HaloNet
// H4–H7 at 384–600 px take 5–16 s and up to 8 GB each) the family's own test file carries the check.
const MAC_SWEEP_BUDGET = 15e9;

test('every registered model: exact parameters and MACs at its defaults, forward at batch 2 at ≤ 64 px', async (t) => {
  const names = listModels();
  for (const required of [...Object.keys(SPEC), 'resnet_nano']) assert.ok(names.includes(required), `${required} is registered`);
  for (const name of names) {
    await t.test(name, () => {
      const info = modelInfo(name);
      const model = createModel(name);
      try {
        assert.equal(model.numParameters(), info.params, 'parameters = the entry\'s target');
        if (SPEC[name]) assert.equal(model.numParameters(), SPEC[name].params, 'parameters = model-specs.md');
        if (info.macs <= MAC_SWEEP_BUDGET) {
          const { total } = countMacs(model, [1, info.inChannels, info.inputSize, info.inputSize]);
          assert.equal(total, info.macs, 'MACs = the entry\'s target');
          const gmacs = SPEC[name]?.gmacs;
          if (gmacs) assert.ok(Math.abs(total / 1e9 / gmacs - 1) < 0.01, `${total} MACs within 1% of ${gmacs} G`);
        }
      } finally {
        model.dispose();
      }
      // A small input, with the model built for it (block sizes, fixed-size embeddings).
      const side = Math.min(64, info.inputSize);
      const small = createModel(name, { inputSize: side });
      try {
        tidy(() => assert.deepEqual(small.forward(randn([2, info.inChannels, side, side], { seed: 1 })).shape, [2, info.numClasses]));
      } finally {
        small.dispose();
      }
    });
  }
});

test('resnet_nano fits its brief: 0.5–2 M parameters, ≤ 150 M MACs at 28×28', () => {
  const info = modelInfo('resnet_nano');
  assert.equal(info.inputSize, 28);
  assert.ok(info.params >= 0.5e6 && info.params <= 2e6, `${info.params}`);
  assert.ok(info.macs <= 150e6, `${info.macs}`);
});

test('every *_nano model fits the small-image brief and trains a step at 28×28: forward, backward, SGD step', () => {
  const nanos = listModels('*_nano*');
  assert.ok(nanos.length >= 7, `only ${nanos.join(', ')}`);
  for (const name of nanos) {
    const info = modelInfo(name);
    assert.ok(info.params >= 0.5e6 && info.params <= 2e6 && info.macs <= 150e6, `${name}: ${info.params} params, ${info.macs} MACs`);
    const model = createModel(name, { inputSize: 28 });
    const r = trainOneStep(model, info);
    assert.ok(Number.isFinite(r.loss) && r.loss > 0, `${name}: loss ${r.loss}`);
    assert.ok(r.allGradients, `${name}: every parameter has a gradient`);
    assert.equal(r.moved, r.total, `${name}: ${r.moved} of ${r.total} parameters changed`);
    model.dispose();
  }
});

test('createModel returns a Classifier: numClasses and forwardFeatures on every family (nano sizes)', () => {
  for (const name of ['small_convnet', ...listModels('*_nano')]) {
    const info = modelInfo(name);
    const model = createModel(name, { numClasses: 6 });
    model.eval();
    assert.equal(model.numClasses, 6, name);
    tidy(() => {
      const maps = model.forwardFeatures(randn([1, info.inChannels, info.inputSize, info.inputSize], { seed: 4 }));
      assert.ok(maps.length >= 2, `${name}: ${maps.length} feature maps`);
      for (const m of maps) assert.equal(m.shape.length, 4, `${name}: feature map ${m.shape}`);
      assert.ok(maps[0]!.shape[2]! >= maps[maps.length - 1]!.shape[2]!, `${name}: shallowest map first`);
    });
    model.dispose();
  }
});

test('createModel passes numClasses, inChannels, inputSize and dropPathRate on', () => {
  const m = createModel('resnet18_cifar', { numClasses: 7, inChannels: 1, dropPathRate: 0.1 });
  assert.ok(m instanceof ResNet);
  const sd = m.stateDict();
  assert.deepEqual(sd.get('conv1.weight')?.shape, [64, 1, 3, 3]);
  assert.deepEqual(sd.get('fc.weight')?.shape, [7, 512]);
  assert.ok([...m.namedModules()].some(([n]) => n === 'layer4.1.drop_path'));
  m.dispose();
  const s = createModel('small_convnet', { inputSize: 32, inChannels: 3 });
  assert.ok(s instanceof SmallConvNet);
  assert.deepEqual(s.stateDict().get('classifier.1.weight')?.shape, [10, 64 * 8 * 8]);
  s.dispose();
  assert.throws(() => createModel('small_convnet', { dropPathRate: 0.1 }), /small_convnet: .*dropPathRate must be 0, got 0.1/);
  assert.throws(() => createModel('small_convnet', { inputSize: [28, 32] }), /small_convnet: takes square inputs only/);
});

test('unknown names: UnknownModelError listing the closest names', () => {
  assert.throws(() => createModel('resnet5'), (e: Error) => {
    assert.ok(e instanceof UnknownModelError);
    assert.equal(e.model, 'resnet5');
    assert.ok(e.suggestions.includes('resnet50'), e.suggestions.join());
    assert.match(e.message, /unknown model 'resnet5'; did you mean resnet50/);
    return true;
  });
  assert.throws(() => modelInfo('resnxt50_32x4d'), /did you mean resnext50_32x4d/);
  assert.throws(() => createModel('zzzz'), /unknown model 'zzzz'; the registered models are .*resnet50/);
});

test('listModels: globs like timm\'s, natural order', () => {
  const all = listModels();
  assert.deepEqual(all, listModels('*'));
  assert.ok(all.indexOf('resnet18') < all.indexOf('resnet50') && all.indexOf('resnet50') < all.indexOf('resnet101'));
  assert.deepEqual(listModels('resnext*'), ['resnext50_32x4d', 'resnext101_32x4d']);
  assert.deepEqual(listModels('RESNET?0?'), ['resnet101']);
  assert.deepEqual(listModels(['wide_*', 'small_*']), ['small_convnet', 'wide_resnet50_2']);
  assert.deepEqual(listModels('resnet[13]*'), ['resnet18', 'resnet18_cifar', 'resnet34', 'resnet101']);
  assert.deepEqual(listModels('no_such_*'), []);
});

test('modelInfo: paper, default input, targets and recipe, without the builder', () => {
  const info = modelInfo('resnet50');
  assert.equal(info.name, 'resnet50');
  assert.match(info.paper, /LA-layer Tables 1–2; LESA Table 2/);
  assert.equal(info.inputSize, 224);
  assert.equal(info.params, 25_557_032);
  assert.equal(info.macs, 4_089_184_256);
  assert.equal(info.recipe, 'torchvision-imagenet');
  assert.ok(!('build' in info));
  for (const name of listModels()) {
    const i = modelInfo(name);
    assert.ok(i.paper && i.description && i.recipe && i.inputSize > 0 && i.params > 0 && i.macs > 0, name);
  }
});

