/**
 * LESA binary (context) term: global multi-head self-attention over all H·W positions with the
 * official module's q/k/v relative embeddings and its three BatchNorms. Alone, it is the
 * "Self-Attention" baseline of LESA Tables 2 and 7 (model-specs.md §3.1, "SA baseline").
 *   §2.1 Eq. (1)  y_i = Σ_j S(q_iᵀk_j + q_iᵀr_{i→j}) v_j         → binaryTerm()
 *   §2.1 Eq. (3)  S = softmax over the keys j                      → softmax(3)
 *   §2.2 Eq. (5)  the binary sum that LESA gates with ω             → Lesa.forward (lesa.ts)
 * Reference: Chenglin-Yang/LESA_classification@1d6b9f68, lib/models/LESA.py, class LESA
 * (`_binary_forward`; byte-identical in LESA_detection@3238bd9c). Fixtures: lesa-open,
 * lesa-train-open, lesa-detqr-open (through Lesa, which extends this class).
 *
 * Legend: N batch, I in_planes, O out_planes, g heads (`groups`), qk = O/g/2 query/key channels
 * and vp = O/g value channels per head, S the feature-map side (the reference's `kernel_size`),
 * L = S² positions, i query, j key.
 *
 * As the reference computes it (reference-layers.md §3, "Forward"):
 *   qkv = bn_qkv(qkv_transform(x)) split per head [q | k | v]; logits = Σ_parts bn_similarity(
 *   [qᵢ·kⱼ | qᵢ·r^q | kⱼ·r^k]) (no 1/√d: the BatchNorms act as the temperature);
 *   binary = Σ_parts bn_output([Σⱼ aᵢⱼ vⱼ , Σⱼ aᵢⱼ r^v]) with bn_output channels interleaved
 *   (2o: the values of channel o, 2o + 1: its value embedding). detection_qr has the 2-D q-embedding
 *   only and bn_output over Σⱼ aᵢⱼ vⱼ.
 *
 * Deviations:
 *   1. Inputs are checked: H·W ≠ featureSize² (classification) or H, W ≠ featureSize
 *      (detection_qr, where the reference silently mis-reshapes a non-square map of S² positions)
 *      throw ShapeError naming the sizes and the fix; the reference fails inside einsum/rearrange.
 *   2. featureSize (alias kernelSize) is required; the reference defaults kernel_size to 56.
 *   3. (O / g) must be even: the reference's reshape fails otherwise; here a RangeError says so.
 *   4. pe_type None (the reference's dead branch, whose BatchNorms are never created) is not offered.
 *   5. detection_qr logits via rel-pos.ts's gather instead of rel_to_abs (lesa-position.ts, deviation 1).
 *
 * Fused path: on CPU (kernel mode 'auto' or 'fused'), classification runs Eq. (1) and (3) with
 * bn_similarity in one kernel, `vicinity::lesa_binary` (native/kernels/lesa_binary.cc), which keeps
 * no (N, g, L, L) tensor; classificationTerm stays the composite path, its tested oracle
 * (test/attention/lesa-kernel.test.ts), and runs under kernel mode 'composite' (attention
 * capture). detection_qr always takes the composite path (its 2-D q-embedding has no kernel).
 */
import { recordAttention } from './attention-capture.js';
import * as F from '../ops/functional.js';
import { useFused } from '../ops/fused.js';
import * as aten from '../ops/generated/ops.gen.js';
import * as init from '../nn/init.js';
import { Module } from '../nn/module.js';
import type { Parameter } from '../nn/parameter.js';
import { BatchNorm1d, BatchNorm2d } from '../nn/layers/batch-norm.js';
import { Conv1d } from '../nn/layers/conv.js';
import { newParameter } from '../nn/layers/new-parameter.js';
import { checkInput, divisibleBy, integerAtLeast, knownOptions, oneOf } from '../nn/layers/validation.js';
import { tidy } from '../tensor/scope.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';
import { flattenIndex, flattenedEmbeddings, LESA_PE_TYPES, relativeLogits2d, type LesaPeType } from './lesa-position.js';

export type { LesaPeType };

