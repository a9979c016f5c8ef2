/**
 * Every layer, block, model builder and spatial-op factory rejects an option it does not have —
 * a typo or a reference's snake_case name — with a TypeError naming the nearest valid option
 * (nn/layers/validation.ts knownOptions), instead of silently building with the default.
 * The table must list every exported Module subclass (or say why it takes no options).
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import * as nn from '../../src/nn/index.js';
import * as vicinity from '../../src/index.js';
import { ByobNet } from '../../src/models/byobnet.js';
import { haloAttentionOp } from '../../src/models/halonet-ops.js';
import { laLayerOp } from '../../src/models/la-ops.js';
import { lesaOp, lesaSelfAttentionOp, staticLesaOp } from '../../src/models/lesa-ops.js';
import { LsagModel } from '../../src/models/lsag.js';
import { createModel } from '../../src/models/registry.js';
import { sasaOp, neighborhoodOp } from '../../src/models/window-ops.js';
import { RelPosEmbedding2d } from '../../src/attention/rel-pos.js';
import { LsagGlobalStageParity, LsagLocalStageParity } from '../../src/attention/lsag-stage.js';

type Extra = Record<string, unknown>;
interface Case {
  /** Builds the thing with `base` plus `extra` merged in. */
  build: (options: Extra) => unknown;
  /** Options that build (checked), so the unknown key is the only fault; null: too costly to build here. */
  base: Extra | null;
}

const {
  AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, DropPath, Dropout,
  EfficientChannelAttention, Flatten, GELU, GroupNorm, LayerNorm, LeakyReLU, Linear, MaxPool2d, Softplus, SqueezeExcite,
} = nn;
const {
  AttentionConvCompat, HaloAttention, LALayer, Lesa, LesaBinaryAttention, LsagFirstStage, LsagGlobalAttention,
  LsagLocalAttention, LsagMlp, LsagShiftedEmbedding, LsagStage, MultiHeadSelfAttention2d, NeighborhoodAttention2d,
  ReduceImageSize, SASA, SmallConvNet, resnetFamily,
} = vicinity;

// `any`: the table feeds deliberately wrong options.
const layer = (C: new (o: any) => unknown, base: Extra | null): [string, Case] => [C.name, { build: (o) => new C(o), base }];

const CASES = new Map<string, Case>([
  // nn
  layer(Linear, { inFeatures: 2, outFeatures: 2 }),
  layer(Conv1d, { inChannels: 2, outChannels: 2, kernelSize: 1 }),
  layer(Conv2d, { inChannels: 2, outChannels: 2, kernelSize: 1 }),
  layer(BatchNorm1d, { numFeatures: 2 }),
  layer(BatchNorm2d, { numFeatures: 2 }),
  layer(GroupNorm, { numGroups: 1, numChannels: 2 }),
  layer(LayerNorm, { normalizedShape: 2 }),
  layer(MaxPool2d, { kernelSize: 2 }),
  layer(AvgPool2d, { kernelSize: 2 }),
  layer(AdaptiveAvgPool2d, { outputSize: 1 }),
  layer(AdaptiveMaxPool2d, { outputSize: 1 }),
  layer(Dropout, {}),
  layer(DropPath, {}),
  layer(Flatten, {}),
  layer(GELU, {}),
  layer(Softplus, {}),
  layer(LeakyReLU, {}),
  layer(SqueezeExcite, { channels: 8, reducedChannels: 2 }),
  layer(EfficientChannelAttention, { channels: 8 }),
  // attention
  layer(HaloAttention, { dim: 8, numHeads: 2, blockSize: 2, haloSize: 1 }),
  layer(MultiHeadSelfAttention2d, { dim: 8, numHeads: 2, featSize: [4, 4] }),
  layer(NeighborhoodAttention2d, { dim: 8, numHeads: 2, kernelSize: 3 }),
  layer(SASA, { inChannels: 8, outChannels: 8, kernelSize: 3, numHeads: 2 }),
  layer(AttentionConvCompat, { inChannels: 8, outChannels: 8, kernelSize: 3, padding: 1 }),
  layer(Lesa, { inPlanes: 8, outPlanes: 8, featureSize: 3, groups: 2 }),
  layer(LesaBinaryAttention, { inPlanes: 8, outPlanes: 8, featureSize: 3, groups: 2 }),
  layer(LALayer, { inChannels: 8, outChannels: 8, heads: 2 }),
  layer(LsagLocalAttention, { dim: 8, numHeads: 2, numVariants: 3 }),
  layer(LsagGlobalAttention, { dim: 8, numHeads: 2 }),
  layer(LsagMlp, { inFeatures: 8 }),
  layer(LsagShiftedEmbedding, { imgSize: 6, kernelSize: 3, embedDim: 8, variant: 'cifar' }),
  layer(LsagFirstStage, { numVariants: 3, numPatches: 4, depth: 1, dim: 8, numHeads: 2 }),
  layer(LsagStage, { numPatches: 4, depth: 1, dim: 8, numHeads: 2 }),
  layer(ReduceImageSize, { dim: 8, dimOut: 8, seqLen: 4 }),
  layer(LsagLocalStageParity, { imgSize: 6, kernelSize: 3, strideSize: 1, paddingSize: 1, embedDim: 8, depth: 1, numHeads: 2, variant: 'cifar' }),
  layer(LsagGlobalStageParity, { numPatches: 4, dimIn: 8, dimOut: 6, depth: 1, numHeads: 2, variant: 'imagenet' }),
  layer(RelPosEmbedding2d, { heightRows: 3, widthRows: 3, dimHead: 4 }),
  // models and their builders
  layer(SmallConvNet, {}),
  layer(LsagModel, null),
  ['ByobNet', { build: (o) => new ByobNet({} as never, o as never), base: null }],
  ['resnetFamily', { build: (o) => resnetFamily(o as never), base: { depths: [1], stem: 'cifar', numClasses: 2, inputSize: 8 } }],
  ['createModel', { build: (o) => createModel('small_convnet', o), base: { numClasses: 3 } }],
  ['laLayerOp', { build: (o) => laLayerOp(o as never), base: { heads: 2, constraint: 3 } }],
  ['lesaOp', { build: (o) => lesaOp(o), base: {} }],
  ['staticLesaOp', { build: (o) => staticLesaOp(o), base: {} }],
  ['lesaSelfAttentionOp', { build: (o) => lesaSelfAttentionOp(o), base: {} }],
  ['haloAttentionOp', { build: (o) => haloAttentionOp(o as never), base: { blockSize: 2, haloSize: 1 } }],
  ['sasaOp', { build: (o) => sasaOp(o as never), base: { kernelSize: 3, numHeads: 2 } }],
  ['neighborhoodOp', { build: (o) => neighborhoodOp(o as never), base: { kernelSize: 3, numHeads: 2 } }],
]);

