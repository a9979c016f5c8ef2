/**
 * timm's ByobNet ("bring your own blocks", timm/models/byobnet.py, timm 1.0.29) for the
 * Bring-Your-Own-Attention family of timm/models/byoanet.py: BoTNet (Srinivas et al., CVPR 2021)
 * and HaloNet (Vaswani et al., CVPR 2021) as timm configures them. The modules, their order and
 * their names are timm's, so `model.state_dict()` from timm loads strictly and the logits agree:
 *
 *   stem      'tiered' (3×3 convs 3c/8, c/2, c; + 3×3/2 max-pool), '7x7' (+ max-pool) or '3x3' (one conv)
 *   stages.i.j  'bottle'    ByobBottleneck: 1×1 → k×k (groups) → [SE/ECA] → 1×1 → + shortcut → act
 *               'self_attn' ByobSelfAttn:   1×1 → HaloAttn | BottleneckAttn → BN-act → 1×1 → + shortcut → act
 *   final_conv  1×1 ConvNormAct when num_features is set
 *   head.fc     global average pool → linear
 *
 * The self-attention layers are vicinity's: HaloAttention (timm HaloAttn, attention/halo-attention.ts)
 * and MultiHeadSelfAttention2d (timm BottleneckAttn, attention/mhsa2d.ts). ConvNormAct keys are
 * `conv.weight`, `bn.*`; BatchNormAct2d is a BatchNorm2d with its activation inside (no parameters).
 *
 * Deviations from timm: only the block types and layers these configurations use are built ('bottle',
 * 'self_attn'; SE, ECA; 'halo' and 'bottleneck' self-attention; ReLU/SiLU; batch norm; output stride
 * 32); an unsupported option is a RangeError, not a silently different network. DropBlock is not built
 * (timm's default drop_block_rate is 0).
 */
import { HaloAttention } from '../attention/halo-attention.js';
import { makeDivisible } from '../attention/make-divisible.js';
import { MultiHeadSelfAttention2d } from '../attention/mhsa2d.js';
import {
  BatchNorm2d, Conv2d, DropPath, EfficientChannelAttention, Linear, MaxPool2d, Module, ReLU, Sequential, SiLU,
  SqueezeExcite, init,
} from '../nn/index.js';
import type { Tensor } from '../tensor/tensor.js';
import { knownOptions, optionNames } from '../nn/layers/validation.js';
import { ShapeError } from '../tensor/shape-error.js';

export type ByobActivation = 'relu' | 'silu';

/** timm's self_attn_layer + self_attn_kwargs (camelCase). */
export type ByobSelfAttnSpec =
  | { layer: 'halo'; blockSize?: number; haloSize?: number; numHeads?: number; dimHead?: number; qkRatio?: number }
  | { layer: 'bottleneck'; numHeads?: number; dimHead?: number; qkRatio?: number };

/** timm's attn_layer + attn_kwargs. */
export type ByobAttnSpec = { layer: 'se'; rdRatio?: number } | { layer: 'eca' };

/** One block (timm ByoBlockCfg with d = 1). */
export interface ByoBlockCfg {
  type: 'bottle' | 'self_attn';
  /** Output channels. */
  c: number;
  /** Stride of the stage (applied by its first block). */
  s: number;
  /** Group size of the k×k conv (0: one group). */
  gs: number;
  /** Bottleneck ratio. */
  br: number;
  /** Overrides the model's self-attention layer for this block. */
  selfAttn?: ByobSelfAttnSpec;
}

/** timm ByoModelCfg, for the options the attention family uses. */
export interface ByoModelCfg {
  /** Blocks of each stage, expanded (timm's expand_blocks_cfg / interleave_blocks). */
  stages: ByoBlockCfg[][];
  /** Projection shortcut: 'conv1x1' (1×1 ConvNormAct without act) or '' (no shortcut when the shape changes). */
  downsample: 'conv1x1' | '';
  stemType: 'tiered' | '7x7' | '3x3';
  stemPool: 'maxpool' | '';
  stemChs: number;
  /** Width of final_conv; 0: no final conv. */
  numFeatures: number;
  act: ByobActivation;
  attn?: ByobAttnSpec;
  selfAttn?: ByobSelfAttnSpec;
  /** timm block_kwargs: bottle_in (bottleneck from the input width), linear_out (no act after the sum). */
  bottleIn?: boolean;
  linearOut?: boolean;
  /** The network only runs at the size it was built for (BottleneckAttn's tables). */
  fixedInputSize?: boolean;
  /** timm's width_factor: scales the stem, every stage width and num_features. Default 1. */
  widthFactor?: number;
}