/** Options of LesaBinaryAttention: the camelCase of the reference's arguments. */
export interface LesaBinaryAttentionOptions {
  /** I, input channels (`in_planes`); a multiple of groups. */
  inPlanes: number;
  /** O, output channels (`out_planes`); a multiple of 2·groups. */
  outPlanes: number;
  /** S, the side of the S×S feature map the position embedding is built for (the reference's `kernel_size`). */
  featureSize?: number;
  /** The reference's name for featureSize (it is not a kernel); give one of the two. */
  kernelSize?: number;
  /** Average-pooling stride applied to the output (the reference's AvgPool2d(stride, stride)); default 1. */
  stride?: number;
  /** g, attention heads (`lesa.groups`); default 8, the official configs' value. */
  groups?: number;
  /** Position embedding (`lesa.pe_type`); default 'classification'. */
  peType?: LesaPeType;
}

export const BINARY_OPTION_NAMES = ['inPlanes', 'outPlanes', 'featureSize', 'kernelSize', 'stride', 'groups', 'peType'];


function resolveFeatureSize(layer: string, o: LesaBinaryAttentionOptions): number {
  if (o.featureSize === undefined && o.kernelSize === undefined) {
    throw new TypeError(`${layer}: featureSize is required: the side S of the S×S feature map the position ` +
      'embedding is built for (the reference calls it kernel_size; 14 in the LESA ResNets)');
  }
  if (o.featureSize !== undefined && o.kernelSize !== undefined && o.featureSize !== o.kernelSize) {
    throw new RangeError(`${layer}: featureSize ${o.featureSize} and kernelSize ${o.kernelSize} disagree; they name one ` +
      'option (the reference\'s kernel_size is the feature-map side): give one of them');
  }
  return integerAtLeast(layer, 'featureSize', o.featureSize ?? o.kernelSize, 1);
}

function divisible(layer: string, name: string, value: number, groups: number): void {
  divisibleBy(layer, name, value, 'groups', groups, `choose ${name} as a multiple of groups or another number of groups`);
}

/**
 * The binary term of LESA alone: LESA's "Self-Attention" baseline (Tables 2 and 7). In the
 * baseline ResNets the bottleneck keeps its BN2 after this layer (model-specs.md §3.2).
 *
 * Shape: input (N, I, H, W) with H·W = S² (classification) or H = W = S (detection_qr) →
 * output (N, O, ⌊H/stride⌋, ⌊W/stride⌋).
 *
 * Parameters (reference keys; inits as the reference):
 * - `relative` (2qk + vp, 2L − 1), N(0, 1/vp), and buffer `flatten_index` (L²) int64 — classification;
 * - `rel_height`, `rel_width` (2S − 1, qk), N(0, 1/qk) — detection_qr;
 * - `qkv_transform.weight` (2O, I, 1), Conv1d without bias, N(0, 1/I);
 * - `bn_qkv` BatchNorm1d(2O); `bn_similarity` BatchNorm2d(3g) (2g for detection_qr), channels in
 *   blocks [qk heads | qr heads | kr heads]; `bn_output` BatchNorm1d(2O) (O for detection_qr),
 *   channels interleaved [values of o, value embedding of o].
 * Count (classification): 2O·I + 8O + 6g + (2qk + vp)(2L − 1); O = I = 256, g = 8, S = 14: 158,192.
 *
 * Errors: TypeError for a missing featureSize, unknown options or peType; RangeError for sizes
 * < 1 or channels not divisible (I by g, O by 2g); ShapeError for an input that is not
 * (N, I, H, W), whose size does not fit the embedding, or smaller than the stride.
 *
 * @example
 * const sa = new LesaBinaryAttention({ inPlanes: 256, outPlanes: 256, featureSize: 14, groups: 8 });
 * const y = sa.forward(randn([2, 256, 14, 14]));   // (2, 256, 14, 14)
 */
