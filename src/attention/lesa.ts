/**
 * LESA: Locally Enhanced Self-Attention (Yang, Kortylewski, Qiao, Yuille).
 *   §2.2 Eq. (5)  y = m + ω ⊙ Σⱼ S(qᵢᵀkⱼ + qᵢᵀr) vⱼ          → forward()
 *   §2.2 Eq. (6)  m = x W_g^k W_1^1 (unary, + bn_x)          → unary()
 *   §2.3 Eq. (7)  ω = sigmoid(F(m ‖ binary))                 → fusionGate()
 *   §4, Table 7   static LESA: y = ½·m + ½·binary, group-1 3×3 unary conv   → { static: true }
 *   binary term (Eq. (1) with the official embeddings)      → LesaBinaryAttention (lesa-binary.ts)
 * Reference: Chenglin-Yang/LESA_classification@1d6b9f68, lib/models/LESA.py, class LESA
 * (byte-identical in LESA_detection@3238bd9c mmdet/models/backbones/LESA.py).
 * Fixtures: lesa-open (eval), lesa-train-open (train-mode BatchNorm, running statistics),
 * lesa-detqr-open (pe_type 'detection_qr').
 *
 * Legend: m the unary term (N, O, H, W), ω the fusion gate (N, O, H, W), the rest as in lesa-binary.ts.
 *
 * Deviations (those of the binary term are listed in lesa-binary.ts):
 *   1. F of Eq. (7) follows the code: relu → fc₁ → BN → relu → fc₂ → BN → sigmoid, without the
 *      paper's leading BN (the two terms already end in bn_x / bn_output).
 *   2. Eq. (6) has no normalisation; the code's bn_x is kept.
 *   3. `static: true` (Table 7) has no reference code; it follows the paper's §4 text and
 *      model-specs.md §3.1: fixed weights ½ and ½, a groups-1 3×3 unary conv without the 1×1
 *      projection, no reasoning/projection.
 *   4. The deformable unary conv (`dcn`, mmcv) and gradient checkpointing (`with_cp_UB_terms_only`,
 *      memory only) are not offered; referenceBuilders rejects a dcn and ignores with_cp.
 *   5. dfKernelSize: the reasoning kernels must be odd and the projection kernel (the last) 1; the
 *      reference accepts others and then fails to multiply a gate of another size with the binary term.
 */
import { recordAttention } from './attention-capture.js';
import * as F from '../ops/functional.js';
import { Sequential } from '../nn/layers/containers.js';
import { BatchNorm2d } from '../nn/layers/batch-norm.js';
import { Conv2d } from '../nn/layers/conv.js';
import { ReLU } from '../nn/layers/activation.js';
import { booleanOption, integerAtLeast, knownOptions } from '../nn/layers/validation.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ReferenceBuilders } from './reference-builders.js';
import { BINARY_OPTION_NAMES, LesaBinaryAttention, type LesaBinaryAttentionOptions } from './lesa-binary.js';
import type { LesaPeType } from './lesa-position.js';

export { LesaBinaryAttention, type LesaBinaryAttentionOptions, type LesaPeType };

/** Options of Lesa: the camelCase of the reference's arguments (`lesa.*` flattened), plus `static`. */
export interface LesaOptions extends LesaBinaryAttentionOptions {
  /** Channel shrink of each reasoning conv (`lesa.df_channel_shrink`); default [2]: 2O → O. */
  dfChannelShrink?: number[];
  /** Kernel of each reasoning conv, then of the projection (last entry) (`lesa.df_kernel_size`); default [1, 1]. */
  dfKernelSize?: number[];
  /** Groups of each reasoning conv, then of the projection (last entry) (`lesa.df_group`); default [1, 1]. */
  dfGroup?: number[];
  /** Static LESA of Table 7: y = ½·unary + ½·binary with a groups-1 unary conv; default false. */
  static?: boolean;
}

const LESA_OPTION_NAMES = [...BINARY_OPTION_NAMES, 'dfChannelShrink', 'dfKernelSize', 'dfGroup', 'static'];

