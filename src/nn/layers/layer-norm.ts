/**
 * LayerNorm, after torch.nn.LayerNorm (PyTorch 1.13, torch/nn/modules/normalization.py):
 * normalises over the trailing `normalizedShape` dims of each sample, with the biased variance,
 * then applies an elementwise weight and bias of that shape.
 */
import * as F from '../../ops/functional.js';
import type { Tensor } from '../../tensor/tensor.js';
import { ones_, zeros_ } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';
import { newParameter } from './new-parameter.js';
import { booleanOption, knownOptions, optionNames, positiveNumber, ShapeError, sizeTuple } from './validation.js';

export interface LayerNormOptions {
  /** The trailing dims to normalise over: one size (the last dim) or several. */
  normalizedShape: number | number[];
  /** Added to the variance; default 1e-5. */
  eps?: number;
  /** Learn a weight and bias of shape normalizedShape; default true. */
  elementwiseAffine?: boolean;
}

const LAYER_NORM_OPTION_NAMES = optionNames<LayerNormOptions>({ normalizedShape: 1, eps: 1, elementwiseAffine: 1 });

/**
 * Layer normalisation (torch.nn.LayerNorm).
 *
 * Shape: input (*, ...normalizedShape) → output of the same shape.
 *
 * Parameters: `weight` (normalizedShape) init 1, `bias` (normalizedShape) init 0.
 *
 * Errors: RangeError/TypeError for an empty or non-positive normalizedShape or eps; ShapeError for
 * an input whose trailing dims are not normalizedShape.
 *
 * @example
 * const norm = new LayerNorm({ normalizedShape: 256 });
 * const y = norm.forward(tokens);   // (B, L, 256)
 */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  readonly elementwiseAffine: boolean;
  /** (normalizedShape), init 1; null with `elementwiseAffine: false`. */
  readonly weight: Parameter | null;
  /** (normalizedShape), init 0; null with `elementwiseAffine: false`. */
  readonly bias: Parameter | null;

  constructor(o: LayerNormOptions) {
    super();
    knownOptions('LayerNorm', o, LAYER_NORM_OPTION_NAMES);
    const shape = typeof o.normalizedShape === 'number' ? [o.normalizedShape] : o.normalizedShape;
    if (!Array.isArray(shape) || shape.length === 0) {
      throw new TypeError(`LayerNorm: normalizedShape must be a number or a non-empty array, got ${JSON.stringify(o.normalizedShape)}`);
    }
    this.normalizedShape = sizeTuple('LayerNorm', 'normalizedShape', shape, shape.length, 1);
    this.eps = positiveNumber('LayerNorm', 'eps', o.eps ?? 1e-5);
    this.elementwiseAffine = booleanOption('LayerNorm', 'elementwiseAffine', o.elementwiseAffine ?? true);
    const affine = this.elementwiseAffine;
    this.weight = this.registerParameter('weight', affine ? newParameter(this.normalizedShape, 1) : null);
    this.bias = this.registerParameter('bias', affine ? newParameter(this.normalizedShape, 0) : null);
  }

  /** Weight to 1, bias to 0. */
  resetParameters(): void {
    if (this.weight) ones_(this.weight);
    if (this.bias) zeros_(this.bias);
  }

  forward(x: Tensor): Tensor {
    const shape = x.shape;
    const k = this.normalizedShape.length;
    const trailing = shape.slice(shape.length - k);
    if (shape.length < k || trailing.some((s, i) => s !== this.normalizedShape[i])) {
      throw new ShapeError(`LayerNorm: expected input (*, ${this.normalizedShape.join(', ')}), got shape [${shape.join(', ')}]`);
    }
    return F.layerNorm(x, this.normalizedShape, { weight: this.weight, bias: this.bias, eps: this.eps });
  }
}
