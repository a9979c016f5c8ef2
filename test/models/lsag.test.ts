import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import test from 'node:test';
import { countMacs } from '../../src/analysis/macs.js';
import { loadWeights } from '../../src/checkpoint/tensor-io.js';
import { LsagModel } from '../../src/models/lsag.js';
import { lsagModels, lsagOptions, type LsagReading } from '../../src/models/entries/lsag.js';
import { createModel, type ModelEntry } from '../../src/models/registry.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { PYTHON } from '../support/parity.js';

/**
 * Oracles: model-specs.md §5.2 — exact parameters of the official ShiftingTransformer classes
 * (10,159,204 / 32,802,020 / 102,848,356 / 9,909,928 / 22,145,320 with the released settings, CIFAR
 * heads at 100 classes), the brief's 10,228,298 for T CIFAR (heads 3, 10 classes), and "ours" in M
 * to three decimals; GMACs to three decimals (§0 conventions).
 */
const SPEC: Record<string, { params?: number; mParams: number; gmacs: number }> = {
  lsag_tiny_cifar: { params: 10_228_298, mParams: 10.228, gmacs: 2.820 },
  lsag_small_cifar: { mParams: 36.217, gmacs: 14.145 },
  lsag_base_cifar: { mParams: 115.772, gmacs: 60.501 },
  lsag_tiny_imagenet: { params: 9_909_928, mParams: 9.910, gmacs: 3.618 },
  lsag_small_imagenet: { params: 22_145_320, mParams: 22.145, gmacs: 7.695 },
};

function build(name: string, over: { numClasses?: number; inputSize?: number; reading?: LsagReading } = {}): LsagModel {
  const e: ModelEntry = lsagModels[name];
  const o = { numClasses: over.numClasses ?? e.numClasses, inChannels: e.inChannels, dropPathRate: 0, inputSize: over.inputSize ?? e.inputSize };
  return over.reading ? new LsagModel(lsagOptions(name, o, over.reading)) : e.build(o) as LsagModel;
}

for (const [name, spec] of Object.entries(SPEC)) {
  test(`${name}: exact parameters and MACs (model-specs.md §5.2), forward shape`, () => {
    const e = lsagModels[name];
    const model = build(name);
    try {
      const params = model.numParameters();
      assert.equal(params, e.params, 'entry target');
      if (spec.params !== undefined) assert.equal(params, spec.params, 'model-specs.md exact');
      assert.equal(Math.round(params / 1e3) / 1e3, spec.mParams, 'model-specs.md to 3 decimals');
      const { total } = countMacs(model, [1, e.inChannels, e.inputSize, e.inputSize]);
      assert.equal(total, e.macs, 'entry target');
      assert.ok(Math.abs(total / 1e9 / spec.gmacs - 1) < 0.01, `${total} within 1% of ${spec.gmacs} G`);
      assert.equal(Math.round(total / 1e6) / 1e3, spec.gmacs, 'model-specs.md to 3 decimals');
    } finally {
      model.dispose();
    }
  });
}

test('released-code and Table-2 readings (model-specs.md §5.2 "released code" / alternatives)', () => {
  const cases: [string, LsagReading, number, number, number][] = [
    ['lsag_tiny_cifar', 'released', 100, 10_159_204, 2.692],
    ['lsag_tiny_cifar', 'released', 10, 10_141_834, 2.692],
    ['lsag_small_cifar', 'released', 100, 32_802_020, 9.033],
    ['lsag_tiny_imagenet', 'paper-table', 1000, 9_725_608, 3.429],
  ];
  for (const [name, reading, numClasses, params, gmacs] of cases) {
    const e = lsagModels[name];
    const model = build(name, { numClasses, reading });
    try {
      assert.equal(model.numParameters(), params, `${name} ${reading}`);
      const { total } = countMacs(model, [1, 3, e.inputSize, e.inputSize]);
      assert.equal(Math.round(total / 1e6) / 1e3, gmacs, `${name} ${reading}: ${total}`);
    } finally {
      model.dispose();
    }
  }
});

