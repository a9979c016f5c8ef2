import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import test from 'node:test';
import { ByobNet, interleaveBlocks, pyRound } from '../../src/models/byobnet.js';
import { createTimmModel, timmModels } from '../../src/models/entries/timm.js';
import { createModel, listModels } from '../../src/models/registry.js';
import { ecaKernelSize } from '../../src/nn/layers/channel-attention.js';
import { StateDictError } from '../../src/nn/module.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { ShapeError } from '../../src/tensor/shape-error.js';
import { disposeFixture, readFixture } from '../../src/verify/fixture.js';
import { buildReferenceLayer } from '../../src/verify/layer-kinds.js';
import { verifyFixture } from '../../src/verify/verify-fixture.js';
import { timmFixturesDir } from '../support/paths.js';

// sum(p.numel() for p in timm.create_model(name).parameters()), timm 1.0.29, 1,000 classes.
const TIMM_PARAMS: Record<string, number> = {
  halonet_h1: 8_100_056, halonet26t: 12_480_288, sehalonet33ts: 13_691_712, halonet50ts: 22_733_280,
  eca_halonext26ts: 10_756_885, halo2botnet50ts_256: 22_635_360, botnet26t_256: 12_488_672,
  sebotnet33ts_256: 13_701_984, botnet50ts_256: 22_742_688, haloregnetz_b: 11_680_072,
};
// len(model.state_dict()) in timm (parameters and buffers).
const TIMM_KEYS: Record<string, number> = {
  halonet_h1: 425, halonet26t: 197, sehalonet33ts: 266, halonet50ts: 347, eca_halonext26ts: 202,
  halo2botnet50ts_256: 349, botnet26t_256: 194, sebotnet33ts_256: 262, botnet50ts_256: 342, haloregnetz_b: 493,
};

test('every timm model is registered under its timm name with timm\'s exact parameter and state-dict key counts', () => {
  assert.deepEqual(Object.keys(timmModels).sort(), Object.keys(TIMM_PARAMS).sort());
  for (const [name, params] of Object.entries(TIMM_PARAMS)) {
    assert.ok(listModels().includes(name), `${name} registered`);
    const model = createModel(name, { numClasses: 1000 });
    try {
      assert.equal(model.numParameters(), params, name);
      assert.equal(timmModels[name].params, params, `${name} entry`);
      const sd = model.stateDict();
      assert.equal(sd.size, TIMM_KEYS[name], `${name} state-dict entries`);
      for (const t of sd.values()) t.dispose();
    } finally {
      model.dispose();
    }
  }
});

test('timm key names and shapes: stem, blocks, self-attention, final conv, head', () => {
  const shapes = (name: string, ctor: Record<string, unknown> = {}) => {
    const m = createTimmModel(name, ctor);
    const s = new Map(Array.from(m.stateDict(), ([k, t]) => { const shape = t.shape; t.dispose(); return [k, shape]; }));
    m.dispose();
    return s;
  };
  const h26 = shapes('halonet26t');
  assert.deepEqual(h26.get('stem.conv1.conv.weight'), [24, 3, 3, 3]);                 // tiered: 3c/8, c/2, c
  assert.deepEqual(h26.get('stem.conv3.bn.running_var'), [64]);
  assert.deepEqual(h26.get('stages.0.0.shortcut.conv.weight'), [256, 64, 1, 1]);
  assert.deepEqual(h26.get('stages.2.1.self_attn.q.weight'), [256, 256, 1, 1]);
  assert.deepEqual(h26.get('stages.2.1.self_attn.pos_embed.height_rel'), [23, 32]);   // 2(8 + 2·2) − 1, 256/8
  assert.deepEqual(h26.get('stages.2.1.post_attn.weight'), [256]);
  assert.deepEqual(h26.get('head.fc.weight'), [1000, 2048]);
  assert.equal(h26.has('stages.0.1.shortcut.conv.weight'), false);                     // identity shortcut
  const bot = shapes('botnet26t_256');
  assert.deepEqual(bot.get('stages.3.0.self_attn.qkv.weight'), [1536, 512, 1, 1]);
  assert.deepEqual(bot.get('stages.3.0.self_attn.pos_embed.height_rel'), [31, 128]);   // feat 16 at the stride-2 block
  assert.deepEqual(bot.get('stages.3.1.self_attn.pos_embed.width_rel'), [15, 128]);
  const eca = shapes('eca_halonext26ts');
  assert.deepEqual(eca.get('stages.0.0.attn.conv.weight'), [1, 1, 3]);                  // ECA k(64) = 3
  assert.deepEqual(eca.get('stages.1.0.attn.conv.weight'), [1, 1, 5]);                  // ECA k(128) = 5
  assert.deepEqual(eca.get('stages.0.0.conv2_kxk.conv.weight'), [64, 16, 3, 3]);        // groups of 16
  const se = shapes('sehalonet33ts');
  assert.deepEqual(se.get('stages.0.0.attn.fc1.weight'), [8, 64, 1, 1]);                // SE rd = make_divisible(64/16) = 8
  assert.deepEqual(se.get('final_conv.conv.weight'), [1280, 1536, 1, 1]);
  const reg = shapes('haloregnetz_b');
  assert.deepEqual(reg.get('stem.conv.weight'), [32, 3, 3, 3]);                          // one 3×3/2 conv
  assert.equal([...reg.keys()].some((k) => k.includes('shortcut')), false);            // downsample ''
  assert.deepEqual(reg.get('stages.0.0.conv1_1x1.conv.weight'), [96, 32, 1, 1]);         // bottle_in: 32·3
});

