/**
 * LSAG shift-variant patch embedding (Sheynin et al., "Locally Shifted Attention With Early Global
 * Integration").
 *   §3.1  "shifting the entire image I by P_x and P_y, and applying circular padding at the edges",
 *         then one S×S conv per variant: O'^s_i = Conv_s(shift_s(I))_i      → forward()
 *   §3.1  variant s = 1 (here t = 0) is the unshifted image (P_x = P_y = 0)  → forward()
 * Legend: T variants, t the variant index, (dy, dx) a shift in (rows, cols), K/S/P the conv's
 * kernel, stride and zero padding, D the embedding width, N = h·w tokens per variant.
 * Reference: shellysheynin/Locally-SAG-Transformer@a1284a46, `cifar/cifar_model.py` and
 * `imagenet_model.py`, class PatchEmbed (reference-layers.md §4.1). Fixtures (through the local stage
 * of lsag-stage.ts): lsag-cifar-local-open, lsag-imagenet-local-open.
 * Deviations:
 *   1. The variant set is an option (`variant`): 'cifar' = the CIFAR file's 18 `torch.roll` shifts,
 *      'imagenet' = the ImageNet file's 10 circular *paddings* (the image grows by up to 3 rows and
 *      columns on the top/left; it is not rolled), each in the official order.
 *   2. A wrong input size, rank or channel count throws ShapeError (the reference asserts H and W
 *      only); a conv whose padded ImageNet variants would give a different token grid than the
 *      unshifted image, or a circular pad wider than the image, throws RangeError at construction
 *      (the reference fails in torch.stack or F.pad at the first forward).
 *   3. `norm_layer` is not offered: the reference always passes None (Identity).
 *   4. `numShifts` keeps only the first n shifts of the set (T = n + 1; default all, the released
 *      code's), for the paper's "#Shifting" ablation (§4.1, Table 6): the CIFAR set's first 8 are
 *      its horizontal/vertical shifts, the paper's 9-variant subset. Keys stay `projections.{t}`.
 */
import { Conv2d } from '../nn/layers/conv.js';
import { ModuleList } from '../nn/layers/containers.js';
import { integerAtLeast, knownOptions, numberInRange, oneOf, optionNames } from '../nn/layers/validation.js';
import { Module } from '../nn/module.js';
import { truncNormal_, zeros_ } from '../nn/init.js';
import * as F from '../ops/functional.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';

/** Which official shift set to use: the CIFAR file's rolls or the ImageNet file's paddings. */
export type LsagVariant = 'cifar' | 'imagenet';
export const LSAG_VARIANTS: readonly LsagVariant[] = ['cifar', 'imagenet'];

/**
 * CIFAR shifts t = 1..17 as `torch.roll(img, shifts=(dy, dx), dims=(2, 3))`, i.e.
 * out[y, x] = img[(y − dy) mod H, (x − dx) mod W]; t = 0 is the unshifted image.
 */
export const CIFAR_SHIFTS: readonly (readonly [number, number])[] = [
  [1, 0], [0, 1], [-1, 0], [0, -1], [2, 0], [0, 2], [-2, 0], [0, -2],
  [1, 1], [1, 2], [1, -1], [-1, 1], [-1, 2], [-1, -1], [2, 1], [2, 2], [2, -1],
];

/**
 * ImageNet paddings t = 1..9 as `F.pad(img, (left, right, top, bottom), mode='circular')`: the last
 * `left` columns / `top` rows are prepended; t = 0 is the unshifted image.
 */
export const IMAGENET_PADDINGS: readonly (readonly [number, number, number, number])[] = [
  [1, 0, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0], [0, 0, 1, 0], [0, 0, 2, 0], [0, 0, 3, 0],
  [1, 0, 1, 0], [2, 0, 2, 0], [3, 0, 3, 0],
];

/**
 * The number of variants T (including the unshifted one) of a shift set, all its shifts or the
 * first `numShifts` of them.
 */
export function lsagNumVariants(variant: LsagVariant, numShifts?: number): number {
  return (numShifts ?? lsagMaxShifts(variant)) + 1;
}

/** The shifts a set offers besides the unshifted image: 17 ('cifar'), 9 ('imagenet'). */
export function lsagMaxShifts(variant: LsagVariant): number {
  return variant === 'cifar' ? CIFAR_SHIFTS.length : IMAGENET_PADDINGS.length;
}

