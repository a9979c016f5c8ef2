/**
 * GroupNorm, after torch.nn.GroupNorm (PyTorch 1.13, torch/nn/modules/normalization.py): splits
 * the channels (dim 1) into numGroups groups, normalises each group of each sample over its
 * channels and spatial positions (biased variance), then applies a per-channel weight and bias.
 * The same in training and eval: no running statistics.
 */
import * as F from '../../ops/functional.js';
import type { Tensor } from '../../tensor/tensor.js';
import { ones_, zeros_ } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';
import { newParameter } from './new-parameter.js';
import { booleanOption, checkInput, divisibleBy, integerAtLeast, knownOptions, optionNames, positiveNumber } from './validation.js';

export interface GroupNormOptions {
  /** Groups to split the channels into; must divide numChannels. */
  numGroups: number;
  /** C, the size of dim 1. */
  numChannels: number;
  /** Added to the variance; default 1e-5. */
  eps?: number;
  /** Learn a per-channel weight and bias; default true. */
  affine?: boolean;
}

const GROUP_NORM_OPTION_NAMES = optionNames<GroupNormOptions>({ numGroups: 1, numChannels: 1, eps: 1, affine: 1 });

/**
 * Group normalisation (torch.nn.GroupNorm; Wu & He 2018).
 *
 * Shape: input (N, C, *) → output of the same shape.
 *
 * Parameters: `weight` (C) init 1, `bias` (C) init 0.
 *
 * Errors: RangeError/TypeError for numChannels not divisible by numGroups, non-positive sizes or
 * eps; ShapeError for an input of fewer than 2 dims or with C ≠ numChannels.
 *
 * @example
 * const norm = new GroupNorm({ numGroups: 32, numChannels: 256 });
 * const y = norm.forward(randn([2, 256, 14, 14]));
 */
export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;
  readonly affine: boolean;
  /** (numChannels), init 1; null with `affine: false`. */
  readonly weight: Parameter | null;
  /** (numChannels), init 0; null with `affine: false`. */
  readonly bias: Parameter | null;

  constructor(o: GroupNormOptions) {
    super();
    knownOptions('GroupNorm', o, GROUP_NORM_OPTION_NAMES);
    this.numGroups = integerAtLeast('GroupNorm', 'numGroups', o.numGroups, 1);
    this.numChannels = integerAtLeast('GroupNorm', 'numChannels', o.numChannels, 1);
    divisibleBy('GroupNorm', 'numChannels', this.numChannels, 'numGroups', this.numGroups);
    this.eps = positiveNumber('GroupNorm', 'eps', o.eps ?? 1e-5);
    this.affine = booleanOption('GroupNorm', 'affine', o.affine ?? true);
    const c = this.numChannels;
    this.weight = this.registerParameter('weight', this.affine ? newParameter([c], 1) : null);
    this.bias = this.registerParameter('bias', this.affine ? newParameter([c], 0) : null);
  }

  /** Weight to 1, bias to 0. */
  resetParameters(): void {
    if (this.weight) ones_(this.weight);
    if (this.bias) zeros_(this.bias);
  }

  forward(x: Tensor): Tensor {
    const c = this.numChannels;
    checkInput('GroupNorm', x, `(N, C=${c}, *)`, {
      ranks: x.ndim >= 2 ? [x.ndim] : [2], channels: { dim: 1, size: c },
    });
    return F.groupNorm(x, this.numGroups, { weight: this.weight, bias: this.bias, eps: this.eps });
  }
}
