/**
 * `vicinity report <run-dir>`: one self-contained HTML file (inline SVG charts and data-URI
 * images; no network, no script) about a training run: curves from metrics.jsonl (loss, top-1/top-5
 * and lr per epoch, the EMA's when kept), the confusion matrix and per-class accuracy of the run's
 * checkpoint on the test split (eval transform of its pretrained_cfg), a grid of test images with
 * prediction, truth and Grad-CAM, the model summary (parameters and MACs per stage,
 * analysis/model-info.ts), the recipe and the environment; and, when the directory holds a
 * sweep.csv (vicinity sweep), the comparison of its settings.
 */
import { access, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { barChart, confusionChart, lineChart, renderSvg } from '../analysis/charts.js';
import { gradCam } from '../analysis/grad-cam.js';
import { summarizeModel } from '../analysis/model-info.js';
import { encodePng, fromNormalized, overlayMap, resizeNearest } from '../analysis/raster.js';
import { isDatasetName, loadDataset } from '../data/load-dataset.js';
import { DataLoader } from '../data/loader.js';
import { native } from '../native/binding.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import type { MetricsRow } from '../train/metrics-log.js';
import { loadCheckpointModel, type CheckpointModel } from './checkpoint-model.js';
import { escapeHtml, pageShell } from './html-page.js';

export interface ReportOptions {
  /** Output file; default <run-dir>/report.html. */
  out?: string;
  /** Test images in the grid; default 16. */
  samples?: number;
  dataRoot?: string;
  device?: Device;
  /** Evaluation batch size; default 500. */
  batchSize?: number;
}

async function exists(file: string): Promise<boolean> {
  return access(file).then(() => true, () => false);
}

async function readMetrics(runDir: string): Promise<MetricsRow[]> {
  const file = path.join(runDir, 'metrics.jsonl');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    throw new Error(`${runDir} has no metrics.jsonl; pass a run directory written by vicinity train (its --out)`);
  }
  return text.split('\n').filter((l) => l.trim() !== '').map((l, i) => {
    try {
      return JSON.parse(l) as MetricsRow;
    } catch {
      throw new Error(`${file}: line ${i + 1} is not JSON; the file is corrupt`);
    }
  });
}

/** Test-split predictions of the checkpoint: confusion matrix and the first `samples` images with Grad-CAM. */
async function testResults(loaded: CheckpointModel, runConfig: RunConfig, o: ReportOptions) {
  const { cfg, model, transform, device } = loaded;
  const dataset = cfg.dataset ?? runConfig.config?.dataset;
  if (!dataset || !isDatasetName(dataset)) throw new Error(`the checkpoint names no known dataset ('${dataset}'); the report needs its test split`);
  const test = await loadDataset({
    name: dataset, split: 'test', root: o.dataRoot ?? runConfig.config?.dataRoot, channels: cfg.input_size[0] as 1 | 3,
    source: dataset === 'fashion-mnist' ? (runConfig.config?.dataSource as 'auto' | 'full' | 'subset' | undefined) : undefined,
  });
  const n = cfg.num_classes;
  const matrix = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  const samples: { truth: number; predicted: number; probability: number; input: Float32Array; cam: Float32Array }[] = [];
  const loader = new DataLoader({ dataset: test, transform, batchSize: o.batchSize ?? 500, shuffle: false, seed: 0, workers: 0 });
  const want = o.samples ?? 16;
  try {
    for await (const batch of loader.epoch(0)) {
      const images = device === 'cpu' ? batch.images : batch.images.to({ device });
      const [pred, prob] = noGrad(() => tidy(() => {
        const p = model.forward(images).softmax(1).max(1);
        return [Array.from(p.indices.cpu().dataSync() as BigInt64Array, Number), Array.from(p.values.float().cpu().dataSync() as Float32Array)];
      }));
      const labels = Array.from(batch.labels.dataSync() as BigInt64Array, Number);
      labels.forEach((t, i) => { matrix[t][pred[i]]++; });
      if (samples.length < want) {
        const take = Math.min(want - samples.length, labels.length);
        const part: Tensor = images.narrow(0, 0, take);
        const cam = gradCam(model, part, {});
        const camValues = cam.cam.dataSync() as Float32Array;
        const inputValues = tidy(() => part.float().cpu().contiguous().dataSync() as Float32Array);
        const [, , h, w] = part.shape;
        const per = cfg.input_size[0] * h * w;
        for (let i = 0; i < take; i++) {
          samples.push({
            truth: labels[i], predicted: pred[i], probability: prob[i],
            input: inputValues.slice(i * per, (i + 1) * per), cam: camValues.slice(i * h * w, (i + 1) * h * w),
          });
        }
        for (const t of [cam.cam, cam.raw, cam.logits, part]) t.dispose();
      }
      if (images !== batch.images) images.dispose();
      batch.images.dispose();
      batch.labels.dispose();
    }
  } finally {
    await loader.close();
  }
  return { matrix, samples, count: test.count, dataset };
}

