/**
 * Gradient clipping, after torch.nn.utils.clip_grad_norm_ and clip_grad_value_ (PyTorch 1.13.1,
 * torch/nn/utils/clip_grad.py). Both change `.grad` in place and skip parameters without one.
 *
 * clipGradNorm, for gradients g₁..gₙ and p = normType:
 *   total = ‖(‖g₁‖ₚ, ..., ‖gₙ‖ₚ)‖ₚ             (= ‖concat(gᵢ)‖ₚ; max |gᵢ| for p = ∞)
 *   coef  = min(maxNorm / (total + 1e-6), 1)
 *   gᵢ ← gᵢ · coef                              (always multiplied, also when coef = 1)
 *
 * The arithmetic stays in tensors of the gradients' dtype, in PyTorch's op order (maxNorm / x is
 * evaluated as reciprocal(x)·maxNorm, as Tensor.__rtruediv__ does), so clipped gradients are
 * bitwise PyTorch's.
 */
import * as aten from '../ops/generated/ops.gen.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import { Tensor, type Device } from '../tensor/tensor.js';

export interface ClipGradNormOptions {
  /** The p of the p-norm; Infinity or 'inf' for the max-norm. Default 2. */
  normType?: number | 'inf';
  /** Throw when the total norm is NaN or infinite, instead of scaling by it. Default false. */
  errorIfNonfinite?: boolean;
}

/**
 * Scales the gradients so that their joint p-norm is at most `maxNorm`, and returns the joint
 * norm from before clipping (0 when no parameter has a gradient).
 *
 * Errors: a RangeError for a negative or NaN maxNorm or a NaN normType; an Error when
 * errorIfNonfinite is set and the total norm is not finite.
 *
 * Example:
 *   loss.backward();
 *   const gradNorm = clipGradNorm(model.parameters(), 1.0);
 *   optimizer.step();
 */
export function clipGradNorm(parameters: Tensor | Iterable<Tensor>, maxNorm: number, options: ClipGradNormOptions = {}): number {
  const normType = options.normType === 'inf' ? Infinity : options.normType ?? 2;
  if (!(maxNorm >= 0)) {
    throw new RangeError(`clipGradNorm: maxNorm must be ≥ 0, got ${maxNorm}; pass e.g. 1.0`);
  }
  if (Number.isNaN(normType) || typeof normType !== 'number') {
    throw new RangeError(`clipGradNorm: normType must be a number or 'inf', got ${String(options.normType)}`);
  }
  return noGrad(() => tidy(() => {
    const grads = gradients(parameters);
    if (grads.length === 0) return 0;
    const device = grads[0].device as Device;
    let total: Tensor;
    if (normType === Infinity) {
      const norms = grads.map((g) => g.abs().max().to({ device }));
      total = norms.length === 1 ? norms[0] : aten.stack(norms).max();
    } else {
      const norms = grads.map((g) => g.norm(normType).to({ device }));
      total = aten.stack(norms).norm(normType);
    }
    const totalNorm = Number(total.item());
    if (options.errorIfNonfinite && !Number.isFinite(totalNorm)) {
      throw new Error(`clipGradNorm: the total norm of order ${normType} of the gradients is ${totalNorm}, so ` +
        'they cannot be clipped; find the NaN/Inf in the loss or gradients, or pass { errorIfNonfinite: false } ' +
        'to scale by the non-finite norm anyway');
    }
    const coefficient = total.add(1e-6).reciprocal().mul(maxNorm).clamp(null, 1);
    for (const g of grads) g.mul_(coefficient.to({ device: g.device as Device }));
    return totalNorm;
  }));
}

/**
 * Clamps every gradient element to [−clipValue, clipValue] in place
 * (torch.nn.utils.clip_grad_value_).
 *
 * Errors: a RangeError for a negative or NaN clipValue.
 */
export function clipGradValue(parameters: Tensor | Iterable<Tensor>, clipValue: number): void {
  if (!(clipValue >= 0)) {
    throw new RangeError(`clipGradValue: clipValue must be ≥ 0, got ${clipValue}; pass e.g. 1.0`);
  }
  noGrad(() => tidy(() => {
    for (const g of gradients(parameters)) g.clamp_(-clipValue, clipValue);
  }));
}

/** The gradients that exist, in parameter order. */
function gradients(parameters: Tensor | Iterable<Tensor>): Tensor[] {
  const list = parameters instanceof Tensor ? [parameters] : Array.from(parameters);
  const grads: Tensor[] = [];
  for (const p of list) {
    const g = p.grad;
    if (g !== null) grads.push(g);
  }
  return grads;
}
