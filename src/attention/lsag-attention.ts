/**
 * LSAG local attention across shift variants, global attention and the MLP (Sheynin et al.,
 * "Locally Shifted Attention With Early Global Integration").
 *   §3.2 Eq. (1)  q = X U_q                      (queries of the unshifted variant only) → LsagLocalAttention.forward()
 *   §3.2 Eq. (2)  [k v] = Z U_kv                 (keys and values of all T variants)      → LsagLocalAttention.forward()
 *   §3.2 Eq. (3)  W_i = softmax(q_i k_iᵀ / √D_h) (per patch i and head, over T)           → LsagLocalAttention.forward()
 *   §3.2 Eq. (4)  A_i = W_i v_i                                                            → LsagLocalAttention.forward()
 *   §3.2 "Global Attention": multi-head self-attention over the N tokens                  → LsagGlobalAttention.forward()
 *   §3.2 FFN: fc1 → GELU (exact erf) → dropout → fc2 → dropout                             → LsagMlp.forward()
 * Legend: B batch, N tokens, T variants, D width, h heads, dh = D/h, g = h / (K/V heads) query heads
 * per K/V head.
 * Reference: shellysheynin/Locally-SAG-Transformer@a1284a46 — `cifar/cifar_model.py` (multi-query:
 * ONE K/V head shared by all query heads, `Wkv: D → 2·dh`, layout [k, v]) and `imagenet_model.py`
 * (multi-head, `Wkv: D → 2D`, layout [k all heads, v all heads]); classes Attention_variants,
 * Attention, Mlp (reference-layers.md §4.2–4.3). Fixtures (through lsag-stage.ts):
 * lsag-{cifar,imagenet}-local-open, lsag-{cifar,imagenet}-global-open.
 * Deviations:
 *   1. The reference's `(attn @ v).squeeze()` squeezes every size-1 axis, scrambling the output for
 *      batch 1, 1 head or 1 token; here only the singleton query axis goes, so every size works.
 *   2. The two files' K/V layouts are one option, `multiQuery` (true = the CIFAR file's shared K/V
 *      head, false = the ImageNet file's and the paper's Eq. (2) U_kv ∈ R^{D×2D}).
 *   3. dim not divisible by numHeads throws RangeError (the reference fails in a reshape); wrong input
 *      shapes throw ShapeError (the reference asserts only T, and the assert raises NameError).
 *   4. `qk_scale` ≤ 0 throws RangeError (the reference's `qk_scale or ...` silently replaces 0).
 *   5. Faster, same function (ops/fused.ts; kernel mode 'composite' runs the reference's order):
 *      local attention never forms the T variants' keys and values — with U_kv = [W_k; W_v],
 *      q·(W_k z_t + b_k) = (W_kᵀ q)·z_t + q·b_k and Σ_t w_t (W_v z_t + b_v) = W_v (Σ_t w_t z_t) + b_v Σ_t w_t,
 *      so the D → 2·dh projection of B·N·T tokens becomes two D-wide products per query head
 *      (≈ 5× fewer MACs and no (B, N, T, 2·dh) tensor for T = 18, D = 192, h = 3); on CPU the
 *      softmax over the variants and Σ_t w_t z_t are one kernel (`vicinity::lsag_variant_attention`)
 *      that reads the variants in place (no attention dropout: with it, batched matmuls); global
 *      attention runs libtorch ≥ 2's scaled_dot_product_attention (flash attention on CPU), the
 *      g query heads of a K/V head folded into its query axis. Both agree with the reference
 *      order to rounding; countMacs counts the reference order.
 */
import { recordAttention } from './attention-capture.js';
import { Dropout } from '../nn/layers/dropout.js';
import { Linear } from '../nn/layers/linear.js';
import { booleanOption, divisibleBy, integerAtLeast, knownOptions, numberInRange, optionNames } from '../nn/layers/validation.js';
import { Module } from '../nn/module.js';
import { truncNormal_, zeros_ } from '../nn/init.js';
import { fastPathsEnabled, useFused } from '../ops/fused.js';
import * as aten from '../ops/generated/ops.gen.js';
import * as F from '../ops/functional.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';

