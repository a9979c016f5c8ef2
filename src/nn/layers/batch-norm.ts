/**
 * BatchNorm1d and BatchNorm2d, after torch.nn.BatchNorm1d/2d (PyTorch 1.13,
 * torch/nn/modules/batchnorm.py): y = (x − E[x]) / √(Var[x] + eps) · weight + bias per channel
 * (dim 1), with batch statistics while training and the running ones in eval mode.
 *
 * Running statistics follow `_BatchNorm.forward` exactly: each training step first increments
 * `num_batches_tracked`, then updates running = (1 − m)·running + m·batch with m = momentum, or
 * m = 1 / num_batches_tracked when momentum is null (a cumulative average). The running variance
 * uses the unbiased batch variance, the normalisation the biased one (libtorch's batch_norm).
 *
 * The running buffers are read through getters, not fields, because Module.to() replaces buffer
 * tensors when it converts them.
 */
import * as F from '../../ops/functional.js';
import { zeros, ones } from '../../tensor/creation.js';
import { noGrad } from '../../tensor/autograd.js';
import type { Tensor } from '../../tensor/tensor.js';
import { ones_, zeros_ } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';
import { newParameter } from './new-parameter.js';
import { booleanOption, checkInput, integerAtLeast, knownOptions, numberInRange, optionNames, positiveNumber, ShapeError } from './validation.js';

export interface BatchNormOptions {
  /** C, the size of dim 1. */
  numFeatures: number;
  /** Added to the variance; default 1e-5. */
  eps?: number;
  /** Weight of the newest batch in the running statistics; default 0.1; null: cumulative average. */
  momentum?: number | null;
  /** Learn a per-channel weight and bias; default true. */
  affine?: boolean;
  /** Keep running statistics for eval mode; default true. Without them eval uses batch statistics. */
  trackRunningStats?: boolean;
}

const BATCH_NORM_OPTION_NAMES = optionNames<BatchNormOptions>({ numFeatures: 1, eps: 1, momentum: 1, affine: 1, trackRunningStats: 1 });

abstract class BatchNormBase extends Module {
  readonly numFeatures: number;
  readonly eps: number;
  readonly momentum: number | null;
  readonly affine: boolean;
  readonly trackRunningStats: boolean;
  /** (numFeatures), init 1; null with `affine: false`. */
  readonly weight: Parameter | null;
  /** (numFeatures), init 0; null with `affine: false`. */
  readonly bias: Parameter | null;

  protected constructor(private readonly layer: string, o: BatchNormOptions) {
    super();
    knownOptions(layer, o, BATCH_NORM_OPTION_NAMES);
    this.numFeatures = integerAtLeast(layer, 'numFeatures', o.numFeatures, 1);
    this.eps = positiveNumber(layer, 'eps', o.eps ?? 1e-5);
    this.momentum = o.momentum === null ? null : numberInRange(layer, 'momentum', o.momentum ?? 0.1, 0, 1);
    this.affine = booleanOption(layer, 'affine', o.affine ?? true);
    this.trackRunningStats = booleanOption(layer, 'trackRunningStats', o.trackRunningStats ?? true);
    const n = this.numFeatures;
    this.weight = this.registerParameter('weight', this.affine ? newParameter([n], 1) : null);
    this.bias = this.registerParameter('bias', this.affine ? newParameter([n], 0) : null);
    const track = this.trackRunningStats;
    this.registerBuffer('running_mean', track ? zeros([n]) : null);
    this.registerBuffer('running_var', track ? ones([n]) : null);
    this.registerBuffer('num_batches_tracked', track ? zeros([], { dtype: 'int64' }) : null);
  }

  /** (numFeatures), init 0; null with `trackRunningStats: false`. */
  get runningMean(): Tensor | null {
    return this.getBuffer('running_mean');
  }

  /** (numFeatures), init 1; null with `trackRunningStats: false`. */
  get runningVar(): Tensor | null {
    return this.getBuffer('running_var');
  }

  /** int64 scalar, the training steps seen; null with `trackRunningStats: false`. */
  get numBatchesTracked(): Tensor | null {
    return this.getBuffer('num_batches_tracked');
  }

  /** Running mean 0, variance 1, count 0. */
  resetRunningStats(): void {
    noGrad(() => {
      this.runningMean?.zero_();
      this.runningVar?.fill_(1);
      this.numBatchesTracked?.zero_();
    });
  }

  /** Resets the running statistics, weight to 1 and bias to 0. */
  resetParameters(): void {
    this.resetRunningStats();
    if (this.weight) ones_(this.weight);
    if (this.bias) zeros_(this.bias);
  }

  protected abstract checkRank(x: Tensor): void;