/** Exported modules that take no options object: nothing to misspell. */
const NO_OPTIONS = new Set(['Module', 'ReLU', 'SiLU', 'Sigmoid', 'Tanh', 'Identity', 'Sequential', 'ModuleList', 'ModuleDict',
  'ResNet' /* built from a plan by resnetFamily, which is in the table */,
  'DistributedDataParallel' /* needs a live process group; knownOptions checks its options first */]);

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (e) {
    return e as Error;
  }
  assert.fail('expected an error');
}

test('the table covers every exported Module subclass', () => {
  const exported = new Set<string>();
  for (const ns of [nn, vicinity] as Record<string, unknown>[]) {
    for (const [name, value] of Object.entries(ns)) {
      if (typeof value === 'function' && (value === nn.Module || value.prototype instanceof nn.Module)) exported.add(name);
    }
  }
  const missing = [...exported].filter((name) => !CASES.has(name) && !NO_OPTIONS.has(name));
  assert.deepEqual(missing, [], 'add these to CASES (or NO_OPTIONS with the reason)');
});

for (const [name, c] of CASES) {
  test(`${name} rejects an unknown option with a TypeError naming the nearest valid one`, () => {
    if (c.base) {
      const built = c.build({ ...c.base });
      if (built instanceof nn.Module) built.dispose();
    }
    const unknown = thrown(() => c.build({ ...c.base, notAnOption: 1 }));
    assert.ok(unknown instanceof TypeError, `${name}: ${String(unknown)}`);
    assert.match(unknown.message, /unknown option 'notAnOption'; the options are /);
    const options = unknown.message.split('the options are ')[1].split(', ');
    assert.ok(options.length >= 1);
    // A typo of each valid option (one letter doubled) suggests that option.
    for (const option of options) {
      const typo = option + option.at(-1);
      const e = thrown(() => c.build({ ...c.base, [typo]: 1 }));
      assert.ok(e instanceof TypeError, `${name}.${typo}: ${String(e)}`);
      assert.match(e.message, new RegExp(`unknown option '${typo}' \\(did you mean '${option}'\\?\\)`), `${name}.${typo}`);
    }
  });
}

test('a reference snake_case name suggests the camelCase option', () => {
  const e = thrown(() => new Linear({ in_features: 2, outFeatures: 2 } as never));
  assert.ok(e instanceof TypeError);
  assert.match(e.message, /^Linear: unknown option 'in_features' \(did you mean 'inFeatures'\?\); the options are inFeatures, outFeatures, bias$/);
});

test('options that are not an object are a TypeError', () => {
  assert.throws(() => new Linear(5 as never), /TypeError: Linear: options must be an object, got 5/);
  assert.throws(() => new Dropout([0.5] as never), /TypeError: Dropout: options must be an object, got \[0\.5\]/);
});

test('one error type per kind of mistake: wrong type TypeError, impossible value RangeError', () => {
  const cases: [() => unknown, ErrorConstructor][] = [
    [() => new Linear({ inFeatures: 1.5, outFeatures: 2 }), TypeError],
    [() => new Linear({ inFeatures: 0, outFeatures: 2 }), RangeError],
    [() => new GELU({ approximate: 'erf' as never }), RangeError],
    [() => new GELU({ approximate: 1 as never }), TypeError],
    [() => new Softplus({ beta: 'one' as never }), TypeError],
    [() => new Softplus({ beta: Infinity }), RangeError],
    [() => new BatchNorm2d({ numFeatures: 2, eps: '1e-5' as never }), TypeError],
    [() => new BatchNorm2d({ numFeatures: 2, eps: 0 }), RangeError],
    [() => new Conv2d({ inChannels: 4, outChannels: 4, kernelSize: 1, groups: 3 }), RangeError],
    [() => new GroupNorm({ numGroups: 4, numChannels: 6 }), RangeError],
    [() => new MultiHeadSelfAttention2d({ dim: 8, numHeads: 3, featSize: [4, 4] }), RangeError],
    [() => new LsagGlobalAttention({ dim: 10, numHeads: 4 }), RangeError],
    [() => new NeighborhoodAttention2d({ dim: 8, numHeads: 3, kernelSize: 3 }), RangeError],
    [() => new Lesa({ inPlanes: 8, outPlanes: 8, featureSize: 4, kernelSize: 3 }), RangeError],
    [() => createModel('small_convnet', { modelArgs: { kernelSize: 3 } }), TypeError],
  ];
  for (const [f, type] of cases) {
    const e = thrown(f);
    assert.ok(e instanceof type, `${f.toString()}: ${String(e)}`);
  }
});
