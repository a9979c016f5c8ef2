/**
 * LSAG stages (Sheynin et al., "Locally Shifted Attention With Early Global Integration"): the first
 * stage (local attention across shift variants, then global blocks), the later global stages, and
 * the downsampling between them.
 *   §3.1          O^s_i = O'^s_i + L^s_i (a learned embedding per variant and patch)   → LsagFirstStage.forward()
 *   §3.2 Eq. (1–4) local attention block: x += Attn_local(LN(x), LN(O)); x += FFN(LN(x)) → LsagFirstStage.forward()
 *   §3.2          global attention blocks: x += MHSA(LN(x)); x += FFN(LN(x))             → LsagFirstStage / LsagStage.forward()
 *   §3.2          "Pyramidal structure": conv 3×3 s1 p1 → max-pool 3×3 s2 p1, N → N/4    → ReduceImageSize.forward()
 * Legend: B batch, T variants, N tokens, D width, g = √N the token grid side.
 * Reference: shellysheynin/Locally-SAG-Transformer@a1284a46, `cifar/cifar_model.py` and
 * `imagenet_model.py`, classes Transformer_first, Transformer, Reduce_image_size, and the
 * `to_image_plane`/`to_patches_plane` helpers (reference-layers.md §4.2–4.5). Fixtures:
 * lsag-cifar-local-open, lsag-imagenet-local-open (LsagLocalStageParity), lsag-cifar-global-open,
 * lsag-imagenet-global-open (LsagGlobalStageParity).
 * Deviations:
 *   1. As the reference (not the paper): ONE `norm1`/`norm2` LayerNorm pair (eps 1e-6) shared by all
 *      blocks of a stage; the depth of the first stage counts its local block; every later stage adds
 *      its own `pos_emb` (N, D); ReduceImageSize puts a LayerNorm (over channels, eps 1e-6) between
 *      conv and pool. Drop-path has one constant rate for every block, as the reference.
 *   2. ReduceImageSize takes and returns tokens (B, N, C) (it includes `to_image_plane` and
 *      `to_patches_plane`, which the reference calls around it), and throws ShapeError when N is not
 *      a square (the reference's int(N**0.5) reshape fails or scrambles).
 *   3. Wrong input shapes throw ShapeError naming the expected (T, B, N, D) / (B, N, D); the
 *      reference asserts only T and D. `act_layer`/`norm_layer` are fixed to GELU / LayerNorm(1e-6).
 *   4. Batch 1, 1 head and 1 token work (see lsag-attention.ts, deviation 1).
 */
import { MaxPool2d } from '../nn/layers/pooling.js';
import { Conv2d } from '../nn/layers/conv.js';
import { ModuleList } from '../nn/layers/containers.js';
import { LayerNorm } from '../nn/layers/layer-norm.js';
import { integerAtLeast, knownOptions, numberInRange, oneOf, optionNames } from '../nn/layers/validation.js';
import { Module, type AnyModule } from '../nn/module.js';
import { truncNormal_, zeros_ } from '../nn/init.js';
import { newParameter } from '../nn/layers/new-parameter.js';
import type { Parameter } from '../nn/parameter.js';
import * as F from '../ops/functional.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ReferenceBuilders } from './reference-builders.js';
import {
  LsagGlobalAttention, LsagLocalAttention, LsagMlp, type LsagAttentionOptions,
} from './lsag-attention.js';
import { LSAG_VARIANTS, LsagShiftedEmbedding, lsagNumVariants, type LsagVariant } from './lsag-shifted-embedding.js';

export interface LsagStageOptions {
  /** Tokens per image N (the token grid is √N × √N for the downsampling that follows). */
  numPatches: number;
  /** Blocks in the stage (the first stage's block 0 is the local one). */
  depth: number;
  /** Token width D. */
  dim: number;
  /** Heads h; dim must be a multiple. */
  numHeads: number;
  /** FFN hidden width = ⌊dim · mlpRatio⌋; default 4. */
  mlpRatio?: number;
  /** Biases on the q and k/v projections; default false (the full model passes true). */
  qkvBias?: boolean;
  /** Logit scale; default dh^-0.5. */
  qkScale?: number | null;
  /** Dropout after each attention's `proj` and inside the FFN; default 0. */
  projDrop?: number;
  /** Dropout on the attention weights; default 0. */
  attnDrop?: number;
  /** Drop-path (stochastic depth) rate of every residual branch; default 0. */
  dropPath?: number;
  /** One K/V head shared by all query heads (the CIFAR code); default false (the ImageNet code). */
  multiQuery?: boolean;
}

