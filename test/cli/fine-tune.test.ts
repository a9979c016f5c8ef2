/** Fine-tuning as a user runs it: `vicinity train --pretrained <file> [--freeze n] [--num-classes n]`. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { loadStateDictFile, readStateDictFile, saveSafetensors } from '../../src/checkpoint/tensor-io.js';
import { createTimmModel } from '../../src/models/entries/timm.js';
import { createModel } from '../../src/models/registry.js';
import { tidy } from '../../src/tensor/scope.js';
import { applyPretrained, freezeStages } from '../../src/train/fine-tune.js';
import { repoRoot } from '../support/paths.js';

const cli = path.join(repoRoot, 'dist/src/cli/main.js');
const tmp = mkdtempSync(path.join(os.tmpdir(), 'vicinity-finetune-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

const SMOKE = ['--model', 'resnet_nano', '--dataset', 'fashion-mnist', '--data-source', 'subset', '--epochs', '1',
  '--train-limit', '256', '--workers', '0', '--progress', 'plain'];

const same = (a: Map<string, import('../../src/tensor/tensor.js').Tensor>, b: Map<string, import('../../src/tensor/tensor.js').Tensor>, key: string) =>
  tidy(() => (a.get(key)!.sub(b.get(key)!).abs().max().item() as number) === 0);

test('vicinity train --pretrained --freeze 1: weights loaded strictly, a new 10-class head, stem and stage 1 unchanged', async () => {
  const file = path.join(tmp, 'pretrained-5.safetensors');
  const source = createModel('resnet_nano', { numClasses: 5 });
  await saveSafetensors(file, source);
  source.dispose();
  const out = path.join(tmp, 'run');
  const r = spawnSync(process.execPath, [cli, 'train', ...SMOKE, '--pretrained', file, '--freeze', '1', '--out', out], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /pretrained: .*pretrained-5\.safetensors, 5-class head replaced by a new 10-class one \(fc\.weight, fc\.bias\)/);
  assert.match(r.stderr, /frozen: the stem and 1 stage\(s\), [\d,]+ parameters/);
  const before = await loadStateDictFile(file);
  const after = await loadStateDictFile(path.join(out, 'last.safetensors'));
  try {
    assert.ok(same(before, after, 'conv1.weight'), 'the stem is frozen');
    assert.ok(same(before, after, 'layer1.0.conv1.weight'), 'stage 1 is frozen');
    assert.ok(!same(before, after, 'layer4.0.conv1.weight'), 'later stages train');
    assert.deepEqual(after.get('fc.weight')!.shape, [10, before.get('fc.weight')!.shape[1]]);
  } finally {
    for (const t of [...before.values(), ...after.values()]) t.dispose();
  }
});

test('vicinity train: --freeze without --pretrained and too few --num-classes are refused with the fix', () => {
  const noWeights = spawnSync(process.execPath, [cli, 'train', ...SMOKE, '--freeze', '1', '--out', path.join(tmp, 'x')], { encoding: 'utf8' });
  assert.notEqual(noWeights.status, 0);
  assert.match(noWeights.stderr, /--freeze needs --pretrained/);
  const few = spawnSync(process.execPath, [cli, 'train', ...SMOKE, '--num-classes', '3', '--out', path.join(tmp, 'y')], { encoding: 'utf8' });
  assert.notEqual(few.status, 0);
  assert.match(few.stderr, /--num-classes 3 is fewer than the dataset's 10 classes/);
});

test('applyPretrained on a timm model: strict load with timm\'s head, then head.fc for the new classes; freezeStages', async () => {
  const file = path.join(tmp, 'halonet26t.safetensors');
  const source = createTimmModel('halonet26t', { num_classes: 7, width_factor: 0.125 });
  await saveSafetensors(file, source);
  const model = createTimmModel('halonet26t', { num_classes: 3, width_factor: 0.125 });
  const report = applyPretrained(model, await readStateDictFile(file), { numClasses: 3 });
  assert.deepEqual(report, { pretrainedClasses: 7, classifierKeys: ['head.fc.weight', 'head.fc.bias'], frozenParameters: 0 });
  assert.equal(model.numClasses, 3);
  const a = source.stateDict();
  const b = model.stateDict();
  assert.ok(same(a, b, 'stages.2.1.self_attn.kv.weight'));
  for (const t of [...a.values(), ...b.values()]) t.dispose();
  const frozen = freezeStages(model, 2);
  const trainable = [...model.namedParameters()].filter(([, p]) => p.requiresGrad).map(([k]) => k);
  assert.ok(frozen > 0 && trainable.every((k) => /^(stages\.[23]|head)\./.test(k)), trainable.join(' '));
  assert.throws(() => freezeStages(model, 5), /integer in \[1, 4\]/);
  // Weights of another architecture fail loudly rather than half-load.
  const other = createTimmModel('botnet26t_256', { num_classes: 3, width_factor: 0.125, img_size: 64 });
  const raw = await readStateDictFile(file);
  assert.throws(() => applyPretrained(other, raw, { numClasses: 3 }), /self_attn/);
  for (const m of [source, model, other]) m.dispose();
});

test('vicinity eval --ema reaches the loader: a safetensors file has no EMA copy to choose', async () => {
  const file = path.join(tmp, 'nano.safetensors');
  const source = createModel('resnet_nano');
  await saveSafetensors(file, source);
  source.dispose();
  const r = spawnSync(process.execPath, [cli, 'eval', file, '--model', 'resnet_nano', '--data-source', 'subset', '--ema'], { encoding: 'utf8' });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /a safetensors file holds one state dict; the EMA \/ stateDictKey options apply to torch\.save checkpoints/);
});
