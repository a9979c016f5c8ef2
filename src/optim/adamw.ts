/**
 * AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay
 * Regularization", Algorithm 2), after torch.optim.AdamW (PyTorch 1.13.1, torch/optim/adamw.py,
 * `_single_tensor_adamw`). For each parameter θ with gradient g, at step t = 1, 2, ...:
 *
 *   g ← −g                                      if maximize
 *   θ ← θ·(1 − lr·weightDecay)                  (decoupled decay, before the moments)
 *   m ← β₁·m + (1 − β₁)·g
 *   v ← β₂·v + (1 − β₂)·g²
 *   v̂ ← max(v̂, v)                              if amsgrad (v̂ replaces v below)
 *   θ ← θ − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + eps)
 *
 * The bias corrections are computed in float64 on the host, as PyTorch does with step.item().
 * State: `step` (t, a number here; PyTorch 1.13 keeps a 0-d tensor, which loadStateDict
 * accepts), `exp_avg` (m), `exp_avg_sq` (v), and `max_exp_avg_sq` (v̂) when amsgrad.
 */
import { zerosLike } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import { type ParamGroup, type ParamState, type ParamsArgument, Optimizer, requireNonNegative } from './optimizer.js';

/** torch.optim.AdamW's arguments, camelCased. */
export interface AdamWOptions {
  /** Learning rate; default 1e-3. */
  lr?: number;
  /** Decay rates [β₁, β₂] of the first and second moments, each in [0, 1); default [0.9, 0.999]. */
  betas?: readonly [number, number];
  /** Added to the denominator for numerical stability; default 1e-8. */
  eps?: number;
  /** Decoupled weight decay coefficient; default 0.01 (PyTorch's AdamW default). */
  weightDecay?: number;
  /** The AMSGrad variant (Reddi et al.), normalising by the running maximum of v; default false. */
  amsgrad?: boolean;
  /** Ascend instead of descend; default false. */
  maximize?: boolean;
}

/** One group's complete AdamW hyper-parameters. */
export type AdamWHyperparameters = Required<AdamWOptions>;

interface AdamWState {
  step: number;
  exp_avg: Tensor;
  exp_avg_sq: Tensor;
  max_exp_avg_sq?: Tensor;
}

/**
 * AdamW.
 *
 * Errors: a RangeError for lr, eps or weightDecay < 0 or a beta outside [0, 1); a TypeError for
 * unknown options (in `options` or a group) or betas that are not two numbers.
 *
 * Example:
 *   const optimizer = new AdamW(paramGroupsNoWeightDecay(model, 0.05), { lr: 1e-3, betas: [0.9, 0.999] });
 */
export class AdamW extends Optimizer<AdamWHyperparameters> {
  // PyTorch >= 2.6 writes it (AdamW is Adam with decoupled weight decay); False would be Adam's L2.
  protected override readonly pytorchFixed = { decoupled_weight_decay: true };

  constructor(params: ParamsArgument<AdamWHyperparameters>, options: AdamWOptions = {}) {
    super(params, options, {
      lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false,
    });
  }

  protected validate(h: AdamWHyperparameters, where: string): void {
    requireNonNegative('AdamW', 'lr', h.lr, where);
    requireNonNegative('AdamW', 'eps', h.eps, where);
    requireNonNegative('AdamW', 'weightDecay', h.weightDecay, where);
    h.betas.forEach((beta, i) => {
      if (!(beta >= 0 && beta < 1)) {
        throw new RangeError(`AdamW: betas[${i}] must be in [0, 1), got ${beta}${where}; ` +
          'the usual values are betas: [0.9, 0.999]');
      }
    });
  }

  protected updateParameter(param: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<AdamWHyperparameters>): void {
    const s = state as unknown as AdamWState;
    const [beta1, beta2] = group.betas;
    const g = group.maximize ? grad.neg() : grad;
    if (s.step === undefined) {
      s.step = 0;
      s.exp_avg = zerosLike(param).keep();
      s.exp_avg_sq = zerosLike(param).keep();
    }
    // A group switched to amsgrad after its first steps starts v̂ at 0 (PyTorch raises a KeyError).
    if (group.amsgrad && s.max_exp_avg_sq === undefined) s.max_exp_avg_sq = zerosLike(param).keep();
    const step = ++s.step;

    param.mul_(1 - group.lr * group.weightDecay);
    s.exp_avg.mul_(beta1).add_(g, 1 - beta1);
    s.exp_avg_sq.mul_(beta2).addcmul_(g, g, 1 - beta2);

    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const stepSize = group.lr / biasCorrection1;
    const biasCorrection2Sqrt = Math.sqrt(biasCorrection2);
    let secondMoment = s.exp_avg_sq;
    if (group.amsgrad) {
      // torch.maximum(v̂, v, out=v̂): the same values, written back in place.
      s.max_exp_avg_sq!.copy_(s.max_exp_avg_sq!.maximum(s.exp_avg_sq));
      secondMoment = s.max_exp_avg_sq!;
    }
    const denominator = secondMoment.sqrt().div(biasCorrection2Sqrt).add_(group.eps);
    param.addcdiv_(s.exp_avg, denominator, -stepSize);
  }
}