const LSAG_STAGE_OPTION_NAMES = optionNames<LsagStageOptions>({
  numPatches: 1, depth: 1, dim: 1, numHeads: 1, mlpRatio: 1, qkvBias: 1, qkScale: 1, projDrop: 1, attnDrop: 1, dropPath: 1, multiQuery: 1,
});

export interface LsagFirstStageOptions extends LsagStageOptions {
  /** T, the shift variants coming from the embedding. */
  numVariants: number;
}

const LSAG_FIRST_STAGE_OPTION_NAMES = optionNames<LsagFirstStageOptions>({
  numVariants: 1, numPatches: 1, depth: 1, dim: 1, numHeads: 1, mlpRatio: 1, qkvBias: 1, qkScale: 1, projDrop: 1, attnDrop: 1, dropPath: 1, multiQuery: 1,
});

interface Block<A extends AnyModule> {
  attention: A;
  mlp: LsagMlp;
}

/** What both stage kinds share: checked options, the shared norms and the block list. */
abstract class LsagStageBase<Local extends AnyModule> extends Module {
  readonly numPatches: number;
  readonly depth: number;
  readonly dim: number;
  readonly dropPath: number;
  /** `pos_emb`: (T, N, D) in the first stage, (N, D) in later ones; trunc_normal(std .02). */
  readonly posEmb: Parameter;
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  protected readonly blocks: Block<Local | LsagGlobalAttention>[] = [];

  protected constructor(layer: string, o: LsagStageOptions, posEmbShape: (n: number, d: number) => number[],
    makeFirst: (a: LsagAttentionOptions) => Local | LsagGlobalAttention) {
    super();
    this.numPatches = integerAtLeast(layer, 'numPatches', o.numPatches, 1);
    this.depth = integerAtLeast(layer, 'depth', o.depth, 1);
    this.dim = integerAtLeast(layer, 'dim', o.dim, 1);
    this.dropPath = numberInRange(layer, 'dropPath', o.dropPath ?? 0, 0, 1);
    const mlpRatio = o.mlpRatio ?? 4;
    const hidden = Math.floor(this.dim * mlpRatio);
    if (!(typeof mlpRatio === 'number' && hidden >= 1)) {
      throw new RangeError(`${layer}: mlpRatio ${String(mlpRatio)} gives an FFN width ⌊${this.dim}·mlpRatio⌋ < 1; use mlpRatio ≥ ${1 / this.dim}`);
    }
    this.posEmb = this.registerParameter('pos_emb', newParameter(posEmbShape(this.numPatches, this.dim)));
    truncNormal_(this.posEmb, { std: 0.02 });
    this.norm1 = this.register('norm1', new LayerNorm({ normalizedShape: this.dim, eps: 1e-6 }));
    const attention: LsagAttentionOptions = {
      dim: this.dim, numHeads: o.numHeads, qkvBias: o.qkvBias, qkScale: o.qkScale,
      attnDrop: o.attnDrop, projDrop: o.projDrop, multiQuery: o.multiQuery,
    };
    const layers = this.register('layers', new ModuleList<ModuleList>());
    for (let d = 0; d < this.depth; d++) {
      const block = {
        attention: d === 0 ? makeFirst(attention) : new LsagGlobalAttention(attention),
        mlp: new LsagMlp({ inFeatures: this.dim, hiddenFeatures: hidden, drop: o.projDrop }),
      };
      layers.push(new ModuleList([block.attention, block.mlp]));   // layers.{d}.0 / layers.{d}.1
      this.blocks.push(block);
    }
    this.norm2 = this.register('norm2', new LayerNorm({ normalizedShape: this.dim, eps: 1e-6 }));
  }

