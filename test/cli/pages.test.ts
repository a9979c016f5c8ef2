/**
 * The report and the explain page as a user sees them: made by the CLI from a tiny real training
 * run, opened in headless Chromium (test/support/browser.ts): no console errors, no network, every
 * chart drawn and non-empty, every image loaded; a screenshot of each is saved (to
 * $VICINITY_SCREENSHOTS when set — docs/images is made that way — else a temp dir).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { PNG } from 'pngjs';
import { saveSafetensors } from '../../src/checkpoint/tensor-io.js';
import { loadDataset } from '../../src/data/load-dataset.js';
import { createModel } from '../../src/models/registry.js';
import { encodePretrainedCfg, pretrainedCfgForRun } from '../../src/train/model-metadata.js';
import { checkPage, launchChromium } from '../support/browser.js';
import { tinyRun, vicinity } from '../support/tiny-run.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vicinity-pages-'));
const shots = process.env.VICINITY_SCREENSHOTS ?? path.join(tmp, 'screenshots');
mkdirSync(shots, { recursive: true });
let chromium: Awaited<ReturnType<typeof launchChromium>>;
const run = tinyRun(path.join(tmp, 'run'), '--epochs', '2');

before(async () => { chromium = await launchChromium(); });
after(async () => {
  await chromium?.close();
  rmSync(tmp, { recursive: true, force: true });
});

test('the report: self-contained, charts drawn, images loaded', async () => {
  const r = vicinity('report', run.out, '--samples', '12');
  assert.equal(r.status, 0, r.stderr);
  const file = path.join(run.out, 'report.html');
  assert.match(r.stdout, /report: .*report\.html \(5 charts, 12 test images, from .*best\.safetensors\)/);
  const html = readFileSync(file, 'utf8');
  assert.doesNotMatch(html, /<script|https?:\/\/(?!www\.w3\.org)/, 'no scripts, no links out of the file');
  const page = await checkPage(chromium.context, file, path.join(shots, 'report.png'));
  assert.deepEqual(page.consoleErrors, []);
  assert.deepEqual(page.failedRequests, []);
  assert.deepEqual(page.network, []);
  assert.deepEqual(page.charts.map((c) => c.name), ['loss', 'accuracy', 'lr', 'confusion', 'per-class']);
  for (const c of page.charts) assert.ok(c.width > 100 && c.height > 100 && c.marks > 10, `chart ${c.name} is empty: ${JSON.stringify(c)}`);
  assert.equal(page.images.length, 24, 'each sample: the image and its Grad-CAM');
  for (const img of page.images) assert.ok(img.complete && img.width > 0, `image not loaded: ${img.src}`);
  assert.ok(statSync(path.join(shots, 'report.png')).size > 10_000);
});

test('the explain page: Grad-CAM and maps written and shown', async () => {
  const testSplit = await loadDataset({ name: 'fashion-mnist', split: 'test', source: 'subset' });
  assert.equal(testSplit.store.kind, 'memory');
  if (testSplit.store.kind !== 'memory') return;
  const png = new PNG({ width: 28, height: 28 });
  for (let i = 0; i < 784; i++) {
    const v = testSplit.store.pixels[7 * 784 + i];
    png.data.set([v, v, v, 255], 4 * i);
  }
  const image = path.join(tmp, 'image.png');
  writeFileSync(image, PNG.sync.write(png));
  const out = path.join(tmp, 'explained');
  const r = vicinity('explain', run.checkpoint, image, '--out', out, '--query', '14,14', '--json');
  assert.equal(r.status, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { gradCam: { layer: string }; top: { label: string }[] };
  assert.equal(summary.gradCam.layer, 'features');
  assert.equal(summary.top.length, 5);
  const page = await checkPage(chromium.context, path.join(out, 'index.html'), path.join(shots, 'explain-small-convnet.png'));
  assert.deepEqual(page.consoleErrors, []);
  assert.deepEqual(page.failedRequests, []);
  assert.deepEqual(page.images.map((i) => i.src), ['input.png', 'gradcam.png']);
  for (const img of page.images) assert.ok(img.complete && img.width === 252, `image not loaded: ${JSON.stringify(img)}`);
  const bad = vicinity('explain', run.checkpoint, image, '--out', out, '--query', '40,1');
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /query \(40, 1\) is outside the 28×28 input/);
});

test('explain pages of attention models: LA sampling points and halo maps shown', async () => {
  const testSplit = await loadDataset({ name: 'fashion-mnist', split: 'test', source: 'subset' });
  const image = path.join(tmp, 'image.png');
  for (const [name, size, expectLa, expectMaps] of [['la_resnet_nano_s2', 28, 8, 0], ['halonet_nano', 32, 0, 10]] as const) {
    const cfg = pretrainedCfgForRun({ model: name, dataset: 'fashion-mnist', classes: testSplit.classes, inChannels: 1, inputSize: [size, size] });
    const model = createModel(name, cfg.model_args);
    const file = path.join(tmp, `${name}.safetensors`);
    await saveSafetensors(file, model, encodePretrainedCfg(cfg));
    model.dispose();
    const out = path.join(tmp, `explained-${name}`);
    const r = vicinity('explain', file, image, '--out', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const summary = JSON.parse(r.stdout) as { laPoints: { points: { y: number; x: number }[] }[]; attention: unknown[] };
    assert.equal(summary.laPoints.length, expectLa);
    assert.equal(summary.attention.length, expectMaps);
    for (const la of summary.laPoints) assert.equal(la.points.length, 4 * 9, '4 heads × k² points');
    const page = await checkPage(chromium.context, path.join(out, 'index.html'), path.join(shots, `explain-${name.replace(/_/g, '-')}.png`));
    assert.deepEqual(page.consoleErrors, []);
    assert.equal(page.images.length, 2 + expectLa + expectMaps);
    for (const img of page.images) assert.ok(img.complete && img.width > 0, `image not loaded: ${img.src}`);
  }
});
