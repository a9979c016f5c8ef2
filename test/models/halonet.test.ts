import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'node:test';
import { HaloAttention } from '../../src/attention/halo-attention.js';
import { countMacs } from '../../src/analysis/macs.js';
import { loadWeights, saveSafetensors } from '../../src/checkpoint/tensor-io.js';
import { haloNet, haloNetModels, HALONET_CONFIGS, HALONET_NANO, type HaloNetOptions } from '../../src/models/entries/halonet.js';
import { haloAttentionOp, HaloAttentionSe } from '../../src/models/halonet-ops.js';
import type { ModelEntry } from '../../src/models/registry.js';
import type { ResNet } from '../../src/models/resnet-family.js';
import { Conv2d, ReLU, SiLU } from '../../src/nn/index.js';
import { crossEntropy } from '../../src/ops/functional.js';
import { SGD } from '../../src/optim/sgd.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { randint, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { ShapeError } from '../../src/tensor/shape-error.js';

/** Builds a table entry as createModel does, with the entry's defaults. */
const build = (entry: ModelEntry, inputSize: number = entry.inputSize) =>
  entry.build({ numClasses: entry.numClasses, inChannels: entry.inChannels, dropPathRate: 0, inputSize }) as ResNet;

const shapes = (m: ResNet) => new Map(Array.from(m.stateDict(), ([k, t]) => { const s = t.shape; t.dispose(); return [k, s]; }));

// model-specs.md §4.2 / §7: parameters (exact) and GMACs at s (three decimals).
const SPEC: Record<string, [number, number]> = {
  halonet_h0: [5_500_952, 2.353], halonet_h1: [8_100_056, 2.988], halonet_h2: [9_404_312, 3.313],
  halonet_h3: [11_841_304, 6.180], halonet_h3_df1280: [12_294_424, 6.199], halonet_h4: [19_101_976, 11.998],
  halonet_h5: [30_717_272, 32.246], halonet_h6: [43_456_792, 52.787], halonet_h7: [67_433_240, 112.983],
};

test('HaloNet H0–H7: exact parameter counts of model-specs.md §4.2, and the table metadata', () => {
  for (const [name, [params, gmacs]] of Object.entries(SPEC)) {
    const entry = haloNetModels[name];
    assert.ok(entry, `${name} is registered`);
    assert.equal(entry.params, params, `${name} entry.params`);
    assert.ok(Math.abs(entry.macs / 1e9 - gmacs) / gmacs < 0.01, `${name} entry.macs ${entry.macs} vs spec ${gmacs} G`);
    const net = build(entry);
    assert.equal(net.numParameters(), params, name);
    net.dispose();
  }
  assert.deepEqual(Object.values(HALONET_CONFIGS).map((c) => c.inputSize), [256, 256, 256, 320, 384, 448, 512, 600]);
  // "Total Layers" of Table 2 = 3·(3 + 3 + l_3 + 3) + 2.
  assert.deepEqual(Object.values(HALONET_CONFIGS).map((c) => 3 * (9 + c.stage3Depth) + 2), [50, 59, 62, 65, 65, 98, 101, 107]);
});

test('HaloNet H0–H3: MACs at s equal the entries (within 1% of model-specs.md), batch 1', () => {
  // H4–H7 (384–600 px, 5–16 s and 2–8 GB each) are counted in halonet-large.test.ts.
  for (const name of ['halonet_h0', 'halonet_h1', 'halonet_h2', 'halonet_h3']) {
    const entry = haloNetModels[name];
    const net = build(entry);
    const { total, byOp } = countMacs(net, [1, 3, entry.inputSize, entry.inputSize]);
    assert.equal(total, entry.macs, `${name}: ${JSON.stringify(byOp)}`);
    assert.ok(Math.abs(total / 1e9 - SPEC[name][1]) / SPEC[name][1] < 0.01, name);
    net.dispose();
  }
});

test('halonet_h0: timm HaloAttn keys and shapes inside the blocks, literal r_b, no head conv', () => {
  const net = build(haloNetModels.halonet_h0, 64);
  const s = shapes(net);
  assert.deepEqual(s.get('layer1.0.conv2.q.weight'), [64, 64, 1, 1]);                 // q: c → c
  assert.deepEqual(s.get('layer1.0.conv2.kv.weight'), [128, 64, 1, 1]);               // kv: c → c + r_v·c
  assert.deepEqual(s.get('layer1.0.conv2.pos_embed.height_rel'), [27, 8]);            // 2(b + 2h) − 1, c/8
  assert.deepEqual(s.get('layer1.0.conv2.pos_embed.width_rel'), [27, 8]);
  assert.deepEqual(s.get('layer4.2.conv2.kv.weight'), [1024, 512, 1, 1]);
  assert.deepEqual(s.get('layer1.0.conv3.weight'), [32, 64, 1, 1]);                   // r_b·c = 32
  assert.deepEqual(s.get('layer1.0.downsample.0.weight'), [32, 64, 1, 1]);
  assert.deepEqual(s.get('fc.weight'), [1000, 256]);
  assert.equal(s.has('layer1.0.conv2.q.bias'), false);
  assert.equal([...s.keys()].some((k) => k.startsWith('head_conv')), false);
  assert.ok(net.stages.every((stage) => [...stage].every((b) => (b as unknown as { conv2: unknown }).conv2 instanceof HaloAttention)));
  net.dispose();
});