export interface LsagShiftedEmbeddingOptions {
  /** Side of the square input image (the reference's `img_size`). */
  imgSize: number;
  /** Conv kernel K (the model's `kernel_size`, passed to PatchEmbed as `patch_size`). */
  kernelSize: number;
  /** Conv stride S; default 1. */
  strideSize?: number;
  /** Conv zero padding P; default 1 (the reference's default). */
  paddingSize?: number;
  /** Image channels; default 3. */
  inChans?: number;
  /** Embedding width D. */
  embedDim: number;
  /** The shift set: 'cifar' (18 rolls) or 'imagenet' (10 circular paddings). */
  variant: LsagVariant;
  /**
   * Shifted variants kept: the first n of the set (0..17 for 'cifar', 0..9 for 'imagenet'), so
   * T = numShifts + 1; default all (the paper's T = 18 / 10). 0 keeps the unshifted image only.
   */
  numShifts?: number;
}

const LSAG_SHIFTED_EMBEDDING_OPTION_NAMES = optionNames<LsagShiftedEmbeddingOptions>({
  imgSize: 1, kernelSize: 1, strideSize: 1, paddingSize: 1, inChans: 1, embedDim: 1, variant: 1, numShifts: 1,
});

/** `numShifts` checked against the set: an integer (TypeError) in 0..lsagMaxShifts(variant) (RangeError). */
export function checkNumShifts(layer: string, variant: LsagVariant, numShifts: unknown): number {
  const max = lsagMaxShifts(variant);
  if (numShifts === undefined) return max;
  return numberInRange(layer, `numShifts (variant '${variant}' has ${max} shifts)`, integerAtLeast(layer, 'numShifts', numShifts, 0), 0, max);
}

/** ⌊(size + 2P − K) / S⌋ + 1, the conv's output side. */
function convOut(size: number, k: number, s: number, p: number): number {
  return Math.floor((size + 2 * p - k) / s) + 1;
}

/**
 * T shifted copies of an image, each through its own conv, as tokens.
 *
 * Shape: image (B, inChans, imgSize, imgSize) → patches (T, B, N, D), N = gridSize², gridSize =
 * ⌊(imgSize + 2P − K)/S⌋ + 1; T = numShifts + 1, by default 18 ('cifar') or 10 ('imagenet').
 *
 * Parameters: `projections.{t}.weight` (D, inChans, K, K) trunc_normal(std .02, cut ±2),
 * `projections.{t}.bias` (D) zeros (the reference's `_init_vit_weights`).
 *
 * Errors: RangeError/TypeError for bad sizes, an unknown variant, a numShifts outside 0..(the set's
 * shifts) or not an integer, a kernel larger than the padded
 * image, or ImageNet paddings that change the grid; ShapeError for an input that is not
 * (B, inChans, imgSize, imgSize).
 *
 * @example
 * const embed = new LsagShiftedEmbedding({ imgSize: 32, kernelSize: 3, strideSize: 1, paddingSize: 1, embedDim: 192, variant: 'cifar' });
 * const patches = embed.forward(images);   // (18, B, 1024, 192)
 */
export class LsagShiftedEmbedding extends Module {
  readonly imgSize: number;
  readonly kernelSize: number;
  readonly strideSize: number;
  readonly paddingSize: number;
  readonly inChans: number;
  readonly embedDim: number;
  readonly variant: LsagVariant;
  /** Shifted variants kept (the first numShifts of the set). */
  readonly numShifts: number;
  /** T = numShifts + 1, the number of variants. */
  readonly numVariants: number;
  /** Side of the token grid. */
  readonly gridSize: number;
  /** N = gridSize². */
  readonly numPatches: number;
  /** One conv per variant, `projections.{t}`. */
  readonly projections: ModuleList<Conv2d>;