/** Python's round(): halves to even, as timm's int(round(c · width_factor)). */
export function pyRound(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** timm's interleave_blocks: d blocks of types[0], with types[1] at the `every` positions. */
export function interleaveBlocks(
  types: [ByoBlockCfg['type'], ByoBlockCfg['type']], d: number, every: number | number[],
  block: Omit<ByoBlockCfg, 'type'>, first = false,
): ByoBlockCfg[] {
  let at: number[];
  if (typeof every === 'number') {
    at = [];
    for (let i = first ? 0 : every; i < d; i += every + 1) at.push(i);
    if (at.length === 0) at = [d - 1];
  } else at = every;
  return Array.from({ length: d }, (_, i) => ({ ...block, type: at.includes(i) ? types[1] : types[0] }));
}

/** d copies of one block (timm's expand_blocks_cfg). */
export function repeatBlocks(d: number, block: ByoBlockCfg): ByoBlockCfg[] {
  return Array.from({ length: d }, () => ({ ...block }));
}

const activation = (a: ByobActivation): Module => (a === 'silu' ? new SiLU() : new ReLU());

/** timm BatchNormAct2d: BatchNorm2d whose forward applies the activation (keys: weight, bias, running_*). */
export class BatchNormAct2d extends BatchNorm2d {
  readonly act: Module | null;

  constructor(channels: number, act: ByobActivation | null) {
    super({ numFeatures: channels });
    this.act = act ? this.register('act', activation(act)) : null;
  }

  override forward(x: Tensor): Tensor {
    const y = super.forward(x);
    return this.act ? this.act.forward(y) : y;
  }
}

/** timm ConvNormAct: conv (no bias, padding ((s − 1) + (k − 1)) / 2 floored) → BatchNormAct2d. */
export class ConvNormAct extends Module {
  readonly conv: Conv2d;
  readonly bn: BatchNormAct2d;

  constructor(o: { inChannels: number; outChannels: number; kernelSize: number; stride?: number; groups?: number; act: ByobActivation | null }) {
    super();
    const stride = o.stride ?? 1;
    this.conv = this.register('conv', new Conv2d({
      inChannels: o.inChannels, outChannels: o.outChannels, kernelSize: o.kernelSize, stride,
      padding: Math.floor((stride - 1 + o.kernelSize - 1) / 2), groups: o.groups ?? 1, bias: false,
    }));
    this.bn = this.register('bn', new BatchNormAct2d(o.outChannels, o.act));
  }

  forward(x: Tensor): Tensor {
    return this.bn.forward(this.conv.forward(x));
  }
}

function groupsOf(groupSize: number, channels: number, where: string): number {
  if (!groupSize) return 1;
  if (channels % groupSize !== 0) {
    throw new RangeError(`${where}: bottleneck width ${channels} is not divisible by the group size ${groupSize}; change gs or br`);
  }
  return channels / groupSize;
}

/** Everything a block needs from the model (timm's LayerFn + block kwargs). */
export interface ByobBlockArgs {
  inChannels: number;
  outChannels: number;
  stride: number;
  cfg: ByoBlockCfg;
  model: ByoModelCfg;
  /** The block's input map [H, W] when known (fixed-size models). */
  featSize: [number, number] | null;
  dropPath: number;
  where: string;
}

/** The shortcut: identity (null module, `identity` true), a 1×1 ConvNormAct, or none at all. */
function makeShortcut(a: ByobBlockArgs): { module: ConvNormAct | null; identity: boolean } {
  if (a.inChannels === a.outChannels && a.stride === 1) return { module: null, identity: true };
  if (a.model.downsample === '') return { module: null, identity: false };
  return {
    module: new ConvNormAct({ inChannels: a.inChannels, outChannels: a.outChannels, kernelSize: 1, stride: a.stride, act: null }),
    identity: false,
  };
}

function midChannels(a: ByobBlockArgs): number {
  return makeDivisible((a.model.bottleIn ? a.inChannels : a.outChannels) * a.cfg.br);
}

/** Shared by the two block types: the residual sum, drop path, final activation. */
abstract class ByobResidual extends Module {
  readonly shortcut: ConvNormAct | null;
  readonly identityShortcut: boolean;
  dropPath: DropPath | null = null;
  readonly act: Module | null;
  abstract readonly conv3_1x1: ConvNormAct;

  constructor(a: ByobBlockArgs) {
    super();
    const sc = makeShortcut(a);
    this.shortcut = this.register('shortcut', sc.module);
    this.identityShortcut = sc.identity;
    this.act = a.model.linearOut ? null : activation(a.model.act);
  }

  protected finish(a: ByobBlockArgs): void {
    if (a.dropPath > 0) this.dropPath = this.register('drop_path', new DropPath({ p: a.dropPath }));
    if (this.act) this.register('act', this.act);
  }

  protected residual(x: Tensor, branch: Tensor): Tensor {
    let out = this.dropPath ? this.dropPath.forward(branch) : branch;
    if (this.shortcut) out = out.add(this.shortcut.forward(x));
    else if (this.identityShortcut) out = out.add(x);
    return this.act ? this.act.forward(out) : out;
  }

  /** timm's zero_init_last: the last BN's gamma starts at 0 where there is a shortcut. */
  zeroInitLast(): void {
    if ((this.shortcut || this.identityShortcut) && this.conv3_1x1.bn.weight) init.zeros_(this.conv3_1x1.bn.weight);
  }
}

/** timm BottleneckBlock: conv1_1x1 → conv2_kxk (stride, groups) → attn (SE/ECA) → conv3_1x1 → + shortcut → act. */
export class ByobBottleneck extends ByobResidual {
  readonly conv1_1x1: ConvNormAct;
  readonly conv2_kxk: ConvNormAct;
  readonly attn: SqueezeExcite | EfficientChannelAttention | null;
  readonly conv3_1x1: ConvNormAct;

  constructor(a: ByobBlockArgs) {
    super(a);
    const mid = midChannels(a);
    const act = a.model.act;
    this.conv1_1x1 = this.register('conv1_1x1', new ConvNormAct({ inChannels: a.inChannels, outChannels: mid, kernelSize: 1, act }));
    this.conv2_kxk = this.register('conv2_kxk', new ConvNormAct({
      inChannels: mid, outChannels: mid, kernelSize: 3, stride: a.stride, groups: groupsOf(a.cfg.gs, mid, a.where), act,
    }));
    this.attn = this.register('attn', channelAttention(a.model.attn, mid));
    this.conv3_1x1 = this.register('conv3_1x1', new ConvNormAct({ inChannels: mid, outChannels: a.outChannels, kernelSize: 1, act: null }));
    this.finish(a);
  }

  forward(x: Tensor): Tensor {
    let y = this.conv2_kxk.forward(this.conv1_1x1.forward(x));
    if (this.attn) y = this.attn.forward(y);
    return this.residual(x, this.conv3_1x1.forward(y));
  }
}

function channelAttention(spec: ByobAttnSpec | undefined, channels: number): SqueezeExcite | EfficientChannelAttention | null {
  if (!spec) return null;
  if (spec.layer === 'eca') return new EfficientChannelAttention({ channels });
  // timm SEModule: rd = make_divisible(C · rd_ratio, 8, round_limit=0), ReLU inside.
  const rd = makeDivisible(channels * (spec.rdRatio ?? 1 / 16), { divisor: 8, roundLimit: 0 });
  return new SqueezeExcite({ channels, reducedChannels: rd });
}

/** timm SelfAttnBlock: conv1_1x1 → self_attn (stride) → post_attn (BN-act) → conv3_1x1 → + shortcut → act. */
export class ByobSelfAttn extends ByobResidual {
  readonly conv1_1x1: ConvNormAct;
  readonly self_attn: HaloAttention | MultiHeadSelfAttention2d;
  readonly post_attn: BatchNormAct2d;
  readonly conv3_1x1: ConvNormAct;

  constructor(a: ByobBlockArgs) {
    super(a);
    const mid = midChannels(a);
    const act = a.model.act;
    const spec = a.cfg.selfAttn ?? a.model.selfAttn;
    if (!spec) throw new RangeError(`${a.where}: a 'self_attn' block needs a self-attention layer (selfAttn) in its block or model config`);
    this.conv1_1x1 = this.register('conv1_1x1', new ConvNormAct({ inChannels: a.inChannels, outChannels: mid, kernelSize: 1, act }));
    if (spec.layer === 'halo') {
      const blockSize = spec.blockSize ?? 8;
      // timm needs every map to divide by the block size; where the model is built for a size that
      // does not (small inputs), HaloAttention pads and masks instead of failing (its Deviation 1).
      const divides = !a.featSize || a.featSize.every((s) => s % blockSize === 0);
      this.self_attn = new HaloAttention({
        dim: mid, stride: a.stride, numHeads: spec.numHeads ?? 8, dimHead: spec.dimHead,
        blockSize, haloSize: spec.haloSize ?? 3, qkRatio: spec.qkRatio ?? 1, padding: divides ? 'none' : 'mask',
      });
    } else {
      if (!a.featSize) {
        throw new RangeError(`${a.where}: BottleneckAttn needs the input size; build the model with inputSize (it is fixed-size)`);
      }
      this.self_attn = new MultiHeadSelfAttention2d({
        dim: mid, featSize: a.featSize, stride: a.stride, numHeads: spec.numHeads ?? 4, dimHead: spec.dimHead, qkRatio: spec.qkRatio ?? 1,
      });
    }
    this.register('self_attn', this.self_attn);
    this.post_attn = this.register('post_attn', new BatchNormAct2d(mid, act));
    this.conv3_1x1 = this.register('conv3_1x1', new ConvNormAct({ inChannels: mid, outChannels: a.outChannels, kernelSize: 1, act: null }));
    this.finish(a);
  }

  forward(x: Tensor): Tensor {
    const y = this.post_attn.forward(this.self_attn.forward(this.conv1_1x1.forward(x)));
    return this.residual(x, this.conv3_1x1.forward(y));
  }
}

/** timm's Stem for 'tiered' and '7x7' with pooling: conv1..convN (ConvNormAct) [+ pool]. */
export class ByobStem extends Module {
  readonly convs: ConvNormAct[] = [];
  readonly pool: MaxPool2d | null;
  readonly stride: number;

  constructor(inChannels: number, widths: number[], kernelSize: number, pool: boolean, act: ByobActivation) {
    super();
    const strides = widths.map((_, i) => (i === 0 ? 2 : 1));
    if (!pool) strides[strides.length - 1] = 2; // stride 4 without pooling: the last conv strides
    let prev = inChannels;
    for (const [i, w] of widths.entries()) {
      this.convs.push(this.register(`conv${i + 1}`, new ConvNormAct({ inChannels: prev, outChannels: w, kernelSize, stride: strides[i], act })));
      prev = w;
    }
    this.pool = pool ? this.register('pool', new MaxPool2d({ kernelSize: 3, stride: 2, padding: 1 })) : null;
    this.stride = 4;
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const c of this.convs) y = c.forward(y);
    return this.pool ? this.pool.forward(y) : y;
  }
}