interface RunConfig {
  config?: Record<string, unknown> & { dataset?: string; dataRoot?: string; dataSource?: string; model?: string };
  recipe?: Record<string, unknown>;
  data?: Record<string, unknown>;
}

function dataUri(png: Buffer): string {
  return `data:image/png;base64,${png.toString('base64')}`;
}

function fmt(n: number, digits = 2): string {
  return Number.isFinite(n) ? n.toFixed(digits) : '–';
}

/** Training curves as three charts (loss, accuracy, lr). */
async function curveCharts(metrics: MetricsRow[]): Promise<{ name: string; svg: string }[]> {
  const loss = metrics.flatMap((r) => [
    { epoch: r.epoch + 1, value: r.train_loss, series: 'train loss' }, { epoch: r.epoch + 1, value: r.eval_loss, series: 'test loss' },
    ...(r.ema_eval_loss !== undefined ? [{ epoch: r.epoch + 1, value: r.ema_eval_loss, series: 'EMA test loss' }] : []),
  ]).filter((r) => Number.isFinite(r.value));
  const acc = metrics.flatMap((r) => [
    { epoch: r.epoch + 1, value: r.eval_top1, series: 'top-1' }, { epoch: r.epoch + 1, value: r.eval_top5, series: 'top-5' },
    ...(r.ema_eval_top1 !== undefined ? [{ epoch: r.epoch + 1, value: r.ema_eval_top1, series: 'EMA top-1' }, { epoch: r.epoch + 1, value: r.ema_eval_top5!, series: 'EMA top-5' }] : []),
  ]).filter((r) => Number.isFinite(r.value));
  const lr = metrics.map((r) => ({ epoch: r.epoch + 1, value: r.lr, series: 'lr' }));
  const axis = { x: 'epoch', y: 'value', series: 'series' };
  return [
    { name: 'loss', svg: await renderSvg(lineChart('loss per epoch', loss, { ...axis, yTitle: 'cross-entropy' })) },
    { name: 'accuracy', svg: await renderSvg(lineChart('test accuracy per epoch', acc, { ...axis, yTitle: 'accuracy (%)' })) },
    { name: 'lr', svg: await renderSvg(lineChart('learning rate (end of epoch)', lr, { ...axis, yTitle: 'lr' })) },
  ];
}

/** The environment the report was made in (the run's own device and settings are in the recipe section). */
function environment(): [string, string][] {
  const info = native.buildInfo();
  return [
    ['node', process.version], ['platform', `${process.platform}-${process.arch}`], ['cpu', `${os.cpus()[0]?.model ?? '?'} × ${os.cpus().length}`],
    ['libtorch', `${info.torchVersion} (${info.torchSource})`], ['threads', String(native.getNumThreads())],
    ['cuda', info.cudaAvailable ? `${info.cudaDevices} device(s)` : 'no'],
  ];
}

