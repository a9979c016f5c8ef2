/**
 * The checkpoint's pretrained_cfg: written by the trainer's facts, read back from a file (also the
 * legacy flat keys), completed from flags, and every missing field named with its flag.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { saveSafetensors } from '../../src/checkpoint/tensor-io.js';
import { createModel } from '../../src/models/registry.js';
import {
  createModelFromCfg, decodePretrainedCfg, encodePretrainedCfg, evalTransformFromCfg, pretrainedCfgForRun,
  readCheckpointMetadata, resolvePretrainedCfg,
} from '../../src/train/model-metadata.js';
import { evalTransform } from '../../src/train/input-pipeline.js';

const CIFAR = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

test('pretrainedCfgForRun records the trainer eval transform, small and large', () => {
  const small = pretrainedCfgForRun({ model: 'resnet18_cifar', dataset: 'cifar10', classes: CIFAR, inChannels: 3, inputSize: [32, 32] });
  assert.deepEqual(small.input_size, [3, 32, 32]);
  assert.deepEqual([small.crop_mode, small.crop_pct, small.interpolation], ['squash', 1, 'bilinear']);
  assert.deepEqual(evalTransformFromCfg(small), { ...evalTransform('cifar10', [32, 32], 3), interpolation: 'bilinear' });
  const large = pretrainedCfgForRun({ model: 'resnet50', dataset: 'imagefolder', classes: ['a', 'b'], inChannels: 3, inputSize: [224, 224], dropPathRate: 0.1 });
  assert.deepEqual([large.crop_mode, large.crop_pct], ['center', 0.875]);
  assert.deepEqual(large.model_args, { numClasses: 2, inChannels: 3, inputSize: 224, dropPathRate: 0.1 });
  assert.deepEqual(large.mean, [0.485, 0.456, 0.406]);
  assert.deepEqual(evalTransformFromCfg(large), { ...evalTransform('imagefolder', [224, 224], 3), interpolation: 'bilinear' });
});

test('a file round-trips its config; legacy flat keys give a partial config', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-meta-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const cfg = pretrainedCfgForRun({ model: 'small_convnet', dataset: 'fashion-mnist', classes: CIFAR, inChannels: 1, inputSize: [28, 28] });
  const model = createModel('small_convnet');
  const file = path.join(dir, 'w.safetensors');
  await saveSafetensors(file, model, encodePretrainedCfg(cfg));
  model.dispose();
  const back = decodePretrainedCfg(await readCheckpointMetadata(file), file);
  assert.deepEqual(back, cfg);
  assert.deepEqual(resolvePretrainedCfg(file, back), cfg);
  const rebuilt = createModelFromCfg(cfg);
  assert.equal(rebuilt.numParameters(), createModel('small_convnet', { numClasses: 10, inChannels: 1 }).numParameters());
  rebuilt.dispose();
  const legacy = decodePretrainedCfg({ model: 'small_convnet', dataset: 'fashion-mnist', numClasses: '10', inChannels: '1', inputSize: '28x28' });
  assert.deepEqual(legacy, { architecture: 'small_convnet', dataset: 'fashion-mnist', num_classes: 10, input_size: [1, 28, 28] });
  // A legacy file has no class names: the dataset flag cannot know them without its data, --classes can.
  assert.throws(() => resolvePretrainedCfg('old.safetensors', legacy), /old\.safetensors has no 'label_names' .*pass --classes/);
  const full = resolvePretrainedCfg('old.safetensors', legacy, { classes: CIFAR });
  assert.deepEqual([full.mean, full.std, full.crop_mode], [[0.286], [0.353], 'squash']);
  assert.throws(() => decodePretrainedCfg({ 'vicinity.pretrained_cfg': '{oops' }, 'bad.safetensors'),
    /bad\.safetensors: metadata 'vicinity\.pretrained_cfg' is not valid JSON/);
});

test('a file without metadata takes flags; each missing field is named with its flag', () => {
  assert.throws(() => resolvePretrainedCfg('w.pth', {}), /w\.pth has no 'architecture' .*pass --model <name>/);
  assert.throws(() => resolvePretrainedCfg('w.pth', {}, { model: 'resnet_nano' }), /has no 'num_classes' .*--num-classes/);
  assert.throws(() => resolvePretrainedCfg('w.pth', {}, { model: 'resnet_nano', classes: ['a', 'b'] }), /has no 'mean' .*--mean/);
  const cfg = resolvePretrainedCfg('w.pth', {}, { model: 'resnet_nano', classes: ['a', 'b'], mean: [0.5], std: [0.25], inChannels: 1, inputSize: 40 });
  assert.deepEqual([cfg.num_classes, cfg.input_size, cfg.crop_mode], [2, [1, 40, 40], 'squash']);
  assert.throws(() => resolvePretrainedCfg('w.pth', {}, { model: 'resnet_nano', classes: ['a'], numClasses: 3, mean: [0.5], std: [0.5] }),
    /w\.pth: 1 class names for 3 classes/);
  assert.throws(() => resolvePretrainedCfg('w.pth', {}, { model: 'resnet_nano', classes: ['a'], mean: [1, 2], std: [1], inChannels: 3, inputSize: 32 }),
    /mean has 2 values for 3 channels/);
  assert.throws(() => resolvePretrainedCfg('w.pth', {}, { model: 'resnet5' }), /unknown model 'resnet5'/);
});