test('timm\'s helpers: interleave_blocks, Python rounding, ECA kernel sizes', () => {
  const types = (d: number, every: number | number[]) => interleaveBlocks(['bottle', 'self_attn'], d, every, { c: 8, s: 1, gs: 0, br: 1 }).map((b) => b.type[0]);
  assert.deepEqual(types(4, 4), ['b', 'b', 'b', 's']);          // every=4 at d=4: none in range → last
  assert.deepEqual(types(6, 1), ['b', 's', 'b', 's', 'b', 's']);
  assert.deepEqual(types(12, 3), ['b', 'b', 'b', 's', 'b', 'b', 'b', 's', 'b', 'b', 'b', 's']);
  assert.deepEqual(types(3, [2]), ['b', 'b', 's']);
  assert.deepEqual([pyRound(2.5), pyRound(3.5), pyRound(10.67), pyRound(-0.5)], [2, 4, 11, -0]);
  assert.deepEqual([64, 128, 256, 512, 1024].map((c) => ecaKernelSize(c)), [3, 5, 5, 5, 5]);
});

const fixtures = readdirSync(timmFixturesDir).filter((f) => f.endsWith('.safetensors')).sort();

test('the committed timm fixtures cover every timm model', () => {
  const kinds = fixtures.map((f) => f.replace(/^timm-/, '').replace(/-open\.safetensors$/, ''));
  assert.deepEqual(kinds.sort(), Object.keys(TIMM_PARAMS).sort());
});

for (const file of fixtures) {
  test(`verify ${file}: strict load of timm's state dict, logits equal timm's`, async () => {
    const fixture = await readFixture(join(timmFixturesDir, file));
    const model = buildReferenceLayer(fixture.spec);
    try {
      assert.equal(fixture.params.size, fixture.json.state_dict_keys, 'the fixture holds every state-dict entry');
      const report = verifyFixture(fixture, model);
      assert.ok(report.ok, report.table);
      assert.ok(report.maxRelError <= fixture.tolerance, `${report.maxRelError}`);
      assert.deepEqual(report.rows.map((r) => r.name), ['output']);
    } finally {
      model.dispose();
      disposeFixture(fixture);
    }
  });
}

test('verify fails on wrong logits and a strict load refuses a missing key', async () => {
  const fixture = await readFixture(join(timmFixturesDir, 'timm-halonet26t-open.safetensors'));
  const model = buildReferenceLayer(fixture.spec);
  try {
    // Another seed's logits: same shape, different values.
    const real = fixture.output;
    fixture.output = tidy(() => real.add(randn(real.shape, { seed: 3 }).mul(real.std().item() as number)));
    assert.equal(verifyFixture(fixture, model).ok, false);
    fixture.output.dispose();
    fixture.output = real;
    const key = 'stages.2.1.self_attn.kv.weight';
    const t = fixture.params.get(key)!;
    fixture.params.delete(key);
    assert.throws(() => verifyFixture(fixture, model), (e: Error) => e instanceof StateDictError && e.message.includes(key));
    t.dispose();
  } finally {
    model.dispose();
    disposeFixture(fixture);
  }
});

test('resetClassifier: a new head for N classes (timm reset_classifier), 0 gives pooled features', () => {
  tidy(() => noGrad(() => {
    const m = createTimmModel('halonet26t', { num_classes: 10, width_factor: 0.125 }).eval();
    const x = randn([1, 3, 256, 256], { seed: 2 });
    const feats = m.forwardFeatures(x).at(-1)!;   // the last stage's map, after the final conv
    m.resetClassifier(7);
    assert.deepEqual(m.forward(x).shape, [1, 7]);
    assert.deepEqual(m.stateDict().get('head.fc.weight')?.shape, [7, m.numFeatures]);
    m.resetClassifier(0);
    assert.deepEqual(m.forward(x).shape, [1, m.numFeatures]);
    assert.ok((m.forward(x).sub(feats.mean([2, 3])).abs().max().item() as number) < 1e-6);
    assert.equal([...m.stateDict().keys()].some((k) => k.startsWith('head.')), false);
    assert.throws(() => m.resetClassifier(-1), RangeError);
    m.dispose();
  }));
});

test('errors: unknown create_model kwargs and names, fixed-size BoTNet at another size', () => {
  assert.throws(() => createTimmModel('halonet26t', { global_pool: 'max' }), /does not take global_pool/);
  assert.throws(() => createTimmModel('halonet99'), /not one of timm's models/);
  const bot = createModel('botnet26t_256', { numClasses: 4, inputSize: 64 }) as unknown as ByobNet;
  tidy(() => noGrad(() => {
    assert.deepEqual(bot.eval().forward(randn([1, 3, 64, 64])).shape, [1, 4]);
    assert.throws(() => bot.forward(randn([1, 3, 96, 96])), (e: Error) => e instanceof ShapeError && /inputSize: \[96, 96\]/.test(e.message));
  }));
  bot.dispose();
});

test('vicinity verify takes a timm whole-model fixture from the command line', async () => {
  const { spawnSync } = await import('node:child_process');
  const { repoRoot } = await import('../support/paths.js');
  const cli = join(repoRoot, 'dist/src/cli/main.js');
  const r = spawnSync(process.execPath, [cli, 'verify', join(timmFixturesDir, 'timm-botnet26t_256-open.safetensors'), '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const [result] = JSON.parse(r.stdout) as { kind: string; ok: boolean; rows: { name: string; error: number }[] }[];
  assert.equal(result.kind, 'timm.models.botnet26t_256');
  assert.equal(result.ok, true);
  assert.deepEqual(result.rows.map((x) => x.name), ['output']);
  assert.ok(result.rows[0].error < 1e-4);
});