export interface LsagAttentionOptions {
  /** Token width D. */
  dim: number;
  /** Query heads h; dim must be a multiple. Default 8 (the reference's). */
  numHeads?: number;
  /** Biases on the q and k/v projections; default false (the model passes true). */
  qkvBias?: boolean;
  /** Logit scale; default dh^-0.5. */
  qkScale?: number | null;
  /** Dropout on the attention weights; default 0. */
  attnDrop?: number;
  /** Dropout after `proj`; default 0. */
  projDrop?: number;
  /** One K/V head shared by all query heads (the CIFAR code); default false (the ImageNet code). */
  multiQuery?: boolean;
}

const LSAG_ATTENTION_OPTION_NAMES = optionNames<LsagAttentionOptions>({
  dim: 1, numHeads: 1, qkvBias: 1, qkScale: 1, attnDrop: 1, projDrop: 1, multiQuery: 1,
});

export interface LsagLocalAttentionOptions extends LsagAttentionOptions {
  /** T, the number of shift variants the keys and values come from. */
  numVariants: number;
}

const LSAG_LOCAL_ATTENTION_OPTION_NAMES = optionNames<LsagLocalAttentionOptions>({
  numVariants: 1, dim: 1, numHeads: 1, qkvBias: 1, qkScale: 1, attnDrop: 1, projDrop: 1, multiQuery: 1,
});

/** _init_vit_weights for a Linear: weight trunc_normal(std .02, cut ±2), bias 0. */
export function initVitLinear(linear: Linear): void {
  truncNormal_(linear.weight, { std: 0.02 });
  if (linear.bias) zeros_(linear.bias);
}

/** Checked sizes shared by both attentions. */
function headLayout(layer: string, o: LsagAttentionOptions) {
  const dim = integerAtLeast(layer, 'dim', o.dim, 1);
  const numHeads = integerAtLeast(layer, 'numHeads', o.numHeads ?? 8, 1);
  divisibleBy(layer, 'dim', dim, 'numHeads', numHeads, 'pick numHeads dividing dim');
  const headDim = dim / numHeads;
  const qkScale = o.qkScale ?? headDim ** -0.5;
  if (!(typeof qkScale === 'number' && qkScale > 0 && Number.isFinite(qkScale))) {
    throw new RangeError(`${layer}: qkScale must be a positive finite number or null (dh^-0.5), got ${String(o.qkScale)}`);
  }
  const multiQuery = booleanOption(layer, 'multiQuery', o.multiQuery ?? false);
  return {
    dim, numHeads, headDim, qkScale, multiQuery,
    kvHeads: multiQuery ? 1 : numHeads,
    qkvBias: booleanOption(layer, 'qkvBias', o.qkvBias ?? false),
    attnDrop: numberInRange(layer, 'attnDrop', o.attnDrop ?? 0, 0, 1),
    projDrop: numberInRange(layer, 'projDrop', o.projDrop ?? 0, 0, 1),
  };
}

function checkTokens(layer: string, x: Tensor, dim: number, what = 'x'): void {
  if (x.ndim !== 3 || x.shape[2] !== dim) {
    throw new ShapeError(`${layer}: expected ${what} as tokens (B, N, ${dim}), got shape [${x.shape.join(', ')}]`);
  }
}

/**
 * The sizes, projections and dropouts both attentions share, registered in the reference's order.
 * Only the keys differ: the reference names them after the block's parity (`_even` local, `_odd` global).
 */
abstract class LsagAttentionBase<In extends unknown[] = [Tensor]> extends Module<In> {
  readonly dim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly scale: number;
  readonly multiQuery: boolean;
  protected readonly kvHeads: number;
  readonly Wq: Linear;
  readonly Wkv: Linear;
  readonly proj: Linear;
  readonly attnDrop: Dropout;
  readonly projDrop: Dropout;

  /** `s` comes checked from headLayout(); `keys` are the projections' checkpoint keys. */
  protected constructor(s: ReturnType<typeof headLayout>, keys: { Wq: string; Wkv: string }) {
    super();
    [this.dim, this.numHeads, this.headDim, this.scale, this.multiQuery, this.kvHeads] =
      [s.dim, s.numHeads, s.headDim, s.qkScale, s.multiQuery, s.kvHeads];
    const kvWidth = 2 * s.kvHeads * s.headDim;
    this.Wkv = this.register(keys.Wkv, new Linear({ inFeatures: s.dim, outFeatures: kvWidth, bias: s.qkvBias }));
    this.Wq = this.register(keys.Wq, new Linear({ inFeatures: s.dim, outFeatures: s.dim, bias: s.qkvBias }));
    this.attnDrop = this.register('attn_drop', new Dropout({ p: s.attnDrop }));
    this.proj = this.register('proj', new Linear({ inFeatures: s.dim, outFeatures: s.dim }));
    this.projDrop = this.register('proj_drop', new Dropout({ p: s.projDrop }));
    for (const linear of [this.Wq, this.Wkv, this.proj]) initVitLinear(linear);
  }
}

