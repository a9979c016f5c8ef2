/**
 * SGD with momentum, dampening, Nesterov momentum, weight decay and maximize, after
 * torch.optim.SGD (PyTorch 1.13.1, torch/optim/sgd.py, `_single_tensor_sgd`). For each parameter
 * θ with gradient g, at step t:
 *
 *   g ← −g                                   if maximize
 *   g ← g + weightDecay·θ                    if weightDecay ≠ 0   (L2, coupled)
 *   b ← g  (t = 1);  b ← momentum·b + (1 − dampening)·g  (t > 1)    if momentum ≠ 0
 *   g ← g + momentum·b  if nesterov,  else  g ← b                    if momentum ≠ 0
 *   θ ← θ − lr·g
 *
 * State: `momentum_buffer` (b), only when momentum ≠ 0 (PyTorch stores None otherwise).
 */
import { type ParamGroup, type ParamState, type ParamsArgument, Optimizer, requireNonNegative } from './optimizer.js';
import type { Tensor } from '../tensor/tensor.js';

/** torch.optim.SGD's arguments, camelCased. */
export interface SGDOptions {
  /** Learning rate (required, as in PyTorch). */
  lr: number;
  /** Momentum factor; default 0 (plain SGD). */
  momentum?: number;
  /** Dampening of the gradient added to the momentum buffer; default 0. */
  dampening?: number;
  /** L2 penalty added to the gradient; default 0. */
  weightDecay?: number;
  /** Nesterov momentum; needs momentum > 0 and dampening 0. Default false. */
  nesterov?: boolean;
  /** Ascend instead of descend; default false. */
  maximize?: boolean;
}

/** One group's complete SGD hyper-parameters. */
export type SGDHyperparameters = Required<SGDOptions>;

/**
 * Stochastic gradient descent.
 *
 * Errors: a RangeError for lr, momentum or weightDecay < 0; an Error for nesterov without
 * momentum or with dampening; a TypeError for unknown options (in `options` or a group).
 *
 * Example:
 *   const optimizer = new SGD(model.parameters(), { lr: 0.1, momentum: 0.9, nesterov: true });
 */
export class SGD extends Optimizer<SGDHyperparameters> {
  constructor(params: ParamsArgument<SGDHyperparameters>, options: SGDOptions) {
    if (options?.lr === undefined) {
      throw new TypeError('SGD: lr is required (PyTorch has no default either); pass e.g. { lr: 0.1 }');
    }
    super(params, options, {
      lr: options.lr, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false,
    });
  }

  protected validate(h: SGDHyperparameters, where: string): void {
    requireNonNegative('SGD', 'lr', h.lr, where);
    requireNonNegative('SGD', 'momentum', h.momentum, where);
    requireNonNegative('SGD', 'weightDecay', h.weightDecay, where);
    if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) {
      throw new Error(`SGD: nesterov requires momentum > 0 and dampening 0, got momentum ${h.momentum} and ` +
        `dampening ${h.dampening}${where}; set e.g. { momentum: 0.9, dampening: 0 } or { nesterov: false }`);
    }
  }

  protected updateParameter(param: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<SGDHyperparameters>): void {
    let direction = group.maximize ? grad.neg() : grad;
    if (group.weightDecay !== 0) direction = direction.add(param, group.weightDecay);
    if (group.momentum !== 0) {
      let buffer = state.momentum_buffer as Tensor | undefined;
      if (buffer === undefined) {
        // The first step starts the buffer at the gradient itself, not at momentum·0 + g.
        buffer = direction.clone().keep();
        state.momentum_buffer = buffer;
      } else {
        buffer.mul_(group.momentum).add_(direction, 1 - group.dampening);
      }
      direction = group.nesterov ? direction.add(buffer, group.momentum) : buffer;
    }
    param.add_(direction, -group.lr);
  }
}
