/**
 * Everything `vicinity explain` shows for one image, computed from a classifier and its eval-
 * transformed input: top-k, Grad-CAM (analysis/grad-cam.ts), each attention layer's map for chosen
 * query pixels, the LA-layer's deformed sampling points, LESA's gate and LSAG's variant weights
 * (analysis/attention-maps.ts over attention/attention-capture.ts records) — as data and PNG
 * pictures at a display size (whole input pixels, the longer side near 256 px).
 */
import { captureAttention, disposeRecords, type AttentionRecord } from '../attention/attention-capture.js';
import type { Module } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { attentionMap, laSamplingPoints, lesaGate, lsagVariantWeights, MAP_KINDS, queryGrid, type SamplingPoint } from './attention-maps.js';
import { gradCam } from './grad-cam.js';
import { drawCross, drawDot, encodePng, fromNormalized, HEAD_COLORS, overlayMap, resizeNearest, type Raster } from './raster.js';

export interface ExplainImageOptions {
  /** Grad-CAM layer (dotted module name); default the last feature-map stage. */
  layer?: string;
  /** Class to explain; default the top-1 prediction. */
  classIndex?: number;
  /** Query pixels (y, x) in input pixels; default the centre and the Grad-CAM peak. */
  queries?: [number, number][];
  /** How the input was normalised (to draw it). */
  mean: number[];
  std: number[];
  labels: string[];
  topK?: number;
}

export interface AttentionPicture {
  module: string;
  type: string;
  kind: string;
  /** The query in input pixels and on the layer's query grid. */
  query: [number, number];
  grid: [number, number];
  /** Head-mean weights over the layer's key grid (keyHeight × keyWidth). */
  keyHeight: number;
  keyWidth: number;
  png: Buffer;
}

export interface ExplainImageResult {
  top: { index: number; label: string; probability: number }[];
  classIndex: number;
  inputPng: Buffer;
  gradCam: { layer: string; png: Buffer; map: Float32Array; height: number; width: number };
  attention: AttentionPicture[];
  /** Per LA layer: the sampling points of every query, in input pixels, and the picture. */
  laPoints: { module: string; query: [number, number]; points: SamplingPoint[]; imagePoints: { head: number; y: number; x: number; weight?: number }[]; png: Buffer }[];
  lesaGates: { module: string; mean: number; min: number; max: number }[];
  lsagVariants: { module: string; query: [number, number]; weights: number[] }[];
}

/** Explains input (1, C, H, W) (an eval-transformed image) for `model` in eval mode. */
export function explainImage(model: Module, input: Tensor, o: ExplainImageOptions): ExplainImageResult {
  const [, channels, H, W] = input.shape;
  const scale = Math.max(1, Math.floor(256 / Math.max(H, W)));
  const base = resizeNearest(fromNormalized(tidy(() => input.float().cpu().contiguous().dataSync() as Float32Array), channels, H, W, o.mean, o.std), W * scale, H * scale);
  const cam = gradCam(model, input, { layer: o.layer, classIndex: o.classIndex });
  const camMap = Float32Array.from(cam.cam.dataSync() as Float32Array);
  const probs = tidy(() => Array.from(cam.logits.softmax(1).dataSync() as Float32Array));
  for (const t of [cam.cam, cam.raw, cam.logits]) t.dispose();
  const top = probs.map((p, index) => ({ index, label: o.labels[index] ?? String(index), probability: p }))
    .sort((a, b) => b.probability - a.probability).slice(0, o.topK ?? 5);
  let peak = 0;
  camMap.forEach((v, i) => { if (v > camMap[peak]) peak = i; });
  const queries = o.queries ?? [[Math.floor(H / 2), Math.floor(W / 2)], [Math.floor(peak / W), peak % W]];
  for (const [y, x] of queries) {
    if (!(Number.isInteger(y) && Number.isInteger(x) && y >= 0 && y < H && x >= 0 && x < W)) {
      throw new RangeError(`explain: query (${y}, ${x}) is outside the ${H}×${W} input; give --query y,x in input pixels`);
    }
  }
  const { records } = captureAttention(model, () => noGrad(() => tidy(() => { model.forward(input); })));
  try {
    return {
      top, classIndex: cam.classIndex[0], inputPng: encodePng(base),
      gradCam: { layer: cam.layer, png: encodePng(overlayMap(base, camMap, H, W, 0.5)), map: camMap, height: H, width: W },
      attention: attentionPictures(records, queries, base, [H, W], scale),
      laPoints: laPictures(records, queries, base, [H, W], scale),
      lesaGates: records.filter((r) => r.kind === 'lesa-gate').map((r) => ({ module: r.module, ...pick(lesaGate(r)) })),
      lsagVariants: records.filter((r) => r.kind === 'lsag-local').flatMap((r) => queries.map((q) => {
        const grid = toGrid(q, [H, W], queryGrid(r));
        const perHead = lsagVariantWeights(r, { y: grid[0], x: grid[1] });
        const weights = perHead[0].map((_, t) => perHead.reduce((s, h) => s + h[t], 0) / perHead.length);
        return { module: r.module, query: q, weights };
      })),
    };
  } finally {
    disposeRecords(records);
  }
}