test('official state-dict keys and shapes (lsag_tiny_cifar)', () => {
  const model = build('lsag_tiny_cifar');
  const sd = model.stateDict();
  try {
    const shape = (k: string) => sd.get(k)?.shape;
    assert.deepEqual(shape('to_patch_embedding.projections.17.weight'), [192, 3, 3, 3]);
    assert.deepEqual(shape('layers.0.0.pos_emb'), [18, 1024, 192]);
    assert.deepEqual(shape('layers.0.0.layers.0.0.Wkv_even.weight'), [128, 192]);   // multi-query: 2·64
    assert.deepEqual(shape('layers.0.0.layers.1.0.Wq_odd.weight'), [192, 192]);
    assert.deepEqual(shape('layers.0.1.conv.weight'), [192, 192, 3, 3]);
    assert.deepEqual(shape('layers.3.0.pos_emb'), [16, 192]);
    assert.deepEqual(shape('norm.weight'), [192]);
    assert.deepEqual(shape('mlp_head.weight'), [10, 192]);
    assert.ok(!sd.has('layers.3.1.conv.weight'), 'the last level has no ReduceImageSize');
    assert.ok([...sd.keys()].every((k) => /^(to_patch_embedding|layers|norm|mlp_head)\./.test(k)));
  } finally {
    for (const t of sd.values()) t.dispose();
    model.dispose();
  }
});

test('forward at batch 2 and 1, and the pyramid from forwardFeatures', () => {
  const model = build('lsag_tiny_imagenet', { inputSize: 64, numClasses: 7 });   // grid 9 → 5 → 3 → 2
  const small = build('lsag_small_imagenet', { inputSize: 64 });                   // grid 16 → 8 → 4
  try {
    tidy(() => {
      const x = randn([2, 3, 64, 64], { seed: 1 });
      assert.deepEqual(model.forward(x).shape, [2, 7]);
      assert.deepEqual(model.forwardFeatures(x).map((f) => f.shape), [[2, 192, 9, 9], [2, 192, 5, 5], [2, 192, 3, 3], [2, 192, 2, 2]]);
      assert.deepEqual(small.forwardFeatures(x).map((f) => f.shape), [[2, 64, 16, 16], [2, 192, 8, 8], [2, 384, 4, 4]]);
      const batch = model.eval().forward(x);
      const single = model.forward(x.narrow(0, 1, 1));
      assert.ok(single.allclose(batch.narrow(0, 1, 1), { atol: 1e-5 }), 'batch-1 row = batched row');
    });
  } finally {
    model.dispose();
    small.dispose();
  }
});

test('errors name the constraint and the values', () => {
  assert.throws(() => new LsagModel({ ...lsagOptions('lsag_nano', { numClasses: 10, inChannels: 1, dropPathRate: 0, inputSize: 28 }), depths: [2, 2] }),
    /LsagModel: dims, numHeads and depths need one entry per level .*depths = \[2,2\]/);
  const nano = build('lsag_nano', { inputSize: 32 });
  try {
    assert.throws(() => tidy(() => nano.forward(randn([1, 1, 28, 28]))), /expected an image \(B, 1, 32, 32\), got shape \[1, 1, 28, 28\]/);
  } finally {
    nano.dispose();
  }
  assert.throws(() => lsagModels.lsag_nano.build({ numClasses: 10, inChannels: 1, dropPathRate: 0, inputSize: [28, 32] }),
    /lsag_nano: LSAG's token grids must be square, got inputSize \[28, 32\]/);
});

/**
 * modelArgs numShifts (the `lsag-shifts` sweep): each variant of lsag_nano (D_0 64, 1 channel, conv
 * 3×3/2/1 → 14×14 = 196 tokens, per-head K/V) adds
 *   parameters: one conv 64·1·3·3 + 64 = 640, and one pos_emb row 196·64 = 12,544 → 13,184;
 *   MACs: its conv 196·64·9 = 112,896, its K/V projection 196·64·128 = 1,605,632, and its q·k and
 *         Σ w·v terms 196·64 each = 25,088 → 1,743,616.
 * Default (17 shifts, T 18): 1,620,650 / 107,939,392, so
 *   numShifts 0 (T 1): 1,620,650 − 17·13,184 = 1,396,522; 107,939,392 − 17·1,743,616 = 78,297,920;
 *   numShifts 4 (T 5): 1,620,650 − 13·13,184 = 1,449,258; 107,939,392 − 13·1,743,616 = 85,272,384.
 */
const NANO_SHIFTS: Record<number, { params: number; macs: number }> = {
  0: { params: 1_620_650 - 17 * 13_184, macs: 107_939_392 - 17 * 1_743_616 },
  4: { params: 1_620_650 - 13 * 13_184, macs: 107_939_392 - 13 * 1_743_616 },
};

for (const [n, want] of Object.entries(NANO_SHIFTS)) {
  const numShifts = Number(n);
  test(`lsag_nano modelArgs numShifts ${numShifts}: T = ${numShifts + 1}, exact parameters and MACs, forward, keys`, () => {
    const model = createModel('lsag_nano', { modelArgs: { numShifts } }) as LsagModel;
    try {
      assert.equal(model.embedding.numVariants, numShifts + 1);
      assert.equal(model.numParameters(), want.params);
      assert.equal(countMacs(model, [1, 1, 28, 28]).total, want.macs);
      const sd = model.stateDict();
      assert.deepEqual(sd.get('layers.0.0.pos_emb')!.shape, [numShifts + 1, 196, 64]);
      assert.ok(sd.has(`to_patch_embedding.projections.${numShifts}.weight`));
      assert.ok(!sd.has(`to_patch_embedding.projections.${numShifts + 1}.weight`));
      model.eval();
      tidy(() => {
        const y = model.forward(randn([2, 1, 28, 28]));
        assert.deepEqual(y.shape, [2, 10]);
        assert.ok(y.isfinite().all().item(), 'finite logits');
      });
    } finally {
      model.dispose();
    }
  });
}

test('numShifts: the default is every shift (the entry targets), bad values throw RangeError/TypeError', () => {
  assert.equal(NANO_SHIFTS[0].params, 1_396_522);
  assert.equal(NANO_SHIFTS[4].params, 1_449_258);
  const full = createModel('lsag_nano', { modelArgs: { numShifts: 17 } });
  try {
    assert.equal(full.numParameters(), lsagModels.lsag_nano.params);
  } finally {
    full.dispose();
  }
  assert.deepEqual(lsagModels.lsag_nano.modelArgs, ['numShifts']);
  assert.throws(() => createModel('lsag_nano', { modelArgs: { numShifts: 18 } }),
    (e) => e instanceof RangeError && /numShifts \(variant 'cifar' has 17 shifts\) must be in \[0, 17\], got 18/.test((e as Error).message));
  assert.throws(() => createModel('lsag_tiny_imagenet', { modelArgs: { numShifts: 10 } }),
    (e) => e instanceof RangeError && /variant 'imagenet' has 9 shifts\) must be in \[0, 9\], got 10/.test((e as Error).message));
  assert.throws(() => createModel('lsag_nano', { modelArgs: { numShifts: 2.5 } }),
    (e) => e instanceof TypeError && /numShifts must be an integer, got 2.5/.test((e as Error).message));
  assert.throws(() => createModel('lsag_nano', { modelArgs: { numShift: 4 } }),
    (e) => e instanceof TypeError && /did you mean 'numShifts'/.test((e as Error).message));
});

