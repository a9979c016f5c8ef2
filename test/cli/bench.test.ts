/** `vicinity bench` in-process: timm's columns, model expansion, activation counts and one real row. */
import assert from 'node:assert/strict';
import test from 'node:test';
import { benchColumns, benchModel, countActivations, expandModelNames, formatBenchTable, toCsv } from '../../src/cli/bench.js';
import { createModel } from '../../src/models/registry.js';

test('benchColumns follow timm benchmark.py: infer, then train, param_count last', () => {
  assert.deepEqual(benchColumns('infer'), ['model', 'infer_samples_per_sec', 'infer_step_time', 'infer_batch_size',
    'infer_img_size', 'infer_gmacs', 'infer_macts', 'param_count']);
  assert.deepEqual(benchColumns('train'), ['model', 'train_samples_per_sec', 'train_step_time', 'train_batch_size',
    'train_img_size', 'param_count']);
  assert.equal(benchColumns('both').length, 12);
  assert.equal(benchColumns('both').at(-1), 'param_count');
});

test('expandModelNames: exact names, globs, duplicates once, errors for unknown names and empty globs', () => {
  assert.deepEqual(expandModelNames(['small_convnet', 'resnext*', 'resnext50_32x4d']), ['small_convnet', 'resnext50_32x4d', 'resnext101_32x4d']);
  assert.throws(() => expandModelNames(['resnet5']), /unknown model 'resnet5'; did you mean resnet50/);
  assert.throws(() => expandModelNames(['nothing*']), /no model matches 'nothing\*'; vicinity list-models lists the registered ones/);
});

test('toCsv quotes cells that need it and leaves missing ones empty', () => {
  assert.equal(toCsv(['model', 'a', 'b'], [{ model: 'x,y', a: 1.5 }, { model: 'say "hi"', a: 2, b: 3 }]),
    'model,a,b\n"x,y",1.5,\n"say ""hi""",2,3\n');
});

test('countActivations counts conv/linear outputs of one image (fvcore convention)', () => {
  const model = createModel('small_convnet');
  try {
    // conv1 32×28×28 + conv2 64×14×14 + linear 10
    assert.equal(countActivations(model, [1, 1, 28, 28]), 32 * 28 * 28 + 64 * 14 * 14 + 10);
    assert.equal(model.training, true);   // the mode is restored
  } finally {
    model.dispose();
  }
});

test('benchModel: one infer row with timm units and the exact MACs', async () => {
  const result = await benchModel('small_convnet', { mode: 'infer', batchSize: 4, steps: 2, warmup: 1 });
  assert.deepEqual(Object.keys(result.row).sort(), benchColumns('infer').sort());
  const { row } = result;
  assert.equal(row.model, 'small_convnet');
  assert.equal(row.infer_batch_size, 4);
  assert.equal(row.infer_img_size, 28);
  assert.equal(row.infer_gmacs, 0);         // 3,869,824 MACs, rounded to 2 decimals of G as timm does
  assert.equal(row.infer_macts, 0.04);
  assert.equal(row.param_count, 0.05);
  assert.equal(result.macs, 3_869_824);
  assert.ok(Number(row.infer_samples_per_sec) > 0 && Number(row.infer_step_time) > 0);
  assert.match(formatBenchTable([result], 'infer'), /small_convnet +4 +28 +[\d.]+ +[\d.]+ +3\.870 M +0\.05 M/);
});
