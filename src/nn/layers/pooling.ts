/**
 * 2-D pooling layers, after torch.nn.MaxPool2d, AvgPool2d, AdaptiveAvgPool2d and
 * AdaptiveMaxPool2d (PyTorch 1.13, torch/nn/modules/pooling.py). No parameters or buffers.
 *
 * Inputs are (N, C, H, W) or unbatched (C, H, W), as in PyTorch. The padding limit (at most half
 * the kernel, libtorch's pool2d_shape_check) is checked in the constructor so a misbuilt model
 * fails when it is built rather than on its first batch.
 */
import * as F from '../../ops/functional.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Module } from '../module.js';
import { booleanOption, checkInput, integerAtLeast, knownOptions, optionNames, sizeTuple } from './validation.js';

type Pair = number | [number, number];

interface PoolOptionsBase {
  kernelSize: Pair;
  /** Default: kernelSize (non-overlapping windows). */
  stride?: Pair;
  /** Implicit padding on both sides, at most half the kernel; default 0. */
  padding?: Pair;
  /** Round the output size up instead of down; default false. */
  ceilMode?: boolean;
}

export interface MaxPool2dOptions extends PoolOptionsBase {
  /** Spacing of the window elements; default 1. */
  dilation?: Pair;
}

const MAX_POOL2D_OPTION_NAMES = optionNames<MaxPool2dOptions>({ dilation: 1, kernelSize: 1, stride: 1, padding: 1, ceilMode: 1 });

export interface AvgPool2dOptions extends PoolOptionsBase {
  /** Count the zero padding in the average's divisor; default true. */
  countIncludePad?: boolean;
  /** Divide by this instead of the window size. */
  divisorOverride?: number;
}

const AVG_POOL2D_OPTION_NAMES = optionNames<AvgPool2dOptions>({
  countIncludePad: 1, divisorOverride: 1, kernelSize: 1, stride: 1, padding: 1, ceilMode: 1,
});

/** Checked kernel, stride and padding pairs. */
function windowOptions(layer: string, o: PoolOptionsBase): { kernelSize: number[]; stride: number[]; padding: number[] } {
  const kernelSize = sizeTuple(layer, 'kernelSize', o.kernelSize, 2, 1);
  const stride = sizeTuple(layer, 'stride', o.stride ?? kernelSize, 2, 1);
  const padding = sizeTuple(layer, 'padding', o.padding ?? 0, 2, 0);
  for (let i = 0; i < 2; i++) {
    if (padding[i] > Math.floor(kernelSize[i] / 2)) {
      throw new RangeError(`${layer}: padding must be at most half the kernel size, got padding [${padding}] ` +
        `with kernelSize [${kernelSize}]`);
    }
  }
  return { kernelSize, stride, padding };
}

function checkMaps(layer: string, x: Tensor): void {
  checkInput(layer, x, '(N, C, H, W) or (C, H, W)', { ranks: [3, 4] });
}

const pair = (v: number[]): [number, number] => [v[0], v[1]];

/**
 * Max over sliding windows (torch.nn.MaxPool2d).
 *
 * Shape: (N, C, H, W) → (N, C, H_out, W_out) with
 * H_out = ⌊(H + 2·padding − dilation·(kernelSize − 1) − 1) / stride⌋ + 1 (⌈⌉ with ceilMode).
 *
 * Errors: RangeError/TypeError for non-positive sizes or padding above half the kernel;
 * ShapeError for inputs that are not 3-D/4-D.
 *
 * @example
 * const pool = new MaxPool2d({ kernelSize: 3, stride: 2, padding: 1 });   // the ResNet stem pool
 */
export class MaxPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly ceilMode: boolean;

  constructor(o: MaxPool2dOptions) {
    super();
    knownOptions('MaxPool2d', o, MAX_POOL2D_OPTION_NAMES);
    const w = windowOptions('MaxPool2d', o);
    [this.kernelSize, this.stride, this.padding] = [pair(w.kernelSize), pair(w.stride), pair(w.padding)];
    this.dilation = pair(sizeTuple('MaxPool2d', 'dilation', o.dilation ?? 1, 2, 1));
    this.ceilMode = booleanOption('MaxPool2d', 'ceilMode', o.ceilMode ?? false);
  }

  forward(x: Tensor): Tensor {
    checkMaps('MaxPool2d', x);
    return F.maxPool2d(x, this.kernelSize, {
      stride: this.stride, padding: this.padding, dilation: this.dilation, ceilMode: this.ceilMode,
    });
  }
}

