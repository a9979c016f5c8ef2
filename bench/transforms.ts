/**
 * CPU time of the ImageNet training transform (RandomResizedCrop → flip → RandAugment
 * rand-m9-mstd0.5-inc1 → normalise → random erasing, bicubic) on a 375×500 RGB image, per image.
 * CPU time rather than wall time, so a shared machine's waiting is not counted. Recorded in
 * docs/data-loading.md.
 *
 *   npm run build:ts && node dist/bench/transforms.js
 */
import { createRng } from '../src/data/rng.js';
import { applyTransforms } from '../src/data/transforms/pipeline.js';
import type { TransformSpec } from '../src/data/transforms/spec.js';

const [height, width] = [375, 500];
const data = new Uint8Array(height * width * 3);
for (let i = 0; i < data.length; i++) data[i] = (i * 37 + (i >> 7)) & 255;   // a textured pattern
const image = { data, height, width, channels: 3 as const };
const spec: TransformSpec = {
  size: [224, 224], channels: 3, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], train: true,
  randomResizedCrop: { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] }, hflip: 0.5, randAugment: 'rand-m9-mstd0.5-inc1',
  randomErasing: { probability: 0.25, mode: 'pixel', count: 1 }, interpolation: 'bicubic',
};
const out = new Float32Array(3 * 224 * 224);
for (let k = 0; k < 10; k++) applyTransforms(image, spec, createRng(k), out, 0);   // JIT warm-up
const times: number[] = [];
for (let k = 0; k < 101; k++) {
  const start = process.cpuUsage();
  applyTransforms(image, spec, createRng(100 + k), out, 0);
  const used = process.cpuUsage(start);
  times.push((used.user + used.system) / 1000);
}
times.sort((a, b) => a - b);
console.log(`ImageNet train transform, 375×500 → 224×224: median ${times[50].toFixed(2)} ms CPU, p90 ${times[90].toFixed(2)} ms`);