  /** x + DropPath(branch): the residual every block applies twice. */
  protected residual(x: Tensor, branch: Tensor): Tensor {
    return x.add(F.dropPath(branch, this.dropPath, this.training));
  }

  /** A global block on x (B, N, D) with the stage's shared norms. */
  protected globalBlock(x: Tensor, block: Block<Local | LsagGlobalAttention>): Tensor {
    const attended = this.residual(x, (block.attention as LsagGlobalAttention).forward(this.norm1.forward(x)));
    return this.residual(attended, block.mlp.forward(this.norm2.forward(attended)));
  }
}

/**
 * The first stage (Transformer_first): per-variant positional embedding, the local attention block
 * across the T variants, then depth − 1 global blocks; the shifted variants are dropped after block 0.
 *
 * Shape: patches (T, B, N, D) → tokens (B, N, D).
 *
 * Parameters: `pos_emb` (T, N, D); `norm1.*`, `norm2.*` (D) shared by all blocks; `layers.0.0.*`
 * (LsagLocalAttention: Wq_even, Wkv_even, proj), `layers.{d}.0.*` for d ≥ 1 (LsagGlobalAttention:
 * Wq_odd, Wkv_odd, proj), `layers.{d}.1.*` (LsagMlp: fc1, fc2). Init as the reference.
 *
 * Errors: RangeError/TypeError for bad options; ShapeError for patches that are not (T, B, N, D).
 *
 * @example
 * const stage = new LsagFirstStage({ numVariants: 18, numPatches: 1024, depth: 2, dim: 192, numHeads: 4, qkvBias: true, multiQuery: true });
 * const x = stage.forward(embedding.forward(images));   // (B, 1024, 192)
 */
export class LsagFirstStage extends LsagStageBase<LsagLocalAttention> {
  readonly numVariants: number;

  constructor(o: LsagFirstStageOptions) {
    knownOptions('LsagFirstStage', o, LSAG_FIRST_STAGE_OPTION_NAMES);
    const numVariants = integerAtLeast('LsagFirstStage', 'numVariants', o.numVariants, 1);
    super('LsagFirstStage', o, (n, d) => [numVariants, n, d],
      (a) => new LsagLocalAttention({ ...a, numVariants }));
    this.numVariants = numVariants;
  }

  forward(patches: Tensor): Tensor {
    const [T, , N, D] = patches.shape;
    if (patches.ndim !== 4 || T !== this.numVariants || N !== this.numPatches || D !== this.dim) {
      throw new ShapeError(`LsagFirstStage: expected patches (T=${this.numVariants}, B, N=${this.numPatches}, D=${this.dim}), ` +
        `got shape [${patches.shape.join(', ')}]; build the stage with the embedding's numVariants and numPatches`);
    }
    const variants = patches.add(this.posEmb.unsqueeze(1));          // §3.1 O = O' + L: (T, B, N, D)
    let x = variants.select(0, 0);                                    // unshifted variant: (B, N, D)
    const [local, ...rest] = this.blocks;
    const attention = local.attention as LsagLocalAttention;
    x = this.residual(x, attention.forward(this.norm1.forward(x), this.norm1.forward(variants)));   // Eq. (1)–(4)
    x = this.residual(x, local.mlp.forward(this.norm2.forward(x)));
    for (const block of rest) x = this.globalBlock(x, block);
    return x;
  }
}

/**
 * A later stage (Transformer): x + pos_emb, then `depth` global blocks.
 *
 * Shape: tokens (B, N, D) → tokens (B, N, D).
 *
 * Parameters: `pos_emb` (N, D); `norm1.*`, `norm2.*` shared by all blocks; `layers.{d}.0.*`
 * (LsagGlobalAttention), `layers.{d}.1.*` (LsagMlp).
 *
 * Errors: RangeError/TypeError for bad options; ShapeError for tokens that are not (B, N, D).
 *
 * @example
 * const stage = new LsagStage({ numPatches: 256, depth: 4, dim: 192, numHeads: 4, qkvBias: true });
 */
