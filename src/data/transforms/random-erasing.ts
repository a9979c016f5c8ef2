/**
 * Random Erasing (Zhong et al. 2020) on one normalised CHW float32 image, as timm does it.
 *
 * Reference: timm/data/random_erasing.py — `RandomErasing._erase` and `_get_pixels`, with
 * create_transform's arguments (min_area 0.02, max_area 1/3, min_aspect 0.3, max_aspect 1/0.3,
 * min_count 1, max_count = re_count). Modes: 'pixel' fills each erased value with N(0, 1),
 * 'rand' one N(0, 1) value per channel, 'const' zeros — in normalised space, so 0 is the mean.
 *
 * Random draws, in timm's order: the probability test; the count (only when it can vary); then
 * per box up to 10 attempts of (area fraction, log aspect) and, for the accepted one, top, left
 * and the fill values (channel, row, column order).
 *
 * Deviations: 1. normal values come from the pipeline's Rng (Box–Muller), not torch's generator.
 *   2. No num_splits (timm's AugMix-style split batches).
 */

import type { Rng } from '../rng.js';
import { roundHalfEven } from './geometry.js';

/** timm RandomErasing arguments. */
export interface RandomErasingOptions {
  /** Probability that an image gets any box at all. */
  probability: number;
  /** 'pixel': per-value N(0,1); 'rand': per-channel N(0,1); 'const': 0. */
  mode: 'pixel' | 'rand' | 'const';
  /** Boxes per erased image: uniform in 1..count (timm max_count, min_count = 1). */
  count: number;
  /** Box area as a fraction of the image, split between the boxes. Default [0.02, 1/3]. */
  area?: [number, number];
  /** Box aspect (height / width), drawn log-uniformly. Default [0.3, 1/0.3]. */
  aspect?: [number, number];
}

/**
 * Erases up to `count` random boxes of the `channels × height × width` image at
 * `image[offset…]`, in place.
 */
export function randomErasing(
  image: Float32Array, offset: number, shape: readonly [number, number, number],
  options: RandomErasingOptions, rng: Rng,
): void {
  const [, height, width] = shape;
  if (!(options.count >= 1 && Number.isInteger(options.count))) {
    throw new RangeError(`randomErasing: count must be an integer ≥ 1, got ${options.count}`);
  }
  if (rng.next() > options.probability) return;
  const [minArea, maxArea] = options.area ?? [0.02, 1 / 3];
  const [minAspect, maxAspect] = options.aspect ?? [0.3, 1 / 0.3];
  const logAspect = [Math.log(minAspect), Math.log(maxAspect)] as const;
  const area = height * width;
  const count = options.count === 1 ? 1 : 1 + rng.int(options.count);
  for (let box = 0; box < count; box++) {
    for (let attempt = 0; attempt < 10; attempt++) {
      const targetArea = rng.uniform(minArea, maxArea) * area / count;
      const aspect = Math.exp(rng.uniform(logAspect[0], logAspect[1]));
      const h = roundHalfEven(Math.sqrt(targetArea * aspect));
      const w = roundHalfEven(Math.sqrt(targetArea / aspect));
      if (w < width && h < height) {
        const top = rng.int(height - h + 1);
        const left = rng.int(width - w + 1);
        fillBox(image, offset, shape, { top, left, height: h, width: w }, options.mode, rng);
        break;
      }
    }
  }
}

/** timm `_get_pixels` written into the box. */
function fillBox(
  image: Float32Array, offset: number, shape: readonly [number, number, number],
  box: { top: number; left: number; height: number; width: number }, mode: RandomErasingOptions['mode'], rng: Rng,
): void {
  const [channels, height, width] = shape;
  for (let c = 0; c < channels; c++) {
    const channelValue = mode === 'rand' ? rng.normal() : 0;
    for (let y = box.top; y < box.top + box.height; y++) {
      const row = offset + (c * height + y) * width;
      for (let x = box.left; x < box.left + box.width; x++) {
        image[row + x] = mode === 'pixel' ? rng.normal() : channelValue;
      }
    }
  }
}