export class LesaBinaryAttention extends Module {
  readonly inPlanes: number;
  readonly outPlanes: number;
  readonly featureSize: number;
  readonly stride: number;
  readonly groups: number;
  readonly peType: LesaPeType;
  /** qk: query and key channels per head. */
  readonly qkPlanes: number;
  /** vp: value channels per head. */
  readonly vPlanes: number;
  /** The classification embedding table; null for detection_qr. */
  readonly relative: Parameter | null;
  /** The detection_qr tables; null for classification. */
  readonly relHeight: Parameter | null;
  readonly relWidth: Parameter | null;
  readonly qkvTransform: Conv1d;
  readonly bnQkv: BatchNorm1d;
  readonly bnSimilarity: BatchNorm2d;
  readonly bnOutput: BatchNorm1d;
  /** The name errors use: 'LesaBinaryAttention', or 'LESA' when Lesa builds it. */
  protected readonly layer: string;

  /** `layer` is for subclasses: the name their errors carry. */
  constructor(options: LesaBinaryAttentionOptions, layer = 'LesaBinaryAttention') {
    super();
    this.layer = layer;
    if (new.target === LesaBinaryAttention) knownOptions(layer, options, BINARY_OPTION_NAMES);
    this.inPlanes = integerAtLeast(layer, 'inPlanes', options.inPlanes, 1);
    this.outPlanes = integerAtLeast(layer, 'outPlanes', options.outPlanes, 1);
    this.featureSize = resolveFeatureSize(layer, options);
    this.stride = integerAtLeast(layer, 'stride', options.stride ?? 1, 1);
    this.groups = integerAtLeast(layer, 'groups', options.groups ?? 8, 1);
    this.peType = oneOf(layer, 'peType', options.peType ?? 'classification', LESA_PE_TYPES);
    divisible(layer, 'inPlanes', this.inPlanes, this.groups);
    divisible(layer, 'outPlanes', this.outPlanes, this.groups);
    if ((this.outPlanes / this.groups) % 2 !== 0) {
      throw new RangeError(`${layer}: outPlanes / groups = ${this.outPlanes / this.groups} must be even: each head ` +
        'splits its 2·outPlanes/groups qkv channels into q and k of outPlanes/groups/2 and v of outPlanes/groups; ' +
        'choose outPlanes as a multiple of 2·groups');
    }
    this.qkPlanes = this.outPlanes / this.groups / 2;
    this.vPlanes = this.outPlanes / this.groups;
    [this.relative, this.relHeight, this.relWidth] = this.registerPositionEmbedding();
    const o = this.outPlanes;
    this.qkvTransform = this.register('qkv_transform', new Conv1d({ inChannels: this.inPlanes, outChannels: 2 * o, kernelSize: 1, bias: false }));
    init.normal_(this.qkvTransform.weight, { std: Math.sqrt(1 / this.inPlanes) });
    this.bnQkv = this.register('bn_qkv', new BatchNorm1d({ numFeatures: 2 * o }));
    const classification = this.peType === 'classification';
    this.bnSimilarity = new BatchNorm2d({ numFeatures: (classification ? 3 : 2) * this.groups });
    this.bnOutput = new BatchNorm1d({ numFeatures: classification ? 2 * o : o });
    // In the reference's order, so stateDict() lists the keys as its state_dict() does.
    for (const name of classification ? ['bn_similarity', 'bn_output'] : ['bn_output', 'bn_similarity']) {
      this.register(name, name === 'bn_output' ? this.bnOutput : this.bnSimilarity);
    }
  }

  /** `relative` + `flatten_index` (classification) or `rel_height` + `rel_width` (detection_qr). */
  private registerPositionEmbedding(): [Parameter | null, Parameter | null, Parameter | null] {
    const s = this.featureSize;
    if (this.peType === 'classification') {
      const length = s * s;
      const relative = this.registerParameter('relative', newParameter([2 * this.qkPlanes + this.vPlanes, 2 * length - 1]));
      init.normal_(relative, { std: Math.sqrt(1 / this.vPlanes) });
      this.registerBuffer('flatten_index', flattenIndex(length));
      return [relative, null, null];
    }
    const table = (name: string) => init.normal_(
      this.registerParameter(name, newParameter([2 * s - 1, this.qkPlanes])), { std: this.qkPlanes ** -0.5 }) as Parameter;
    return [null, table('rel_height'), table('rel_width')];
  }