export class LsagStage extends LsagStageBase<LsagGlobalAttention> {
  constructor(o: LsagStageOptions) {
    super('LsagStage', o, (n, d) => [n, d], (a) => new LsagGlobalAttention(a));
    knownOptions('LsagStage', o, LSAG_STAGE_OPTION_NAMES);
  }

  forward(tokens: Tensor): Tensor {
    const [, N, D] = tokens.shape;
    if (tokens.ndim !== 3 || N !== this.numPatches || D !== this.dim) {
      throw new ShapeError(`LsagStage: expected tokens (B, N=${this.numPatches}, D=${this.dim}), got shape [${tokens.shape.join(', ')}]`);
    }
    let x = tokens.add(this.posEmb);                                  // (B, N, D)
    for (const block of this.blocks) x = this.globalBlock(x, block);
    return x;
  }
}

/** Tokens (B, N, C) → maps (B, C, √N, √N) (the reference's to_image_plane); N must be a square. */
export function toImagePlane(tokens: Tensor, layer = 'toImagePlane'): Tensor {
  const [B, N, C] = tokens.shape;
  const side = Math.round(Math.sqrt(N));
  if (tokens.ndim !== 3 || side * side !== N) {
    throw new ShapeError(`${layer}: expected tokens (B, N, C) on a square grid (N a perfect square), got shape ` +
      `[${tokens.shape.join(', ')}]${tokens.ndim === 3 ? `; N = ${N} is not a square (nearest ${side}² = ${side * side})` : ''}`);
  }
  return tokens.permute([0, 2, 1])    // (B, C, N)
    .reshape([B, C, side, side]);     // (B, C, √N, √N)
}

/** Maps (B, C, h, w) → tokens (B, h·w, C) (the reference's to_patches_plane). */
export function toPatchesPlane(maps: Tensor): Tensor {
  const [B, C, h, w] = maps.shape;
  return maps.reshape([B, C, h * w])  // (B, C, N)
    .permute([0, 2, 1]);              // (B, N, C)
}

export interface ReduceImageSizeOptions {
  /** Input width C. */
  dim: number;
  /** Output width C_out. */
  dimOut: number;
  /** The expected token count N (the reference keeps it for its FLOP count); checked when given. */
  seqLen?: number;
}

const REDUCE_IMAGE_SIZE_OPTION_NAMES = optionNames<ReduceImageSizeOptions>({ dim: 1, dimOut: 1, seqLen: 1 });

/**
 * Downsampling between stages (Reduce_image_size, between to_image_plane and to_patches_plane):
 * conv 3×3 (stride 1, pad 1, bias) → LayerNorm over channels (eps 1e-6) → max-pool 3×3 (stride 2, pad 1).
 *
 * Shape: tokens (B, N, dim), N = g² → tokens (B, ⌈g/2⌉², dimOut).
 *
 * Parameters: `conv.weight` (dimOut, dim, 3, 3) trunc_normal(std .02), `conv.bias` 0;
 * `norm.weight` 1, `norm.bias` 0 (dimOut).
 *
 * Errors: RangeError/TypeError for bad sizes; ShapeError for N not a square, a wrong width, or N ≠ seqLen.
 *
 * @example
 * const reduce = new ReduceImageSize({ dim: 192, dimOut: 384 });
 * const y = reduce.forward(x);   // (B, 1024, 192) → (B, 256, 384)
 */
export class ReduceImageSize extends Module {
  readonly dim: number;
  readonly dimOut: number;
  readonly seqLen: number | null;
  readonly conv: Conv2d;
  readonly norm: LayerNorm;
  readonly pool: MaxPool2d;