/**
 * Local attention of each patch over its T shift variants (Attention_variants): the query comes
 * from the unshifted token, keys and values from the T variant tokens of the same patch.
 *
 * Shape: x (B, N, D) and variants (T, B, N, D) → (B, N, D). Cost O(B·N·T·D).
 *
 * Parameters: `Wq_even` (D → D), `Wkv_even` (D → 2·dh with multiQuery, else D → 2D), biases when
 * qkvBias; `proj` (D → D, with bias). Weights trunc_normal(std .02), biases 0.
 *
 * Errors: RangeError/TypeError for bad options; ShapeError for mismatched inputs.
 *
 * @example
 * const attn = new LsagLocalAttention({ dim: 192, numHeads: 4, numVariants: 18, qkvBias: true, multiQuery: true });
 * const y = attn.forward(norm1(x), norm1(patches));   // (B, 1024, 192)
 */
export class LsagLocalAttention extends LsagAttentionBase<[Tensor, Tensor]> {
  readonly numVariants: number;

  constructor(o: LsagLocalAttentionOptions) {
    knownOptions('LsagLocalAttention', o, LSAG_LOCAL_ATTENTION_OPTION_NAMES);
    const s = headLayout('LsagLocalAttention', o);
    const numVariants = integerAtLeast('LsagLocalAttention', 'numVariants', o.numVariants, 1);
    super(s, { Wq: 'Wq_even', Wkv: 'Wkv_even' });
    this.numVariants = numVariants;
  }

  forward(x: Tensor, variants: Tensor): Tensor {
    const layer = 'LsagLocalAttention';
    checkTokens(layer, x, this.dim);
    const [B, N] = x.shape;
    const expected = [this.numVariants, B, N, this.dim];
    if (variants.shape.join() !== expected.join()) {
      throw new ShapeError(`${layer}: expected variants (T=${this.numVariants}, B=${B}, N=${N}, D=${this.dim}) to match x, ` +
        `got shape [${variants.shape.join(', ')}]`);
    }
    const [T, hk, g, dh] = [this.numVariants, this.kvHeads, this.numHeads / this.kvHeads, this.headDim];
    const q = this.Wq.forward(x)                            // Eq. (1)
      .reshape([B, N, hk, g, dh]);                          // (B, N, hk, g, dh)
    const pooled = fastPathsEnabled() ? this.attendVariants(q, variants) : this.attendProjected(q, variants);
    return this.projDrop.forward(this.proj.forward(pooled.reshape([B, N, this.dim])));   // channel = head·dh + d
  }

  /** Eq. (2)–(4) in the reference's order: project every variant to k and v, then attend. */
  private attendProjected(q: Tensor, variants: Tensor): Tensor {
    const [B, N, hk, , dh] = q.shape;
    const T = this.numVariants;
    const kv = this.Wkv.forward(variants)                   // Eq. (2)
      .reshape([T, B, N, 2, hk, dh])                        // (T, B, N, 2, hk, dh)
      .permute([3, 1, 2, 4, 0, 5]);                         // (2, B, N, hk, T, dh)
    const [k, v] = [kv.select(0, 0), kv.select(0, 1)];      // (B, N, hk, T, dh) each
    const logits = q.matmul(k.transpose(-2, -1)).mul(this.scale);          // (B, N, hk, g, T)
    const attention = logits.softmax(-1);                                  // Eq. (3)  (B, N, hk, g, T)
    recordAttention('lsag-local', attention, { tokens: N, variants: T });
    const weights = this.attnDrop.forward(attention);
    return weights.matmul(v);                                               // Eq. (4): (B, N, hk, g, dh)
  }

