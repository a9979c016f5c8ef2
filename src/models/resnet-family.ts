/**
 * The ResNet-family builder: one network skeleton with a pluggable spatial operator per stage.
 *   He et al. 2016 (ResNet), Xie et al. 2017 (ResNeXt), Zagoruyko & Komodakis 2016 (WRN), in
 *   torchvision's v1.5 layout: the stride sits on the 3×3 conv, and a block whose shape changes
 *   gets a 1×1 conv + BN projection shortcut (`downsample`).
 * Reference: torchvision 0.14 `torchvision/models/resnet.py` (ResNet, Bottleneck, BasicBlock):
 *   the same state-dict keys (`conv1`, `bn1`, `layer1.0.conv1`, …, `layer1.0.downsample.0`, `fc`)
 *   and initialisation (kaiming normal fan-out ReLU for convs, BN (1, 0), `zeroInitResidual`).
 *   Stochastic depth follows timm (`timm/models/resnet.py`): DropPath on the residual branch with a
 *   rate growing linearly from 0 (first block) to `dropPathRate` (last block).
 * Paper models swap the 3×3 conv (`conv2`) for an attention operator through `spatialOp` and
 * `replace` (spatial-ops.ts); the operator is registered as `conv2`, so a replaced model's keys
 * are `layer3.1.conv2.<the operator's own keys>`, as in the papers' checkpoints.
 *   LA-ResNet (LA Table 1):  every block, stride kept        → spatialOp: laLayerOp(...)
 *   LESA (Table 2):          stages 2–3 but block (2, 0),    → stageStrides: [1, 2, 2, 1],
 *                            BN2 dropped                       replace: (s, b) => s >= 2 && !(s === 2 && b === 0)
 *   HaloNet H0–H7:           every block, own widths, head  → widths, expansion, spatialOutWidths,
 *                                                               headChannels, activation: 'silu'
 *   SASA ResNet:             every block, the op pools for its stride.
 * Deviations: 1. `stage` indices are 0-based (stage 0 = `layer1`). 2. Only the builder's own convs
 * and `conv3x3Op` get torchvision's kaiming init; attention operators initialise themselves.
 * 3. Each spatial op's output shape is checked in forward (ShapeError naming the block).
 */
import { Module } from '../nn/module.js';
import {
  AdaptiveAvgPool2d, BatchNorm2d, Conv2d, DropPath, Identity, Linear, MaxPool2d, ReLU, Sequential, SiLU,
} from '../nn/index.js';
import { kaimingNormal_, zeros_ } from '../nn/init.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';
import { conv3x3Op, type SpatialOp, type SpatialOpContext, type SpatialOpFactory } from './spatial-ops.js';
import { integerAtLeast, knownOptions, optionNames } from '../nn/layers/validation.js';

export type BlockKind = 'bottleneck' | 'basic';
export type Activation = 'relu' | 'silu';

/** A stem other than the two built in; registered as `stem`. */
export interface StemSpec {
  /** (B, inChannels, H, W) → (B, outChannels, ⌈H/stride⌉, ⌈W/stride⌉). */
  build: (ctx: { inChannels: number; outChannels: number }) => SpatialOp;
  /** Total stride of the stem. */
  stride: number;
}

