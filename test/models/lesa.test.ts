/**
 * The LESA model table (src/models/entries/lesa.ts, src/models/lesa-ops.ts) against
 * model-specs.md §3 (exact parameters, MACs of its §7 table) and the official
 * Chenglin-Yang/LESA_classification state-dict layout (reference-layers.md §3), with PyTorch 1.13
 * (the oracle's Python, test/support/parity.ts) writing the `{'net': state_dict, 'epoch'}` checkpoint the official train.py saves.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, test } from 'node:test';
import { countMacs } from '../../src/analysis/macs.js';
import { PYTHON } from '../support/parity.js';
import { trainOneStep } from '../support/train-step.js';
import { Lesa, LesaBinaryAttention } from '../../src/attention/lesa.js';
import { loadWeights, saveSafetensors } from '../../src/checkpoint/tensor-io.js';
import { lesaModels } from '../../src/models/entries/lesa.js';
import { Bottleneck, ResNet } from '../../src/models/resnet-family.js';
import { Conv2d, type AnyModule } from '../../src/nn/index.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { ShapeError } from '../../src/tensor/shape-error.js';

type Options = { numClasses?: number; inChannels?: number; inputSize?: number | [number, number] };

/** Builds an entry with its defaults, as createModel does. */
function build(name: string, over: Options = {}): ResNet {
  const e = lesaModels[name];
  const model = e.build({ numClasses: e.numClasses, inChannels: e.inChannels, dropPathRate: 0, inputSize: e.inputSize, ...over });
  assert.ok(model instanceof ResNet);
  return model;
}

const stateShapes = (m: AnyModule): [string, number[]][] => tidy(() => Array.from(m.stateDict(), ([k, t]) => [k, t.shape]));
const moduleAt = (m: AnyModule, name: string): AnyModule | undefined => [...m.namedModules()].find(([n]) => n === name)?.[1];

// ---- independent oracle: model-specs.md §3.1 per-layer formulas on the §1 backbones --------------

const HW = 196;
const sa = (c: number) => 2 * c * c + 8 * c + 48 + (c / 4) * (2 * HW - 1);
const lesa = (c: number) => sa(c) + (9 / 8 + 1 + 2 + 1) * c * c + 6 * c;
const staticLesa = (c: number) => sa(c) + 9 * c * c + 2 * c;
/** Backbone − the replaced 3×3 convs (9C²) − the dropped bn2 (2C) + the new layers. */
function derived(backbone: number, layers: [number, number][], layer: (c: number) => number, dropsBn2: boolean): number {
  return layers.reduce((n, [count, c]) => n + count * (layer(c) - 9 * c * c - (dropsBn2 ? 2 * c : 0)), backbone);
}
const R50 = 25_557_032;
const WRN50 = 68_883_240;

/** Per model: params by the formula, params (M, 3 decimals) and GMACs of model-specs.md §3.2 / §7. */
const SPEC: Record<string, { params: number; specM: number; specGMacs: number }> = {
  sa_resnet50: { params: derived(R50, [[5, 256], [3, 512]], sa, false), specM: 18.056, specGMacs: 5.059 },
  lesa_resnet50: { params: derived(R50, [[5, 256], [3, 512]], lesa, true), specM: 23.778, specGMacs: 6.178 },
  sa_wrn50: { params: derived(WRN50, [[5, 512], [3, 1024]], sa, false), specM: 38.284, specGMacs: 12.053 },
  lesa_wrn50: { params: derived(WRN50, [[5, 512], [3, 1024]], lesa, true), specM: 61.146, specGMacs: 16.529 },
  sa_resnet50_s4: { params: derived(R50, [[3, 512]], sa, false), specM: 20.215, specGMacs: 5.336 },
  static_lesa_resnet50_s4: { params: derived(R50, [[3, 512]], staticLesa, false), specM: 27.296, specGMacs: 6.723 },
  lesa_resnet50_s4: { params: derived(R50, [[3, 512]], lesa, true), specM: 24.251, specGMacs: 6.126 },
};

// ---- the official state dict, written out from lib/models/resnet.py + LESA.py ---------------------