  constructor(o: ReduceImageSizeOptions) {
    super();
    knownOptions('ReduceImageSize', o, REDUCE_IMAGE_SIZE_OPTION_NAMES);
    this.dim = integerAtLeast('ReduceImageSize', 'dim', o.dim, 1);
    this.dimOut = integerAtLeast('ReduceImageSize', 'dimOut', o.dimOut, 1);
    this.seqLen = o.seqLen === undefined ? null : integerAtLeast('ReduceImageSize', 'seqLen', o.seqLen, 1);
    this.conv = this.register('conv', new Conv2d({ inChannels: this.dim, outChannels: this.dimOut, kernelSize: 3, padding: 1 }));
    this.norm = this.register('norm', new LayerNorm({ normalizedShape: this.dimOut, eps: 1e-6 }));
    this.pool = this.register('pool', new MaxPool2d({ kernelSize: 3, stride: 2, padding: 1 }));
    truncNormal_(this.conv.weight, { std: 0.02 });
    if (this.conv.bias) zeros_(this.conv.bias);
  }

  forward(tokens: Tensor): Tensor {
    const [, N, C] = tokens.shape;
    if (tokens.ndim !== 3 || C !== this.dim || (this.seqLen !== null && N !== this.seqLen)) {
      throw new ShapeError(`ReduceImageSize: expected tokens (B, N=${this.seqLen ?? 'g²'}, C=${this.dim}), got shape [${tokens.shape.join(', ')}]`);
    }
    const maps = this.conv.forward(toImagePlane(tokens, 'ReduceImageSize'));   // (B, C_out, g, g)
    const normed = this.norm.forward(maps.permute([0, 2, 3, 1]))                 // (B, g, g, C_out)
      .permute([0, 3, 1, 2]);                                                    // (B, C_out, g, g)
    return toPatchesPlane(this.pool.forward(normed));                           // (B, ⌈g/2⌉², C_out)
  }
}

// ---- parity wrappers: the fixtures' modules, with the full ShiftingTransformer's state-dict keys ----

/** What both parity wrappers take for their stage. */
interface LsagParityStageOptions {
  depth: number;
  numHeads: number;
  /** Shift set and K/V layout of one official file: 'cifar' (rolls, multi-query), 'imagenet' (multi-head). */
  variant: LsagVariant;
  /** Default 4, as the fixtures. */
  mlpRatio?: number;
  /** Default true, as the full model. */
  qkvBias?: boolean;
  /** Default 0.1, as the fixtures (inactive in eval mode). */
  dropPath?: number;
  attnDrop?: number;
  projDrop?: number;
}

/** The checked variant and the stage options with the fixtures' defaults (multi-query for 'cifar'). */
function parityStage(layer: string, o: LsagParityStageOptions) {
  const variant = oneOf(layer, 'variant', o.variant, LSAG_VARIANTS);
  return {
    variant,
    stage: {
      depth: o.depth, numHeads: o.numHeads, mlpRatio: o.mlpRatio ?? 4, qkvBias: o.qkvBias ?? true,
      dropPath: o.dropPath ?? 0.1, attnDrop: o.attnDrop, projDrop: o.projDrop, multiQuery: variant === 'cifar',
    },
  };
}

export interface LsagLocalStageParityOptions extends LsagParityStageOptions {
  imgSize: number;
  kernelSize: number;
  strideSize: number;
  paddingSize: number;
  embedDim: number;
}

const LSAG_LOCAL_STAGE_PARITY_OPTION_NAMES = optionNames<LsagLocalStageParityOptions>({
  imgSize: 1, kernelSize: 1, strideSize: 1, paddingSize: 1, embedDim: 1, depth: 1, numHeads: 1, variant: 1, mlpRatio: 1, qkvBias: 1, dropPath: 1, attnDrop: 1, projDrop: 1,
});

/**
 * Fixture kind `parity.LSAGLocalStage`: `to_patch_embedding` (LsagShiftedEmbedding) then
 * `layers.0.0` (LsagFirstStage), keyed as in ShiftingTransformer's state dict.
 *
 * Shape: image (B, 3, imgSize, imgSize) → tokens (B, N, embedDim).
 */
export class LsagLocalStageParity extends Module {
  readonly embedding: LsagShiftedEmbedding;
  readonly stage: LsagFirstStage;