export interface ResNetFamilyOptions {
  /** Blocks per stage, e.g. [3, 4, 6, 3] for ResNet-50. */
  depths: number[];
  /** Default 'bottleneck' (1×1, 3×3, 1×1, expansion 4); 'basic' is two 3×3 convs (expansion 1). */
  block?: BlockKind;
  /** Planes of stage 0; stage i has baseWidth·2^i. Default 64. */
  baseWidth?: number;
  /** Planes per stage (overrides baseWidth); block output = planes·expansion. */
  widths?: number[];
  /** Groups of the 3×3 conv (ResNeXt's C). Default 1; basic blocks need 1. */
  cardinality?: number;
  /** torchvision's width_per_group: bottleneck width = ⌊planes·widthPerGroup/64⌋·cardinality. Default 64. */
  widthPerGroup?: number;
  /** Block output = planes·expansion. Default 4 (bottleneck) or 1 (basic); may be fractional (HaloNet r_b). */
  expansion?: number;
  /** Output channels of the spatial op per stage (HaloNet's value width r_v·c); default its input width. */
  spatialOutWidths?: number[];
  /** Stride of each stage's first block. Default [1, 2, 2, 2, …]. */
  stageStrides?: number[];
  /** The operator for replaced blocks: one for all stages, or one per stage (null: the 3×3 conv). */
  spatialOp?: SpatialOpFactory | (SpatialOpFactory | null)[];
  /** Which blocks use `spatialOp` (0-based stage and block); default: every block of a stage that has one. */
  replace?: (stage: number, blockIndex: number) => boolean;
  /** Keep bn2 after a replaced op: one value, or one per stage. Default: the factory's keepBn2, else true. */
  keepBn2?: boolean | boolean[];
  /** 'imagenet': 7×7/2 conv, BN, act, 3×3/2 max-pool; 'cifar': 3×3/1 conv, BN, act. Default 'imagenet'. */
  stem?: 'imagenet' | 'cifar' | StemSpec;
  /** Stem output channels. Default 64. */
  stemWidth?: number;
  /** A 1×1 conv + BN + act to this many channels before pooling (HaloNet d_f), as `head_conv`. */
  headChannels?: number;
  /** Default 'relu'. */
  activation?: Activation;
  /** Classes of `fc`; 0 leaves out the classifier (forward returns pooled features). Default 1000. */
  numClasses?: number;
  /** Default 3. */
  inChannels?: number;
  /** Stochastic depth of the last block; default 0. */
  dropPathRate?: number;
  /** Input [H, W] (or side) used to tell each spatial op its feature size. Default 224. */
  inputSize?: number | [number, number];
  /** Zero the last BN's weight in every block, so each residual branch starts at 0. Default false. */
  zeroInitResidual?: boolean;
}

/** One block as planned: what the builder makes and tells the spatial op. */
export interface BlockPlan extends SpatialOpContext {
  /** 'layer3.1'. */
  name: string;
  kind: BlockKind;
  /** The block's stride (on conv2 in a bottleneck, on conv1 in a basic block). */
  blockStride: number;
  /** Channels entering the block. */
  blockInChannels: number;
  /** Channels leaving the block. */
  blockOutChannels: number;
  op: SpatialOpFactory;
  /** Whether `op` is the stage's spatialOp (true) or the default 3×3 conv. */
  replaced: boolean;
  keepBn2: boolean;
  activation: Activation;
}

export interface FeatureInfo {
  module: string;
  channels: number;
  /** Total stride of the stage output relative to the input. */
  reduction: number;
}

/** Validated options and every block's plan; `resnetFamily` builds from it. */
export interface ResNetPlan {
  stem: 'imagenet' | 'cifar' | StemSpec;
  stemWidth: number;
  inChannels: number;
  numClasses: number;
  activation: Activation;
  headChannels: number | null;
  zeroInitResidual: boolean;
  inputSize: [number, number];
  stages: BlockPlan[][];
  featureInfo: FeatureInfo[];
}

const err = (message: string) => new RangeError(`resnetFamily: ${message}`);

const RESNET_FAMILY_OPTION_NAMES = optionNames<ResNetFamilyOptions>({
  depths: 1, block: 1, baseWidth: 1, widths: 1, cardinality: 1, widthPerGroup: 1, expansion: 1, spatialOutWidths: 1,
  stageStrides: 1, spatialOp: 1, replace: 1, keepBn2: 1, stem: 1, stemWidth: 1, headChannels: 1, activation: 1,
  numClasses: 1, inChannels: 1, dropPathRate: 1, inputSize: 1, zeroInitResidual: 1,
});

/** An integer ≥ 1: TypeError for a non-integer, RangeError below 1 (the rule of nn/layers/validation.ts). */
const positiveInteger = (name: string, value: unknown): number => integerAtLeast('resnetFamily', name, value, 1);

function perStage<T>(name: string, value: T[] | undefined, stages: number, fallback: (i: number) => T): T[] {
  if (value === undefined) return Array.from({ length: stages }, (_, i) => fallback(i));
  if (!Array.isArray(value) || value.length !== stages) {
    throw err(`${name} needs one entry per stage (${stages}, from depths), got ${JSON.stringify(value)}`);
  }
  return value;
}

const convOut = (size: number, kernel: number, stride: number, padding: number) =>
  Math.floor((size + 2 * padding - kernel) / stride) + 1;

