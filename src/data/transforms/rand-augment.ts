/**
 * RandAugment (Cubuk et al. 2020) as timm implements it, on HWC uint8 images.
 *
 * Reference: timm/data/auto_augment.py — `rand_augment_transform` (config string), `RandAugment`
 * (N ops drawn with replacement), `AugmentOp.__call__` (probability, magnitude noise, clipping),
 * the `_*_level_to_arg` functions (magnitude → argument, _LEVEL_DENOM = 10), `_RAND_TRANSFORMS`
 * and `_RAND_INCREASING_TRANSFORMS`. The ops themselves are Pillow's (color-ops.ts, geometry.ts).
 *
 * Grammar: 'rand' then '-'-separated sections, in any order:
 *   m<int> magnitude (default 10) · n<int> ops per image (2) · mstd<float> magnitude std (0;
 *   > 100 = uniform in [0, m]) · mmax<int> magnitude upper bound (10) · inc<0|1> the 'Increasing'
 *   op list (0) · p<float> probability of each chosen op (0.5).
 *
 * Random draws, in timm's order, all from the caller's Rng: the N op indices; then per op its
 * probability test, the magnitude noise, and the sign of a signed argument.
 *
 * Deviations from timm:
 *   1. 'inc0' selects the plain list (timm's `bool('0')` is True, so it selects the increasing one).
 *   2. Sections timm ignores or asserts on — no digits ('rand-foo'), unknown keys, 'w' (op choice
 *      weights), 't' (custom op lists) — are errors here, naming the section and the grammar.
 *   3. Resampling of Rotate/Shear/Translate is the pipeline's interpolation (what timm's
 *      create_transform passes unless it is 'random'); no random bilinear/bicubic choice.
 */

import type { DecodedImage } from '../dataset.js';
import type { Rng } from '../rng.js';
import {
  autocontrast, enhance, equalize, invert, posterize, solarize, solarizeAdd, type Enhancement,
} from './color-ops.js';
import { affine, rotationMatrix, type Interpolation } from './geometry.js';

/** timm's _LEVEL_DENOM: magnitude M means fraction M / 10 of each op's range. */
const LEVEL_DENOM = 10;

/** A parsed RandAugment config string. */
export interface RandAugmentConfig {
  /** Mean magnitude M (0..magnitudeMax). */
  magnitude: number;
  /** Ops applied per image, drawn with replacement. */
  numOps: number;
  /** Std of the Gaussian noise on M per op; Infinity = uniform in [0, M]; 0 = fixed. */
  magnitudeStd: number;
  /** Upper clip of the noisy magnitude (timm: `mmax or 10`). */
  magnitudeMax: number;
  /** Use `_RAND_INCREASING_TRANSFORMS` (severity grows with M for every op). */
  increasing: boolean;
  /** Probability that each chosen op is applied. */
  probability: number;
  /** The op list the config selects. */
  ops: readonly RandAugmentOp[];
}

/** Names of timm's RandAugment ops. */
export type RandAugmentOp =
  | 'AutoContrast' | 'Equalize' | 'Invert' | 'Rotate' | 'Posterize' | 'PosterizeIncreasing'
  | 'Solarize' | 'SolarizeIncreasing' | 'SolarizeAdd' | 'Color' | 'ColorIncreasing'
  | 'Contrast' | 'ContrastIncreasing' | 'Brightness' | 'BrightnessIncreasing'
  | 'Sharpness' | 'SharpnessIncreasing' | 'ShearX' | 'ShearY' | 'TranslateXRel' | 'TranslateYRel';

/** timm `_RAND_TRANSFORMS`. */
export const RAND_TRANSFORMS: readonly RandAugmentOp[] = [
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'Posterize', 'Solarize', 'SolarizeAdd', 'Color',
  'Contrast', 'Brightness', 'Sharpness', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel',
];

/** timm `_RAND_INCREASING_TRANSFORMS`. */
export const RAND_INCREASING_TRANSFORMS: readonly RandAugmentOp[] = [
  'AutoContrast', 'Equalize', 'Invert', 'Rotate', 'PosterizeIncreasing', 'SolarizeIncreasing',
  'SolarizeAdd', 'ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing',
  'SharpnessIncreasing', 'ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel',
];

const GRAMMAR =
  "the grammar is 'rand' followed by '-'-separated sections m<int> (magnitude, default 10), " +
  'n<int> (ops per image, 2), mstd<float> (magnitude std, 0), mmax<int> (magnitude bound, 10), ' +
  "inc<0|1> (increasing ops, 0), p<float> (op probability, 0.5), e.g. 'rand-m9-mstd0.5-inc1'";