export interface ByobNetOptions {
  numClasses: number;
  inChannels: number;
  /** Input side or [H, W]: required by fixed-size models (BottleneckAttn tables). */
  inputSize?: number | [number, number];
  /** timm's drop_path_rate: linear over all blocks. Default 0. */
  dropPathRate?: number;
}

const BYOB_NET_OPTION_NAMES = optionNames<ByobNetOptions>({ numClasses: 1, inChannels: 1, inputSize: 1, dropPathRate: 1 });

/**
 * timm ByobNet for one configuration (see the file header).
 *
 * Shape: (B, inChannels, H, W) → (B, numClasses). Fixed-size models (BottleneckAttn) need H, W =
 * inputSize; halo models need every stage map divisible by the block size (256 px for most).
 *
 * State dict: timm's keys — stem.*, stages.{i}.{j}.{shortcut,conv1_1x1,conv2_kxk,attn,self_attn,
 * post_attn,conv3_1x1}.*, final_conv.*, head.fc.*.
 */
export class ByobNet extends Module {
  readonly cfg: ByoModelCfg;
  readonly stem: ByobStem | ConvNormAct;
  readonly stages: Sequential;
  readonly finalConv: ConvNormAct | null;
  readonly head: ClassifierHead;
  readonly numFeatures: number;
  numClasses: number;
  readonly inputSize: [number, number] | null;

