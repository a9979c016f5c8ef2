/**
 * LA-layer: deformable local attention (Local Attention Layers for Vision Transformers, §3.1).
 *   §3.1 Eq. (3)–(5)  Q = xW_q, K = xW_k, V = xW_v (1×1 convs at stride s)  → project()
 *   Fig. 2b           raw offsets = W₂ · GELU(conv3×3(x))                   → rawOffsets()
 *   §3.1 Eq. (7)      r̂ = round(raw), Δp' = l · r̂ / D                      → sample(), la-offsets.ts
 *   §3.1 Eq. (8)      keys K(p + r + Δp'), values V(p + r)                  → sample(), la-sampling.ts
 *   §3.1 Eq. (8)/(6)  y = Σ_r w_r v_r, w per `aggregation`                  → aggregate()
 *   Eq. (8) fused on CPU: keys sampled and aggregated in one kernel         → fused()
 *     (`vicinity::la_attention`, native/kernels/la_attention.cc: same conventions, hand backward,
 *     O(B·C·P) saved instead of O(B·C·K·P); the composite path stays for other devices and sample())
 * Reference: no official code exists (the paper's repository holds a README only); we implement
 * docs/design/la-layer.md (e8bc893a; class LALayer there) exactly, every open detail pinned by
 * the fixtures' `conventions`. Fixtures (spec.kind `vicinity.LALayer`, spec.ctor = these options):
 * la-layer-open, -softmax-, -perpixel-, -grouped-, -zerooffsets-, -samesign-, -literal-.
 * Legend: B batch, m = heads, d = C_out/m, k = kernelSize, K = k², s = stride, l = constraint,
 * Ho = ⌈H/s⌉, Wo = ⌈W/s⌉, P = Ho·Wo, r a kernel point's (ry, rx), w the aggregation weights.
 * Deviations (from the paper unless said; docs/layers/la-layer.md has the reasons):
 *   1. Eq. (8) as printed is degenerate (y = v ⊙ q). Default 'normalized': w_r = Σ_c softplus(key_c)
 *      q_c / (Σ_c softplus(key_c) + 1e-6) per head; 'softmax' is Eq. (6) over the k² points, no
 *      masking; 'literal' keeps the printed form and never evaluates k or the offset module.
 *   2. Eq. (7): max/min per sample over every offset channel and position; D = max(max(M, 0) +
 *      max(−N, 0), 1) instead of max + |min| (la-offsets.ts deviation 1).
 *   3. "Round up" is round-half-to-even with an identity (straight-through) gradient; 'none' skips it.
 *   4. Offsets default to one (dy, dx) per head and kernel point (DCN's layout); Fig. 2b's one per
 *      pixel is `offsets: 'per-pixel'`.
 *   5. Keys are sampled by an own four-corner bilinear gather, not F.gridSample, whose [−1, 1]
 *      round trip breaks the pinned one-sided gradient at integer coordinates (la-sampling.ts).
 *   6. Strided layers: projections and the 3×3 offset conv run at stride s and everything after
 *      lives on the Ho × Wo grid (windows, offsets, coordinates in output-grid pixels).
 *   7. Projections are full 1×1 convs (groups g), no biases, no positional embedding.
 *   8. rawOffsets() applies offset.0/offset.2's weights with aten.conv2d so `weights` can be
 *      substituted; it equals this.offset.forward(x), whose children exist to name the keys.
 */
import { recordAttention } from './attention-capture.js';
import { Conv2d, Module, Sequential } from '../nn/index.js';
import { useFused } from '../ops/fused.js';
import { divisibleBy, integerAtLeast, knownOptions, oneOf, optionNames, referenceOptions } from '../nn/layers/validation.js';
import * as F from '../ops/functional.js';
import * as aten from '../ops/generated/ops.gen.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ReferenceBuilders } from './reference-builders.js';
import { buildOffsetModule, constrainOffsets, roundOffsets, type LAOffsets, type LARounding } from './la-offsets.js';
import { pointOffsets, sampleBilinear, samplingCoordinates, windowValues } from './la-sampling.js';

export type { LAOffsets, LARounding };
export type LAAggregation = 'normalized' | 'softmax' | 'literal';

