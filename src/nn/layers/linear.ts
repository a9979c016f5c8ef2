/**
 * Linear, after torch.nn.Linear (PyTorch 1.13, torch/nn/modules/linear.py): y = x Wᵀ + b over
 * the last dim, with PyTorch's parameter shapes, state-dict names and default initialisation.
 */
import * as F from '../../ops/functional.js';
import type { Tensor } from '../../tensor/tensor.js';
import { fanInAndFanOut, kaimingUniform_, uniform_ } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';
import { newParameter } from './new-parameter.js';
import { booleanOption, integerAtLeast, knownOptions, optionNames, ShapeError } from './validation.js';

export interface LinearOptions {
  inFeatures: number;
  outFeatures: number;
  /** Default true. */
  bias?: boolean;
}

const LINEAR_OPTION_NAMES = optionNames<LinearOptions>({ inFeatures: 1, outFeatures: 1, bias: 1 });

/**
 * Affine map over the last dim (torch.nn.Linear).
 *
 * Shape: input (*, inFeatures) → output (*, outFeatures); * is any number of leading dims,
 * including none.
 *
 * Parameters: `weight` (outFeatures, inFeatures), `bias` (outFeatures); both U(±1/√inFeatures)
 * (PyTorch's kaiming_uniform(a = √5) and bias init).
 *
 * Errors: RangeError/TypeError for sizes that are not positive integers; ShapeError for an input
 * whose last dim is not inFeatures.
 *
 * @example
 * const fc = new Linear({ inFeatures: 512, outFeatures: 10 });
 * const logits = fc.forward(features);   // (N, 512) → (N, 10)
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  /** (outFeatures, inFeatures). */
  readonly weight: Parameter;
  /** (outFeatures), or null with `bias: false`. */
  readonly bias: Parameter | null;

  constructor(o: LinearOptions) {
    super();
    knownOptions('Linear', o, LINEAR_OPTION_NAMES);
    this.inFeatures = integerAtLeast('Linear', 'inFeatures', o.inFeatures, 1);
    this.outFeatures = integerAtLeast('Linear', 'outFeatures', o.outFeatures, 1);
    this.weight = this.registerParameter('weight', newParameter([this.outFeatures, this.inFeatures]));
    const bias = booleanOption('Linear', 'bias', o.bias ?? true);
    this.bias = this.registerParameter('bias', bias ? newParameter([this.outFeatures]) : null);
    this.resetParameters();
  }

  /** PyTorch's default init: weight ~ kaiming_uniform(a = √5), bias ~ U(±1/√inFeatures). */
  resetParameters(): void {
    kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    if (this.bias) {
      const bound = 1 / Math.sqrt(fanInAndFanOut(this.weight).fanIn);
      uniform_(this.bias, { a: -bound, b: bound });
    }
  }

  forward(x: Tensor): Tensor {
    const shape = x.shape;
    if (shape.length === 0 || shape[shape.length - 1] !== this.inFeatures) {
      throw new ShapeError(`Linear: expected input (*, inFeatures=${this.inFeatures}), got shape [${shape.join(', ')}]`);
    }
    return F.linear(x, this.weight, this.bias);
  }
}