  constructor(cfg: ByoModelCfg, o: ByobNetOptions) {
    super();
    knownOptions('ByobNet', o, BYOB_NET_OPTION_NAMES);
    this.cfg = cfg;
    const act = cfg.act;
    const wf = cfg.widthFactor ?? 1;
    if (!(wf > 0)) throw new RangeError(`ByobNet: widthFactor must be > 0, got ${wf}`);
    const stemChs = pyRound(cfg.stemChs * wf);
    const numFeatures = cfg.numFeatures ? pyRound(cfg.numFeatures * wf) : 0;
    const size = o.inputSize === undefined ? null : typeof o.inputSize === 'number' ? [o.inputSize, o.inputSize] : o.inputSize;
    this.inputSize = size ? [size[0], size[1]] : null;
    let stemStride: number;
    if (cfg.stemType === 'tiered') {
      const c = stemChs;
      this.stem = new ByobStem(o.inChannels, [Math.floor((3 * c) / 8), Math.floor(c / 2), c], 3, cfg.stemPool === 'maxpool', act);
      stemStride = 4;
    } else if (cfg.stemPool === 'maxpool') {
      this.stem = new ByobStem(o.inChannels, [stemChs], cfg.stemType === '7x7' ? 7 : 3, true, act);
      stemStride = 4;
    } else {
      this.stem = new ConvNormAct({ inChannels: o.inChannels, outChannels: stemChs, kernelSize: cfg.stemType === '7x7' ? 7 : 3, stride: 2, act });
      stemStride = 2;
    }
    this.register('stem', this.stem);
    let feat: [number, number] | null = size ? [Math.floor(size[0] / stemStride), Math.floor(size[1] / stemStride)] : null;
    const total = cfg.stages.reduce((n, s) => n + s.length, 0);
    const rate = o.dropPathRate ?? 0;
    let prev = stemChs;
    let index = 0;
    const stages: Sequential[] = [];
    for (const [si, blocks] of cfg.stages.entries()) {
      const mods: Module[] = [];
      for (const [bi, b] of blocks.entries()) {
        const stride = bi === 0 ? b.s : 1;
        const out = makeDivisible(b.c * wf);
        const args: ByobBlockArgs = {
          inChannels: prev, outChannels: out, stride, cfg: b, model: cfg, featSize: feat ? [feat[0], feat[1]] : null,
          dropPath: total > 1 ? (rate * index) / (total - 1) : 0, where: `stages.${si}.${bi}`,
        };
        mods.push(b.type === 'self_attn' ? new ByobSelfAttn(args) : new ByobBottleneck(args));
        if (feat && stride > 1) feat = [Math.floor(feat[0] / stride), Math.floor(feat[1] / stride)];
        prev = out;
        index++;
      }
      stages.push(new Sequential(...mods));
    }
    this.stages = this.register('stages', new Sequential(...stages));
    this.finalConv = numFeatures ? this.register('final_conv', new ConvNormAct({ inChannels: prev, outChannels: numFeatures, kernelSize: 1, act })) : null;
    this.numFeatures = numFeatures || prev;
    this.numClasses = o.numClasses;
    this.head = this.register('head', new ClassifierHead(this.numFeatures, o.numClasses));
    this.initWeights();
  }

