/**
 * `vicinity explain <checkpoint> <image>`: what the network looks at, as PNG files plus one HTML
 * page in --out: the input as the model sees it (eval transform of the checkpoint's
 * pretrained_cfg), Grad-CAM of the predicted (or --class) class at the last stage (or --layer),
 * every attention layer's map for the query pixels (--query, default the centre and the Grad-CAM
 * peak), the LA-layer's deformed sampling points (one colour per head), LESA's gate per layer and
 * LSAG's weight per shifted variant. explain.json holds the numbers.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { explainImage, type ExplainImageResult } from '../analysis/explain-image.js';
import type { Device } from '../tensor/tensor.js';
import type { CfgOverrides } from '../train/model-metadata.js';
import { loadCheckpointModel, readImageBatch } from './checkpoint-model.js';
import { escapeHtml, pageShell } from './html-page.js';

export interface ExplainCommandOptions extends CfgOverrides {
  /** Output directory; default explain-<image name>. */
  out?: string;
  layer?: string;
  /** A class index or name; default the top-1 prediction. */
  class?: string;
  /** Query pixels 'y,x' in input pixels. */
  query?: string[];
  device?: Device;
  json?: boolean;
}

/** Writes a file atomically (temp + rename). */
async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, file);
}

function parseQuery(text: string): [number, number] {
  const m = /^\s*(\d+)\s*,\s*(\d+)\s*$/.exec(text);
  if (!m) throw new Error(`--query must be 'y,x' in input pixels (e.g. 14,14), got '${text}'`);
  return [Number(m[1]), Number(m[2])];
}

const slug = (s: string) => (s === '' ? 'model' : s.replace(/[^A-Za-z0-9_.-]/g, '_'));

/** Runs `vicinity explain`; returns the exit code. */
export async function explainCommand(checkpoint: string, image: string, options: ExplainCommandOptions = {}): Promise<number> {
  const device = options.device ?? 'cpu';
  const loaded = await loadCheckpointModel(checkpoint, options, device);
  const { model, cfg, transform } = loaded;
  try {
    let classIndex: number | undefined;
    if (options.class !== undefined) {
      classIndex = /^\d+$/.test(options.class) ? Number(options.class) : cfg.label_names.indexOf(options.class);
      if (classIndex < 0 || classIndex >= cfg.num_classes) {
        throw new Error(`--class '${options.class}' is not a class of this model; the classes are ${cfg.label_names.join(', ')} (or 0..${cfg.num_classes - 1})`);
      }
    }
    const input = await readImageBatch([image], transform, device);
    let result: ExplainImageResult;
    try {
      result = explainImage(model, input, {
        layer: options.layer, classIndex, queries: options.query?.map(parseQuery), mean: cfg.mean, std: cfg.std, labels: cfg.label_names,
      });
    } finally {
      input.dispose();
    }
    const out = options.out ?? `explain-${path.parse(image).name}`;
    const files = await writeExplanation(out, image, checkpoint, cfg.architecture, result);
    if (options.json) console.log(JSON.stringify(files.summary, null, 2));
    else {
      const t = result.top[0];
      console.log(`${image}: ${t.label} (${(100 * t.probability).toFixed(1)}%) by ${cfg.architecture}`);
      console.log(`Grad-CAM at ${result.gradCam.layer}; ${result.attention.length} attention maps, ${result.laPoints.length} LA point sets, ` +
        `${result.lesaGates.length} LESA gates`);
      console.log(`page: ${files.page}`);
    }
    return 0;
  } finally {
    model.dispose();
  }
}