const bnKeys = (p: string, c: number): [string, number[]][] =>
  [['weight', [c]], ['bias', [c]], ['running_mean', [c]], ['running_var', [c]], ['num_batches_tracked', []]]
    .map(([k, s]) => [`${p}.${k}`, s as number[]]);

/** LESA(lesa, C, C, kernel_size=14) in PyTorch's state_dict order: own params, buffers, children. */
function officialLesaKeys(p: string, c: number, side: number): [string, number[]][] {
  const l = side * side;
  const g = 8;
  return [
    [`${p}.relative`, [2 * (c / g / 2) + c / g, 2 * l - 1]], [`${p}.flatten_index`, [l * l]],
    [`${p}.qkv_transform.weight`, [2 * c, c, 1]], ...bnKeys(`${p}.bn_qkv`, 2 * c),
    ...bnKeys(`${p}.bn_similarity`, 3 * g), ...bnKeys(`${p}.bn_output`, 2 * c),
    [`${p}.x_transform.0.weight`, [c, c / g, 3, 3]], [`${p}.x_transform.1.weight`, [c, c, 1, 1]], ...bnKeys(`${p}.bn_x`, c),
    [`${p}.reasoning.1.weight`, [c, 2 * c, 1, 1]], ...bnKeys(`${p}.reasoning.2`, c),
    [`${p}.projection.0.weight`, [c, c, 1, 1]], ...bnKeys(`${p}.projection.1`, c),
  ];
}

/** The official resnet50(cfg) keys: strides (1,2,2,1), stage_with_lesa (F,F,T,T), first conv in stage 3. */
function officialResNetKeys(widthPerGroup: number, lesaStages: number[]): [string, number[]][] {
  const keys: [string, number[]][] = [['conv1.weight', [64, 3, 7, 7]], ...bnKeys('bn1', 64)];
  const firstConv = [true, true, true, false];
  const strides = [1, 2, 2, 1];
  let inplanes = 64;
  [3, 4, 6, 3].forEach((depth, s) => {
    const planes = 64 * 2 ** s;
    const width = planes * (widthPerGroup / 64);
    const out = planes * 4;
    for (let b = 0; b < depth; b++) {
      const p = `layer${s + 1}.${b}`;
      const withLesa = lesaStages.includes(s) && !(b === 0 && firstConv[s]);
      keys.push([`${p}.conv1.weight`, [width, inplanes, 1, 1]], ...bnKeys(`${p}.bn1`, width));
      if (withLesa) keys.push(...officialLesaKeys(`${p}.conv2`, width, 14));
      else keys.push([`${p}.conv2.weight`, [width, width, 3, 3]], ...bnKeys(`${p}.bn2`, width));
      keys.push([`${p}.conv3.weight`, [out, width, 1, 1]], ...bnKeys(`${p}.bn3`, out));
      if (b === 0 && (strides[s] !== 1 || inplanes !== out)) {
        keys.push([`${p}.downsample.0.weight`, [out, inplanes, 1, 1]], ...bnKeys(`${p}.downsample.1`, out));
      }
      inplanes = out;
    }
  });
  keys.push(['fc.weight', [1000, 2048]], ['fc.bias', [1000]]);
  return keys;
}

// ---- tests ---------------------------------------------------------------------------------------

const built = new Map<string, ResNet>();
after(() => built.forEach((m) => m.dispose()));

test('every ImageNet entry: exact params (= the model-specs formula), MACs at 224 = entry and spec', () => {
  for (const [name, spec] of Object.entries(SPEC)) {
    const entry = lesaModels[name];
    const model = build(name).eval();
    const params = model.numParameters();
    assert.equal(params, spec.params, `${name}: params vs model-specs §3.1 formula`);
    assert.equal(params, entry.params, `${name}: params vs entry`);
    assert.equal(Math.round(params / 1e3) / 1e3, spec.specM, `${name}: params vs model-specs §3.2 (M)`);
    const macs = countMacs(model, [1, 3, 224, 224]);
    assert.equal(macs.total, entry.macs, `${name}: MACs vs entry`);
    assert.equal(macs.other, 0);
    assert.ok(Math.abs(macs.total / 1e9 - spec.specGMacs) < 0.0006, `${name}: ${macs.total} MACs vs spec ${spec.specGMacs} G`);
    if (name === 'lesa_resnet50' || name === 'lesa_wrn50' || name === 'sa_resnet50') built.set(name, model);
    else model.dispose();
  }
  // The official code's counts (model-specs.md §3.2).
  assert.equal(lesaModels.lesa_resnet50.params, 23_777_512);
  assert.equal(lesaModels.lesa_wrn50.params, 61_145_896);
});