  /** A fresh classifier for numClasses (0: none, forward returns the pooled features) — timm's reset_classifier. */
  resetClassifier(numClasses: number): void {
    this.head.reset(numClasses);
    this.numClasses = numClasses;
  }

  /** timm's _init_weights: convs N(0, √(2/fan_out)), BN (1, 0), attention layers their own, zero_init_last. */
  private initWeights(): void {
    for (const m of this.modules()) {
      if (m instanceof Conv2d) { // the attention layers' own init follows below
        const [out, , kh, kw] = m.weight.shape;
        init.normal_(m.weight, { std: Math.sqrt(2 / ((kh * kw * out) / m.groups)) });
        if (m.bias) init.zeros_(m.bias);
      } else if (m instanceof BatchNorm2d) {
        if (m.weight) init.ones_(m.weight);
        if (m.bias) init.zeros_(m.bias);
      }
    }
    for (const m of this.modules()) {
      if (m instanceof HaloAttention || m instanceof MultiHeadSelfAttention2d) m.resetParameters();
      if (m instanceof ByobResidual) m.zeroInitLast();
    }
  }

  /**
   * One map per stage (strides 4/8/16/32 for timm's stems), the last after the final conv — the
   * `forwardFeatures` contract of every vicinity model (registry.ts). timm's `forward_features`
   * is the last of them.
   */
  forwardFeatures(x: Tensor): Tensor[] {
    this.checkInputSize(x);
    const maps: Tensor[] = [];
    let y = this.stem.forward(x);
    for (const stage of this.stages) maps.push(y = stage.forward(y));
    if (this.finalConv) maps[maps.length - 1] = this.finalConv.forward(y);
    return maps;
  }

