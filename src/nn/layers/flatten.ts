/**
 * Flatten, after torch.nn.Flatten (PyTorch 1.13, torch/nn/modules/flatten.py): merges the dims
 * startDim … endDim into one. Its default keeps the batch dim, unlike Tensor.flatten().
 */
import type { Tensor } from '../../tensor/tensor.js';
import { Module } from '../module.js';
import { knownOptions, optionNames, ShapeError } from './validation.js';

export interface FlattenOptions {
  /** First dim to merge; default 1 (keep the batch dim). Negative counts from the end. */
  startDim?: number;
  /** Last dim to merge, inclusive; default -1. */
  endDim?: number;
}

const FLATTEN_OPTION_NAMES = optionNames<FlattenOptions>({ startDim: 1, endDim: 1 });

/**
 * Flattens a range of dims (torch.nn.Flatten).
 *
 * Shape: (N, *dims) → (N, ∏dims) with the defaults; in general the dims startDim … endDim
 * become one of size their product.
 *
 * Errors: TypeError for non-integer dims; ShapeError when a dim is outside the input's rank or
 * startDim comes after endDim.
 *
 * @example
 * const head = new Sequential(new AdaptiveAvgPool2d({ outputSize: 1 }), new Flatten(), fc);
 */
export class Flatten extends Module {
  readonly startDim: number;
  readonly endDim: number;

  constructor(o: FlattenOptions = {}) {
    super();
    knownOptions('Flatten', o, FLATTEN_OPTION_NAMES);
    this.startDim = o.startDim ?? 1;
    this.endDim = o.endDim ?? -1;
    for (const [name, value] of [['startDim', this.startDim], ['endDim', this.endDim]] as const) {
      if (!Number.isInteger(value)) throw new TypeError(`Flatten: ${name} must be an integer, got ${String(value)}`);
    }
  }

  forward(x: Tensor): Tensor {
    // A 0-d tensor flattens like a 1-d one (PyTorch's wrap_dim treats its rank as 1).
    const rank = Math.max(x.ndim, 1);
    const start = this.startDim < 0 ? this.startDim + rank : this.startDim;
    const end = this.endDim < 0 ? this.endDim + rank : this.endDim;
    if (start < 0 || start >= rank || end < 0 || end >= rank || start > end) {
      throw new ShapeError(`Flatten: dims ${this.startDim} … ${this.endDim} do not fit an input of shape ` +
        `[${x.shape.join(', ')}]; need -${rank} ≤ dim < ${rank} and startDim ≤ endDim`);
    }
    return x.flatten(this.startDim, this.endDim);
  }
}
