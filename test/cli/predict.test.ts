/**
 * `vicinity predict` as a user runs it: on class folders written from the test split it
 * reproduces `vicinity eval`'s accuracy on those images; any image size; a table and JSON; errors.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { PNG } from 'pngjs';
import { loadDataset } from '../../src/data/load-dataset.js';
import { tinyRun, vicinity } from '../support/tiny-run.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vicinity-predict-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));
const run = tinyRun(path.join(tmp, 'run'));

/** Writes a gray image as PNG (RGB when `rgb`). */
function writePng(file: string, pixels: Uint8Array, height: number, width: number, rgb = false): void {
  const png = new PNG({ width, height, colorType: rgb ? 2 : 0, inputColorType: 0 });
  for (let i = 0; i < height * width; i++) {
    png.data[4 * i] = png.data[4 * i + 1] = png.data[4 * i + 2] = pixels[i];
    png.data[4 * i + 3] = 255;
  }
  writeFileSync(file, PNG.sync.write(png, { colorType: rgb ? 2 : 0 }));
}

const folderName = (label: string) => label.replace(/[^A-Za-z0-9-]/g, '_');

test('predict on class folders of the test split reproduces eval\'s accuracy', async () => {
  const testSplit = await loadDataset({ name: 'fashion-mnist', split: 'test', source: 'subset' });
  const store = testSplit.store;
  assert.equal(store.kind, 'memory');
  if (store.kind !== 'memory') return;
  const root = path.join(tmp, 'images');
  for (const label of testSplit.classes) mkdirSync(path.join(root, folderName(label)), { recursive: true });
  const side = store.height * store.width;
  for (let i = 0; i < testSplit.count; i++) {
    const label = testSplit.classes[testSplit.labels[i]];
    writePng(path.join(root, folderName(label), `${String(i).padStart(4, '0')}.png`), store.pixels.subarray(i * side, (i + 1) * side), store.height, store.width);
  }
  const e = vicinity('eval', run.checkpoint, '--data-source', 'subset', '--json');
  assert.equal(e.status, 0, e.stderr);
  const evalReport = JSON.parse(e.stdout) as { count: number; top1: number; top5: number };
  const p = vicinity('predict', run.checkpoint, root, '--json', '--batch-size', '300');
  assert.equal(p.status, 0, p.stderr);
  const out = JSON.parse(p.stdout) as { predictions: { file: string; top: { index: number; label: string; probability: number }[] }[] };
  assert.equal(out.predictions.length, evalReport.count);
  let top1 = 0;
  let top5 = 0;
  for (const { file, top } of out.predictions) {
    const truth = path.basename(path.dirname(file));
    assert.equal(top.length, 5);
    const sum = top.reduce((s, t) => s + t.probability, 0);
    assert.ok(sum <= 1 + 1e-5 && top.every((t, i) => i === 0 || t.probability <= top[i - 1].probability));
    if (folderName(top[0].label) === truth) top1++;
    if (top.some((t) => folderName(t.label) === truth)) top5++;
  }
  assert.equal((100 * top1 / evalReport.count).toFixed(6), evalReport.top1.toFixed(6));
  assert.equal((100 * top5 / evalReport.count).toFixed(6), evalReport.top5.toFixed(6));
});

test('predict takes any image size and colour, prints a table; errors name the problem', () => {
  const big = path.join(tmp, 'big.png');
  const pixels = new Uint8Array(60 * 44).map((_, i) => (i * 7) % 256);
  writePng(big, pixels, 60, 44, true);
  const r = vicinity('predict', run.checkpoint, big, '--top-k', '3');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^image +top-1 +top-2 +top-3\n/);
  assert.match(r.stdout, new RegExp(`${big.replace(/[.]/g, '\\.')} +\\S.* \\d+\\.\\d%  .+ \\d+\\.\\d%  .+ \\d+\\.\\d%\\n`));
  const notImage = path.join(tmp, 'notes.txt');
  writeFileSync(notImage, 'x');
  const bad = vicinity('predict', run.checkpoint, notImage);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /notes\.txt is not a \.png, \.jpg or \.jpeg image/);
  const missing = vicinity('predict', path.join(tmp, 'nope.safetensors'), big);
  assert.match(missing.stderr, /cannot read checkpoint .*nope\.safetensors \(ENOENT\)/);
});
