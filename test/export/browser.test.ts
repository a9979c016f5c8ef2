/**
 * The browser example as a user meets it: a Fashion-MNIST LA model trained briefly with
 * `vicinity train`, exported with `vicinity export`, the page built (examples/browser/build.mjs)
 * and served on 127.0.0.1, opened in headless Chromium (Debian's, driven by playwright-core).
 * The page must load without console errors, and for fixed test images and a drawing its logits
 * must equal vicinity's own forward of the checkpoint (1e-4) and its top-3 classes the same; for
 * the test images its top-3 must be `vicinity predict`'s on the same images as PNG files.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { pathToFileURL } from 'node:url';
import { PNG } from 'pngjs';
import type { Page } from 'playwright-core';
import { loadPretrained } from '../../src/checkpoint/tensor-io.js';
import { createModel, type Classifier } from '../../src/models/registry.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { CHROMIUM, launchChromium } from '../support/browser.js';
import { repoRoot } from '../support/paths.js';

const MODEL = 'la_resnet_nano_s2';
const cli = path.join(repoRoot, 'dist/src/cli/main.js');

interface Site { url: string; close(): Promise<void> }
interface SampleInfo { images: { index: number; label: number; pixels: number[] }[] }
interface Demo { lastInput: number[]; lastLogits: number[]; runs: number; info: { mean: number[]; std: number[] } }

function vicinity(...args: string[]): string {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  assert.equal(r.status, 0, `vicinity ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** `vicinity predict --top-k 3` on the sample images written as PNG files: the class indices per image. */
function predictTop3(checkpoint: string, dir: string, images: SampleInfo['images']): number[][] {
  mkdirSync(dir);
  images.forEach((image, i) => {
    const png = new PNG({ width: 28, height: 28, colorType: 0, inputColorType: 0 });
    image.pixels.forEach((v, k) => png.data.set([v, v, v, 255], 4 * k));
    writeFileSync(path.join(dir, `sample-${String(i).padStart(2, '0')}.png`), PNG.sync.write(png, { colorType: 0 }));
  });
  const report = JSON.parse(vicinity('predict', checkpoint, dir, '--top-k', '3', '--json')) as {
    predictions: { file: string; top: { index: number }[] }[];
  };
  return report.predictions.map((p) => p.top.map((t) => t.index));
}

/** Indices of the 3 largest logits. */
const top3 = (logits: number[]) => [...logits.keys()].sort((a, b) => logits[b] - logits[a]).slice(0, 3);

/** Checks the page's answer for the input it fed against the model's own forward. */
function checkAgainstVicinity(model: Classifier, demo: Demo, shownClasses: number[], what: string): void {
  const expected = noGrad(() => tidy(() => Array.from(model.forward(tensor(Float32Array.from(demo.lastInput), { shape: [1, 1, 28, 28] })).dataSync() as Float32Array)));
  const maxDiff = Math.max(...expected.map((v, i) => Math.abs(v - demo.lastLogits[i])));
  assert.ok(maxDiff <= 1e-4, `${what}: page logits differ from vicinity's by ${maxDiff.toExponential(2)}`);
  const order = top3(expected);
  // the order is only defined where neighbouring logits differ by more than the tolerance
  const sorted = [...expected].sort((a, b) => b - a);
  if (sorted[0] - sorted[1] > 2e-4 && sorted[1] - sorted[2] > 2e-4 && sorted[2] - sorted[3] > 2e-4) {
    assert.deepEqual(shownClasses, order, `${what}: the page's top-3 is not vicinity's`);
  } else assert.deepEqual(new Set(shownClasses.slice(0, 1)), new Set(order.slice(0, 1)));
}

async function shownTop3(page: Page): Promise<number[]> {
  return page.$$eval('#top3 li', (items) => items.map((li) => Number((li as unknown as { dataset: Record<string, string> }).dataset.class)));
}