/** Per-stage channel counts: block outputs, the spatial op's input (bottleneck width) and output. */
interface StageWidths {
  kind: BlockKind;
  cardinality: number;
  outWidths: number[];
  innerWidths: number[];
  spatialOut: number[];
}

function stageWidths(o: ResNetFamilyOptions, n: number): StageWidths {
  const kind = o.block ?? 'bottleneck';
  if (kind !== 'bottleneck' && kind !== 'basic') throw err(`block must be 'bottleneck' or 'basic', got '${String(kind)}'`);
  const cardinality = positiveInteger('cardinality', o.cardinality ?? 1);
  const widthPerGroup = positiveInteger('widthPerGroup', o.widthPerGroup ?? 64);
  if (kind === 'basic' && (cardinality !== 1 || widthPerGroup !== 64)) {
    throw err(`basic blocks support cardinality 1 and widthPerGroup 64 only (as torchvision's BasicBlock), ` +
      `got ${cardinality} and ${widthPerGroup}; use block: 'bottleneck' for ResNeXt or wide variants`);
  }
  const baseWidth = positiveInteger('baseWidth', o.baseWidth ?? 64);
  const planes = perStage('widths', o.widths, n, (i) => baseWidth * 2 ** i).map((w, i) => positiveInteger(`widths[${i}]`, w));
  const expansion = o.expansion ?? (kind === 'bottleneck' ? 4 : 1);
  const outWidths = planes.map((p, i) => {
    const out = p * expansion;
    if (!(out >= 1) || !Number.isInteger(out)) throw err(`stage ${i}: widths[${i}] ${p} × expansion ${expansion} = ${out} is not a positive integer channel count`);
    return out;
  });
  // torchvision: width = int(planes · (width_per_group / 64)) · groups
  const innerWidths = planes.map((p, i) => {
    const w = kind === 'basic' ? p : Math.floor((p * widthPerGroup) / 64) * cardinality;
    if (w < 1) throw err(`stage ${i}: bottleneck width ⌊${p}·${widthPerGroup}/64⌋·${cardinality} is 0; raise widths or widthPerGroup`);
    return w;
  });
  const spatialOut = perStage('spatialOutWidths', o.spatialOutWidths, n, (i) => (kind === 'basic' ? outWidths[i] : innerWidths[i]))
    .map((w, i) => positiveInteger(`spatialOutWidths[${i}]`, w));
  if (kind === 'basic' && spatialOut.some((w, i) => w !== outWidths[i])) {
    throw err(`in basic blocks the spatial op (conv2) outputs the block's channels; spatialOutWidths ${JSON.stringify(spatialOut)} ` +
      `must equal widths × expansion ${JSON.stringify(outWidths)}`);
  }
  return { kind, cardinality, outWidths, innerWidths, spatialOut };
}

/** The stem's output map size and total stride. */
function stemGeometry(stem: ResNetPlan['stem'], inputSize: [number, number]): { size: [number, number]; reduction: number } {
  if (stem === 'imagenet') {
    return { size: inputSize.map((s) => convOut(convOut(s, 7, 2, 3), 3, 2, 1)) as [number, number], reduction: 4 };
  }
  if (stem === 'cifar') return { size: [...inputSize], reduction: 1 };
  if (typeof stem === 'object' && stem !== null && typeof stem.build === 'function') {
    const stride = positiveInteger('stem.stride', stem.stride);
    return { size: inputSize.map((v) => Math.ceil(v / stride)) as [number, number], reduction: stride };
  }
  throw err(`stem must be 'imagenet', 'cifar' or { build, stride }, got ${JSON.stringify(stem)}`);
}

