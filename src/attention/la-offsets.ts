/**
 * LA-layer offsets: the offset sub-network, straight-through rounding and the locality constraint
 * (Local Attention Layers for Vision Transformers, §3.1, Fig. 2b and Eq. 7), as fixed by
 * docs/design/la-layer.md, Computation steps 2–3.
 *   Fig. 2b  raw = W₂ · GELU(conv3×3(x))            → buildOffsetModule()
 *   §3.1     "we first round up the 2D offsets"      → roundOffsets()   (r̂)
 *   §3.1 Eq. (7)  Δp' = l · r̂ / (max(r̂) + |min(r̂)|) → constrainOffsets() (with the floor below)
 * Reference: none official; la-layer.md @ e8bc893a and the `conventions` of the la-layer-* fixtures.
 * Fixtures: la-layer-open, -softmax-, -perpixel-, -grouped-, -zerooffsets-, -samesign-, -literal-.
 * Legend: l = constraint, r̂ = rounded offsets, M/N = per-sample max/min of r̂, D = denominator.
 * Deviations from the printed Eq. (7) (la-layer.md step 3):
 *   1. D = max(max(M, 0) + max(−N, 0), 1): the range around 0, floored at one pixel, so an all-zero
 *      field stays 0 with bounded gradients and same-sign fields keep |Δp'| ≤ l.
 *   2. Rounding is round-half-to-even with an identity (straight-through) gradient, so the offset
 *      module receives a gradient at all; `rounding: 'none'` skips it.
 */
import { Conv2d, GELU, Sequential } from '../nn/index.js';
import type { Tensor } from '../tensor/tensor.js';

export type LAOffsets = 'per-point' | 'per-pixel';
export type LARounding = 'ste' | 'none';

export interface OffsetModuleOptions {
  inChannels: number;
  /** h = ⌊C_in / 4⌋, the hidden width of the 3×3 conv. */
  hiddenChannels: number;
  /** 2·m·k² ('per-point') or 2 ('per-pixel'). */
  offsetChannels: number;
  stride: number;
  groups: number;
}

/**
 * The offset sub-network as a Sequential, so its keys are `offset.0.weight`, `offset.0.bias`
 * (3×3 conv C_in → h, stride s, padding 1, groups g) and `offset.2.weight` (1×1 conv h → n_off,
 * no bias: "we drop the bias … to avoid the compulsive shift"); '1' is the exact (erf) GELU.
 * Init: PyTorch's Conv2d default (U(±1/√fanIn) for weights and bias), as the fixtures draw it.
 */
export function buildOffsetModule(o: OffsetModuleOptions): Sequential {
  return new Sequential(
    new Conv2d({
      inChannels: o.inChannels, outChannels: o.hiddenChannels, kernelSize: 3,
      stride: o.stride, padding: 1, groups: o.groups, bias: true,
    }),
    new GELU({ approximate: 'none' }),
    new Conv2d({ inChannels: o.hiddenChannels, outChannels: o.offsetChannels, kernelSize: 1, bias: false }),
  );
}

/**
 * r̂ = raw + stopgrad(round(raw) − raw): the value is round-half-to-even (torch.round), the
 * gradient the identity. The sum is exactly round(raw) in floating point: round(raw) − raw is
 * exact and the rounded sum is a representable integer.
 */
export function roundOffsets(raw: Tensor, rounding: LARounding): Tensor {
  if (rounding === 'none') return raw;
  return raw.add(raw.round().sub(raw).detach());
}

/**
 * Eq. (7) per sample b over every offset channel and position of r̂ (B, n_off, Ho, Wo):
 * M = amax, N = amin (not detached; tied extremes share the gradient equally, as torch.amax),
 * D = max(max(M, 0) + max(−N, 0), 1) with clamp's gradient rule (passed where not clamped,
 * boundary included), Δp' = l · r̂ / D, computed in that order so integer r̂ stay exact.
 */
export function constrainOffsets(rounded: Tensor, constraint: number): Tensor {
  const M = rounded.amax([1, 2, 3], { keepdim: true });              // (B, 1, 1, 1)
  const N = rounded.amin([1, 2, 3], { keepdim: true });              // (B, 1, 1, 1)
  const D = M.clamp(0).add(N.neg().clamp(0)).clamp(1);               // Eq. (7) denominator, floored
  return rounded.mul(constraint).div(D);                             // Eq. (7)
}