  /**
   * Eq. (2)–(4) with U_kv moved onto the query side (deviation 5): the logits of head (h, j) are
   * (W_k,hᵀ q)·z_t + q·b_k,h and its output W_v,h (Σ_t w_t z_t) + b_v,h Σ_t w_t.
   */
  private attendVariants(q: Tensor, variants: Tensor): Tensor {
    const [B, N, hk, g, dh] = q.shape;
    const [T, D, BN] = [this.numVariants, this.dim, B * N];
    const w = this.Wkv.weight.reshape([2, hk, dh, D]);                     // rows [k heads | v heads]
    const bias = this.Wkv.bias?.reshape([2, hk, dh, 1]) ?? null;
    // Head-major queries, so each K/V head is one (B·N·g, dh) × (dh, D) product (no broadcast copies).
    const qh = q.mul(this.scale).permute([2, 0, 1, 3, 4]).reshape([hk, BN * g, dh]);
    const a = qh.matmul(w.select(0, 0));                                    // W_kᵀ q: (hk, B·N·g, D)
    const c = bias ? qh.matmul(bias.select(0, 0)) : null;                   // q·b_k: (hk, B·N·g, 1)
    let weights: Tensor | null = null;                                      // set when attention dropout may drop
    let mixed: Tensor;                                                      // Σ_t w_t z_t: (hk, B·N·g, D)
    if (!(this.attnDrop.training && this.attnDrop.p > 0) && useFused(['vicinity::lsag_variant_attention'], variants.device)) {
      // Eq. (3)–(4) over the variants in one kernel (native/kernels/lsag_variant_attention.cc): it
      // reads the (T, B·N, D) variants in place, where the matmuls below copy them to (B·N, T, D).
      mixed = aten.vicinity_lsag_variant_attention(a.reshape([hk, BN, g, D]), variants.reshape([T, BN, D]),
        c?.reshape([hk, BN, g]) ?? null).reshape([hk, BN * g, D]);
    } else {
      const tokenMajor = (t: Tensor, width: number) =>                      // (hk, B·N·g, ·) → (B·N, hk·g, ·)
        t.reshape([hk, BN, g, width]).permute([1, 0, 2, 3]).reshape([BN, hk * g, width]);
      const z = variants.reshape([T, BN, D]).transpose(0, 1);               // (B·N, T, D), a view
      let logits = tokenMajor(a, D).matmul(z.transpose(1, 2));              // (B·N, hk·g, T)
      if (c) logits = logits.add(tokenMajor(c, 1));
      const attention = logits.softmax(-1);                                 // Eq. (3)  (B·N, hk·g, T)
      const dropped = this.attnDrop.forward(attention);
      if (dropped !== attention) weights = dropped;
      mixed = dropped.matmul(z)                                             // (B·N, hk·g, D)
        .reshape([BN, hk, g, D]).permute([1, 0, 2, 3]).reshape([hk, BN * g, D]);
    }
    let pooled = mixed.matmul(w.select(0, 1).transpose(1, 2));              // Eq. (4): (hk, B·N·g, dh)
    if (bias) {
      const vBias = bias.select(0, 1).reshape([hk, 1, dh]);
      // Σ_t w_t = 1 unless attention dropout dropped some weights.
      pooled = pooled.add(weights === null ? vBias
        : weights.sum(-1, { keepdim: true }).reshape([BN, hk, g]).permute([1, 0, 2]).reshape([hk, BN * g, 1]).mul(vBias));
    }
    return pooled.reshape([hk, B, N, g, dh]).permute([1, 2, 0, 3, 4]);      // (B, N, hk, g, dh)
  }
}

/**
 * Global multi-head self-attention over the N tokens (Attention), with the same two K/V layouts.
 *
 * Shape: x (B, N, D) → (B, N, D). Cost O(B·N²·D).
 *
 * Parameters: `Wq_odd` (D → D), `Wkv_odd` (D → 2·dh with multiQuery, else D → 2D), biases when
 * qkvBias; `proj` (D → D, with bias). Weights trunc_normal(std .02), biases 0.
 *
 * Errors: RangeError/TypeError for bad options; ShapeError for an input that is not (B, N, D).
 *
 * @example
 * const attn = new LsagGlobalAttention({ dim: 192, numHeads: 4, qkvBias: true });
 * const y = attn.forward(norm1(x));   // (B, N, 192)
 */
export class LsagGlobalAttention extends LsagAttentionBase {
  constructor(o: LsagAttentionOptions) {
    super(headLayout('LsagGlobalAttention', o), { Wq: 'Wq_odd', Wkv: 'Wkv_odd' });
    knownOptions('LsagGlobalAttention', o, LSAG_ATTENTION_OPTION_NAMES);
  }

