import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { LALayer } from '../../src/attention/la-layer.js';
import { countMacs } from '../../src/analysis/macs.js';
import { loadWeights, saveSafetensors } from '../../src/checkpoint/tensor-io.js';
import { laModels, laResNetNano } from '../../src/models/entries/la.js';
import { laLayerOp } from '../../src/models/la-ops.js';
import type { Classifier, ModelEntry } from '../../src/models/registry.js';
import { resnetFamily } from '../../src/models/resnet-family.js';
import type { Module } from '../../src/nn/module.js';
import * as F from '../../src/ops/functional.js';
import { SGD } from '../../src/optim/index.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { manualSeed, randint, randn } from '../../src/tensor/creation.js';
import { scope, tidy } from '../../src/tensor/scope.js';

/** Builds an entry with its own defaults, as createModel does. */
function build(entry: ModelEntry, overrides: { numClasses?: number; inputSize?: number } = {}): Classifier {
  return entry.build({
    numClasses: overrides.numClasses ?? entry.numClasses, inChannels: entry.inChannels,
    dropPathRate: 0, inputSize: overrides.inputSize ?? entry.inputSize,
  });
}

/** Forward shape at a small input, batch 2 (no entry is built for a fixed size). */
function assertForwardShape(model: Classifier, entry: ModelEntry, side: number): void {
  tidy(() => noGrad(() => {
    model.eval();
    const y = model.forward(randn([2, entry.inChannels, side, side], { seed: 1 }));
    assert.deepEqual(y.shape, [2, entry.numClasses]);
    assert.ok((y.isfinite().all().item() as boolean), 'logits must be finite');
  }));
}

const paramsUnder = (m: Module, prefix: string): number =>
  Array.from(m.namedParameters()).filter(([k]) => k.startsWith(prefix)).reduce((s, [, p]) => s + p.numel, 0);

/**
 * torchvision 0.14's ResNet / ResNeXt state dict (torchvision/models/resnet.py) with each block's
 * `conv2.weight` replaced by the LA-layer's keys (la-layer.md "Parameters"), in registration order.
 */
function laStateKeys(depths: number[], widthPerGroup: number, groups: number): [string, number[]][] {
  const bnKeys = (p: string, c: number): [string, number[]][] =>
    [['weight', [c]], ['bias', [c]], ['running_mean', [c]], ['running_var', [c]], ['num_batches_tracked', []]].map(([k, s]) => [`${p}.${k}`, s as number[]]);
  const keys: [string, number[]][] = [['conv1.weight', [64, 3, 7, 7]], ...bnKeys('bn1', 64)];
  let inplanes = 64;
  depths.forEach((depth, s) => {
    const planes = 64 * 2 ** s;
    const width = Math.floor(planes * (widthPerGroup / 64)) * groups;
    const out = planes * 4;
    for (let b = 0; b < depth; b++) {
      const p = `layer${s + 1}.${b}`;
      keys.push([`${p}.conv1.weight`, [width, inplanes, 1, 1]], ...bnKeys(`${p}.bn1`, width));
      for (const qkv of ['q', 'k', 'v']) keys.push([`${p}.conv2.${qkv}.weight`, [width, width / groups, 1, 1]]);
      keys.push([`${p}.conv2.offset.0.weight`, [width / 4, width / groups, 3, 3]], [`${p}.conv2.offset.0.bias`, [width / 4]]);
      keys.push([`${p}.conv2.offset.2.weight`, [2 * 8 * 9, width / 4, 1, 1]], ...bnKeys(`${p}.bn2`, width));
      keys.push([`${p}.conv3.weight`, [out, width, 1, 1]], ...bnKeys(`${p}.bn3`, out));
      if (b === 0) keys.push([`${p}.downsample.0.weight`, [out, inplanes, 1, 1]], ...bnKeys(`${p}.downsample.1`, out));
      inplanes = out;
    }
  });
  keys.push(['fc.weight', [1000, inplanes]], ['fc.bias', [1000]]);
  return keys;
}