/** Parses a timm RandAugment string such as 'rand-m9-mstd0.5-inc1'; throws a RangeError naming the bad part. */
export function parseRandAugment(config: string): RandAugmentConfig {
  const fail = (problem: string): never => {
    throw new RangeError(`RandAugment config '${config}': ${problem}; ${GRAMMAR}`);
  };
  const [head, ...sections] = config.split('-');
  if (head !== 'rand') fail(`must start with 'rand', got '${head}'`);
  const parsed: RandAugmentConfig = {
    magnitude: LEVEL_DENOM, numOps: 2, magnitudeStd: 0, magnitudeMax: LEVEL_DENOM,
    increasing: false, probability: 0.5, ops: RAND_TRANSFORMS,
  };
  for (const section of sections) {
    const match = /^([a-z]+)(\d.*)?$/.exec(section);
    if (!match || match[2] === undefined) fail(`section '${section}' is not a key followed by a number`);
    const [, key, text] = match as unknown as [string, string, string];
    const integer = (): number => (/^\d+$/.test(text) ? Number(text) : fail(`'${key}' needs an integer, got '${text}' in '${section}'`));
    const real = (): number => (/^\d+(\.\d*)?(e[+-]?\d+)?$/i.test(text) ? Number(text) : fail(`'${key}' needs a number, got '${text}' in '${section}'`));
    switch (key) {
      case 'm': parsed.magnitude = integer(); break;
      case 'n': parsed.numOps = integer(); break;
      case 'mstd': { const std = real(); parsed.magnitudeStd = std > 100 ? Infinity : std; break; }
      case 'mmax': parsed.magnitudeMax = integer() || LEVEL_DENOM; break;   // timm: `mmax or _LEVEL_DENOM`
      case 'inc': parsed.increasing = integer() !== 0; break;
      case 'p': {
        parsed.probability = real();
        if (parsed.probability > 1) fail(`'p' is a probability in [0, 1], got ${text}`);
        break;
      }
      case 'w': case 't': fail(`section '${section}' (timm's op weights / op list) is not supported`); break;
      default: fail(`unknown section '${section}' (key '${key}')`);
    }
  }
  parsed.ops = parsed.increasing ? RAND_INCREASING_TRANSFORMS : RAND_TRANSFORMS;
  return parsed;
}

/** What the geometric ops need from the pipeline. */
export interface RandAugmentOptions {
  /** Fill of pixels that Rotate/Shear/Translate uncover, per channel (timm: round(255·mean)). */
  fill: readonly number[];
  /** Resampling of Rotate/Shear/Translate. */
  interpolation: Interpolation;
}

/** Applies `config.numOps` randomly chosen ops (timm RandAugment.__call__); returns a new image or `image`. */
export function randAugment(image: DecodedImage, config: RandAugmentConfig, rng: Rng, options: RandAugmentOptions): DecodedImage {
  const chosen: RandAugmentOp[] = [];
  for (let i = 0; i < config.numOps; i++) chosen.push(config.ops[rng.int(config.ops.length)]);
  for (const op of chosen) {
    if (config.probability < 1 && rng.next() > config.probability) continue;
    image = applyOp(image, op, sampleMagnitude(config, rng), rng, options);
  }
  return image;
}

/** AugmentOp.__call__'s magnitude: M, plus noise when mstd > 0, clipped to [0, magnitudeMax]. */
function sampleMagnitude(config: RandAugmentConfig, rng: Rng): number {
  let m = config.magnitude;
  if (config.magnitudeStd === Infinity) m = rng.uniform(0, m);
  else if (config.magnitudeStd > 0) m += config.magnitudeStd * rng.normal();
  return Math.max(0, Math.min(m, config.magnitudeMax));
}

/** timm `_randomly_negate`: −v with probability ½. */
function randomlyNegate(v: number, rng: Rng): number {
  return rng.next() > 0.5 ? -v : v;
}

const ENHANCEMENT: Partial<Record<RandAugmentOp, Enhancement>> = {
  Color: 'color', ColorIncreasing: 'color', Contrast: 'contrast', ContrastIncreasing: 'contrast',
  Brightness: 'brightness', BrightnessIncreasing: 'brightness', Sharpness: 'sharpness', SharpnessIncreasing: 'sharpness',
};

/**
 * One op at magnitude `magnitude` (already sampled and clipped), with timm's level → argument
 * mapping; `rng` gives the random sign of Rotate/Shear/Translate and the Increasing enhancements.
 */
export function applyOp(image: DecodedImage, op: RandAugmentOp, magnitude: number, rng: Rng, options: RandAugmentOptions): DecodedImage {
  const level = magnitude / LEVEL_DENOM;
  const warp = (matrix: number[]): DecodedImage => affine(image, matrix, options);
  const enhancement = ENHANCEMENT[op];
  if (enhancement) {
    const factor = op.endsWith('Increasing')
      ? Math.max(0.1, 1.0 + randomlyNegate(level * 0.9, rng))   // _enhance_increasing_level_to_arg
      : level * 1.8 + 0.1;                                      // _enhance_level_to_arg
    return enhance(image, enhancement, factor);
  }
  switch (op) {
    case 'AutoContrast': return autocontrast(image);
    case 'Equalize': return equalize(image);
    case 'Invert': return invert(image);
    case 'Rotate': return warp(rotationMatrix(randomlyNegate(level * 30, rng), image.height, image.width));
    case 'Posterize': return posterize(image, Math.trunc(level * 4));
    case 'PosterizeIncreasing': return posterize(image, 4 - Math.trunc(level * 4));
    case 'Solarize': return solarize(image, Math.trunc(level * 256));
    case 'SolarizeIncreasing': return solarize(image, 256 - Math.trunc(level * 256));
    case 'SolarizeAdd': return solarizeAdd(image, Math.trunc(level * 110));
    case 'ShearX': return warp([1, randomlyNegate(level * 0.3, rng), 0, 0, 1, 0]);
    case 'ShearY': return warp([1, 0, 0, randomlyNegate(level * 0.3, rng), 1, 0]);
    case 'TranslateXRel': return warp([1, 0, randomlyNegate(level * 0.45, rng) * image.width, 0, 1, 0]);
    case 'TranslateYRel': return warp([1, 0, 0, 0, 1, randomlyNegate(level * 0.45, rng) * image.height]);
    default: throw new RangeError(`RandAugment: unknown op '${op}'`);
  }
}
