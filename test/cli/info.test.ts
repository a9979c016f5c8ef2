import assert from 'node:assert/strict';
import test from 'node:test';
import { infoCommand, listModelsCommand, modelReport } from '../../src/cli/info.js';

test('modelReport: measured parameters and MACs meet the registry targets', () => {
  const r = modelReport('resnet_nano');
  assert.deepEqual(r.checks.map((c) => [c.name, c.ok]), [['params', true], ['macs', true]]);
  assert.equal(r.info.name, 'resnet_nano');
  assert.equal(r.summary.macs, r.info.macs);
  // Other input sizes: MACs are not compared; a model built for its input size skips parameters too.
  assert.deepEqual(modelReport('resnet_nano', { inputSize: 32 }).checks.map((c) => c.name), ['params']);
  assert.deepEqual(modelReport('small_convnet', { inputSize: 32 }).checks, []);
});

test('infoCommand and listModelsCommand print and return exit codes', async (t) => {
  const lines: string[] = [];
  t.mock.method(console, 'log', (...args: unknown[]) => { lines.push(args.join(' ')); });
  assert.equal(await infoCommand('resnet_nano'), 0);
  assert.match(lines.join('\n'), /params\s+1,228,394 vs target 1,228,394 \(\+0\.000%\) ok/);
  lines.length = 0;
  assert.equal(await infoCommand('small_convnet', { json: true }), 0);
  const json = JSON.parse(lines.join('\n')) as { ok: boolean; info: { params: number }; summary: { macs: number } };
  assert.equal(json.ok, true);
  assert.equal(json.summary.macs, 3_869_824);
  lines.length = 0;
  assert.equal(listModelsCommand('resnext*'), 0);
  assert.match(lines.join('\n'), /resnext50_32x4d\s+3×224²\s+25\.029 M\s+4\.230 G/);
  lines.length = 0;
  // Errors are thrown (main.ts prints them on stderr with the vicinity: prefix), in CLI words.
  assert.throws(() => listModelsCommand('nothing*'), /^Error: no model matches 'nothing\*'/);
  assert.throws(() => listModelsCommand('[[['), /'\[\[\[' is not a valid model pattern/);
  assert.deepEqual(lines, []);
  await assert.rejects(infoCommand('resnet5'), /unknown model 'resnet5'; did you mean resnet50.*\(vicinity list-models lists them/);
});