/** Options of LALayer: la-layer.md's names, which the fixtures' spec.ctor uses verbatim. */
export interface LALayerOptions {
  /** C_in. ⌊C_in/4⌋ (the offset module's hidden width) must be ≥ 1 and divisible by groups. */
  inChannels: number;
  /** C_out, divisible by heads and by groups. */
  outChannels: number;
  /** k, odd; the window is k×k. Default 3. */
  kernelSize?: number;
  /** m, attention heads of d = C_out/m channels. Default 8. */
  heads?: number;
  /** l, Eq. (7)'s constraint size, any positive number (paper: 2–4·k). Default 7. */
  constraint?: number;
  /** s: projections and offsets at stride s; output ⌈H/s⌉ × ⌈W/s⌉. Default 1. */
  stride?: number;
  /** g, groups of the q/k/v and 3×3 offset convs. Default 1 (LA-ResNeXt: 32). */
  groups?: number;
  /** One (dy, dx) per head and kernel point ('per-point', default) or per pixel ('per-pixel'). */
  offsets?: LAOffsets;
  /** 'ste' (default): round-half-to-even with identity gradient; 'none': no rounding. */
  rounding?: LARounding;
  /** 'normalized' (default), 'softmax' (Eq. 6) or 'literal' (Eq. 8 as printed: y = v ⊙ q). */
  aggregation?: LAAggregation;
}

const LA_LAYER_OPTION_NAMES = optionNames<LALayerOptions>({
  inChannels: 1, outChannels: 1, kernelSize: 1, heads: 1, constraint: 1, stride: 1, groups: 1, offsets: 1, rounding: 1, aggregation: 1,
});

/** The six weights forward uses; `weights()` returns the layer's own. */
export interface LALayerWeights {
  q: Tensor;
  k: Tensor;
  v: Tensor;
  offset0Weight: Tensor;
  offset0Bias: Tensor;
  offset2Weight: Tensor;
}

/** What the layer computes before aggregating (all on the Ho × Wo output grid). */
export interface LASamples {
  /** Queries q(p), (B, m, d, 1, P). */
  queries: Tensor;
  /** Keys sampled at p + r + Δp', (B, m, d, K, P). */
  keys: Tensor;
  /** Values v(p + r), zero outside, (B, m, d, K, P). */
  values: Tensor;
  /** Constrained offsets Δp' (B, n_off, Ho, Wo). */
  offsets: Tensor;
}

export interface LAForwardOptions {
  /** Weights to use instead of the layer's parameters (functional use, gradcheck). */
  weights?: LALayerWeights;
  /** Raw offsets (B, n_off, Ho, Wo) to use instead of the offset module's output. */
  rawOffsets?: Tensor;
}

/** The projections and constrained offsets that sampling starts from, on the Ho × Wo grid. */
interface LAProjections {
  /** q, k, v (B, C_out, Ho, Wo). */
  q: Tensor;
  k: Tensor;
  v: Tensor;
  /** Δp' (B, n_off, Ho, Wo). */
  offsets: Tensor;
}

const NAME = 'LALayer';
const NORMALIZED_EPS = 1e-6;  // la-layer.md step 5: Σ softplus(key) + 1e-6

// The shared option checks (nn/layers/validation.ts), with this layer's name.
const integer = (name: string, value: unknown, min: number): number => integerAtLeast(NAME, name, value, min);
const choice = <T extends string>(name: string, value: unknown, allowed: readonly T[]): T => oneOf(NAME, name, value, allowed);
const divisible = (what: string, value: number, by: string, divisor: number, fix: string): void =>
  divisibleBy(NAME, what, value, by, divisor, fix);

/**
 * LA-layer (la-layer.md): 1×1 q/k/v projections at stride s, a per-point (or per-pixel) offset
 * field rounded and constrained by Eq. (7), keys sampled bilinearly at the deformed window
 * positions, values on the plain window, aggregated per head.
 *
 * Shape: x (B, C_in, H, W) → (B, C_out, ⌈H/s⌉, ⌈W/s⌉); any H, W ≥ 1.
 * Parameters (PyTorch Conv2d default init, U(±1/√fanIn)): `q.weight`, `k.weight`, `v.weight`
 * (C_out, C_in/g, 1, 1); `offset.0.weight` (h, C_in/g, 3, 3), `offset.0.bias` (h), h = ⌊C_in/4⌋;
 * `offset.2.weight` (n_off, h, 1, 1), n_off = 2·m·k² ('per-point') or 2 ('per-pixel').
 * Errors: RangeError/TypeError for a bad option (even k, C_out % m, groups, h, l ≤ 0, unknown
 * strings); ShapeError for an input that is not (B, C_in, H, W) or raw offsets of the wrong shape.
 *
 * @example
 * const la = new LALayer({ inChannels: 64, outChannels: 64, heads: 8, kernelSize: 3, constraint: 7 });
 * const y = la.forward(x);   // (B, 64, H, W)
 */
