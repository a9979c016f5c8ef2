/**
 * One image through a TransformSpec: decoded HWC uint8 in, normalised CHW float32 out.
 *
 * Reference: timm/data/transforms_factory.py — `transforms_imagenet_train` (RandomResizedCrop
 * AndInterpolation → RandomHorizontalFlip → RandAugment or ColorJitter → ToTensor, Normalize →
 * RandomErasing) and `transforms_imagenet_eval` (Resize(⌊size / crop_pct⌋) → CenterCrop →
 * ToTensor, Normalize); torchvision RandomCrop(size, padding) for `randomCropPadding`;
 * timm/data/transforms.py `RandomResizedCropAndInterpolation.get_params` for the crop box.
 * Normalisation is torchvision's float32 arithmetic ((v / 255 − mean) / std), tabulated per
 * channel for the 256 byte values, so it is exact and one table lookup per value.
 *
 * Random draws (all from the caller's Rng, in this order, each only if its step is on): crop box
 * → flip → RandAugment or ColorJitter → RandomErasing. The same (image, spec, Rng key) therefore
 * gives the same bytes in any worker.
 *
 * Channels: the result equals converting at load (Pillow 'L' luma, or gray replicated to RGB), but
 * the conversion is done as late as that allows: RGB → gray before the first resize or colour op,
 * else in the final loop; gray → RGB before RandAugment (whose fill is per channel), else in the
 * final loop. So an already-sized image with no augmentation costs exactly one loop.
 *
 * Deviations from timm / torchvision:
 *   1. Train without randomResizedCrop or randomCropPadding resizes to `size` (timm always crops).
 *   2. RandomResizedCrop rejects zero-sized boxes (as torchvision does; timm does not check).
 *   3. With no RandAugment, the flip is folded into the normalising loop (the colour ops in
 *      between commute with it), so no flipped copy is made.
 *   4. The spec is validated and its tables built once per spec object (cached by identity): do
 *      not mutate a spec after first use.
 */

import type { DecodedImage } from '../dataset.js';
import type { Rng } from '../rng.js';
import { enhance, grayToRgb, luma, toGray, type Enhancement } from './color-ops.js';
import {
  centerCrop, crop, hflip, hflipInPlace, resize, roundHalfEven, type CropBox, type Interpolation,
} from './geometry.js';
import { parseRandAugment, randAugment, type RandAugmentConfig } from './rand-augment.js';
import { randomErasing } from './random-erasing.js';
import type { TransformSpec } from './spec.js';

/** What a spec compiles to, once. */
interface Plan {
  /** `channels × 256` normalised values of each byte. */
  table: Float32Array;
  interpolation: Interpolation;
  randAugment: RandAugmentConfig | null;
  /** RandAugment's fill, timm's img_mean = round(255 · mean) per channel. */
  fill: number[];
}

const plans = new WeakMap<TransformSpec, Plan>();

/**
 * Runs `spec` on `image` and writes `spec.channels × H × W` normalised float32 values (CHW) to
 * `out[offset…]`. Never modifies `image`.
 *
 * @throws RangeError when the spec is invalid or `out` is too short (the message names the field).
 */
export function applyTransforms(image: DecodedImage, spec: TransformSpec, rng: Rng, out: Float32Array, offset: number): void {
  const plan = planFor(spec);
  const [height, width] = spec.size;
  if (!(Number.isInteger(offset) && offset >= 0 && offset + spec.channels * height * width <= out.length)) {
    throw new RangeError(
      `applyTransforms: out (length ${out.length}) has no room for ${spec.channels}×${height}×${width} values at offset ${offset}`);
  }
  let img = image;
  let flip = false;
  if (spec.train) {
    img = trainGeometry(img, spec, plan, rng);
    flip = (spec.hflip ?? 0) > 0 && rng.next() < (spec.hflip ?? 0);
    if (plan.randAugment) {
      if (flip) img = img === image ? hflip(img) : hflipInPlace(img);
      flip = false;
      img = randAugment(toChannels(img, spec.channels), plan.randAugment, rng,
        { fill: plan.fill, interpolation: plan.interpolation });
    } else if ((spec.colorJitter ?? 0) > 0) {
      img = colorJitter(spec.channels === 1 ? toGray(img) : img, spec.colorJitter ?? 0, rng);
    }
  } else {
    img = evalGeometry(img, spec, plan.interpolation);
  }
  normalizeInto(img, plan.table, spec.channels, out, offset, flip);
  if (spec.train && spec.randomErasing && spec.randomErasing.probability > 0) {
    randomErasing(out, offset, [spec.channels, height, width], spec.randomErasing, rng);
  }
}

