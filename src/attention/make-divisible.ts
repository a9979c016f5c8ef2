/**
 * makeDivisible: timm's channel rounding (timm/layers/helpers.py `make_divisible`, used by HaloAttn
 * and BottleneckAttn to size the q/k width; reference-layers.md §1):
 *
 *   new_v = max(min_value or divisor, int(v + divisor / 2) // divisor * divisor)
 *   if new_v < round_limit * v: new_v += divisor
 *
 * qkHeadWidth applies it as both layers size their q/k heads (`dim_head or make_divisible(...) // num_heads`).
 * Reference: huggingface/pytorch-image-models@aa4b5850, timm/layers/helpers.py (make_divisible),
 * halo_attn.py and bottleneck_attn.py (the q/k width rule).
 * Deviations: 1. Non-finite or negative v and a divisor < 1 throw RangeError (timm computes garbage).
 */
import { integerAtLeast } from '../nn/layers/validation.js';


export interface MakeDivisibleOptions {
  /** Round to a multiple of this; default 8. */
  divisor?: number;
  /** Lower bound of the result; default `divisor` (timm's `min_value or divisor`). */
  minValue?: number;
  /** Add one more divisor when rounding fell below roundLimit·v; default 0.9. */
  roundLimit?: number;
}

/**
 * Rounds `v` to the nearest multiple of `divisor` (half up), at least `minValue`, and never more
 * than 10 % below v.
 *
 * Errors: RangeError for a negative or non-finite v, or a divisor that is not an integer ≥ 1.
 *
 * @example
 * makeDivisible(12);        // 16: int(12 + 4) // 8 * 8
 * makeDivisible(16 * 0.5);  // 8
 */
export function makeDivisible(v: number, options: MakeDivisibleOptions = {}): number {
  const divisor = options.divisor ?? 8;
  if (!Number.isInteger(divisor) || divisor < 1) {
    throw new RangeError(`makeDivisible: divisor must be an integer ≥ 1, got ${divisor}`);
  }
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`makeDivisible: v must be a finite number ≥ 0, got ${v}`);
  const minValue = options.minValue || divisor; // Python's `min_value or divisor`: 0 falls back too
  const roundLimit = options.roundLimit ?? 0.9;
  let rounded = Math.max(minValue, Math.floor(Math.trunc(v + divisor / 2) / divisor) * divisor);
  if (rounded < roundLimit * v) rounded += divisor;
  return rounded;
}

/**
 * timm's q/k width per head for HaloAttn and BottleneckAttn:
 * `dim_head or make_divisible(dim_out * qk_ratio, divisor=8) // num_heads`. The rounding applies
 * to the total width before the division, so numHeads · result need not be a multiple of 8.
 *
 * Errors: RangeError (naming `layer`) when dimHead is given but not an integer ≥ 1, or the
 * rounded width divided by numHeads is 0.
 */
export function qkHeadWidth(
  layer: string, o: { dimOut: number; numHeads: number; qkRatio: number; dimHead?: number },
): number {
  if (o.dimHead !== undefined) {
    return integerAtLeast(layer, 'dimHead', o.dimHead, 1);
  }
  const width = Math.floor(makeDivisible(o.dimOut * o.qkRatio) / o.numHeads);
  if (width < 1) {
    throw new RangeError(`${layer}: the q/k width per head is makeDivisible(${o.dimOut}·${o.qkRatio}) / ` +
      `${o.numHeads} < 1; pass dimHead or use fewer heads`);
  }
  return width;
}