const stateShapes = (m: Module): [string, number[]][] => tidy(() => Array.from(m.stateDict(), ([k, t]) => [k, t.shape]));

// ---- the ImageNet models: exact params and MACs (model-specs.md §2, §7), forward, keys ---------

const IMAGENET: { name: string; depths: number[]; widthPerGroup: number; groups: number }[] = [
  { name: 'la_resnet50', depths: [3, 4, 6, 3], widthPerGroup: 64, groups: 1 },
  { name: 'la_resnet101', depths: [3, 4, 23, 3], widthPerGroup: 64, groups: 1 },
  { name: 'la_resnext50_32x4d', depths: [3, 4, 6, 3], widthPerGroup: 4, groups: 32 },
  { name: 'la_resnext101_32x4d', depths: [3, 4, 23, 3], widthPerGroup: 4, groups: 32 },
];

// model-specs.md §7, our reference builder's row (params exact; GMACs to three decimals).
const SPEC: Record<string, { params: number; gmacs: number }> = {
  la_resnet50: { params: 20_978_392, gmacs: 3.393 },
  la_resnet101: { params: 35_950_360, gmacs: 6.332 },
  la_resnext50_32x4d: { params: 24_713_224, gmacs: 4.283 },
  la_resnext101_32x4d: { params: 43_655_304, gmacs: 8.012 },
};

for (const { name, depths, widthPerGroup, groups } of IMAGENET) {
  test(`${name}: params, MACs at 224, state-dict keys, forward at 64 px`, () => {
    const entry = laModels[name];
    const model = build(entry);
    try {
      assert.equal(model.numParameters(), entry.params);
      assert.equal(entry.params, SPEC[name].params);
      assert.deepEqual(stateShapes(model), laStateKeys(depths, widthPerGroup, groups));
      const macs = countMacs(model, [1, 3, 224, 224]);
      assert.equal(macs.total, entry.macs);
      assert.equal(Math.round(macs.total / 1e6) / 1e3, SPEC[name].gmacs);
      assertForwardShape(model, entry, 64);
    } finally {
      model.dispose();
    }
  });
}

test('la_resnet50: per-stage parameters are model-specs §6\'s checkpoints; LA products are einsums', () => {
  const model = build(laModels.la_resnet50);
  try {
    assert.deepEqual(['layer1.', 'layer2.', 'layer3.', 'layer4.'].map((p) => paramsUnder(model, p)),
      [176_688, 992_384, 5_679_488, 12_071_296]);
    // 3C² + 9C·C/4 + C/4 + 36C per LA-layer (model-specs §2.1).
    for (const [key, C] of [['layer1.0.conv2.', 64], ['layer2.1.conv2.', 128], ['layer3.2.conv2.', 256], ['layer4.0.conv2.', 512]] as const) {
      assert.equal(paramsUnder(model, key), 3 * C * C + (9 * C * C) / 4 + C / 4 + 36 * C, key);
    }
  } finally {
    model.dispose();
  }
  // Σ over the 16 layers of 2·C·k²·P (q·key and Σ w·v): 0.025 G of the headline (model-specs §2.4).
  const layer = new LALayer({ inChannels: 64, outChannels: 64, heads: 8, constraint: 7 });
  const macs = countMacs(layer, [1, 64, 56, 56]);
  assert.equal(macs.byOp['aten::einsum'], 2 * 64 * 9 * 56 * 56);   // counted on the composite path
  layer.dispose();
});

test('laLayerOp: grouped ResNeXt layers, keepBn2, and errors naming the block', () => {
  const op = laLayerOp({ heads: 8, constraint: 7 });
  assert.equal(op.keepBn2, true);
  assert.equal(op.label, 'la');
  const layer = op({ inChannels: 128, outChannels: 128, stride: 2, groups: 32, stage: 0, blockIndex: 0, featureSize: [56, 56] }) as LALayer;
  assert.deepEqual([layer.groups, layer.stride, layer.heads, layer.constraint, layer.offsetChannels], [32, 2, 8, 7, 144]);
  layer.dispose();
  assert.throws(() => resnetFamily({ depths: [1, 1, 1, 1], block: 'basic', widths: [12, 24, 48, 96], spatialOp: laLayerOp({ heads: 8, constraint: 7 }) }),
    (e: Error) => e instanceof RangeError && /layer1\.0\.conv2 \(width 12, groups 1\)/.test(e.message) && /heads \(8\)/.test(e.message));
});