function pick(g: { mean: number; min: number; max: number }): { mean: number; min: number; max: number } {
  return { mean: g.mean, min: g.min, max: g.max };
}

/** An input pixel's cell on a layer's grid. */
function toGrid([y, x]: [number, number], [H, W]: [number, number], [gh, gw]: [number, number]): [number, number] {
  return [Math.min(gh - 1, Math.floor((y * gh) / H)), Math.min(gw - 1, Math.floor((x * gw) / W))];
}

function attentionPictures(records: AttentionRecord[], queries: [number, number][], base: Raster, size: [number, number], scale: number): AttentionPicture[] {
  const out: AttentionPicture[] = [];
  for (const r of records) {
    if (!(MAP_KINDS as readonly string[]).includes(r.kind)) continue;
    const grid = queryGrid(r);
    for (const q of queries) {
      const g = toGrid(q, size, grid);
      const m = attentionMap(r, { y: g[0], x: g[1] });
      const mean = new Float32Array(m.height * m.width);
      for (let h = 0; h < m.heads; h++) for (let p = 0; p < mean.length; p++) mean[p] += m.data[h * mean.length + p] / m.heads;
      const picture = overlayMap(base, mean, m.height, m.width, 0.65);
      drawCross(picture, (q[1] + 0.5) * scale, (q[0] + 0.5) * scale, Math.max(3, scale), [255, 40, 40]);
      out.push({ module: r.module, type: r.type, kind: r.kind, query: q, grid: g, keyHeight: m.height, keyWidth: m.width, png: encodePng(picture) });
    }
  }
  return out;
}

function laPictures(records: AttentionRecord[], queries: [number, number][], base: Raster, [H, W]: [number, number], scale: number): ExplainImageResult['laPoints'] {
  const out: ExplainImageResult['laPoints'] = [];
  records.forEach((r, i) => {
    if (r.kind !== 'la-offsets') return;
    const weights = records.slice(i + 1).find((w) => w.kind === 'la-weights' && w.module === r.module);
    const [, , Ho, Wo] = r.value.shape;
    const { height, width } = r.layout;
    for (const q of queries) {
      const g = toGrid(q, [H, W], [Ho, Wo]);
      const points = laSamplingPoints(r, { y: g[0], x: g[1] }, weights);
      // Layer-input pixels → input pixels: the layer sees a (height × width) map of the H × W input.
      const imagePoints = points.map((p) => ({ head: p.head, y: (p.y + 0.5) * (H / height) - 0.5, x: (p.x + 0.5) * (W / width) - 0.5, weight: p.weight }));
      const picture: Raster = { ...base, data: Uint8ClampedArray.from(base.data) };
      for (const p of imagePoints) {
        drawDot(picture, (p.x + 0.5) * scale, (p.y + 0.5) * scale, Math.max(2, scale / 2), HEAD_COLORS[p.head % HEAD_COLORS.length]);
      }
      drawCross(picture, (q[1] + 0.5) * scale, (q[0] + 0.5) * scale, Math.max(3, scale), [255, 40, 40]);
      out.push({ module: r.module, query: q, points, imagePoints, png: encodePng(picture) });
    }
  });
  return out;
}