interface GateConfig {
  shrink: number[];
  kernel: number[];
  group: number[];
}

function numberList(layer: string, name: string, value: unknown, minLength: number): number[] {
  if (!Array.isArray(value) || value.length < minLength || value.some((v) => typeof v !== 'number' || !(v > 0) || !Number.isFinite(v))) {
    const entries = minLength === 0 ? '' : ` with at least ${minLength} entr${minLength === 1 ? 'y' : 'ies'}`;
    throw new TypeError(`${layer}: ${name} must be a list of positive numbers${entries}, got ${JSON.stringify(value)}`);
  }
  return value as number[];
}

/** The df_* lists, checked so that every conv of the gate keeps H×W and divides its channels. */
function gateConfig(layer: string, o: LesaOptions): GateConfig {
  const shrink = numberList(layer, 'dfChannelShrink', o.dfChannelShrink ?? [2], 0);
  const need = Math.max(1, shrink.length);
  const kernel = numberList(layer, 'dfKernelSize', o.dfKernelSize ?? [1, 1], need)
    .map((k, i) => integerAtLeast(layer, `dfKernelSize[${i}]`, k, 1));
  const group = numberList(layer, 'dfGroup', o.dfGroup ?? [1, 1], need).map((g, i) => integerAtLeast(layer, `dfGroup[${i}]`, g, 1));
  kernel.slice(0, shrink.length).forEach((k, i) => {
    if (k % 2 === 0) {
      throw new RangeError(`${layer}: dfKernelSize[${i}] ${k} must be odd: the reasoning conv pads (k − 1)/2 per side, so an ` +
        'even kernel changes H×W and the gate no longer fits the binary term');
    }
  });
  if (kernel[kernel.length - 1] !== 1) {
    throw new RangeError(`${layer}: the projection kernel dfKernelSize[${kernel.length - 1}] must be 1, got ` +
      `${kernel[kernel.length - 1]}: the reference applies it without padding, so a larger kernel shrinks the gate below H×W`);
  }
  return { shrink, kernel, group };
}

function checkGroups(layer: string, name: string, groups: number, inChannels: number, outChannels: number): void {
  if (inChannels % groups !== 0 || outChannels % groups !== 0) {
    throw new RangeError(`${layer}: ${name} ${groups} must divide the conv's ${inChannels} input and ${outChannels} output ` +
      'channels; change it or dfChannelShrink');
  }
}

/** `reasoning` (relu, then conv + BN + relu per shrink) and `projection` (conv + BN) of Eq. (7). */
function gateLayers(layer: string, outPlanes: number, c: GateConfig): [Sequential, Sequential] {
  const reasoning = new Sequential(new ReLU());
  let channels = 2 * outPlanes;
  c.shrink.forEach((s, i) => {
    const next = Math.trunc(channels / s);   // Python's int(InChannels / shrink)
    if (next < 1) throw new RangeError(`${layer}: dfChannelShrink[${i}] ${s} leaves no channels of ${channels}; use a smaller shrink`);
    checkGroups(layer, `dfGroup[${i}]`, c.group[i], channels, next);
    const k = c.kernel[i];
    reasoning.push(
      new Conv2d({ inChannels: channels, outChannels: next, kernelSize: k, padding: (k - 1) / 2, groups: c.group[i], bias: false }),
      new BatchNorm2d({ numFeatures: next }),
      new ReLU(),
    );
    channels = next;
  });
  const groups = c.group[c.group.length - 1];
  checkGroups(layer, `dfGroup[${c.group.length - 1}] (the projection's)`, groups, channels, outPlanes);
  const projection = new Sequential(
    new Conv2d({ inChannels: channels, outChannels: outPlanes, kernelSize: 1, groups, bias: false }),
    new BatchNorm2d({ numFeatures: outPlanes }),
  );
  return [reasoning, projection];
}

