/**
 * Mixup (Zhang et al. 2018) and CutMix (Yun et al. 2019) over a batch, with label smoothing, as
 * timm's `Mixup` in mode 'batch' does it.
 *
 * Reference: timm/data/mixup.py — `Mixup._params_per_batch` (mix probability, switch probability,
 * λ ~ Beta(α, α)), `Mixup._mix_batch` (sample i with sample B−1−i of the flipped batch),
 * `rand_bbox` + `cutmix_bbox_and_lam` (correct_lam = True: λ = 1 − box area / image area),
 * `mixup_target` (off = smoothing / classes, on = 1 − smoothing + off; λ·y + (1 − λ)·y_flipped).
 * Arithmetic is float32 like torch's: x·λ + x_flipped·(1 − λ) with λ and 1 − λ rounded to float32.
 *
 * Random draws, in timm's order: the mix test, the switch test (only with both α > 0), λ, and for
 * CutMix the box centre (row, then column).
 *
 * Deviations: 1. An odd batch is allowed (timm asserts even): its middle sample is paired with
 *   itself, so its image and target stay unmixed. 2. No 'pair'/'elem' modes, no cutmix_minmax.
 *   3. λ comes from the pipeline's Rng (Marsaglia–Tsang), not NumPy's generator.
 */

import type { Rng } from '../rng.js';
import type { MixSpec } from './spec.js';

const f32 = Math.fround;

/** What mixBatch decided (exposed for tests and logs). */
export interface MixDecision {
  /** Weight of each sample's own image and label. */
  lambda: number;
  /** CutMix box (rows yl..yh−1, columns xl..xh−1), or null for mixup / no mixing. */
  box: { yl: number; yh: number; xl: number; xh: number } | null;
}

/**
 * Mixes `images` (B×C×H×W float32) in place and returns the soft targets, B × numClasses float32.
 * A batch that is not mixed (probability 1 − prob) still gets label-smoothed one-hot targets.
 */
export function mixBatch(
  images: Float32Array, labels: Int32Array, shape: [number, number, number, number], spec: MixSpec, rng: Rng,
): Float32Array {
  checkMixArguments(images, labels, shape, spec);
  const decision = decideMix(shape, spec, rng);
  if (decision.lambda !== 1) {
    if (decision.box) cutmixInPlace(images, shape, decision.box);
    else mixupInPlace(images, shape, decision.lambda);
  }
  return mixTargets(labels, spec.numClasses, decision.lambda, spec.labelSmoothing);
}

/** timm `_params_per_batch` then, for CutMix, `cutmix_bbox_and_lam` with correct_lam. */
export function decideMix(shape: readonly number[], spec: MixSpec, rng: Rng): MixDecision {
  const none: MixDecision = { lambda: 1, box: null };
  if (!(spec.mixupAlpha > 0 || spec.cutmixAlpha > 0) || !(rng.next() < spec.prob)) return none;
  let useCutmix = spec.mixupAlpha <= 0;
  if (spec.mixupAlpha > 0 && spec.cutmixAlpha > 0) useCutmix = rng.next() < spec.switchProb;
  const lambda = rng.beta(useCutmix ? spec.cutmixAlpha : spec.mixupAlpha);
  if (lambda === 1) return none;
  if (!useCutmix) return { lambda, box: null };
  const [height, width] = shape.slice(-2);
  const box = randomBox(height, width, lambda, rng);
  const boxArea = (box.yh - box.yl) * (box.xh - box.xl);
  return { lambda: 1 - boxArea / (height * width), box };
}

/** timm `rand_bbox` (margin 0): a box of ~(1 − λ) of the area around a uniform centre, clipped. */
function randomBox(height: number, width: number, lambda: number, rng: Rng): NonNullable<MixDecision['box']> {
  const ratio = Math.sqrt(1 - lambda);
  const cutH = Math.trunc(height * ratio);
  const cutW = Math.trunc(width * ratio);
  const cy = rng.int(height);
  const cx = rng.int(width);
  const clip = (v: number, size: number): number => Math.min(Math.max(v, 0), size);
  return {
    yl: clip(cy - Math.floor(cutH / 2), height), yh: clip(cy + Math.floor(cutH / 2), height),
    xl: clip(cx - Math.floor(cutW / 2), width), xh: clip(cx + Math.floor(cutW / 2), width),
  };
}

