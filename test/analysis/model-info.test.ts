import assert from 'node:assert/strict';
import test from 'node:test';
import { formatCount, formatSummary, formatTable, parametersPerModule, summarizeModel } from '../../src/analysis/model-info.js';
import { createModel } from '../../src/models/registry.js';

test('summarizeModel(resnet_nano): totals, per-stage parameters and MACs add up, layer table with shapes', () => {
  const model = createModel('resnet_nano');
  const s = summarizeModel(model, [1, 1, 28, 28], { depth: 2 });
  assert.equal(s.type, 'ResNet');
  assert.equal(s.parameters, 1_228_394);
  assert.equal(s.macs, 51_837_952);
  assert.deepEqual(s.inputShape, [1, 1, 28, 28]);
  assert.deepEqual(s.outputShape, [1, 10]);
  assert.deepEqual(s.stages.map((r) => r.name), ['conv1', 'bn1', 'relu', 'layer1', 'layer2', 'layer3', 'layer4', 'avgpool', 'fc']);
  assert.equal(s.stages.reduce((n, r) => n + r.parameters, 0), s.parameters);
  assert.equal(s.stages.reduce((n, r) => n + r.macs, 0), s.macs);
  const layer4 = s.stages.find((r) => r.name === 'layer4');
  // 128→256 basic block at 4×4: conv1 16·256·128·9, conv2 16·256·256·9, downsample 16·256·128
  assert.equal(layer4?.macs, 16 * 256 * 128 * 9 + 16 * 256 * 256 * 9 + 16 * 256 * 128);
  assert.deepEqual(layer4?.outputShape, [1, 256, 4, 4]);
  assert.deepEqual(s.layers.filter((r) => r.depth === 2).map((r) => r.name), ['layer1.0', 'layer2.0', 'layer3.0', 'layer4.0']);
  assert.equal(s.layers.find((r) => r.name === 'fc')?.parameters, 256 * 10 + 10);
  const text = formatSummary(s);
  assert.match(text, /parameters  1,228,394 \(1\.228 M\)/);
  assert.match(text, /layer4\.0\s+BasicBlock\s+919\.0 k\s+14\.680 M\s+\[1, 256, 4, 4\]/);
  model.dispose();
});

test('parametersPerModule counts descendants; formatCount and formatTable', () => {
  const model = createModel('small_convnet');
  const p = parametersPerModule(model);
  assert.equal(p.get(''), 50_282);
  assert.equal(p.get('features'), 288 + 64 + 18_432 + 128);
  assert.equal(p.get('classifier.1'), 31_370);
  model.dispose();
  assert.deepEqual([formatCount(512), formatCount(31_370), formatCount(25_557_032), formatCount(4_089_184_256)],
    ['512', '31.4 k', '25.557 M', '4.089 G']);
  assert.equal(formatTable(['a', 'n'], [['x', '1'], ['yy', '22']]), 'a    n\n--  --\nx    1\nyy  22');
});