/** The network-level options, checked. */
function headOptions(o: ResNetFamilyOptions) {
  const numClasses = o.numClasses ?? 1000;
  if (!Number.isInteger(numClasses) || numClasses < 0) throw err(`numClasses must be an integer ≥ 0 (0: no classifier), got ${numClasses}`);
  const dropPathRate = o.dropPathRate ?? 0;
  if (!(dropPathRate >= 0 && dropPathRate < 1)) throw err(`dropPathRate must be in [0, 1), got ${dropPathRate}`);
  const activation = o.activation ?? 'relu';
  if (activation !== 'relu' && activation !== 'silu') throw err(`activation must be 'relu' or 'silu', got '${String(activation)}'`);
  const rawSize = o.inputSize ?? 224;
  const inputSize: [number, number] = typeof rawSize === 'number' ? [rawSize, rawSize] : [rawSize[0], rawSize[1]];
  inputSize.forEach((s, i) => positiveInteger(`inputSize[${i}]`, s));
  return {
    numClasses, dropPathRate, activation, inputSize,
    stem: o.stem ?? 'imagenet',
    stemWidth: positiveInteger('stemWidth', o.stemWidth ?? 64),
    inChannels: positiveInteger('inChannels', o.inChannels ?? 3),
    headChannels: o.headChannels === undefined ? null : positiveInteger('headChannels', o.headChannels),
    zeroInitResidual: o.zeroInitResidual ?? false,
  };
}

/** Which op each stage's replaced blocks use, and whether they keep bn2 (undefined: the op decides). */
function stageOps(o: ResNetFamilyOptions, n: number): { ops: (SpatialOpFactory | null)[]; keepBn2: (boolean | undefined)[] } {
  const oneOp = Array.isArray(o.spatialOp) ? null : o.spatialOp ?? null;
  const ops = Array.isArray(o.spatialOp) ? perStage('spatialOp', o.spatialOp, n, () => null) : Array.from({ length: n }, () => oneOp);
  const one = Array.isArray(o.keepBn2) ? undefined : o.keepBn2;
  const keepBn2 = Array.isArray(o.keepBn2) ? perStage('keepBn2', o.keepBn2, n, () => true) : Array.from({ length: n }, () => one);
  return { ops, keepBn2 };
}

/** Checks the options and plans every block (widths, strides, feature sizes, drop-path rates). */
export function planResNet(o: ResNetFamilyOptions): ResNetPlan {
  knownOptions('resnetFamily', o, RESNET_FAMILY_OPTION_NAMES);
  if (!Array.isArray(o.depths) || o.depths.length === 0) {
    throw err(`depths must list the blocks per stage, e.g. [3, 4, 6, 3], got ${JSON.stringify(o.depths)}`);
  }
  const depths = o.depths.map((d, i) => positiveInteger(`depths[${i}]`, d));
  const n = depths.length;
  const w = stageWidths(o, n);
  const head = headOptions(o);
  const strides = perStage('stageStrides', o.stageStrides, n, (i) => (i === 0 ? 1 : 2)).map((s, i) => positiveInteger(`stageStrides[${i}]`, s));
  const { ops, keepBn2 } = stageOps(o, n);
  const replace = o.replace ?? (() => true);
  let { size, reduction } = stemGeometry(head.stem, head.inputSize);
  const totalBlocks = depths.reduce((a, b) => a + b, 0);
  const basic = w.kind === 'basic';
  let blockCount = 0;
  let channels = head.stemWidth;
  const stages: BlockPlan[][] = [];
  const featureInfo: FeatureInfo[] = [];
  for (let s = 0; s < n; s++) {
    const blocks: BlockPlan[] = [];
    for (let b = 0; b < depths[s]; b++) {
      const stride = b === 0 ? strides[s] : 1;
      const replaced = ops[s] !== null && replace(s, b);
      const op = replaced ? ops[s] as SpatialOpFactory : conv3x3Op;
      const dropPath = totalBlocks > 1 ? (head.dropPathRate * blockCount++) / (totalBlocks - 1) : 0;
      blocks.push({
        name: `layer${s + 1}.${b}`, kind: w.kind, stage: s, blockIndex: b, blockStride: stride,
        blockInChannels: channels, blockOutChannels: w.outWidths[s],
        inChannels: w.innerWidths[s], outChannels: w.spatialOut[s],
        // A basic block's conv1 carries the stride; its conv2 (the spatial slot) runs at stride 1.
        stride: basic ? 1 : stride,
        groups: basic ? 1 : w.cardinality,
        featureSize: basic ? size.map((v) => Math.ceil(v / stride)) as [number, number] : [...size],
        dropPath: dropPath > 0 ? dropPath : undefined,
        op, replaced,
        keepBn2: replaced ? (keepBn2[s] ?? op.keepBn2 ?? true) : true,
        activation: head.activation,
      });
      size = size.map((v) => Math.ceil(v / stride)) as [number, number];
      channels = w.outWidths[s];
    }
    reduction *= strides[s];
    stages.push(blocks);
    featureInfo.push({ module: `layer${s + 1}`, channels, reduction });
  }
  const { dropPathRate: _rate, ...rest } = head;
  return { ...rest, stages, featureInfo };
}