  constructor(o: LsagLocalStageParityOptions) {
    super();
    knownOptions('LsagLocalStageParity', o, LSAG_LOCAL_STAGE_PARITY_OPTION_NAMES);
    const { variant, stage } = parityStage('LsagLocalStageParity', o);
    this.embedding = this.register('to_patch_embedding', new LsagShiftedEmbedding({
      imgSize: o.imgSize, kernelSize: o.kernelSize, strideSize: o.strideSize, paddingSize: o.paddingSize,
      embedDim: o.embedDim, variant,
    }));
    this.stage = new LsagFirstStage({
      ...stage, numVariants: lsagNumVariants(variant), numPatches: this.embedding.numPatches, dim: o.embedDim,
    });
    this.register('layers', new ModuleList([new ModuleList([this.stage])]));   // layers.0.0
  }

  forward(img: Tensor): Tensor {
    return this.stage.forward(this.embedding.forward(img));
  }
}

export interface LsagGlobalStageParityOptions extends LsagParityStageOptions {
  numPatches: number;
  dimIn: number;
  dimOut: number;
}

const LSAG_GLOBAL_STAGE_PARITY_OPTION_NAMES = optionNames<LsagGlobalStageParityOptions>({
  numPatches: 1, dimIn: 1, dimOut: 1, depth: 1, numHeads: 1, variant: 1, mlpRatio: 1, qkvBias: 1, dropPath: 1, attnDrop: 1, projDrop: 1,
});

/**
 * Fixture kind `parity.LSAGGlobalStage`: `layers.1.0` (LsagStage) then `layers.1.1`
 * (ReduceImageSize), keyed as level 1 of ShiftingTransformer (`layers.0` is empty here).
 *
 * Shape: tokens (B, numPatches, dimIn) → tokens (B, numPatches/4 (rounded up per side), dimOut).
 */
export class LsagGlobalStageParity extends Module {
  readonly stage: LsagStage;
  readonly reduce: ReduceImageSize;

  constructor(o: LsagGlobalStageParityOptions) {
    super();
    knownOptions('LsagGlobalStageParity', o, LSAG_GLOBAL_STAGE_PARITY_OPTION_NAMES);
    const { stage } = parityStage('LsagGlobalStageParity', o);
    this.stage = new LsagStage({ ...stage, numPatches: o.numPatches, dim: o.dimIn });
    this.reduce = new ReduceImageSize({ dim: o.dimIn, dimOut: o.dimOut, seqLen: o.numPatches });
    this.register('layers', new ModuleList([new ModuleList([]), new ModuleList<Module>([this.stage, this.reduce])]));
  }

  forward(tokens: Tensor): Tensor {
    return this.reduce.forward(this.stage.forward(tokens));
  }
}

/** A field of a fixture's snake_case ctor, or a TypeError naming it. */
function field<T>(kind: string, ctor: Record<string, unknown>, name: string, type: 'number' | 'string'): T {
  const value = ctor[name];
  if (typeof value !== type) throw new TypeError(`${kind}: ctor.${name} must be a ${type}, got ${JSON.stringify(value)}`);
  return value as T;
}

/** Fixture `spec.kind` → a builder from the reference's snake_case constructor arguments. */
export const referenceBuilders: ReferenceBuilders = {
  'parity.LSAGLocalStage': (c) => {
    const n = (name: string) => field<number>('parity.LSAGLocalStage', c, name, 'number');
    return new LsagLocalStageParity({
      imgSize: n('img_size'), kernelSize: n('kernel_size'), strideSize: n('stride_size'), paddingSize: n('padding_size'),
      embedDim: n('embed_dim'), depth: n('depth'), numHeads: n('num_heads'),
      variant: field<LsagVariant>('parity.LSAGLocalStage', c, 'variant', 'string'),
    });
  },
  'parity.LSAGGlobalStage': (c) => {
    const n = (name: string) => field<number>('parity.LSAGGlobalStage', c, name, 'number');
    return new LsagGlobalStageParity({
      numPatches: n('num_patches'), dimIn: n('dim_in'), dimOut: n('dim_out'), depth: n('depth'), numHeads: n('num_heads'),
      variant: field<LsagVariant>('parity.LSAGGlobalStage', c, 'variant', 'string'),
    });
  },
};
