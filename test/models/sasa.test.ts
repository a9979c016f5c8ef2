import assert from 'node:assert/strict';
import test from 'node:test';
import { countMacs } from '../../src/analysis/macs.js';
import { sasaModels } from '../../src/models/entries/sasa.js';
import type { Classifier } from '../../src/models/registry.js';
import { NeighborhoodBlockOp, SasaBlockOp, neighborhoodOp, sasaOp } from '../../src/models/window-ops.js';
import * as F from '../../src/ops/functional.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';

/**
 * Oracle for sasa_resnet50's parameters, by hand from torchvision's ResNet-50 (25,557,032): every
 * 3×3 conv (9C², 11,317,248 in all) becomes SASA's three 1×1 projections (3C², 3,772,416) and
 * rel_h + rel_w (7C, 26,432). na_resnet50: qkv (3C² + 3C) + proj (C² + C) + rpb (8·13²) instead.
 */
const RESNET50 = 25_557_032;
const SLOTS = [[3, 64], [4, 128], [6, 256], [3, 512]] as const;
const sum = (f: (n: number, c: number) => number) => SLOTS.reduce((a, [n, c]) => a + n * f(n, c), 0);
const SASA50 = RESNET50 - sum((_, c) => 9 * c * c) + sum((_, c) => 3 * c * c + 7 * c);
const NA50 = RESNET50 - sum((_, c) => 9 * c * c) + sum((_, c) => 4 * c * c + 4 * c + 8 * 13 * 13);

function build(name: string, inputSize?: number): Classifier {
  const e = sasaModels[name];
  return e.build({ numClasses: e.numClasses, inChannels: e.inChannels, dropPathRate: 0, inputSize: inputSize ?? e.inputSize });
}

test('oracles agree with SASA Table 1 (18.0 M)', () => {
  assert.equal(SASA50, 18_038_632);
  assert.equal(Math.round(SASA50 / 1e5) / 10, 18.0);
});

for (const [name, oracle] of [['sasa_resnet50', SASA50], ['na_resnet50', NA50]] as const) {
  test(`${name}: exact parameters, MACs at 224, keys under conv2, forward at 64 px`, () => {
    const e = sasaModels[name];
    const model = build(name);
    try {
      assert.equal(model.numParameters(), oracle, 'hand count');
      assert.equal(model.numParameters(), e.params, 'entry target');
      const { total, byOp } = countMacs(model, [1, 3, 224, 224]);
      assert.equal(total, e.macs, 'entry target (convs, linears and the window einsums)');
      assert.equal(byOp['aten::matmul'] ?? 0, 0);
      const keys = [...model.namedParameters()].map(([k]) => k);
      const expected = name === 'sasa_resnet50'
        ? ['layer3.1.conv2.query_conv.weight', 'layer3.1.conv2.rel_h', 'layer4.0.conv2.value_conv.weight']
        : ['layer3.1.conv2.qkv.weight', 'layer3.1.conv2.rpb', 'layer4.0.conv2.proj.bias'];
      for (const k of expected) assert.ok(keys.includes(k), k);
      assert.ok(!keys.some((k) => /^layer\d\.\d+\.conv2\.weight$/.test(k)), 'no 3×3 conv left');
      assert.ok(keys.includes('conv1.weight') && keys.includes('layer2.0.downsample.0.weight'), 'conv stem and shortcut kept');
      tidy(() => assert.deepEqual(model.forward(randn([2, 3, 64, 64], { seed: 1 })).shape, [2, 1000]));
    } finally {
      model.dispose();
    }
  });
}

test('window ops: stride by ceil-mode average pooling after stride-1 attention', () => {
  const ctx = { inChannels: 16, outChannels: 16, stride: 2, groups: 1, stage: 1, blockIndex: 0, featureSize: [7, 7] as [number, number] };
  const sasa = sasaOp({ kernelSize: 7, numHeads: 8 })(ctx) as SasaBlockOp;
  const na = neighborhoodOp({ kernelSize: 7, numHeads: 8 })(ctx) as NeighborhoodBlockOp;
  try {
    tidy(() => {
      const x = randn([2, 16, 7, 7], { seed: 3 });
      const unpooled = new SasaBlockOp({ inChannels: 16, outChannels: 16, kernelSize: 7, numHeads: 8, stride: 1 });
      unpooled.loadStateDict(sasa.stateDict());
      const y = sasa.forward(x);
      assert.deepEqual(y.shape, [2, 16, 4, 4]);
      assert.ok(y.allclose(F.avgPool2d(unpooled.forward(x), 2, { ceilMode: true }), { atol: 1e-6 }));
      unpooled.dispose();
      const z = na.forward(x);
      assert.deepEqual(z.shape, [2, 16, 4, 4]);
      const nhwc = na.forwardNchw(x);
      assert.ok(nhwc.equal(z), 'forwardNchw = forward (NCHW)');
    });
    assert.throws(() => sasaOp({ kernelSize: 7, numHeads: 8 })({ ...ctx, groups: 32 }), /sasaOp: replaces an ungrouped 3×3 conv, got groups 32/);
    assert.throws(() => neighborhoodOp({ kernelSize: 7, numHeads: 8 })({ ...ctx, outChannels: 32 }),
      /neighborhoodOp: NeighborhoodAttention2d keeps its width, got 16 → 32 channels/);
    assert.throws(() => tidy(() => na.forward(randn([1, 7, 7, 16]))), /NeighborhoodBlockOp: expected input \(B, dim=16, H, W\)/);
  } finally {
    sasa.dispose();
    na.dispose();
  }
});

// The nano models' brief (parameters, MACs at 28×28, a training step) is checked with every
// *_nano in registry.test.ts.