  constructor(o: LsagShiftedEmbeddingOptions) {
    super();
    knownOptions('LsagShiftedEmbedding', o, LSAG_SHIFTED_EMBEDDING_OPTION_NAMES);
    const layer = 'LsagShiftedEmbedding';
    this.imgSize = integerAtLeast(layer, 'imgSize', o.imgSize, 1);
    this.kernelSize = integerAtLeast(layer, 'kernelSize', o.kernelSize, 1);
    this.strideSize = integerAtLeast(layer, 'strideSize', o.strideSize ?? 1, 1);
    this.paddingSize = integerAtLeast(layer, 'paddingSize', o.paddingSize ?? 1, 0);
    this.inChans = integerAtLeast(layer, 'inChans', o.inChans ?? 3, 1);
    this.embedDim = integerAtLeast(layer, 'embedDim', o.embedDim, 1);
    this.variant = oneOf(layer, 'variant', o.variant, LSAG_VARIANTS);
    this.numShifts = checkNumShifts(layer, this.variant, o.numShifts);
    this.numVariants = lsagNumVariants(this.variant, this.numShifts);
    this.gridSize = this.checkGrid();
    this.numPatches = this.gridSize * this.gridSize;
    const convs = Array.from({ length: this.numVariants }, () => new Conv2d({
      inChannels: this.inChans, outChannels: this.embedDim, kernelSize: this.kernelSize,
      stride: this.strideSize, padding: this.paddingSize,
    }));
    this.projections = this.register('projections', new ModuleList(convs));
    this.resetParameters();
  }

  /** The reference's `_init_vit_weights` for Conv2d: weight trunc_normal(std .02), bias 0. */
  resetParameters(): void {
    for (const conv of this.projections) {
      truncNormal_(conv.weight, { std: 0.02 });
      if (conv.bias) zeros_(conv.bias);
    }
  }

  /** The token grid side; throws RangeError when a variant cannot produce it. */
  private checkGrid(): number {
    const [size, k, s, p] = [this.imgSize, this.kernelSize, this.strideSize, this.paddingSize];
    if (size + 2 * p < k) {
      throw new RangeError(`LsagShiftedEmbedding: kernelSize ${k} exceeds the padded image (imgSize ${size} + 2·paddingSize ${p}); ` +
        'use a smaller kernel or more padding');
    }
    const grid = convOut(size, k, s, p);
    if (this.variant === 'imagenet') {
      // The kept paddings' growth: up to 3 pixels with all 9, none with numShifts 0.
      const growth = Math.max(0, ...IMAGENET_PADDINGS.slice(0, this.numShifts).map(([l, r, t, b]) => Math.max(l + r, t + b)));
      if (size < growth) {
        throw new RangeError(`LsagShiftedEmbedding: variant 'imagenet' pads circularly by up to ${growth} pixels, which needs imgSize ≥ ${growth}, got ${size}`);
      }
      const grown = Array.from({ length: growth }, (_, i) => i + 1).find((extra) => convOut(size + extra, k, s, p) !== grid);
      if (grown !== undefined) {
        throw new RangeError(`LsagShiftedEmbedding: with variant 'imagenet' the image grows by up to ${growth} pixels, and ` +
          `imgSize ${size} + ${grown} gives a ${convOut(size + grown, k, s, p)}-token side instead of ${grid} ` +
          `(kernelSize ${k}, strideSize ${s}, paddingSize ${p}); pick sizes with ⌊(imgSize + ${growth} + 2P − K)/S⌋ = ⌊(imgSize + 2P − K)/S⌋, fewer numShifts, or variant 'cifar'`);
      }
    }
    return grid;
  }

  /** Shifted copy t of the image: t = 0 unshifted, then the variant's rolls or circular paddings. */
  shiftedImage(img: Tensor, t: number): Tensor {
    if (t === 0) return img;
    if (this.variant === 'cifar') return img.roll([...CIFAR_SHIFTS[t - 1]], [2, 3]);
    return F.pad(img, [...IMAGENET_PADDINGS[t - 1]], { mode: 'circular' });
  }

  forward(img: Tensor): Tensor {
    const shape = img.shape;
    const [, c, h, w] = shape;
    if (shape.length !== 4 || c !== this.inChans || h !== this.imgSize || w !== this.imgSize) {
      throw new ShapeError(`LsagShiftedEmbedding: expected an image (B, ${this.inChans}, ${this.imgSize}, ${this.imgSize}), ` +
        `got shape [${shape.join(', ')}]; resize the input or build the embedding with imgSize ${shape.length === 4 ? h : '<side>'}`);
    }
    const tokens: Tensor[] = [];
    for (let t = 0; t < this.numVariants; t++) {
      const maps = this.projections.at(t).forward(this.shiftedImage(img, t));   // §3.1: (B, D, h, w)
      tokens.push(maps.flatten(2).transpose(1, 2));                              // (B, N, D)
    }
    return F.stack(tokens, 0);                                                   // (T, B, N, D)
  }
}