/**
 * Locally Enhanced Self-Attention, the official module: a grouped-conv unary term, the global
 * binary term with relative embeddings (LesaBinaryAttention), a dynamic fusion gate and
 * average-pool striding. It replaces a bottleneck's 3×3 conv (no BN2 after it).
 *
 * Options: see LesaOptions and LesaBinaryAttentionOptions (inPlanes, outPlanes, featureSize /
 * kernelSize, stride, groups, peType, dfChannelShrink, dfKernelSize, dfGroup, static).
 *
 * Shape: input (N, I, H, W) with H·W = S² (classification) or H = W = S (detection_qr) →
 * output (N, O, ⌊H/stride⌋, ⌊W/stride⌋).
 *
 * Parameters (reference keys), besides the binary term's:
 * - `x_transform.0.weight` (O, I/g, 3, 3), groups g (groups 1 when static), padding 1, no bias;
 *   `x_transform.1.weight` (O, O, 1, 1) when that conv has groups ≠ 1; `bn_x` BatchNorm2d(O);
 * - dynamic only: `reasoning.1.weight` (2O/shrink, 2O/group, k, k), `reasoning.2` BatchNorm2d(2O/shrink)
 *   (per shrink entry: .1/.2, .4/.5, …), `projection.0.weight` (O, 2O/shrink/group, 1, 1),
 *   `projection.1` BatchNorm2d(O).
 * Convs have PyTorch's default init (the official ResNet re-initialises them kaiming_normal fan_out).
 * Counts at O = I = 256, S = 14, g = 8: 495,600 (dynamic), 748,528 (static).
 *
 * Errors: as LesaBinaryAttention, plus TypeError for bad df lists or df options with static, and
 * RangeError for an even reasoning kernel, a projection kernel ≠ 1, or df groups that do not divide.
 *
 * @example
 * const lesa = new Lesa({ inPlanes: 256, outPlanes: 256, featureSize: 14, groups: 8 });
 * const y = lesa.forward(randn([2, 256, 14, 14]));   // (2, 256, 14, 14)
 */
export class Lesa extends LesaBinaryAttention {
  /** True for the static LESA of Table 7. */
  readonly isStatic: boolean;
  readonly xTransform: Sequential;
  readonly bnX: BatchNorm2d;
  /** null for static LESA. */
  readonly reasoning: Sequential | null;
  readonly projection: Sequential | null;

  constructor(options: LesaOptions) {
    knownOptions('LESA', options, LESA_OPTION_NAMES);
    super(options, 'LESA');
    this.isStatic = booleanOption('LESA', 'static', options.static ?? false);
    const dfGiven = ['dfChannelShrink', 'dfKernelSize', 'dfGroup'].filter((k) => options[k as keyof LesaOptions] !== undefined);
    if (this.isStatic && dfGiven.length > 0) {
      throw new RangeError(`LESA: ${dfGiven.join(', ')} configure the dynamic fusion gate, which static LESA does not have; ` +
        'drop them or static');
    }
    const gate = this.isStatic ? null : gateConfig('LESA', options);
    const o = this.outPlanes;
    const unaryGroups = this.isStatic ? 1 : this.groups;
    const unary = new Sequential(new Conv2d({ inChannels: this.inPlanes, outChannels: o, kernelSize: 3, padding: 1, groups: unaryGroups, bias: false }));
    if (unaryGroups !== 1) unary.push(new Conv2d({ inChannels: o, outChannels: o, kernelSize: 1, bias: false }));
    this.xTransform = this.register('x_transform', unary);
    this.bnX = this.register('bn_x', new BatchNorm2d({ numFeatures: o }));
    const [reasoning, projection] = gate ? gateLayers('LESA', o, gate) : [null, null];
    this.reasoning = this.register('reasoning', reasoning);
    this.projection = this.register('projection', projection);
  }

