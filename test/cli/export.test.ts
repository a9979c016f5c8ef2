/** `vicinity export` through its process: checkpoint metadata in, ONNX out, and the errors. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { saveSafetensors } from '../../src/checkpoint/tensor-io.js';
import { readModelHeader } from '../../src/export/onnx-proto.js';
import { encodePretrainedCfg, pretrainedCfgForRun } from '../../src/train/model-metadata.js';
import { createModel } from '../../src/models/registry.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import { onnxParity, perturb } from '../export/support.js';
import { repoRoot } from '../support/paths.js';

const cli = path.join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('vicinity export <checkpoint>: the weights, the metadata, and onnxruntime agrees', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-export-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  manualSeed(0);
  const model = createModel('small_convnet');
  t.after(() => model.dispose());
  perturb(model);
  const checkpoint = path.join(dir, 'best.safetensors');
  const trainerMeta = { format: 'pt', model: 'small_convnet', dataset: 'fashion-mnist', epoch: '2', numClasses: '10', inChannels: '1', inputSize: '28x28', top1: '81.5' };
  await saveSafetensors(checkpoint, model, trainerMeta);

  const out = path.join(dir, 'm.onnx');
  const r = run('export', checkpoint, out, '--json');
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { model: string; weights: string; opset: number; inputShape: unknown[]; outputShape: unknown[] };
  assert.equal(report.model, 'small_convnet');
  assert.equal(report.weights, 'checkpoint');
  assert.equal(report.opset, 17);
  assert.deepEqual(report.inputShape, ['batch', 1, 28, 28]);
  assert.deepEqual(report.outputShape, ['batch', 10]);

  const bytes = new Uint8Array(readFileSync(out));
  const { metadata } = readModelHeader(bytes);
  for (const [k, v] of Object.entries(trainerMeta)) assert.equal(metadata[k], v, `metadata ${k}`);
  assert.equal(metadata.weights, 'best.safetensors');
  assert.deepEqual(JSON.parse(metadata.mean), [0.286]);
  assert.deepEqual(JSON.parse(metadata.std), [0.353]);
  assert.equal(JSON.parse(metadata.classes)[9], 'Ankle boot');

  // a pretrained_cfg (what vicinity train writes now): its class names and normalisation go through
  const cfg = pretrainedCfgForRun({ model: 'small_convnet', dataset: 'mnist', classes: 'abcdefghij'.split(''), inChannels: 1, inputSize: [28, 28] });
  const withCfg = path.join(dir, 'cfg.safetensors');
  await saveSafetensors(withCfg, model, encodePretrainedCfg({ ...cfg, mean: [0.5], std: [0.25] }));
  const cfgOut = path.join(dir, 'cfg.onnx');
  assert.equal(run('export', withCfg, cfgOut).status, 0);
  const cfgMeta = readModelHeader(new Uint8Array(readFileSync(cfgOut))).metadata;
  assert.deepEqual(JSON.parse(cfgMeta.classes), 'abcdefghij'.split(''));
  assert.deepEqual([JSON.parse(cfgMeta.mean), JSON.parse(cfgMeta.std)], [[0.5], [0.25]]);
  assert.equal(JSON.parse(cfgMeta['vicinity.pretrained_cfg']).architecture, 'small_convnet');

  model.eval();
  const x = randn([3, 1, 28, 28], { seed: 4 });
  const parity = await onnxParity(bytes, model, x);
  x.dispose();
  assert.ok(parity.maxDiff <= 1e-4, `max |onnx − vicinity| ${parity.maxDiff}`);
});

/** A small_convnet checkpoint with the trainer's model metadata. */
function checkpointOf(dir: string): string {
  return path.join(dir, 'c.safetensors');
}

test('vicinity export <model>: fresh weights with a note; errors name the problem', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-export-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const small = createModel('small_convnet');
  await saveSafetensors(checkpointOf(dir), small, { model: 'small_convnet' });
  small.dispose();
  const out = path.join(dir, 'r.onnx');
  const ok = run('export', 'resnet_nano', out, '--num-classes', '7');
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stderr, /resnet_nano is exported with freshly initialised weights/);
  assert.match(ok.stdout, /r\.onnx: resnet_nano, ONNX opset 17, .* MB\ninput batch×1×28×28 → output batch×7; \d+ nodes \(Conv 12/);
  assert.equal(readModelHeader(new Uint8Array(readFileSync(out))).metadata.numClasses, '7');

  const cases: [string[], RegExp][] = [
    [['export', 'resnet_nan', out], /^vicinity: unknown model 'resnet_nan'; did you mean resnet_nano/],
    [['export', 'resnet_nano', path.join(dir, 'r.bin')], /^vicinity: output file .*r\.bin should end in \.onnx/],
    [['export', path.join(dir, 'none.safetensors'), out], /^vicinity: cannot read checkpoint .*none\.safetensors \(ENOENT\)/],
    [['export', out, path.join(dir, 'x.onnx'), '--model', 'resnet_nano'], /^vicinity: .*r\.onnx: .*not a safetensors file/],
    [['export', checkpointOf(dir), path.join(dir, 'x.onnx'), '--model', 'resnet_nano'],
      /^vicinity: .*c\.safetensors \(it was trained as small_convnet\) does not fit resnet_nano built for 10 classes.*missing keys.*; check --model, --num-classes/],
  ];
  for (const [args, pattern] of cases) {
    const r = run(...args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, pattern);
  }
  assert.ok(!existsSync(path.join(dir, 'x.onnx')));
});