  forward(x: Tensor): Tensor {
    this.checkRank(x);
    const { useBatchStats, factor } = this.step(x.shape);
    const useRunning = !this.training || this.trackRunningStats;
    return F.batchNorm(x, useRunning ? this.runningMean : null, useRunning ? this.runningVar : null, {
      weight: this.weight, bias: this.bias, training: useBatchStats, momentum: factor, eps: this.eps,
    });
  }

  /**
   * For a fused kernel that normalises with this layer inside its own computation (LESA's
   * bn_similarity in native/kernels/lesa_binary.cc), over values of `shape` that are never
   * materialised: advances `num_batches_tracked` as forward does, runs `kernel(batchStats)` —
   * which normalises with its batch statistics when batchStats is true, else with the running ones,
   * and returns the mean and biased variance it used — then folds batch statistics into the running
   * ones as forward's batch_norm does (running ← (1 − m)·running + m·batch, the variance unbiased).
   * Errors: TypeError without affine parameters and running statistics (the kernels need both).
   */
  normalizeInside<T>(shape: readonly number[], kernel: (batchStats: boolean) => { result: T; mean: Tensor; variance: Tensor }): T {
    const runningMean = this.runningMean, runningVar = this.runningVar;
    if (!this.affine || !this.trackRunningStats || !runningMean || !runningVar) {
      throw new TypeError(`${this.layer}: normalizeInside needs affine parameters and running statistics; use forward`);
    }
    const { useBatchStats, factor } = this.step(shape);
    const { result, mean, variance } = kernel(useBatchStats);
    if (useBatchStats) {
      const count = shape[0] * shape.slice(2).reduce((a, b) => a * b, 1);
      noGrad(() => {
        runningMean.lerp_(mean, factor);
        runningVar.lerp_(variance.mul(count / (count - 1)), factor);
      });
    }
    return result;
  }

  /** Training: counts the batch; the momentum factor of this step and whether batch statistics normalise. */
  private step(shape: readonly number[]): { useBatchStats: boolean; factor: number } {
    let factor = this.momentum ?? 0;
    const counter = this.numBatchesTracked;
    if (this.training && this.trackRunningStats && counter) {
      noGrad(() => counter.add_(1));
      factor = this.momentum ?? 1 / Number(counter.item());
    }
    const useBatchStats = this.training || (this.runningMean === null && this.runningVar === null);
    if (useBatchStats) this.checkValuesPerChannel(shape);
    return { useBatchStats, factor };
  }

  /** Batch statistics of a single value per channel are degenerate (PyTorch's _verify_batch_size). */
  private checkValuesPerChannel(shape: readonly number[]): void {
    const perChannel = shape[0] * shape.slice(2).reduce((a, b) => a * b, 1);
    if (perChannel === 1) {
      throw new ShapeError(`${this.layer}: expected more than 1 value per channel when using batch statistics, ` +
        `got input shape [${shape.join(', ')}]; use a batch larger than 1 or call eval()`);
    }
  }
}

/**
 * Batch normalisation over (N, C) or (N, C, L) inputs (torch.nn.BatchNorm1d).
 *
 * Shape: input (N, C) or (N, C, L) → output of the same shape.
 *
 * Parameters: `weight` (C) init 1, `bias` (C) init 0. Buffers: `running_mean` (C) init 0,
 * `running_var` (C) init 1, `num_batches_tracked` (int64 scalar) init 0.
 *
 * Errors: RangeError/TypeError for a bad numFeatures, eps or momentum (outside [0, 1]); ShapeError
 * for an input that is not 2-D/3-D, has C ≠ numFeatures, or has one value per channel in training.
 *
 * @example
 * const bn = new BatchNorm1d({ numFeatures: 128 });
 * const y = bn.forward(randn([4, 128, 196]));
 */
export class BatchNorm1d extends BatchNormBase {
  constructor(options: BatchNormOptions) {
    super('BatchNorm1d', options);
  }

  protected checkRank(x: Tensor): void {
    const c = this.numFeatures;
    checkInput('BatchNorm1d', x, `(N, C=${c}) or (N, C=${c}, L)`, { ranks: [2, 3], channels: { dim: 1, size: c } });
  }
}

/**
 * Batch normalisation over (N, C, H, W) maps (torch.nn.BatchNorm2d).
 *
 * Shape: input (N, C, H, W) → output of the same shape.
 *
 * Parameters and buffers: as BatchNorm1d.
 *
 * Errors: as BatchNorm1d, for inputs that are not 4-D.
 *
 * @example
 * const bn = new BatchNorm2d({ numFeatures: 64, momentum: null });   // cumulative running stats
 */
export class BatchNorm2d extends BatchNormBase {
  constructor(options: BatchNormOptions) {
    super('BatchNorm2d', options);
  }

  protected checkRank(x: Tensor): void {
    const c = this.numFeatures;
    checkInput('BatchNorm2d', x, `(N, C=${c}, H, W)`, { ranks: [4], channels: { dim: 1, size: c } });
  }
}