/** The image with `channels` channels (Pillow 'L' luma or replication). */
function toChannels(image: DecodedImage, channels: 1 | 3): DecodedImage {
  return channels === 3 ? grayToRgb(image) : toGray(image);
}

/**
 * resize() after converting RGB to gray for a 1-channel spec: luma must come before resampling to
 * equal conversion at load (crops and flips commute with it and need no early conversion).
 */
function resizeTo(image: DecodedImage, channels: 1 | 3, height: number, width: number, options: Parameters<typeof resize>[3]): DecodedImage {
  return resize(channels === 1 ? toGray(image) : image, height, width, options);
}

/** Random crop (resized or padded) to `size`, or a plain resize when neither is set. */
function trainGeometry(image: DecodedImage, spec: TransformSpec, plan: Plan, rng: Rng): DecodedImage {
  const [height, width] = spec.size;
  if (spec.randomResizedCrop) {
    const { scale, ratio } = spec.randomResizedCrop;
    const box = randomResizedCropBox(image.height, image.width, scale, ratio, rng);
    return resizeTo(image, spec.channels, height, width, { interpolation: plan.interpolation, box });
  }
  if (spec.randomCropPadding !== undefined) {
    const padding = spec.randomCropPadding;
    const paddedHeight = image.height + 2 * padding;
    const paddedWidth = image.width + 2 * padding;
    if (paddedHeight < height || paddedWidth < width) {
      throw new RangeError(
        `applyTransforms: a ${image.height}×${image.width} image padded by ${padding} is smaller than the ` +
        `${height}×${width} crop; use randomResizedCrop for images of varying size`);
    }
    if (paddedHeight === height && paddedWidth === width) return image;   // torchvision: no draw
    const top = rng.int(paddedHeight - height + 1) - padding;
    const left = rng.int(paddedWidth - width + 1) - padding;
    return crop(image, { top, left, height, width });   // crop() fills outside with 0 = the padding
  }
  return image.height === height && image.width === width
    ? image : resizeTo(image, spec.channels, height, width, { interpolation: plan.interpolation });
}

/**
 * timm RandomResizedCropAndInterpolation.get_params: up to 10 tries of area ~ U(scale)·area and
 * log-uniform aspect ratio; else the whole image clamped to the ratio range, centred.
 */
export function randomResizedCropBox(
  height: number, width: number, scale: readonly [number, number], ratio: readonly [number, number], rng: Rng,
): CropBox {
  const area = height * width;
  const logRatio = [Math.log(ratio[0]), Math.log(ratio[1])] as const;
  for (let attempt = 0; attempt < 10; attempt++) {
    const targetArea = rng.uniform(scale[0], scale[1]) * area;
    const aspect = Math.exp(rng.uniform(logRatio[0], logRatio[1]));
    const w = roundHalfEven(Math.sqrt(targetArea * aspect));
    const h = roundHalfEven(Math.sqrt(targetArea / aspect));
    if (w > 0 && h > 0 && w <= width && h <= height) {
      const top = rng.int(height - h + 1);
      const left = rng.int(width - w + 1);
      return { top, left, height: h, width: w };
    }
  }
  let w = width;
  let h = height;
  const inRatio = width / height;
  if (inRatio < Math.min(...ratio)) h = roundHalfEven(w / Math.min(...ratio));
  else if (inRatio > Math.max(...ratio)) w = roundHalfEven(h * Math.max(...ratio));
  return { top: Math.floor((height - h) / 2), left: Math.floor((width - w) / 2), height: h, width: w };
}

