/**
 * The spatial operators of the LESA ResNets (LESA Tables 2 and 7; model-specs.md §3): what fills a
 * bottleneck's 3×3 slot (`conv2`) in resnet-family.ts.
 *   lesaOp             LESA, §2.2 Eq. (5)–(7)               → Lesa; the block drops bn2
 *   staticLesaOp       static LESA, §4 / Table 7            → Lesa({ static: true }); keeps bn2
 *   lesaSelfAttentionOp "Self-Attention" rows of Tables 2/7 → LesaBinaryAttention; keeps bn2
 * Reference: Chenglin-Yang/LESA_classification@1d6b9f68, lib/models/resnet.py (Bottleneck with
 * `lesa3x3(lesa, in_planes=width, out_planes=width, kernel_size=shape_kernel_size, stride)`, no bn2
 * in the `with_lesa` branch) and config/lesa_resnet.py (groups 8, df_channel_shrink [2]).
 *
 * The embedding's side S (the reference's `kernel_size` = `stage_spatial_res`) is the block's
 * input map at the model's inputSize (ctx.featureSize, before the op's own stride), so a model
 * built for 224 px has S = 14 in stages 3–4, and one built for 28 px derives its own.
 *
 * Deviations: 1. Non-square feature sizes are rejected here (RangeError): the official networks
 * take square inputs, and the 1-D flattened embedding is only defined for one H·W. 2. ctx.groups
 * (ResNeXt cardinality) is not used: LESA's groups are its heads, set by the `groups` option.
 * 3. The SA and static-LESA rows have no official code; the bn2 choice follows model-specs.md §3.2.
 */
import { Lesa, LesaBinaryAttention } from '../attention/lesa.js';
import { kaimingNormal_ } from '../nn/init.js';
import { Conv2d } from '../nn/layers/conv.js';
import type { Module } from '../nn/module.js';
import type { SpatialOp, SpatialOpContext, SpatialOpFactory } from './spatial-ops.js';
import { knownOptions, optionNames } from '../nn/layers/validation.js';

/** Options shared by the three LESA-family operators. */
export interface LesaOpOptions {
  /** Attention heads (the official `lesa.groups`); also the unary conv's groups in LESA. Default 8. */
  groups?: number;
}

const LESA_OP_OPTION_NAMES = optionNames<LesaOpOptions>({ groups: 1 });

/** The side S of the square map the position embedding is sized for. */
function embeddingSide(op: string, ctx: SpatialOpContext): number {
  const [h, w] = ctx.featureSize;
  if (h !== w) {
    throw new RangeError(`${op}: the flattened position embedding needs a square feature map, but stage ${ctx.stage} ` +
      `block ${ctx.blockIndex} sees ${h}×${w}; build the model with a square inputSize`);
  }
  return h;
}

/**
 * The official ResNet re-initialises every nn.Conv2d kaiming_normal(fan_out, relu) after building
 * (lib/models/resnet.py, `for name, m in self.named_modules()`), LESA's inner convs included; the
 * Conv1d `qkv_transform` keeps its N(0, 1/I). BatchNorm2d (1, 0) is already every layer's default.
 */
function officialInit<T extends Module>(op: T): T {
  op.apply((m) => {
    if (m instanceof Conv2d) kaimingNormal_(m.weight, { mode: 'fanOut', nonlinearity: 'relu' });
  });
  return op;
}

function layerOptions(op: string, o: LesaOpOptions, ctx: SpatialOpContext) {
  return {
    inPlanes: ctx.inChannels, outPlanes: ctx.outChannels, featureSize: embeddingSide(op, ctx),
    stride: ctx.stride, groups: o.groups ?? 8,
  };
}

/**
 * LESA (dynamic fusion), as the official `lesa3x3`: the bottleneck has no bn2 after it.
 * Parameters per layer at C = 256, S = 14: 495,600 (docs/layers/lesa.md).
 *
 * @example
 * resnetFamily({ depths: [3, 4, 6, 3], stageStrides: [1, 2, 2, 1], spatialOp: [null, null, lesaOp(), lesaOp()] });
 */
export function lesaOp(o: LesaOpOptions = {}): SpatialOpFactory {
  knownOptions('lesaOp', o, LESA_OP_OPTION_NAMES);
  const factory = (ctx: SpatialOpContext): SpatialOp => officialInit(new Lesa(layerOptions('lesaOp', o, ctx)));
  return Object.assign(factory, { keepBn2: false, label: 'lesa' });
}

/** Static LESA (Table 7): y = ½·unary + ½·binary with a groups-1 unary conv; the block keeps bn2. */
export function staticLesaOp(o: LesaOpOptions = {}): SpatialOpFactory {
  knownOptions('staticLesaOp', o, LESA_OP_OPTION_NAMES);
  const factory = (ctx: SpatialOpContext): SpatialOp =>
    officialInit(new Lesa({ ...layerOptions('staticLesaOp', o, ctx), static: true }));
  return Object.assign(factory, { keepBn2: true, label: 'static-lesa' });
}

/** The "Self-Attention" baseline of Tables 2 and 7: LESA's binary term alone; the block keeps bn2. */
export function lesaSelfAttentionOp(o: LesaOpOptions = {}): SpatialOpFactory {
  knownOptions('lesaSelfAttentionOp', o, LESA_OP_OPTION_NAMES);
  const factory = (ctx: SpatialOpContext): SpatialOp =>
    officialInit(new LesaBinaryAttention(layerOptions('lesaSelfAttentionOp', o, ctx)));
  return Object.assign(factory, { keepBn2: true, label: 'lesa-sa' });
}