test('lesa_resnet50 / lesa_wrn50: state-dict keys, order and shapes = the official checkpoint\'s', () => {
  const r50 = built.get('lesa_resnet50') as ResNet;
  const expected = officialResNetKeys(64, [2, 3]);
  assert.deepEqual(stateShapes(r50), expected);
  assert.ok(expected.some(([k]) => k === 'layer3.1.conv2.relative') && !expected.some(([k]) => k === 'layer3.1.bn2.weight'));
  assert.deepEqual(stateShapes(built.get('lesa_wrn50') as ResNet), officialResNetKeys(128, [2, 3]));
  const s4 = build('lesa_resnet50_s4', { inputSize: 224 });
  assert.deepEqual(stateShapes(s4), officialResNetKeys(64, [3]));
  s4.dispose();
});

test('Table 2 layout: layer3.0 keeps its stride-2 conv; stride-1 layer4; LESA drops bn2, SA keeps it', () => {
  const r50 = built.get('lesa_resnet50') as ResNet;
  assert.deepEqual(r50.featureInfo.map((f) => f.reduction), [4, 8, 16, 16]);
  const block = (m: ResNet, name: string) => moduleAt(m, name) as Bottleneck;
  const l30 = block(r50, 'layer3.0');
  assert.ok(l30.conv2 instanceof Conv2d && l30.plan.stride === 2 && l30.bn2 !== null);
  for (const name of ['layer3.1', 'layer3.5', 'layer4.0', 'layer4.2']) {
    const b = block(r50, name);
    assert.ok(b.conv2 instanceof Lesa && !b.conv2.isStatic, name);
    assert.equal(b.bn2, null, `${name}: LESA has no bn2`);
    assert.equal(b.conv2.featureSize, 14);
    assert.equal(b.conv2.groups, 8);
  }
  assert.ok(block(r50, 'layer4.0').downsample !== null && block(r50, 'layer4.0').plan.blockStride === 1);
  const saBlock = block(built.get('sa_resnet50') as ResNet, 'layer4.1');
  assert.ok(saBlock.conv2 instanceof LesaBinaryAttention && !(saBlock.conv2 instanceof Lesa) && saBlock.bn2 !== null);
});

test('inits as the official ResNet: every Conv2d (LESA\'s too) kaiming fan-out; qkv_transform N(0, 1/C)', () => {
  const r50 = built.get('lesa_resnet50') as ResNet;
  tidy(() => noGrad(() => {
    const std = (key: string) => (r50.stateDict().get(key)?.std().item() as number);
    // (512, 512, 1, 1): kaiming fan-out sqrt(2/512) = 0.0625; PyTorch's default would give 0.0255.
    assert.ok(Math.abs(std('layer4.1.conv2.x_transform.1.weight') / 0.0625 - 1) < 0.02);
    assert.ok(Math.abs(std('layer4.1.conv2.projection.0.weight') / 0.0625 - 1) < 0.02);
    // grouped (512, 64, 3, 3): fan-out 512·9 → sqrt(2/4608) = 0.02083.
    assert.ok(Math.abs(std('layer4.1.conv2.x_transform.0.weight') / Math.sqrt(2 / 4608) - 1) < 0.02);
    // Conv1d keeps the reference's N(0, 1/in_planes): sqrt(1/512) = 0.0442.
    assert.ok(Math.abs(std('layer4.1.conv2.qkv_transform.weight') / Math.sqrt(1 / 512) - 1) < 0.02);
  }));
});

const TO_TORCH = `
import json, struct, sys, collections, numpy as np, torch
src, dst = sys.argv[1], sys.argv[2]
raw = open(src, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n]); header.pop('__metadata__', None)
kinds = {'F32': np.float32, 'I64': np.int64}
sd = collections.OrderedDict()
for k, v in header.items():
    a, b = v['data_offsets']
    arr = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=kinds[v['dtype']]).reshape(v['shape'])
    sd['module.' + k] = torch.from_numpy(arr.copy())
torch.save({'net': sd, 'epoch': 95}, dst)
`;