/** Builds the report's HTML. */
export async function buildReport(runDir: string, o: ReportOptions = {}): Promise<{ html: string; charts: number; samples: number; checkpoint: string }> {
  const metrics = await readMetrics(runDir);
  const runConfig = JSON.parse(await readFile(path.join(runDir, 'config.json'), 'utf8').catch(() => '{}')) as RunConfig;
  const checkpoint = (await exists(path.join(runDir, 'best.safetensors'))) ? path.join(runDir, 'best.safetensors') : path.join(runDir, 'last.safetensors');
  const loaded = await loadCheckpointModel(checkpoint, {}, o.device ?? 'cpu');
  const { cfg } = loaded;
  try {
    const results = await testResults(loaded, runConfig, o);
    const labels = cfg.label_names;
    const perClass = results.matrix.map((row, t) => ({ name: labels[t], value: 100 * row[t] / Math.max(1, row.reduce((a, b) => a + b, 0)) }));
    const correct = results.matrix.reduce((s, row, t) => s + row[t], 0);
    const charts = [
      ...await curveCharts(metrics),
      { name: 'confusion', svg: await renderSvg(confusionChart(labels, results.matrix)) },
      { name: 'per-class', svg: await renderSvg(barChart('per-class accuracy (test set)', perClass, 'accuracy (%)')) },
    ];
    const [c, h, w] = cfg.input_size;
    const summary = summarizeModel(loaded.model, [1, c, h, w], { depth: 1 });
    const scale = Math.max(1, Math.floor(112 / Math.max(h, w)));
    const grid = results.samples.map((s) => {
      const base = resizeNearest(fromNormalized(s.input, c, h, w, cfg.mean, cfg.std), w * scale, h * scale);
      const ok = s.truth === s.predicted;
      return `<figure class="${ok ? 'right' : 'wrong'}"><img src="${dataUri(encodePng(base))}" alt="test image"><img src="${dataUri(encodePng(overlayMap(base, s.cam, h, w, 0.5)))}" alt="Grad-CAM">` +
        `<figcaption>${ok ? '✓' : '✗'} predicted <b>${escapeHtml(labels[s.predicted])}</b> (${(100 * s.probability).toFixed(1)}%)<br>truth ${escapeHtml(labels[s.truth])}</figcaption></figure>`;
    }).join('');
    const last = metrics.at(-1);
    const stageRows = summary.stages.map((r) => `<tr><td>${escapeHtml(r.name)}</td><td>${escapeHtml(r.type)}</td><td class="num">${r.parameters.toLocaleString('en-US')}</td>` +
      `<td class="num">${(r.macs / 1e6).toFixed(2)}</td><td>${escapeHtml(JSON.stringify(r.outputShape))}</td></tr>`).join('');
    const sweep = await sweepSection(runDir);
    const chart = (name: string) => `<div class="chart" data-chart="${name}">${charts.find((x) => x.name === name)!.svg}</div>`;
    const body = `
<h1>${escapeHtml(cfg.architecture)} on ${escapeHtml(results.dataset)}</h1>
<p class="meta">run ${escapeHtml(path.resolve(runDir))}; checkpoint ${escapeHtml(path.basename(checkpoint))};
${metrics.length} epoch(s); last test top-1 ${fmt(last?.eval_top1 ?? NaN)}%, top-5 ${fmt(last?.eval_top5 ?? NaN)}%;
checkpoint on the ${results.count.toLocaleString('en-US')} test images: ${fmt(100 * correct / results.count)}% top-1.</p>
<section><h2>Training curves</h2><div class="grid">${chart('loss')}${chart('accuracy')}${chart('lr')}</div></section>
<section><h2>Test set</h2><div class="grid">${chart('confusion')}${chart('per-class')}</div></section>
<section><h2>Test images: prediction, truth and Grad-CAM (${escapeHtml(results.samples.length ? 'last stage' : '')})</h2><div class="grid samples">${grid}</div></section>
<section><h2>Model</h2><p>${summary.parameters.toLocaleString('en-US')} parameters, ${(summary.macs / 1e6).toFixed(2)} M MACs per ${h}×${w} image.</p>
<table><thead><tr><th>stage</th><th>type</th><th class="num">parameters</th><th class="num">MMACs</th><th>output</th></tr></thead><tbody>${stageRows}</tbody></table></section>
${sweep}
<section><h2>Recipe</h2><pre>${escapeHtml(JSON.stringify({ config: runConfig.config, recipe: runConfig.recipe, data: runConfig.data }, null, 2))}</pre></section>
<section><h2>Environment</h2><table><tbody>${environment().map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('')}</tbody></table></section>`;
    return { html: pageShell(`report: ${cfg.architecture}`, body), charts: charts.length + (sweep ? 1 : 0), samples: results.samples.length, checkpoint };
  } finally {
    loaded.model.dispose();
  }
}

/** The sweep comparison when the directory holds sweep.csv (vicinity sweep). */
async function sweepSection(runDir: string): Promise<string> {
  const file = path.join(runDir, 'sweep.csv');
  if (!(await exists(file))) return '';
  const [header, ...lines] = (await readFile(file, 'utf8')).trim().split('\n');
  const columns = header.split(',');
  const rows = lines.map((l) => Object.fromEntries(l.split(',').map((v, i) => [columns[i], v])));
  const bars = rows.map((r) => ({ name: r.setting, value: Number(r.top1) }));
  const svg = await renderSvg(barChart('test top-1 per setting (same recipe and budget)', bars, 'top-1 (%)'));
  const table = rows.map((r) => `<tr>${columns.map((c) => `<td>${escapeHtml(r[c] ?? '')}</td>`).join('')}</tr>`).join('');
  return `<section><h2>Sweep</h2><div class="chart" data-chart="sweep">${svg}</div>
<table><thead><tr>${columns.map((c) => `<th>${escapeHtml(c)}</th>`).join('')}</tr></thead><tbody>${table}</tbody></table></section>`;
}

/** The page of a sweep directory (sweep.csv, no metrics.jsonl of its own): the comparison of its settings. */
export async function buildSweepReport(dir: string, title = `sweep ${path.basename(path.resolve(dir))}`): Promise<string> {
  const section = await sweepSection(dir);
  if (!section) throw new Error(`${dir} has no sweep.csv`);
  return pageShell(title, `<h1>${escapeHtml(title)}</h1>
<p class="meta">every setting trained with the same recipe, data, seed and budget; each run's own report: vicinity report ${escapeHtml(dir)}/&lt;run&gt;</p>${section}`);
}

/** Runs `vicinity report`; returns the exit code. */
export async function reportCommand(runDir: string, options: ReportOptions = {}): Promise<number> {
  const out = options.out ?? path.join(runDir, 'report.html');
  if (!(await exists(path.join(runDir, 'metrics.jsonl'))) && (await exists(path.join(runDir, 'sweep.csv')))) {
    await writeFile(`${out}.tmp`, await buildSweepReport(runDir));
    await rename(`${out}.tmp`, out);
    console.log(`report: ${out} (sweep comparison)`);
    return 0;
  }
  const report = await buildReport(runDir, options);
  await writeFile(`${out}.tmp`, report.html);
  await rename(`${out}.tmp`, out);
  console.log(`report: ${out} (${report.charts} charts, ${report.samples} test images, from ${report.checkpoint})`);
  return 0;
}
