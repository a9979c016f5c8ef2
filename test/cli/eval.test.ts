/** `vicinity eval`'s setup in-process: metadata, flags and the errors; the CLI test runs it end to end. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { saveSafetensors } from '../../src/checkpoint/tensor-io.js';
import { checkpointMetadata, evalCheckpoint, parseInputSize, resolveEvalSetup } from '../../src/cli/eval.js';
import { createModel } from '../../src/models/registry.js';

test('parseInputSize reads the forms a checkpoint may hold', () => {
  assert.deepEqual(parseInputSize('28x28'), [28, 28]);
  assert.deepEqual(parseInputSize('[224, 192]'), [224, 192]);
  assert.deepEqual(parseInputSize('32'), [32, 32]);
  assert.equal(parseInputSize('none'), undefined);
  assert.equal(parseInputSize(undefined), undefined);
});

test('resolveEvalSetup: flags over metadata; a file without a model name asks for --model', () => {
  const meta = { model: 'small_convnet', dataset: 'mnist', numClasses: '10', inChannels: '1', inputSize: '28x28' };
  assert.deepEqual(resolveEvalSetup('a.safetensors', meta, {}),
    { model: 'small_convnet', dataset: 'mnist', numClasses: 10, inChannels: 1, inputSize: [28, 28] });
  assert.deepEqual(resolveEvalSetup('a.safetensors', meta, { model: 'resnet_nano', dataset: 'fashion-mnist', inputSize: 32 }),
    { model: 'resnet_nano', dataset: 'fashion-mnist', numClasses: 10, inChannels: 1, inputSize: [32, 32] });
  assert.deepEqual(resolveEvalSetup('b.pth', {}, { model: 'small_convnet' }),
    { model: 'small_convnet', dataset: 'fashion-mnist', numClasses: undefined, inChannels: undefined, inputSize: undefined });
  assert.throws(() => resolveEvalSetup('b.pth', {}, {}), /b\.pth has no 'model' metadata .*; pass --model <name>/);
  assert.throws(() => resolveEvalSetup('b.pth', {}, { model: 'resnet5' }), /unknown model 'resnet5'/);
});

test('evalCheckpoint: metadata read back; wrong model or dataset names the problem', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-eval-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'w.safetensors');
  const model = createModel('small_convnet');
  await saveSafetensors(file, model, { model: 'small_convnet', dataset: 'fashion-mnist', inputSize: '28x28' });
  model.dispose();
  assert.deepEqual(await checkpointMetadata(file), { model: 'small_convnet', dataset: 'fashion-mnist', inputSize: '28x28' });
  await assert.rejects(checkpointMetadata(path.join(dir, 'none.safetensors')), /cannot read checkpoint .*none\.safetensors \(ENOENT\)/);
  await assert.rejects(evalCheckpoint(file, { dataset: 'cifar' }), /unknown dataset 'cifar'; the datasets are fashion-mnist, mnist, /);
  await assert.rejects(evalCheckpoint(file, { model: 'resnet_nano', dataSource: 'subset' }),
    /\(it was trained as small_convnet\) does not fit resnet_nano built for 10 classes, 1 input channel\(s\) and 28×28 input: .*missing keys/);
});