  forward(x: Tensor): Tensor {
    checkTokens('LsagGlobalAttention', x, this.dim);
    const [B, N] = x.shape;
    const [hk, g, dh] = [this.kvHeads, this.numHeads / this.kvHeads, this.headDim];
    const queries = this.Wq.forward(x).reshape([B, N, hk, g, dh]); // (B, N, hk, g, dh)
    const kv = this.Wkv.forward(x)
      .reshape([B, N, 2, hk, 1, dh])                        // (B, N, 2, hk, 1, dh)
      .permute([2, 0, 3, 4, 1, 5]);                         // (2, B, hk, 1, N, dh)
    const [k, v] = [kv.select(0, 0), kv.select(0, 1)];      // (B, hk, 1, N, dh) each, shared by the g heads
    const dropping = this.attnDrop.training && this.attnDrop.p > 0;
    if (!dropping && useFused(['aten::scaled_dot_product_attention'], x.device)) {
      // Each query row attends on its own, so the g heads sharing a K/V head fold into its query
      // axis, token-major: with one K/V head (CIFAR's multi-query) q and the output are views of
      // the projections' (B, N, D) layout, no copies.
      const out = F.scaledDotProductAttention(
        queries.permute([0, 2, 1, 3, 4]).reshape([B, hk, N * g, dh]), k.squeeze(2), v.squeeze(2), { scale: this.scale }) // (B, hk, N·g, dh)
        .reshape([B, hk, N, g, dh]).permute([0, 2, 1, 3, 4]).reshape([B, N, this.dim]);             // (B, N, D)
      return this.projDrop.forward(this.proj.forward(out));
    }
    const q = queries.permute([0, 2, 3, 1, 4]);             // (B, hk, g, N, dh)
    const logits = q.matmul(k.transpose(-2, -1)).mul(this.scale);          // (B, hk, g, N, N)
    const attention = logits.softmax(-1);                                  // (B, hk, g, N, N)
    recordAttention('lsag-global', attention, { tokens: N });
    const weights = this.attnDrop.forward(attention);
    const out = weights.matmul(v)                                           // (B, hk, g, N, dh)
      .permute([0, 3, 1, 2, 4])                                             // (B, N, hk, g, dh)
      .reshape([B, N, this.dim]);                                           // (B, N, D), channel = head·dh + d
    return this.projDrop.forward(this.proj.forward(out));
  }
}

export interface LsagMlpOptions {
  inFeatures: number;
  /** Default inFeatures. */
  hiddenFeatures?: number;
  /** Default inFeatures. */
  outFeatures?: number;
  /** Dropout after the activation and after fc2; default 0. */
  drop?: number;
}

const LSAG_MLP_OPTION_NAMES = optionNames<LsagMlpOptions>({ inFeatures: 1, hiddenFeatures: 1, outFeatures: 1, drop: 1 });

/**
 * The transformer FFN (Mlp): fc1 → GELU (exact erf) → dropout → fc2 → dropout.
 *
 * Shape: (*, inFeatures) → (*, outFeatures).
 *
 * Parameters: `fc1` (inFeatures → hiddenFeatures), `fc2` (hiddenFeatures → outFeatures), with biases;
 * weights trunc_normal(std .02), biases 0.
 *
 * Errors: RangeError/TypeError for bad sizes or drop; ShapeError (from Linear) for a wrong width.
 *
 * @example
 * const mlp = new LsagMlp({ inFeatures: 192, hiddenFeatures: 768 });
 */
export class LsagMlp extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly drop: Dropout;

  constructor(o: LsagMlpOptions) {
    super();
    knownOptions('LsagMlp', o, LSAG_MLP_OPTION_NAMES);
    const inFeatures = integerAtLeast('LsagMlp', 'inFeatures', o.inFeatures, 1);
    const hidden = integerAtLeast('LsagMlp', 'hiddenFeatures', o.hiddenFeatures ?? inFeatures, 1);
    const out = integerAtLeast('LsagMlp', 'outFeatures', o.outFeatures ?? inFeatures, 1);
    this.fc1 = this.register('fc1', new Linear({ inFeatures, outFeatures: hidden }));
    this.fc2 = this.register('fc2', new Linear({ inFeatures: hidden, outFeatures: out }));
    this.drop = this.register('drop', new Dropout({ p: numberInRange('LsagMlp', 'drop', o.drop ?? 0, 0, 1) }));
    initVitLinear(this.fc1);
    initVitLinear(this.fc2);
  }

  forward(x: Tensor): Tensor {
    const hidden = this.drop.forward(F.gelu(this.fc1.forward(x)));
    return this.drop.forward(this.fc2.forward(hidden));
  }
}