// ---- layers ----------------------------------------------------------------------------------

/** A conv as torchvision's ResNet initialises it: no bias, kaiming normal (fan out, ReLU). */
function conv(inChannels: number, outChannels: number, kernelSize: number, stride = 1): Conv2d {
  const c = new Conv2d({ inChannels, outChannels, kernelSize, stride, padding: (kernelSize - 1) >> 1, bias: false });
  kaimingNormal_(c.weight, { mode: 'fanOut', nonlinearity: 'relu' });
  return c;
}

const bn = (channels: number) => new BatchNorm2d({ numFeatures: channels });
const activationModule = (a: Activation): Module => (a === 'silu' ? new SiLU() : new ReLU());
const actName = (a: Activation) => (a === 'silu' ? 'act' : 'relu');

/** Runs a block's spatial op and checks it kept its contract. */
function spatial(op: SpatialOp, x: Tensor, p: BlockPlan): Tensor {
  const y = op.forward(x);
  const [h, w] = x.shape.slice(-2);
  const want = [p.outChannels, Math.ceil(h / p.stride), Math.ceil(w / p.stride)];
  if (y.ndim !== 4 || y.shape[1] !== want[0] || y.shape[2] !== want[1] || y.shape[3] !== want[2]) {
    throw new ShapeError(`${p.name}.conv2 (${op.constructor.name}): for input [${x.shape.join(', ')}] at stride ${p.stride} ` +
      `a spatial op must return (B, ${want.join(', ')}), got [${y.shape.join(', ')}]; fix the operator's output channels or stride`);
  }
  return y;
}

/** The 1×1 conv + BN projection shortcut, when the block changes shape (torchvision's rule). */
function shortcut(p: BlockPlan): Sequential | null {
  if (p.blockStride === 1 && p.blockInChannels === p.blockOutChannels) return null;
  return new Sequential(conv(p.blockInChannels, p.blockOutChannels, 1, p.blockStride), bn(p.blockOutChannels));
}

/**
 * torchvision's Bottleneck (v1.5): 1×1 conv → BN → act → spatial op (conv2, stride) → [BN] → act
 * → 1×1 conv → BN → [DropPath] → + shortcut → act.
 *
 * Parameters: conv1 (width, C_in, 1, 1), bn1, conv2 (the op's), bn2 (unless dropped), conv3
 * (C_out, width', 1, 1), bn3, downsample.0 (C_out, C_in, 1, 1) and downsample.1 when the shape changes.
 */
export class Bottleneck extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: SpatialOp;
  readonly bn2: BatchNorm2d | null;
  readonly conv3: Conv2d;
  readonly bn3: BatchNorm2d;
  readonly act: Module;
  readonly downsample: Sequential | null;
  readonly dropPath: DropPath | null;

  constructor(readonly plan: BlockPlan) {
    super();
    const p = plan;
    this.conv1 = this.register('conv1', conv(p.blockInChannels, p.inChannels, 1));
    this.bn1 = this.register('bn1', bn(p.inChannels));
    this.conv2 = this.register('conv2', p.op(contextOf(p)));
    this.bn2 = p.keepBn2 ? this.register('bn2', bn(p.outChannels)) : null;
    this.conv3 = this.register('conv3', conv(p.outChannels, p.blockOutChannels, 1));
    this.bn3 = this.register('bn3', bn(p.blockOutChannels));
    this.act = this.register(actName(p.activation), activationModule(p.activation));
    this.downsample = this.register('downsample', shortcut(p));
    this.dropPath = p.dropPath ? this.register('drop_path', new DropPath({ p: p.dropPath })) : null;
  }

  /** The BN whose weight `zeroInitResidual` zeroes. */
  get lastBn(): BatchNorm2d {
    return this.bn3;
  }

  forward(x: Tensor): Tensor {
    let out = this.act.forward(this.bn1.forward(this.conv1.forward(x)));
    out = spatial(this.conv2, out, this.plan);
    if (this.bn2) out = this.bn2.forward(out);
    out = this.bn3.forward(this.conv3.forward(this.act.forward(out)));
    if (this.dropPath) out = this.dropPath.forward(out);
    return this.act.forward(out.add(this.downsample ? this.downsample.forward(x) : x));
  }
}

