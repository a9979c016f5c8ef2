/**
 * Dropout (torch.nn.Dropout) and DropPath (timm's stochastic depth, timm/layers/drop.py). Both
 * are identities in eval mode and scale the kept values by 1/(1 − p) while training, so the
 * expected output equals the input. DropPath with p = 1 returns zeros, as timm's (which skips the
 * 1/(1 − p) scaling when nothing is kept).
 */
import * as F from '../../ops/functional.js';
import type { Tensor } from '../../tensor/tensor.js';
import { Module } from '../module.js';
import { knownOptions, numberInRange, optionNames } from './validation.js';

export interface DropoutOptions {
  /** Probability of zeroing each element; default 0.5. */
  p?: number;
}

const DROPOUT_OPTION_NAMES = optionNames<DropoutOptions>({ p: 1 });

/**
 * Inverted dropout (torch.nn.Dropout; Srivastava et al. 2014): while training, zeroes each
 * element with probability p and scales the rest by 1/(1 − p).
 *
 * Shape: any input → output of the same shape.
 *
 * Errors: RangeError for p outside [0, 1].
 *
 * @example
 * const drop = new Dropout({ p: 0.1 });
 */
export class Dropout extends Module {
  readonly p: number;

  constructor(o: DropoutOptions = {}) {
    super();
    knownOptions('Dropout', o, DROPOUT_OPTION_NAMES);
    this.p = numberInRange('Dropout', 'p', o.p ?? 0.5, 0, 1);
  }

  forward(x: Tensor): Tensor {
    return F.dropout(x, this.p, this.training);
  }
}

export interface DropPathOptions {
  /** Probability of dropping each sample's whole branch; default 0 (identity). */
  p?: number;
}

const DROP_PATH_OPTION_NAMES = optionNames<DropPathOptions>({ p: 1 });

/**
 * Stochastic depth for residual branches (timm DropPath; Huang et al. 2016): while training,
 * zeroes the whole of each sample (dim 0) with probability p and scales the kept samples by
 * 1/(1 − p). Put it on the branch, before the residual sum.
 *
 * Shape: input (N, *) → output of the same shape.
 *
 * Errors: RangeError for p outside [0, 1].
 *
 * @example
 * const dropPath = new DropPath({ p: 0.1 });
 * const out = x.add(dropPath.forward(branch(x)));
 */
export class DropPath extends Module {
  readonly p: number;

  constructor(o: DropPathOptions = {}) {
    super();
    knownOptions('DropPath', o, DROP_PATH_OPTION_NAMES);
    this.p = numberInRange('DropPath', 'p', o.p ?? 0, 0, 1);
  }

  forward(x: Tensor): Tensor {
    return F.dropPath(x, this.p, this.training);
  }
}