export class LALayer extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number;
  readonly heads: number;
  readonly constraint: number;
  readonly stride: number;
  readonly groups: number;
  readonly offsets: LAOffsets;
  readonly rounding: LARounding;
  readonly aggregation: LAAggregation;
  /** n_off, the offset module's output channels. */
  readonly offsetChannels: number;
  readonly q: Conv2d;
  readonly k: Conv2d;
  readonly v: Conv2d;
  readonly offset: Sequential;
  // offset.0 and offset.2, typed (offset.1 is the parameter-free GELU that rawOffsets applies).
  private readonly offsetHidden: Conv2d;
  private readonly offsetOut: Conv2d;

  constructor(o: LALayerOptions) {
    super();
    knownOptions(NAME, o, LA_LAYER_OPTION_NAMES);
    this.inChannels = integer('inChannels', o.inChannels, 1);
    this.outChannels = integer('outChannels', o.outChannels, 1);
    this.kernelSize = integer('kernelSize', o.kernelSize ?? 3, 1);
    this.heads = integer('heads', o.heads ?? 8, 1);
    this.stride = integer('stride', o.stride ?? 1, 1);
    this.groups = integer('groups', o.groups ?? 1, 1);
    this.constraint = o.constraint ?? 7;
    this.offsets = choice('offsets', o.offsets ?? 'per-point', ['per-point', 'per-pixel'] as const);
    this.rounding = choice('rounding', o.rounding ?? 'ste', ['ste', 'none'] as const);
    this.aggregation = choice('aggregation', o.aggregation ?? 'normalized', ['normalized', 'softmax', 'literal'] as const);
    const hidden = this.validate();
    const K = this.kernelSize * this.kernelSize;
    this.offsetChannels = this.offsets === 'per-point' ? 2 * this.heads * K : 2;
    const projection = { inChannels: this.inChannels, outChannels: this.outChannels, kernelSize: 1, stride: this.stride, groups: this.groups, bias: false };
    this.q = this.register('q', new Conv2d(projection));
    this.k = this.register('k', new Conv2d(projection));
    this.v = this.register('v', new Conv2d(projection));
    this.offset = this.register('offset', buildOffsetModule({
      inChannels: this.inChannels, hiddenChannels: hidden, offsetChannels: this.offsetChannels,
      stride: this.stride, groups: this.groups,
    }));
    this.offsetHidden = this.offset.at(0) as Conv2d;
    this.offsetOut = this.offset.at(2) as Conv2d;
  }

  /** The size constraints of la-layer.md "Options and sizes"; returns h = ⌊C_in/4⌋. */
  private validate(): number {
    if (this.kernelSize % 2 === 0) {
      throw new RangeError(`${NAME}: kernelSize must be odd so the window has a centre, got ${this.kernelSize}; use ${this.kernelSize - 1} or ${this.kernelSize + 1}`);
    }
    if (typeof this.constraint !== 'number' || !(this.constraint > 0) || !Number.isFinite(this.constraint)) {
      throw new RangeError(`${NAME}: constraint (Eq. 7's l) must be a positive finite number, got ${String(this.constraint)}; the paper uses 2–4 times kernelSize`);
    }
    divisible('outChannels', this.outChannels, 'heads', this.heads, 'choose heads dividing outChannels');
    divisible('inChannels', this.inChannels, 'groups', this.groups, 'choose groups dividing both channel counts');
    divisible('outChannels', this.outChannels, 'groups', this.groups, 'choose groups dividing both channel counts');
    const hidden = Math.floor(this.inChannels / 4);
    if (hidden < 1) {
      throw new RangeError(`${NAME}: the offset module's hidden width ⌊inChannels/4⌋ = ⌊${this.inChannels}/4⌋ = 0 must be ≥ 1; pass inChannels ≥ 4`);
    }
    divisible('the offset module\'s hidden width ⌊inChannels/4⌋', hidden, 'groups', this.groups, `pass inChannels with ⌊inChannels/4⌋ a multiple of ${this.groups}, or fewer groups`);
    return hidden;
  }

  /** The layer's own parameters, in the form forward's `weights` option takes. */
  weights(): LALayerWeights {
    return {
      q: this.q.weight, k: this.k.weight, v: this.v.weight,
      offset0Weight: this.offsetHidden.weight, offset0Bias: this.offsetHidden.bias as Tensor,
      offset2Weight: this.offsetOut.weight,
    };
  }

  /**
   * y (B, C_out, Ho, Wo); `options` substitute weights or raw offsets (tests, functional use).
   * Eq. (7) and sampling + Eq. (8) run fused (`vicinity::la_offsets`, `vicinity::la_attention`)
   * where ops/fused.ts `useFused` says so (CPU, kernel mode not 'composite'), by composite ATen
   * ops otherwise; both compute the same y.
   */
  forward(x: Tensor, options: LAForwardOptions = {}): Tensor {
    if (this.aggregation !== 'literal') {
      const p = this.projections(x, options);
      return useFused(['vicinity::la_attention'], x.device) ? this.fused(p) : this.aggregate(this.samplesOf(p));
    }
    this.checkInput(x);
    const w = options.weights ?? this.weights();
    // Eq. (8) as printed: the keys cancel, so k and the offset module are not evaluated at all.
    return this.project(x, w.v).mul(this.project(x, w.q));     // Eq. (8) literal: y = v ⊙ q
  }

  /** Raw offsets offset.2(GELU(offset.0(x))), (B, n_off, Ho, Wo), before rounding. */
  rawOffsets(x: Tensor, weights: LALayerWeights = this.weights()): Tensor {
    this.checkInput(x);
    const hidden = aten.conv2d(x, weights.offset0Weight, weights.offset0Bias, this.stride, 1, 1, this.groups);
    return aten.conv2d(aten.gelu(hidden, 'none'), weights.offset2Weight, null, 1, 0, 1, 1);  // Fig. 2b
  }

  /** Queries, deformed keys, window values and Δp' (inspection and tests; forward's composite path). */
  sample(x: Tensor, options: LAForwardOptions = {}): LASamples {
    return this.samplesOf(this.projections(x, options));
  }

  /** Eq. (3)–(5) and (7): q, k, v and Δp' on the output grid. */
  private projections(x: Tensor, options: LAForwardOptions): LAProjections {
    this.checkInput(x);
    const w = options.weights ?? this.weights();
    const [q, k, v] = this.projectQkv(x, w);                     // Eq. (3)–(5)
    const [B, , Ho, Wo] = q.shape;
    const raw = options.rawOffsets ?? this.rawOffsets(x, w);
    this.checkRawOffsets(raw, [B, this.offsetChannels, Ho, Wo]);
    const offsets = useFused(['vicinity::la_offsets'], raw.device)                        // Eq. (7)
      ? aten.vicinity_la_offsets(raw, this.constraint, this.rounding === 'ste')
      : constrainOffsets(roundOffsets(raw, this.rounding), this.constraint);
    recordAttention('la-offsets', offsets, { heads: this.heads, kernelSize: this.kernelSize,
      perPoint: this.offsets === 'per-point' ? 1 : 0, stride: this.stride, height: x.shape[2], width: x.shape[3] });
    return { q, k, v, offsets };
  }

  /** Deformed keys and window values by composite ATen ops (la-sampling.ts). */
  private samplesOf(p: LAProjections): LASamples {
    const [B, , Ho, Wo] = p.q.shape;
    const m = this.heads;
    const d = this.outChannels / m;
    const grid = samplingCoordinates(p.offsets, { heads: m, kernelSize: this.kernelSize, perPoint: this.offsets === 'per-point' });
    const kMap = p.k.reshape([B, m, d, Ho, Wo]);                // (B, m, d, Ho, Wo)
    return {
      queries: p.q.reshape([B, m, d, 1, Ho * Wo]),              // (B, m, d, 1, P)
      keys: sampleBilinear(kMap, grid),                         // (B, m, d, K, P)
      values: windowValues(p.v, { heads: m, kernelSize: this.kernelSize }),  // (B, m, d, K, P)
      offsets: p.offsets,
    };
  }

  /**
   * Sampling and Eq. (8) in one CPU kernel (`vicinity::la_attention`): what samplesOf → aggregate
   * computes, without materialising the (B, m, d, K, P) keys and values. countMacs counts it as
   * the two products the composite's einsums are (analysis/macs.ts).
   */
  private fused(p: LAProjections): Tensor {
    const [B, C, Ho, Wo] = p.q.shape;
    const m = this.heads;
    const d = C / m;
    const offsets = pointOffsets(p.offsets, { heads: m, kernelSize: this.kernelSize, perPoint: this.offsets === 'per-point' });
    const y = aten.vicinity_la_attention(
      p.q.reshape([B, m, d, Ho * Wo]), p.k.reshape([B, m, d, Ho, Wo]), p.v.reshape([B, m, d, Ho, Wo]),
      offsets, this.kernelSize, this.aggregation, NORMALIZED_EPS,
    );                                                          // (B, m, d, P)
    return y.reshape([B, C, Ho, Wo]);                           // (B, C_out, Ho, Wo)
  }

  /** Eq. (8) per `aggregation` (not 'literal'), heads concatenated: (B, C_out, Ho, Wo). */
  private aggregate(s: LASamples): Tensor {
    const [B, m, d] = s.keys.shape;                           // keys: (B, m, d, K, P)
    // The two products model-specs.md §0 counts (q·key over d, Σ_r w·v over K) are einsums, so
    // countMacs sees them (B·C·K·P MACs each; 0.025 G of LA-ResNet-50's 3.393 G).
    let weight: Tensor;                                         // (B, m, K, P)
    if (this.aggregation === 'normalized') {
      // Eq. (8), la-layer.md reading: Σ_c softplus(key_c)·q_c / (Σ_c softplus(key_c) + 1e-6)
      const positive = aten.softplus(s.keys);                   // (B, m, d, K, P)
      const numerator = aten.einsum('bmdxp,bmdkp->bmkp', [s.queries, positive]);  // (B, m, K, P)
      weight = numerator.div(positive.sum(2).add(NORMALIZED_EPS));
    } else {
      const logits = aten.einsum('bmdxp,bmdkp->bmkp', [s.queries, s.keys]);       // (B, m, K, P)
      weight = logits.div(Math.sqrt(d)).softmax(2);             // Eq. (6): softmax_r(q·k/√d)
    }
    recordAttention('la-weights', weight, { heads: m, kernelSize: this.kernelSize });
    const y = aten.einsum('bmkp,bmdkp->bmdp', [weight, s.values]);  // (B, m, d, P): Σ_r w_r v_r
    const [, , Ho, Wo] = s.offsets.shape;
    return y.reshape([B, m * d, Ho, Wo]);                       // (B, C_out, Ho, Wo)
  }

  /**
   * Eq. (3)–(5): with groups 1 one conv over the three weights (F.conv2dSplit), whose channel
   * slices the fused kernel reads in place.
   */
  private projectQkv(x: Tensor, w: LALayerWeights): [Tensor, Tensor, Tensor] {
    const [q, k, v] = F.conv2dSplit(x, [w.q, w.k, w.v], null, { stride: this.stride, groups: this.groups });
    return [q, k, v];
  }

  /** A 1×1 projection at stride s, (B, C_in, H, W) → (B, C_out, Ho, Wo). */
  private project(x: Tensor, weight: Tensor): Tensor {
    return aten.conv2d(x, weight, null, this.stride, 0, 1, this.groups);
  }

  private checkInput(x: Tensor): void {
    if (x.ndim !== 4 || x.shape[1] !== this.inChannels) {
      throw new ShapeError(`${NAME}: expected input (B, C_in=${this.inChannels}, H, W), got shape [${x.shape.join(', ')}]; ` +
        'add a batch dim with unsqueeze(0) or fix inChannels');
    }
  }

  private checkRawOffsets(raw: Tensor, expected: number[]): void {
    if (raw.shape.join() !== expected.join()) {
      throw new ShapeError(`${NAME}: rawOffsets must be (B, n_off, Ho, Wo) = [${expected.join(', ')}] ` +
        `(n_off = ${this.offsetChannels} for offsets '${this.offsets}'), got [${raw.shape.join(', ')}]`);
    }
  }
}

/** LALayerOptions from a fixture's spec.ctor (la-layer.md's names, the same as the options); unknown keys throw TypeError. */
export function laLayerOptionsFromCtor(ctor: Record<string, unknown>): LALayerOptions {
  const table = Object.fromEntries(LA_LAYER_OPTION_NAMES.map((name) => [name, name]));
  return referenceOptions(NAME, 'vicinity.LALayer', ctor, table) as unknown as LALayerOptions;
}

/** Fixture spec.kind → builder (registered by `vicinity verify`). */
export const referenceBuilders: ReferenceBuilders = {
  'vicinity.LALayer': (ctor) => new LALayer(laLayerOptionsFromCtor(ctor)),
};