  private checkInputSize(x: Tensor): void {
    if (!this.inputSize || !this.cfg.fixedInputSize) return;
    const [, , h, w] = x.shape;
    if (h !== this.inputSize[0] || w !== this.inputSize[1]) {
      throw new ShapeError(`ByobNet: this model is fixed-size (BottleneckAttn) and was built for ${this.inputSize.join('×')}, ` +
        `got ${h}×${w}; build it with { inputSize: [${h}, ${w}] } or resize the images`);
    }
  }

  /** Stem → stages → final conv: (B, C, H, W) → (B, numFeatures, H/32, W/32) (timm's forward_features). */
  private forwardBody(x: Tensor): Tensor {
    this.checkInputSize(x);
    const y = this.stages.forward(this.stem.forward(x));
    return this.finalConv ? this.finalConv.forward(y) : y;
  }

  /** Global average pool → fc. */
  forwardHead(x: Tensor): Tensor {
    return this.head.forward(x);
  }

  forward(x: Tensor): Tensor {
    return this.forwardHead(this.forwardBody(x));
  }
}

/** timm ClassifierHead: global average pool → fc (`head.fc.*`); numClasses 0 leaves the pooled features. */
export class ClassifierHead extends Module {
  fc: Linear | null = null;

  constructor(readonly inFeatures: number, numClasses: number) {
    super();
    this.reset(numClasses);
  }

  /** A fresh fc for numClasses (timm's init: N(0, 0.01), zero bias); the old one is disposed. */
  reset(numClasses: number): void {
    if (!Number.isInteger(numClasses) || numClasses < 0) {
      throw new RangeError(`resetClassifier: numClasses must be an integer ≥ 0, got ${numClasses}`);
    }
    const old = this.fc;
    this.fc = numClasses > 0 ? new Linear({ inFeatures: this.inFeatures, outFeatures: numClasses }) : null;
    if (this.fc) {
      init.normal_(this.fc.weight, { std: 0.01 });
      if (this.fc.bias) init.zeros_(this.fc.bias);
    }
    this.register('fc', this.fc, { replace: true });
    old?.dispose();
  }

  forward(x: Tensor): Tensor {
    const pooled = x.mean([2, 3]);
    return this.fc ? this.fc.forward(pooled) : pooled;
  }
}