  override forward(x: Tensor): Tensor {
    this.validateInput(x);
    const unary = this.unary(x);                                    // Eq. (6) m  (N, O, H, W)
    const binary = this.binaryTerm(x);                              // Eq. (5) Σⱼ S(·) vⱼ  (N, O, H, W)
    const y = this.isStatic
      ? unary.mul(0.5).add(binary.mul(0.5))                         // Table 7 static: ½·m + ½·binary
      : unary.add(this.fusionGate(unary, binary).mul(binary));      // Eq. (5) y = m + ω ⊙ binary
    return this.pool(y);                                            // (N, O, ⌊H/stride⌋, ⌊W/stride⌋)
  }

  /** Eq. (6) m = x W_g^k W_1^1, then bn_x: (N, I, H, W) → (N, O, H, W). */
  unary(x: Tensor): Tensor {
    return this.bnX.forward(this.xTransform.forward(x));
  }

  /** Eq. (7) ω = sigmoid(projection(reasoning(m ‖ binary))): (N, O, H, W) each → (N, O, H, W) in (0, 1). */
  fusionGate(unary: Tensor, binary: Tensor): Tensor {
    if (!this.reasoning || !this.projection) throw new TypeError('LESA: static LESA has no fusion gate (its weights are fixed at ½)');
    const r = this.reasoning.forward(F.cat([unary, binary], 1));     // (N, 2O/shrink, H, W)
    const omega = this.projection.forward(r).sigmoid();               // Eq. (7) ω  (N, O, H, W)
    recordAttention('lesa-gate', omega);
    return omega;
  }
}

function record(layer: string, name: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TypeError(`${layer}: ${name} must be an object (the reference's ConfigDict), got ${JSON.stringify(value)}`);
  }
  return value as Record<string, unknown>;
}

/**
 * Builds Lesa from the reference's snake_case constructor arguments
 * `LESA(lesa, in_planes, out_planes, kernel_size=56, stride=1, bias=False, dcn=None)` with
 * `lesa = dict(type='LESA', with_cp_UB_terms_only, pe_type, groups, df_channel_shrink, df_kernel_size, df_group)`.
 * `bias` is unused by the reference and ignored here; `with_cp_UB_terms_only` only saves memory.
 */
export function lesaFromReference(ctor: Record<string, unknown>): Lesa {
  const layer = 'LESA reference';
  knownOptions(layer, ctor, ['lesa', 'in_planes', 'out_planes', 'kernel_size', 'stride', 'bias', 'dcn']);
  const lesa = record(layer, 'lesa', ctor.lesa);
  knownOptions(layer, lesa, ['type', 'with_cp_UB_terms_only', 'pe_type', 'groups', 'df_channel_shrink', 'df_kernel_size', 'df_group']);
  if (lesa.type !== 'LESA') throw new TypeError(`${layer}: lesa.type must be 'LESA', got ${JSON.stringify(lesa.type)}`);
  if (ctor.dcn !== undefined && ctor.dcn !== null) {
    throw new TypeError(`${layer}: dcn ${JSON.stringify(ctor.dcn)} asks for mmcv's deformable unary conv, which vicinity does not implement; pass dcn: null`);
  }
  for (const key of ['groups', 'pe_type']) {
    if (lesa[key] === undefined) throw new TypeError(`${layer}: lesa.${key} is required (the official configs use groups 8, pe_type 'classification')`);
  }
  return new Lesa({
    inPlanes: ctor.in_planes as number,
    outPlanes: ctor.out_planes as number,
    kernelSize: (ctor.kernel_size ?? 56) as number,
    stride: (ctor.stride ?? 1) as number,
    groups: lesa.groups as number,
    peType: lesa.pe_type as LesaPeType,
    dfChannelShrink: lesa.df_channel_shrink as number[],
    dfKernelSize: lesa.df_kernel_size as number[],
    dfGroup: lesa.df_group as number[],
  });
}

/** Fixture `spec.kind` → builder (registered by `vicinity verify`). */
export const referenceBuilders: ReferenceBuilders = {
  'LESA_classification.lib.models.LESA.LESA': lesaFromReference,
  'LESA_detection.mmdet.models.backbones.LESA.LESA': lesaFromReference,
};