/** x ← λ·x + (1 − λ)·flip(x), pairs (i, B−1−i) updated together from their old values. */
function mixupInPlace(images: Float32Array, shape: readonly number[], lambda: number): void {
  const [batch, channels, height, width] = shape;
  const size = channels * height * width;
  const own = f32(lambda);
  const other = f32(1 - lambda);
  for (let i = 0; i < Math.floor(batch / 2); i++) {
    const a = i * size;
    const b = (batch - 1 - i) * size;
    for (let k = 0; k < size; k++) {
      const va = images[a + k];
      const vb = images[b + k];
      images[a + k] = f32(va * own) + f32(vb * other);
      images[b + k] = f32(vb * own) + f32(va * other);
    }
  }
}

/** x[:, :, box] ← flip(x)[:, :, box]: pairs (i, B−1−i) swap the box. */
function cutmixInPlace(images: Float32Array, shape: readonly number[], box: NonNullable<MixDecision['box']>): void {
  const [batch, channels, height, width] = shape;
  const size = channels * height * width;
  for (let i = 0; i < Math.floor(batch / 2); i++) {
    for (let c = 0; c < channels; c++) {
      for (let y = box.yl; y < box.yh; y++) {
        const a = i * size + (c * height + y) * width;
        const b = (batch - 1 - i) * size + (c * height + y) * width;
        for (let x = box.xl; x < box.xh; x++) {
          const t = images[a + x];
          images[a + x] = images[b + x];
          images[b + x] = t;
        }
      }
    }
  }
}

/** timm `mixup_target`: λ·smooth(one_hot(y)) + (1 − λ)·smooth(one_hot(flip(y))), float32. */
export function mixTargets(labels: Int32Array, numClasses: number, lambda: number, smoothing: number): Float32Array {
  const batch = labels.length;
  const offValue = f32(smoothing / numClasses);
  const onValue = f32(1 - smoothing + smoothing / numClasses);
  const own = f32(lambda);
  const other = f32(1 - lambda);
  const targets = new Float32Array(batch * numClasses);
  const offMixed = f32(f32(offValue * own) + f32(offValue * other));
  for (let i = 0; i < batch; i++) {
    const row = targets.subarray(i * numClasses, (i + 1) * numClasses);
    row.fill(offMixed);
    const mine = labels[i];
    const theirs = labels[batch - 1 - i];
    const value = (label: number): number =>
      f32(f32((label === mine ? onValue : offValue) * own) + f32((label === theirs ? onValue : offValue) * other));
    row[mine] = value(mine);
    row[theirs] = value(theirs);
  }
  return targets;
}

function checkMixArguments(images: Float32Array, labels: Int32Array, shape: readonly number[], spec: MixSpec): void {
  const [batch, channels, height, width] = shape;
  if (shape.length !== 4 || !shape.every((d) => Number.isInteger(d) && d >= 1)) {
    throw new RangeError(`mixBatch: shape must be 4 positive integers [B, C, H, W], got [${shape.join(', ')}]`);
  }
  if (images.length !== batch * channels * height * width) {
    throw new RangeError(
      `mixBatch: images hold ${images.length} values but shape [${shape.join(', ')}] needs ${batch * channels * height * width}`);
  }
  if (labels.length !== batch) throw new RangeError(`mixBatch: ${labels.length} labels for a batch of ${batch}`);
  if (!(Number.isInteger(spec.numClasses) && spec.numClasses >= 1)) {
    throw new RangeError(`mixBatch: numClasses must be a positive integer, got ${spec.numClasses}`);
  }
  for (let i = 0; i < batch; i++) {
    if (!(labels[i] >= 0 && labels[i] < spec.numClasses)) {
      throw new RangeError(`mixBatch: label ${labels[i]} of sample ${i} is outside 0..${spec.numClasses - 1} (numClasses)`);
    }
  }
}