test('halonet_h1/h3: identity shortcut where the shape holds, head_conv d_f, per-model tables', () => {
  const keysOf = (name: string) => { const net = build(haloNetModels[name], 80); const s = shapes(net); net.dispose(); return s; };
  const h1 = keysOf('halonet_h1');
  assert.equal(h1.has('layer1.0.downsample.0.weight'), false);                       // 64 → 64, stride 1
  assert.deepEqual(h1.get('layer2.0.downsample.0.weight'), [128, 64, 1, 1]);
  const h3 = keysOf('halonet_h3');
  assert.deepEqual(h3.get('head_conv.0.weight'), [1024, 768, 1, 1]);
  assert.deepEqual(h3.get('layer3.0.conv2.pos_embed.height_rel'), [31, 32]);        // b 10, h 3
  assert.deepEqual(keysOf('halonet_h3_df1280').get('head_conv.0.weight'), [1280, 768, 1, 1]);
});

test('HaloNet forward shapes at small inputs (maps padded and masked where b does not divide)', () => {
  tidy(() => noGrad(() => {
    const h0 = build(haloNetModels.halonet_h0, 64).eval();
    const maps = h0.forwardFeatures(randn([1, 3, 64, 64]));
    assert.deepEqual(maps.map((m) => m.shape), [[1, 32, 16, 16], [1, 64, 8, 8], [1, 128, 4, 4], [1, 256, 2, 2]]);
    assert.deepEqual(h0.forwardHead(maps[3]).shape, [1, 1000]);
    h0.dispose();
    const h3 = build(haloNetModels.halonet_h3, 80).eval();                            // b 10: 20, 10, 5, 3
    const f3 = h3.forwardFeatures(randn([2, 3, 80, 80]));
    assert.deepEqual(f3.map((m) => m.shape[2]), [20, 10, 5, 3]);
    assert.deepEqual(h3.forwardHead(f3[3]).shape, [2, 1000]);
    h3.dispose();
  }));
});

test('haloAttentionOp: padding "none" refuses a map b does not divide; bad heads are named', () => {
  const net = haloNet({ ...HALONET_CONFIGS.h0, inputSize: 48, padding: 'none', numClasses: 10 });
  tidy(() => noGrad(() => assert.throws(() => net.eval().forward(randn([1, 3, 48, 48])), (e: Error) =>
    e instanceof ShapeError && /not a multiple of blockSize 8/.test(e.message) && /padding: 'mask'/.test(e.message))));
  net.dispose();
  assert.throws(() => haloNet({ ...HALONET_CONFIGS.h0, numHeads: 6, inputSize: 64 }),
    /bottleneck width 64 .* not divisible by numHeads 6/);
  assert.throws(() => haloNet({ ...HALONET_CONFIGS.h0, convStages: 5 }), /convStages must be an integer in \[0, 4\]/);
  const op = haloAttentionOp({ blockSize: [8, 8], haloSize: 3 });
  assert.throws(() => op({ inChannels: 64, outChannels: 64, stride: 1, groups: 1, stage: 2, blockIndex: 0, featureSize: [16, 16] }),
    /blockSize \[8,8\] has no entry for stage 2/);
});

const h1Small: HaloNetOptions = { ...HALONET_CONFIGS.h1, inputSize: 64, numClasses: 10 };
const h1Params = (o: Partial<HaloNetOptions> = {}) => { const n = haloNet({ ...h1Small, ...o }); const p = n.numParameters(); n.dispose(); return p; };

test('variant Conv-12: the first two stages keep the 3×3 conv (slides Table 4/6)', () => {
  const net = haloNet({ ...h1Small, convStages: 2 });
  const s = shapes(net);
  assert.deepEqual(s.get('layer2.2.conv2.weight'), [128, 128, 3, 3]);
  assert.deepEqual(s.get('layer3.0.conv2.q.weight'), [256, 256, 1, 1]);
  // per block: 9c² (conv) − [c² (q) + 2c² (kv) + 2·27·c/8 (tables)], 3 blocks of c = 64 and 128
  const delta = [64, 128].reduce((sum, c) => sum + 3 * (9 * c * c - 3 * c * c - 2 * 27 * (c / 8)), 0);
  assert.equal(net.numParameters(), h1Params() + delta);
  tidy(() => noGrad(() => assert.deepEqual(net.eval().forward(randn([1, 3, 64, 64])).shape, [1, 10])));
  net.dispose();
});