/**
 * Mean over sliding windows (torch.nn.AvgPool2d).
 *
 * Shape: (N, C, H, W) → (N, C, H_out, W_out) with
 * H_out = ⌊(H + 2·padding − kernelSize) / stride⌋ + 1 (⌈⌉ with ceilMode).
 *
 * Errors: as MaxPool2d, and RangeError for a divisorOverride that is not a positive integer.
 *
 * @example
 * const pool = new AvgPool2d({ kernelSize: 2 });   // halves H and W
 */
export class AvgPool2d extends Module {
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly ceilMode: boolean;
  readonly countIncludePad: boolean;
  readonly divisorOverride: number | undefined;

  constructor(o: AvgPool2dOptions) {
    super();
    knownOptions('AvgPool2d', o, AVG_POOL2D_OPTION_NAMES);
    const w = windowOptions('AvgPool2d', o);
    [this.kernelSize, this.stride, this.padding] = [pair(w.kernelSize), pair(w.stride), pair(w.padding)];
    this.ceilMode = booleanOption('AvgPool2d', 'ceilMode', o.ceilMode ?? false);
    this.countIncludePad = booleanOption('AvgPool2d', 'countIncludePad', o.countIncludePad ?? true);
    this.divisorOverride = o.divisorOverride === undefined ? undefined
      : integerAtLeast('AvgPool2d', 'divisorOverride', o.divisorOverride, 1);
  }

  forward(x: Tensor): Tensor {
    checkMaps('AvgPool2d', x);
    return F.avgPool2d(x, this.kernelSize, {
      stride: this.stride, padding: this.padding, ceilMode: this.ceilMode,
      countIncludePad: this.countIncludePad, divisorOverride: this.divisorOverride,
    });
  }
}

/** One size for both dims, or (H_out, W_out) where null keeps that input dim. */
export type AdaptiveSize = number | [number | null, number | null];

export interface AdaptivePoolOptions {
  outputSize: AdaptiveSize;
}

const ADAPTIVE_POOL_OPTION_NAMES = optionNames<AdaptivePoolOptions>({ outputSize: 1 });

/** Checks an adaptive output size; nulls stay null until forward knows the input. */
function adaptiveSize(layer: string, value: AdaptiveSize): [number | null, number | null] {
  const values = typeof value === 'number' ? [value, value] : value;
  if (!Array.isArray(values) || values.length !== 2) {
    throw new TypeError(`${layer}: outputSize must be a number or [H_out, W_out], got ${JSON.stringify(value)}`);
  }
  const check = (v: number | null, i: number) => (v === null ? null : integerAtLeast(layer, `outputSize[${i}]`, v, 1));
  return [check(values[0], 0), check(values[1], 1)];
}

function resolveSize(size: [number | null, number | null], x: Tensor): [number, number] {
  const [h, w] = x.shape.slice(-2);
  return [size[0] ?? h, size[1] ?? w];
}

/**
 * Average pooling to a fixed output size, whatever the input size (torch.nn.AdaptiveAvgPool2d):
 * output cell i averages input rows ⌊i·H/H_out⌋ … ⌈(i+1)·H/H_out⌉ − 1 (likewise columns).
 *
 * Shape: (N, C, H, W) → (N, C, H_out, W_out).
 *
 * Errors: RangeError/TypeError for an output size that is not a positive integer or null;
 * ShapeError for inputs that are not 3-D/4-D.
 *
 * @example
 * const gap = new AdaptiveAvgPool2d({ outputSize: 1 });   // global average pooling
 */
export class AdaptiveAvgPool2d extends Module {
  readonly outputSize: [number | null, number | null];

  constructor(o: AdaptivePoolOptions) {
    super();
    knownOptions('AdaptiveAvgPool2d', o, ADAPTIVE_POOL_OPTION_NAMES);
    this.outputSize = adaptiveSize('AdaptiveAvgPool2d', o.outputSize);
  }

  forward(x: Tensor): Tensor {
    checkMaps('AdaptiveAvgPool2d', x);
    return F.adaptiveAvgPool2d(x, resolveSize(this.outputSize, x));
  }
}

/**
 * Max pooling to a fixed output size (torch.nn.AdaptiveMaxPool2d), over the same windows as
 * AdaptiveAvgPool2d.
 *
 * Shape: (N, C, H, W) → (N, C, H_out, W_out).
 *
 * Errors: as AdaptiveAvgPool2d.
 */
export class AdaptiveMaxPool2d extends Module {
  readonly outputSize: [number | null, number | null];

  constructor(o: AdaptivePoolOptions) {
    super();
    knownOptions('AdaptiveMaxPool2d', o, ADAPTIVE_POOL_OPTION_NAMES);
    this.outputSize = adaptiveSize('AdaptiveMaxPool2d', o.outputSize);
  }

  forward(x: Tensor): Tensor {
    checkMaps('AdaptiveMaxPool2d', x);
    return F.adaptiveMaxPool2d(x, resolveSize(this.outputSize, x));
  }
}