test('an official-style checkpoint ({net: module.* state dict, epoch}) from torch.save loads strictly', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-lesa-'));
  try {
    // A 64-px build keeps the file small; the keys are those of the 224-px model but for the table sizes.
    const source = build('lesa_resnet50', { inputSize: 64, numClasses: 10 });
    await saveSafetensors(path.join(dir, 'sd.safetensors'), source);
    execFileSync(PYTHON, ['-c', TO_TORCH, path.join(dir, 'sd.safetensors'), path.join(dir, 'checkpoint.pth')],
      { stdio: ['ignore', 'ignore', 'inherit'] });
    const target = build('lesa_resnet50', { inputSize: 64, numClasses: 10 });
    const report = await loadWeights(target, path.join(dir, 'checkpoint.pth'), { stripPrefix: 'module.' });
    assert.deepEqual([report.missing, report.unexpected].map((l) => l.length), [0, 0]);
    tidy(() => {
      const a = source.stateDict();
      const b = target.stateDict();
      assert.deepEqual([...a.keys()], [...b.keys()]);
      for (const [k, t] of a) assert.ok(t.equal(b.get(k) as typeof t), `${k} round-trips`);
    });
    source.dispose();
    target.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('forward at a small input: (B, numClasses) in train and eval mode; a wrong size names the fix', () => {
  for (const name of ['lesa_resnet50', 'sa_resnet50_s4', 'static_lesa_resnet50_s4']) {
    const model = build(name, { inputSize: 64, numClasses: 10 });
    tidy(() => {
      assert.deepEqual(model.forward(randn([2, 3, 64, 64], { seed: 1 })).shape, [2, 10], name);
      model.eval();
      assert.deepEqual(noGrad(() => model.forward(randn([1, 3, 64, 64], { seed: 2 }))).shape, [1, 10], name);
      assert.throws(() => noGrad(() => model.forward(randn([1, 3, 96, 96], { seed: 3 }))), (e: Error) =>
        e instanceof ShapeError && /featureSize 4/.test(e.message) && /resize the input/.test(e.message));
    });
    model.dispose();
  }
  assert.throws(() => build('lesa_resnet50', { inputSize: [64, 96] }), /square feature map.*square inputSize/);
});

test('lesa_resnet_nano: 1×28×28 → 10, embedding sized from inputSize, ≈0.8 M params, ≤ 150 M MACs', () => {
  const entry = lesaModels.lesa_resnet_nano;
  const nano = build('lesa_resnet_nano');
  assert.equal(nano.numParameters(), entry.params);
  assert.equal(entry.params, 803_850);
  const macs = countMacs(nano.eval(), [1, 1, 28, 28]);
  assert.equal(macs.total, entry.macs);
  assert.ok(entry.macs <= 150e6);
  const shapes = new Map(stateShapes(nano));
  assert.deepEqual(shapes.get('layer4.0.conv2.relative'), [32, 2 * 49 - 1]);   // 7×7 maps at 28 px
  assert.deepEqual(shapes.get('layer3.1.conv2.relative'), [16, 2 * 49 - 1]);
  nano.dispose();
  const at32 = build('lesa_resnet_nano', { inputSize: 32 });
  assert.deepEqual(new Map(stateShapes(at32)).get('layer4.0.conv2.relative'), [32, 2 * 64 - 1]);
  at32.dispose();
});

test('lesa_resnet_nano trains a step at 28×28: finite loss, every gradient, parameters move', () => {
  const model = build('lesa_resnet_nano');
  const r = trainOneStep(model, { inChannels: 1, numClasses: 10, sgd: { lr: 0.05, nesterov: true, weightDecay: 8e-5 } });
  assert.ok(Number.isFinite(r.loss) && r.loss > 0, `loss ${r.loss}`);
  assert.ok(r.allGradients, 'every parameter has a gradient');
  assert.ok(r.moved > r.total / 2, `${r.moved} of ${r.total} parameters changed`);
  model.dispose();
});