test('variant 4×4 patch stem: a linear 4×4/4 projection replaces the 7×7 stem', () => {
  const net = haloNet({ ...h1Small, patchStem: true });
  const s = shapes(net);
  assert.deepEqual(s.get('stem.weight'), [64, 3, 4, 4]);
  assert.equal(s.has('conv1.weight'), false);
  assert.equal(net.numParameters(), h1Params() - (64 * 3 * 49 + 2 * 64) + (64 * 3 * 16 + 64));
  tidy(() => noGrad(() => assert.deepEqual(net.eval().forwardFeatures(randn([1, 3, 64, 64]))[0].shape, [1, 64, 16, 16])));
  net.dispose();
});

test('variant SE and SiLU: SE after each attention layer (timm SEModule keys), SiLU activations', () => {
  const net = haloNet({ ...h1Small, squeezeExcite: 0.25, activation: 'silu' });
  const s = shapes(net);
  assert.deepEqual(s.get('layer1.0.conv2.se.fc1.weight'), [16, 64, 1, 1]);
  assert.deepEqual(s.get('layer1.0.conv2.kv.weight'), [128, 64, 1, 1]);               // attention keys unchanged
  const se = (c: number) => { const rd = Math.max(8, Math.round(c / 4)); return 2 * c * rd + rd + c; };
  const delta = [3, 3, 10, 3].reduce((sum, depth, i) => sum + depth * se(64 * 2 ** i), 0);
  assert.equal(net.numParameters(), h1Params() + delta);
  const modules = [...net.modules()];
  assert.ok(modules.some((m) => m instanceof SiLU) && modules.some((m) => m instanceof HaloAttentionSe));
  assert.equal(modules.filter((m) => m instanceof ReLU).length, 3 + 3 + 10 + 3);      // only the SEs' own ReLUs
  tidy(() => noGrad(() => assert.deepEqual(net.eval().forward(randn([2, 3, 64, 64])).shape, [2, 10])));
  net.dispose();
});

test('halonet_nano: 28×28×1, exact params/MACs, and a training step that lowers the loss', () => {
  const entry = haloNetModels.halonet_nano;
  const net = build(entry);
  assert.equal(net.numParameters(), entry.params);
  assert.ok(entry.params > 500_000 && entry.params < 2_000_000 && entry.macs <= 150e6);
  assert.equal(countMacs(net, [1, 1, 28, 28]).total, entry.macs);
  assert.deepEqual(HALONET_NANO.depths, [1, 1, 2, 1]);
  net.train();
  const optimizer = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9 });
  const x = randn([8, 1, 28, 28]);
  const y = randint(0, 10, [8]);
  const losses: number[] = [];
  for (let step = 0; step < 4; step++) {
    tidy(() => {
      const loss = crossEntropy(net.forward(x), y);
      loss.backward();
      losses.push(loss.toArray() as number);
      const stage3 = net.stages[2] as unknown as Iterable<{ conv2: HaloAttention }>;
      for (const block of stage3) assert.ok(block.conv2.posEmbed.heightRel.grad, 'relative table receives a gradient');
      optimizer.step();
      optimizer.zeroGrad();
    });
  }
  assert.ok(losses.every(Number.isFinite), `${losses}`);
  assert.ok(losses[3] < losses[0], `loss should fall on a fixed batch: ${losses.map((l) => l.toFixed(3))}`);
  x.dispose(); y.dispose(); net.dispose();
});

test('halonet_nano: safetensors round trip by timm-style keys gives the same logits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'halonet-'));
  try {
    const a = build(haloNetModels.halonet_nano).eval();
    const b = build(haloNetModels.halonet_nano).eval();
    const file = join(dir, 'nano.safetensors');
    await saveSafetensors(file, a);
    const report = await loadWeights(b, file);
    assert.equal(report.missing.length + report.unexpected.length, 0);
    tidy(() => noGrad(() => {
      const x = randn([2, 1, 28, 28]);
      assert.ok(a.forward(x).allclose(b.forward(x), { rtol: 1e-5, atol: 1e-6 }));
    }));
    assert.ok(shapes(a).has('layer3.1.conv2.pos_embed.width_rel'));
    a.dispose(); b.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('registered models: the stem stays a conv, every 3×3 slot is attention', () => {
  const net = build(haloNetModels.halonet_h0, 64);
  assert.ok(net.conv1 instanceof Conv2d);
  assert.equal([...net.modules()].filter((m) => m instanceof HaloAttention).length, 3 + 3 + 7 + 3);
  net.dispose();
});