/**
 * timm eval: Resize(⌊size / centerCropPct⌋) — the shorter side for a square size, else both
 * sides — then CenterCrop(size); without centerCropPct, a resize to `size` when it differs.
 */
function evalGeometry(image: DecodedImage, spec: TransformSpec, interpolation: Interpolation): DecodedImage {
  const [height, width] = spec.size;
  if (spec.centerCropPct === undefined) {
    return image.height === height && image.width === width ? image : resizeTo(image, spec.channels, height, width, { interpolation });
  }
  const scaleHeight = Math.floor(height / spec.centerCropPct);
  const scaleWidth = Math.floor(width / spec.centerCropPct);
  let resizedHeight = scaleHeight;
  let resizedWidth = scaleWidth;
  if (height === width) {   // torchvision Resize(int): shorter side to the size, longer truncated
    if (image.width <= image.height) resizedHeight = Math.trunc(scaleHeight * image.height / image.width);
    else resizedWidth = Math.trunc(scaleHeight * image.width / image.height);
  }
  const resized = resizedHeight === image.height && resizedWidth === image.width
    ? image : resizeTo(image, spec.channels, resizedHeight, resizedWidth, { interpolation });
  return centerCrop(resized, height, width);
}

const JITTER_ORDER: readonly (Enhancement | null)[] = ['brightness', 'contrast', 'color', null];

/**
 * torchvision ColorJitter(b = c = s = strength, hue 0) as timm builds it from color_jitter:
 * a random order of the four adjustments, factors ~ U(max(0, 1 − strength), 1 + strength);
 * saturation is ImageEnhance.Color, hue (0) is skipped.
 */
export function colorJitter(image: DecodedImage, strength: number, rng: Rng): DecodedImage {
  const order = [0, 1, 2, 3];
  for (let i = 3; i > 0; i--) {
    const j = rng.int(i + 1);
    [order[i], order[j]] = [order[j], order[i]];
  }
  const factors = [0, 1, 2].map(() => rng.uniform(Math.max(0, 1 - strength), 1 + strength));
  for (const k of order) {
    const kind = JITTER_ORDER[k];
    if (kind) image = enhance(image, kind, factors[k]);
  }
  return image;
}

/**
 * The single loop that writes the output: HWC bytes → CHW floats through the per-channel table,
 * converting 1 → 3 channels (replicate) or 3 → 1 (luma) and mirroring when `flip`.
 */
function normalizeInto(image: DecodedImage, table: Float32Array, channels: 1 | 3, out: Float32Array, offset: number, flip: boolean): void {
  const { data, height, width } = image;
  const plane = height * width;
  const source = image.channels;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const p = (y * width + (flip ? width - 1 - x : x)) * source;
      const o = offset + y * width + x;
      if (channels === 3) {
        const g = source === 3 ? 1 : 0;
        out[o] = table[data[p]];
        out[o + plane] = table[256 + data[p + g]];
        out[o + 2 * plane] = table[512 + data[p + 2 * g]];
      } else {
        out[o] = table[source === 3 ? luma(data[p], data[p + 1], data[p + 2]) : data[p]];
      }
    }
  }
}

/** torchvision ToTensor + Normalize in float32, for every byte value of every channel. */
export function normalizationTable(mean: readonly number[], std: readonly number[], channels: number): Float32Array {
  const f32 = Math.fround;
  const table = new Float32Array(channels * 256);
  for (let c = 0; c < channels; c++) {
    const m = f32(mean[mean.length === 1 ? 0 : c]);
    const s = f32(std[std.length === 1 ? 0 : c]);
    for (let v = 0; v < 256; v++) table[c * 256 + v] = f32(f32(f32(v / 255) - m) / s);
  }
  return table;
}