  forward(x: Tensor): Tensor {
    this.validateInput(x);
    return this.pool(this.binaryTerm(x));
  }

  /** AvgPool2d(stride, stride) on the output, as the reference places it (after the fusion). */
  protected pool(y: Tensor): Tensor {
    return this.stride > 1 ? F.avgPool2d(y, this.stride, { stride: this.stride }) : y;
  }

  /** Rank, channels, and a spatial size the fixed-size position embedding covers. */
  protected validateInput(x: Tensor): void {
    const { layer, inPlanes, featureSize: s, stride } = this;
    checkInput(layer, x, `(N, C=${inPlanes}, H, W)`, { ranks: [4], channels: { dim: 1, size: inPlanes } });
    const [, , h, w] = x.shape;
    if (this.peType === 'classification' && h * w !== s * s) {
      throw new ShapeError(`${layer}: the classification position embedding is built for featureSize² = ${s * s} ` +
        `positions (featureSize ${s}), got a ${h}×${w} input (${h * w} positions); resize the input to ${s}×${s} ` +
        `or build the layer with ${h === w ? `featureSize ${h}` : 'a featureSize whose square is H·W'}`);
    }
    if (this.peType === 'detection_qr' && (h !== s || w !== s)) {
      throw new ShapeError(`${layer}: the detection_qr position embedding is built for ${s}×${s} maps (featureSize ${s}), ` +
        `got ${h}×${w}; resize the input to ${s}×${s}${h === w ? ` or build the layer with featureSize ${h}` : ''}`);
    }
    if (h < stride || w < stride) {
      throw new ShapeError(`${layer}: average pooling with stride ${stride} needs H, W ≥ ${stride}, got ${h}×${w}; ` +
        'use a larger input or stride 1');
    }
  }

  /** Eq. (1) with the official embeddings and BatchNorms: (N, I, H, W) → (N, O, H, W). */
  protected binaryTerm(x: Tensor): Tensor {
    const [n, , h, w] = x.shape;
    const { groups: g, qkPlanes: qk, vPlanes: vp } = this;
    const length = h * w;
    const xFlat = x.reshape([n, this.inPlanes, length]);                 // (N, I, L)
    const qkv = this.bnQkv.forward(this.qkvTransform.forward(xFlat))     // (N, 2O, L)
      .reshape([n, g, 2 * qk + vp, length]);                             // (N, g, 2qk + vp, L): per head [q | k | v]
    if (this.peType === 'classification' && this.fusedAvailable(x)) {
      return this.fusedClassificationTerm(qkv).view([n, this.outPlanes, h, w]);  // (N, O, H, W)
    }
    const [q, k, v] = qkv.split([qk, qk, vp], 2);                        // (N, g, qk | qk | vp, L)
    const binary = this.peType === 'classification'
      ? this.classificationTerm(q, k, v)
      : this.detectionTerm(q, k, v);                                     // (N, O, L)
    return binary.view([n, this.outPlanes, h, w]);                       // (N, O, H, W)
  }

  /** The kernel needs bn_similarity's affine parameters and running statistics (always there unless replaced). */
  private fusedAvailable(x: Tensor): boolean {
    const bn = this.bnSimilarity;
    return bn.affine && bn.trackRunningStats && useFused(['vicinity::lesa_binary'], x.device);
  }

  /**
   * The classification term in one kernel (native/kernels/lesa_binary.cc): the same values as
   * classificationTerm, without the (N, g, L, L) logits and weights or the gathered embeddings;
   * bn_similarity's statistics are computed and applied inside it (BatchNorm2d.normalizeInside).
   */
  private fusedClassificationTerm(qkv: Tensor): Tensor {
    const [n, g, , length] = qkv.shape;                                  // (N, g, 2qk + vp, L)
    const bn = this.bnSimilarity;
    const out = bn.normalizeInside([n, 3 * g, length, length], (batchStats) => {
      const [result, mean, variance] = aten.vicinity_lesa_binary(qkv, this.relative as Tensor, bn.weight as Tensor,
        bn.bias as Tensor, bn.runningMean as Tensor, bn.runningVar as Tensor, this.qkPlanes, batchStats, bn.eps);
      return { result, mean, variance };                                 // result (N, g, vp, 2L) = [sv | sve]
    });
    const o = this.outPlanes;
    return this.bnOutput.forward(out.view([n, 2 * o, length]))          // (N, 2O, L): channel 2o = sv, 2o + 1 = sve of channel o
      .view([n, o, 2, length]).sum(2);                                   // (N, O, L)
  }