/**
 * torchvision's BasicBlock: 3×3 conv (conv1, stride) → BN → act → spatial op (conv2, stride 1) →
 * [BN] → [DropPath] → + shortcut → act.
 */
export class BasicBlock extends Module {
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly conv2: SpatialOp;
  readonly bn2: BatchNorm2d | null;
  readonly act: Module;
  readonly downsample: Sequential | null;
  readonly dropPath: DropPath | null;

  constructor(readonly plan: BlockPlan) {
    super();
    const p = plan;
    this.conv1 = this.register('conv1', conv(p.blockInChannels, p.inChannels, 3, p.blockStride));
    this.bn1 = this.register('bn1', bn(p.inChannels));
    this.conv2 = this.register('conv2', p.op(contextOf(p)));
    this.bn2 = p.keepBn2 ? this.register('bn2', bn(p.outChannels)) : null;
    this.act = this.register(actName(p.activation), activationModule(p.activation));
    this.downsample = this.register('downsample', shortcut(p));
    this.dropPath = p.dropPath ? this.register('drop_path', new DropPath({ p: p.dropPath })) : null;
  }

  get lastBn(): BatchNorm2d | null {
    return this.bn2;
  }

  forward(x: Tensor): Tensor {
    let out = this.act.forward(this.bn1.forward(this.conv1.forward(x)));
    out = spatial(this.conv2, out, this.plan);
    if (this.bn2) out = this.bn2.forward(out);
    if (this.dropPath) out = this.dropPath.forward(out);
    return this.act.forward(out.add(this.downsample ? this.downsample.forward(x) : x));
  }
}

/** Only the SpatialOpContext fields of a plan, so operators see exactly the documented context. */
function contextOf(p: BlockPlan): SpatialOpContext {
  const ctx: SpatialOpContext = {
    inChannels: p.inChannels, outChannels: p.outChannels, stride: p.stride, groups: p.groups,
    stage: p.stage, blockIndex: p.blockIndex, featureSize: [...p.featureSize],
  };
  if (p.dropPath) ctx.dropPath = p.dropPath;
  return ctx;
}

// ---- the network -----------------------------------------------------------------------------

/**
 * A ResNet-family network (build it with `resnetFamily`).
 *
 * Shape: (B, inChannels, H, W) → (B, numClasses); `forwardFeatures` gives one map per stage,
 * (B, featureInfo[i].channels, ⌈H/r⌉, ⌈W/r⌉) with r = featureInfo[i].reduction (4, 8, 16, 32 for
 * the ImageNet stem and strides [1, 2, 2, 2]).
 *
 * State dict: torchvision's keys — conv1, bn1, layer{1..n}.{b}.{conv1,bn1,conv2,bn2,conv3,bn3,
 * downsample.0,downsample.1}, fc (plus stem.* for a custom stem and head_conv.* with headChannels).
 */
export class ResNet extends Module {
  readonly plan: ResNetPlan;
  readonly stem: SpatialOp | null = null;
  readonly conv1: Conv2d | null = null;
  readonly bn1: BatchNorm2d | null = null;
  readonly act: Module | null = null;
  readonly maxpool: MaxPool2d | null = null;
  readonly stages: Sequential[] = [];
  readonly headConv: Sequential | null;
  readonly avgpool: AdaptiveAvgPool2d;
  fc: Linear | Identity;
  readonly featureInfo: FeatureInfo[];
  /** Channels entering the classifier. */
  readonly numFeatures: number;
  numClasses: number;