function planFor(spec: TransformSpec): Plan {
  let plan = plans.get(spec);
  if (!plan) {
    checkSpec(spec);
    const mean = spec.mean.length === 1 ? Array(spec.channels).fill(spec.mean[0]) as number[] : spec.mean;
    plan = {
      table: normalizationTable(spec.mean, spec.std, spec.channels),
      interpolation: spec.interpolation ?? 'bilinear',
      randAugment: spec.train && spec.randAugment ? parseRandAugment(spec.randAugment) : null,
      fill: mean.map((m) => Math.min(255, roundHalfEven(255 * m))),
    };
    plans.set(spec, plan);
  }
  return plan;
}

/** Rejects specs that would otherwise fail deep inside an op, naming the field and the fix. */
function checkSpec(spec: TransformSpec): void {
  const bad = (field: string, value: unknown, want: string): never => {
    throw new RangeError(`TransformSpec.${field} ${want}, got ${JSON.stringify(value)}`);
  };
  const [height, width] = spec.size ?? [];
  if (!(Number.isInteger(height) && Number.isInteger(width) && height >= 1 && width >= 1)) bad('size', spec.size, 'must be [height, width] of positive integers');
  if (spec.channels !== 1 && spec.channels !== 3) bad('channels', spec.channels, 'must be 1 or 3');
  for (const field of ['mean', 'std'] as const) {
    const v = spec[field];
    if (!Array.isArray(v) || (v.length !== 1 && v.length !== spec.channels) || !v.every(Number.isFinite)) {
      bad(field, v, `must hold 1 or ${spec.channels} (channels) finite numbers`);
    }
  }
  if (spec.std.some((s) => s === 0)) bad('std', spec.std, 'must not contain 0 (it divides)');
  if (spec.centerCropPct !== undefined && !(spec.centerCropPct > 0 && spec.centerCropPct <= 1)) bad('centerCropPct', spec.centerCropPct, 'must be in (0, 1], e.g. 0.875');
  if (spec.randomCropPadding !== undefined && !(Number.isInteger(spec.randomCropPadding) && spec.randomCropPadding >= 0)) bad('randomCropPadding', spec.randomCropPadding, 'must be an integer ≥ 0');
  const rrc = spec.randomResizedCrop;
  if (rrc && !(rrc.scale[0] > 0 && rrc.scale[0] <= rrc.scale[1] && rrc.ratio[0] > 0 && rrc.ratio[0] <= rrc.ratio[1])) {
    bad('randomResizedCrop', rrc, 'needs 0 < scale[0] ≤ scale[1] and 0 < ratio[0] ≤ ratio[1], e.g. { scale: [0.08, 1], ratio: [0.75, 1.3333] }');
  }
  if (spec.hflip !== undefined && !(spec.hflip >= 0 && spec.hflip <= 1)) bad('hflip', spec.hflip, 'must be a probability in [0, 1]');
  if (spec.colorJitter !== undefined && !(spec.colorJitter >= 0)) bad('colorJitter', spec.colorJitter, 'must be ≥ 0');
  const erasing = spec.randomErasing;
  if (erasing && !(erasing.probability >= 0 && erasing.probability <= 1 && Number.isInteger(erasing.count) && erasing.count >= 1 &&
      ['pixel', 'rand', 'const'].includes(erasing.mode))) {
    bad('randomErasing', erasing, "needs probability in [0, 1], an integer count ≥ 1 and mode 'pixel' | 'rand' | 'const'");
  }
  if (spec.interpolation !== undefined && !['bilinear', 'bicubic', 'nearest'].includes(spec.interpolation)) {
    bad('interpolation', spec.interpolation, "must be 'bilinear', 'bicubic' or 'nearest'");
  }
}