  /*
   * The (N, g, L, L) logit terms are each built inside their own tidy: a handle the forward no
   * longer needs is released at once (autograd keeps only what backward reads), as PyTorch frees
   * an unreferenced intermediate, instead of living to the end of the caller's scope — at L = 784
   * each is 157 MB for N = 8, g = 8.
   */

  /** q-, k- and v-embeddings over the flattened index; bn_similarity [qk | qr | kr], bn_output interleaved. */
  private classificationTerm(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const [n, g, , length] = q.shape;
    const o = this.outPlanes;
    const [eq, ek, ev] = flattenedEmbeddings(this.relative as Tensor, this.getBuffer('flatten_index') as Tensor,
      length, [this.qkPlanes, this.qkPlanes, this.vPlanes]);           // (qk | qk | vp, L, L): E[c, i, j] = r[c, i − j + L − 1]
    const stacked = tidy(() => F.cat([
      F.einsum('bgci,bgcj->bgij', q, k),                               // Eq. (1) qᵢᵀkⱼ, no 1/√d  (N, g, L, L)
      F.einsum('bgci,cij->bgij', q, eq),                               // Eq. (1) qᵢ·r^q[i − j]  (N, g, L, L)
      F.einsum('bgci,cij->bgij', k, ek).transpose(2, 3),               // kⱼ·r^k[j − i]  (N, g, L, L)
    ], 1));                                                            // (N, 3g, L, L): channels [qk | qr | kr] × heads
    const attention = this.attention(stacked, 3);
    recordAttention('lesa-binary', attention, { length });
    const sv = F.einsum('bgij,bgcj->bgci', attention, v);              // Eq. (1) Σⱼ S·vⱼ  (N, g, vp, L)
    const sve = F.einsum('bgij,cij->bgci', attention, ev);             // Σⱼ S·r^v[i − j]  (N, g, vp, L)
    return this.bnOutput.forward(F.cat([sv, sve], 3)                   // (N, g, vp, 2L)
      .view([n, 2 * o, length]))                                       // (N, 2O, L): channel 2o = sv, 2o + 1 = sve of channel o
      .view([n, o, 2, length]).sum(2);                                 // (N, O, L)
  }

  /** Eq. (3): bn_similarity over the stacked terms, their sum per head, softmax over the keys j. */
  private attention(stacked: Tensor, parts: number): Tensor {
    const [n, , length] = stacked.shape;
    const attention = tidy(() => this.bnSimilarity.forward(stacked)
      .view([n, parts, this.groups, length, length]).sum(1)            // (N, g, L, L)
      .softmax(3));
    stacked.dispose();                                                 // autograd holds what bn_similarity saved
    return attention;
  }

  /** The 2-D q-embedding only; bn_similarity [qk | qr], bn_output over the values. */
  private detectionTerm(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const [n, , , length] = q.shape;
    const stacked = tidy(() => F.cat([
      F.einsum('bgci,bgcj->bgij', q, k),                               // Eq. (1) qᵢᵀkⱼ, no 1/√d  (N, g, L, L)
      relativeLogits2d(q, this.relHeight as Tensor, this.relWidth as Tensor, this.featureSize),  // (N, g, L, L)
    ], 1));                                                            // (N, 2g, L, L): channels [qk | qr] × heads
    const attention = this.attention(stacked, 2);                        // Eq. (3) S over the keys j
    recordAttention('lesa-binary', attention, { length });
    const sv = F.einsum('bgij,bgcj->bgci', attention, v);                // Eq. (1) Σⱼ S·vⱼ  (N, g, vp, L)
    return this.bnOutput.forward(sv.reshape([n, this.outPlanes, length]));  // (N, O, L)
  }
}