  constructor(plan: ResNetPlan) {
    super();
    this.plan = plan;
    const { stem, stemWidth, inChannels, activation } = plan;
    if (typeof stem === 'object') {
      this.stem = this.register('stem', stem.build({ inChannels, outChannels: stemWidth }));
    } else {
      this.conv1 = this.register('conv1', stem === 'imagenet' ? conv(inChannels, stemWidth, 7, 2) : conv(inChannels, stemWidth, 3, 1));
      this.bn1 = this.register('bn1', bn(stemWidth));
      this.act = this.register(actName(activation), activationModule(activation));
      if (stem === 'imagenet') this.maxpool = this.register('maxpool', new MaxPool2d({ kernelSize: 3, stride: 2, padding: 1 }));
    }
    for (const [s, blocks] of plan.stages.entries()) {
      const stage = new Sequential(...blocks.map((p) => (p.kind === 'bottleneck' ? new Bottleneck(p) : new BasicBlock(p))));
      this.stages.push(this.register(`layer${s + 1}`, stage));
    }
    this.featureInfo = plan.featureInfo;
    let features = plan.featureInfo[plan.featureInfo.length - 1].channels;
    this.headConv = null;
    if (plan.headChannels !== null) {
      this.headConv = this.register('head_conv', new Sequential(conv(features, plan.headChannels, 1), bn(plan.headChannels), activationModule(activation)));
      features = plan.headChannels;
    }
    this.numFeatures = features;
    this.numClasses = plan.numClasses;
    this.avgpool = this.register('avgpool', new AdaptiveAvgPool2d({ outputSize: 1 }));
    this.fc = this.register('fc', plan.numClasses > 0 ? new Linear({ inFeatures: features, outFeatures: plan.numClasses }) : new Identity());
    if (plan.zeroInitResidual) {
      for (const stage of this.stages) {
        for (const block of stage) {
          const last = (block as Bottleneck | BasicBlock).lastBn;
          if (last?.weight) zeros_(last.weight);
        }
      }
    }
  }

  /**
   * A fresh classifier for numClasses (timm's reset_classifier; 0: none, forward returns the pooled
   * features). The new `fc` has Linear's default init, as torchvision's; the old one is disposed.
   */
  resetClassifier(numClasses: number): void {
    if (!Number.isInteger(numClasses) || numClasses < 0) {
      throw new RangeError(`resetClassifier: numClasses must be an integer ≥ 0, got ${numClasses}`);
    }
    const old = this.fc;
    this.fc = this.register('fc', numClasses > 0 ? new Linear({ inFeatures: this.numFeatures, outFeatures: numClasses }) : new Identity(), { replace: true });
    old.dispose();
    this.numClasses = numClasses;
  }

  /** Stem: (B, C_in, H, W) → (B, stemWidth, H/4, W/4) for the ImageNet stem, full size for CIFAR. */
  forwardStem(x: Tensor): Tensor {
    if (this.stem) return this.stem.forward(x);
    let h = this.act!.forward((this.bn1 as BatchNorm2d).forward((this.conv1 as Conv2d).forward(x)));
    if (this.maxpool) h = this.maxpool.forward(h);
    return h;
  }

  /** The output of every stage, in order (timm's features_only). */
  forwardFeatures(x: Tensor): Tensor[] {
    const maps: Tensor[] = [];
    let h = this.forwardStem(x);
    for (const stage of this.stages) {
      h = stage.forward(h);
      maps.push(h);
    }
    return maps;
  }

  /** Last stage map → [head conv] → global average pool → fc: (B, C, h, w) → (B, numClasses). */
  forwardHead(x: Tensor): Tensor {
    const h = this.headConv ? this.headConv.forward(x) : x;
    return this.fc.forward(this.avgpool.forward(h).flatten(1));
  }

  forward(x: Tensor): Tensor {
    const maps = this.forwardFeatures(x);
    return this.forwardHead(maps[maps.length - 1]);
  }
}

/**
 * Builds a ResNet-family network.
 *
 * Errors: RangeError naming the option, its value and the fix for inconsistent options (per-stage
 * lists of the wrong length, non-integer widths, basic blocks with groups, …); ShapeError in
 * forward when a spatial op returns the wrong shape.
 *
 * @example
 * const resnet50 = resnetFamily({ depths: [3, 4, 6, 3] });                        // 25,557,032 params
 * const resnext50 = resnetFamily({ depths: [3, 4, 6, 3], cardinality: 32, widthPerGroup: 4 });
 * const cifar18 = resnetFamily({ depths: [2, 2, 2, 2], block: 'basic', stem: 'cifar', numClasses: 10, inputSize: 32 });
 */
export function resnetFamily(options: ResNetFamilyOptions): ResNet {
  return new ResNet(planResNet(options));
}