// lsag_nano's brief (parameters, MACs at 28×28, a training step) is checked with every *_nano in
// registry.test.ts.

test('a DeiT-style checkpoint {model, optimizer, epoch} written by torch.save loads through loadWeights', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'lsag-ckpt-'));
  const source = build('lsag_nano');
  const target = build('lsag_nano');
  try {
    const sd = source.stateDict();
    const manifest: { name: string; shape: number[]; offset: number }[] = [];
    const chunks: Buffer[] = [];
    let offset = 0;
    for (const [name, t] of sd) {
      const data = Buffer.from(new Float32Array(t.dataSync() as Float32Array).buffer);
      manifest.push({ name, shape: t.shape, offset });
      chunks.push(data);
      offset += data.length;
      t.dispose();
    }
    writeFileSync(path.join(dir, 'w.bin'), Buffer.concat(chunks));
    writeFileSync(path.join(dir, 'w.json'), JSON.stringify(manifest));
    const script = [
      'import json, sys, torch, collections',
      'd = sys.argv[1]; m = json.load(open(d + "/w.json")); raw = open(d + "/w.bin", "rb").read()',
      'sd = collections.OrderedDict()',
      'for e in m:',
      '    n = 1',
      '    for s in e["shape"]: n *= s',
      '    sd[e["name"]] = torch.frombuffer(bytearray(raw[e["offset"]:e["offset"] + 4 * n]), dtype=torch.float32).reshape(e["shape"]).clone()',
      'torch.save({"model": sd, "optimizer": {"state": {}, "param_groups": [{"lr": 5e-4}]}, "lr_scheduler": {}, "epoch": 299, "args": None}, d + "/checkpoint.pth")',
    ].join('\n');
    execFileSync(PYTHON, ['-c', script, dir], { stdio: 'pipe' });
    const report = await loadWeights(target, path.join(dir, 'checkpoint.pth'));
    assert.deepEqual([report.missing.length, report.unexpected.length], [0, 0]);
    tidy(() => {
      const x = randn([2, 1, 28, 28], { seed: 5 });
      assert.ok(target.eval().forward(x).equal(source.eval().forward(x)), 'same outputs after loading');
    });
  } finally {
    source.dispose();
    target.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
});