test('browser example: exported LA model in onnxruntime-web predicts as vicinity does', { timeout: 300_000 }, async (t) => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} not found: install Debian's chromium (scripts/setup.sh does) or set VICINITY_CHROMIUM`);
  // One hook that undoes the set-up last-in first-out and tries every step: node:test runs a
  // test's after-hooks first-in first-out and stops at the first that throws, so with one hook
  // per resource the folder went first (under a running Chromium: ENOTEMPTY) and the browser was
  // never closed, leaving the test process waiting on it.
  const undo: (() => unknown)[] = [];
  t.after(async () => {
    const failures: unknown[] = [];
    for (const step of undo.reverse()) {
      try { await step(); } catch (e) { failures.push(e); }
    }
    if (failures.length > 0) throw new AggregateError(failures, 'browser test clean-up failed');
  });
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-browser-'));
  undo.push(() => rmSync(dir, { recursive: true, force: true }));

  // a short training run on the bundled subset, then export, as docs/browser.md tells users
  vicinity('train', '--model', MODEL, '--dataset', 'fashion-mnist', '--data-source', 'subset', '--epochs', '1',
    '--train-limit', '256', '--workers', '0', '--progress', 'none', '--out', path.join(dir, 'run'));
  const checkpoint = path.join(dir, 'run', 'best.safetensors');
  const onnxFile = path.join(dir, 'model.onnx');
  assert.match(vicinity('export', checkpoint, onnxFile), /ONNX opset 17/);

  const { buildSite } = await import(pathToFileURL(path.join(repoRoot, 'examples/browser/build.mjs')).href) as {
    buildSite(o: { model: string; out: string; samples: number; dataSource: string }): Promise<string>;
  };
  const { serveDirectory } = await import(pathToFileURL(path.join(repoRoot, 'examples/browser/serve.mjs')).href) as {
    serveDirectory(dir: string): Promise<Site>;
  };
  const siteDir = await buildSite({ model: onnxFile, out: path.join(dir, 'site'), samples: 6, dataSource: 'subset' });
  const site = await serveDirectory(siteDir);
  undo.push(() => site.close());

  const model = createModel(MODEL, { numClasses: 10, inChannels: 1, inputSize: 28 });
  await loadPretrained(model, checkpoint);
  model.eval();
  undo.push(() => model.dispose());

  const browser = await launchChromium();
  undo.push(() => browser.close());
  const { context } = browser;
  const page = context.pages()[0] ?? await context.newPage();
  const errors: string[] = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('requestfailed', (r) => errors.push(`request failed: ${r.url()}`));

  await page.goto(site.url);
  await page.waitForSelector('body[data-state="ready"]', { timeout: 60_000 });
  assert.match(await page.textContent('#model-line') ?? '', new RegExp(`${MODEL} · 28×28 · 10 classes`));
  const samples = (await (await fetch(`${site.url}samples.json`)).json()) as SampleInfo;
  assert.equal(await page.locator('#samples button').count(), 6);

  const predicted = predictTop3(checkpoint, path.join(dir, 'images'), samples.images);
  let runs = 0;
  for (let i = 0; i < samples.images.length; i++) {
    await page.click(`#samples button[data-index="${i}"]`);
    await page.waitForSelector(`body[data-runs="${++runs}"]`);
    const demo = await page.evaluate(() => (globalThis as unknown as { vicinityDemo: Demo }).vicinityDemo);
    // the page fed the test image normalised as the trainer's evaluation transform does
    const { mean, std } = demo.info;
    const fed = samples.images[i].pixels.map((p) => (p / 255 - mean[0]) / std[0]);
    assert.ok(fed.every((v, k) => Math.abs(v - demo.lastInput[k]) < 1e-6), `test image ${i}: the page's input differs`);
    const shown = await shownTop3(page);
    checkAgainstVicinity(model, demo, shown, `test image ${i}`);
    const sorted = [...demo.lastLogits].sort((a, b) => b - a);
    const clear = sorted.slice(0, 3).every((v, k) => v - sorted[k + 1] > 2e-4);
    if (clear) assert.deepEqual(shown, predicted[i], `test image ${i}: the page's top-3 is not vicinity predict's`);
    else assert.equal(shown[0], predicted[i][0], `test image ${i}: the page's top-1 is not vicinity predict's`);
  }

  // a drawing: a stroke across the pad, read back at 28×28
  const box = await page.locator('#pad').boundingBox();
  assert.ok(box);
  await page.mouse.move(box.x + 60, box.y + 50);
  await page.mouse.down();
  for (const [x, y] of [[140, 120], [220, 60], [200, 220], [80, 230]]) await page.mouse.move(box.x + x, box.y + y, { steps: 8 });
  await page.mouse.up();
  await page.waitForSelector(`body[data-runs="${++runs}"]`);
  const drawn = await page.evaluate(() => (globalThis as unknown as { vicinityDemo: Demo }).vicinityDemo);
  assert.ok(drawn.lastInput.some((v) => v > 0), 'the drawing reached the model');
  checkAgainstVicinity(model, drawn, await shownTop3(page), 'drawing');
  assert.equal((await shownTop3(page)).length, 3);
  assert.deepEqual(errors, [], `console errors:\n${errors.join('\n')}`);
});