/** The PNGs, explain.json and index.html of one explanation in `out`. */
export async function writeExplanation(out: string, image: string, checkpoint: string, model: string, r: ExplainImageResult): Promise<{ page: string; summary: unknown }> {
  await mkdir(out, { recursive: true });
  await writeAtomic(path.join(out, 'input.png'), r.inputPng);
  await writeAtomic(path.join(out, 'gradcam.png'), r.gradCam.png);
  const attention = [];
  for (const [i, a] of r.attention.entries()) {
    const file = `attention-${String(i).padStart(2, '0')}-${slug(a.module)}.png`;
    await writeAtomic(path.join(out, file), a.png);
    attention.push({ file, module: a.module, type: a.type, kind: a.kind, query: a.query, grid: a.grid, keys: [a.keyHeight, a.keyWidth] });
  }
  const la = [];
  for (const [i, l] of r.laPoints.entries()) {
    const file = `la-points-${String(i).padStart(2, '0')}-${slug(l.module)}.png`;
    await writeAtomic(path.join(out, file), l.png);
    la.push({ file, module: l.module, query: l.query, points: l.imagePoints, gridPoints: l.points });
  }
  const summary = {
    image, checkpoint, model, top: r.top, classIndex: r.classIndex, gradCam: { file: 'gradcam.png', layer: r.gradCam.layer },
    attention, laPoints: la, lesaGates: r.lesaGates, lsagVariants: r.lsagVariants,
  };
  await writeAtomic(path.join(out, 'explain.json'), `${JSON.stringify(summary, null, 2)}\n`);
  const page = path.join(out, 'index.html');
  await writeAtomic(page, explainHtml(summary, r));
  return { page, summary };
}

function figure(file: string, caption: string): string {
  return `<figure><img src="${escapeHtml(file)}" alt="${escapeHtml(caption)}"><figcaption>${escapeHtml(caption)}</figcaption></figure>`;
}

function explainHtml(s: { image: string; model: string; checkpoint: string; attention: { file: string; module: string; kind: string; query: number[] }[]; laPoints: { file: string; module: string; query: number[] }[] }, r: ExplainImageResult): string {
  const top = r.top.map((t) => `<tr><td>${escapeHtml(t.label)}</td><td>${(100 * t.probability).toFixed(2)}%</td></tr>`).join('');
  const gates = r.lesaGates.map((g) => `<tr><td>${escapeHtml(g.module)}</td><td>${g.mean.toFixed(3)}</td><td>${g.min.toFixed(3)}</td><td>${g.max.toFixed(3)}</td></tr>`).join('');
  const variants = r.lsagVariants.map((v) => `<tr><td>${escapeHtml(v.module)}</td><td>${v.query.join(', ')}</td><td>${v.weights.map((w) => w.toFixed(3)).join(' ')}</td></tr>`).join('');
  const body = `
<h1>${escapeHtml(path.basename(s.image))} — ${escapeHtml(s.model)}</h1>
<p class="meta">checkpoint ${escapeHtml(s.checkpoint)}; prediction <b>${escapeHtml(r.top[0].label)}</b>; queries are marked with a red cross.</p>
<section><h2>Input and Grad-CAM</h2><div class="grid">${figure('input.png', 'input (eval transform)')}${figure('gradcam.png', `Grad-CAM of ${r.top.find((t) => t.index === r.classIndex)?.label ?? r.classIndex} at ${r.gradCam.layer}`)}</div>
<table><thead><tr><th>class</th><th>probability</th></tr></thead><tbody>${top}</tbody></table></section>
${s.attention.length ? `<section><h2>Attention maps (head mean)</h2><div class="grid">${s.attention.map((a) => figure(a.file, `${a.module} (${a.kind}) query ${a.query.join(',')}`)).join('')}</div></section>` : ''}
${s.laPoints.length ? `<section><h2>LA-layer deformed sampling points (colour = head)</h2><div class="grid">${s.laPoints.map((l) => figure(l.file, `${l.module} query ${l.query.join(',')}`)).join('')}</div></section>` : ''}
${gates ? `<section><h2>LESA gate ω (weight of the binary term; y = m + ω ⊙ binary)</h2><table><thead><tr><th>layer</th><th>mean</th><th>min</th><th>max</th></tr></thead><tbody>${gates}</tbody></table></section>` : ''}
${variants ? `<section><h2>LSAG local attention: weight per shifted variant (head mean)</h2><table><thead><tr><th>layer</th><th>query</th><th>weights</th></tr></thead><tbody>${variants}</tbody></table></section>` : ''}`;
  return pageShell(`explain: ${path.basename(s.image)}`, body);
}