// ---- the small-image model ---------------------------------------------------------------------

test('la_resnet_nano (both aggregations): params, MACs at 28 px, shapes', () => {
  for (const [name, aggregation] of [['la_resnet_nano', 'softmax'], ['la_resnet_nano_normalized', 'normalized']] as const) {
    const entry = laModels[name];
    assert.deepEqual([entry.inputSize, entry.inChannels, entry.numClasses], [28, 1, 10]);
    const model = build(entry);
    try {
      assert.equal(model.numParameters(), entry.params);
      assert.equal(countMacs(model, [1, 1, 28, 28]).total, entry.macs);
      assert.ok(entry.params >= 500_000 && entry.params <= 2_000_000 && entry.macs <= 150e6);
      const la = Array.from(model.namedModules()).filter(([, m]) => m instanceof LALayer) as [string, LALayer][];
      assert.deepEqual(la.map(([k]) => k), ['layer1.0.conv2', 'layer2.0.conv2', 'layer3.0.conv2', 'layer4.0.conv2']);
      assert.ok(la.every(([, m]) => m.aggregation === aggregation && m.heads === 4 && m.constraint === 3 && m.stride === 1));
      assertForwardShape(model, entry, 28);
      assertForwardShape(model, entry, 17);  // odd sizes: 17, 9, 5, 3
    } finally {
      model.dispose();
    }
  }
});

for (const aggregation of ['normalized', 'softmax'] as const) {
  test(`la_resnet_nano (${aggregation}): SGD steps on a 28×28 batch lower the loss; every parameter gets a gradient`, () => {
    manualSeed(0);
    const model = laResNetNano({ aggregation });
    const images = randn([8, 1, 28, 28], { seed: 2 });
    const labels = randint(0, 10, [8], { seed: 3 });
    const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
    const losses: number[] = [];
    try {
      model.train();
      for (let step = 0; step < 4; step++) {
        using _ = scope();
        const loss = tidy(() => F.crossEntropy(model.forward(images), labels));
        optimizer.zeroGrad();
        loss.backward();
        if (step === 0) {
          const missing = Array.from(model.namedParameters())
            .filter(([, p]) => p.grad === null || !(p.grad.abs().sum().item() as number > 0)).map(([k]) => k);
          assert.deepEqual(missing, [], 'parameters without a gradient');
        }
        optimizer.step();
        losses.push(loss.item() as number);
      }
      assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
      assert.ok(losses[3] < losses[0], `loss should fall on a fixed batch: ${losses.map((l) => l.toFixed(4)).join(' → ')}`);
    } finally {
      images.dispose();
      labels.dispose();
      model.dispose();
    }
  });
}

test('la_resnet_nano: a safetensors checkpoint round-trips strictly (prefix \'module.\' stripped)', async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'vicinity-la-'));
  const file = path.join(dir, 'nano.safetensors');
  manualSeed(4);
  const a = laResNetNano();
  const b = laResNetNano();
  try {
    const state = a.stateDict();
    await saveSafetensors(file, Object.fromEntries(Array.from(state, ([k, t]) => [`module.${k}`, t])));
    for (const t of state.values()) t.dispose();
    const report = await loadWeights(b, file, { stripPrefix: 'module.' });
    assert.deepEqual([report.missing, report.unexpected], [[], []]);
    tidy(() => noGrad(() => {
      a.eval();
      b.eval();
      const x = randn([2, 1, 28, 28], { seed: 5 });
      assert.equal(a.forward(x).sub(b.forward(x)).abs().max().item(), 0);
    }));
  } finally {
    a.dispose();
    b.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});
