/**
 * Spatial operators: what fills the 3×3 slot (`conv2`) of a ResNet-family block
 * (resnet-family.ts). The builder asks a SpatialOpFactory for one Module per block that uses it,
 * passing a SpatialOpContext; the module maps (B, C_in, H, W) → (B, C_out, ⌈H/s⌉, ⌈W/s⌉).
 *
 * This file holds the contract (SpatialOp, SpatialOpContext, SpatialOpFactory) and the
 * convolutional baseline (`conv3x3Op`). Each paper's operators have their own file of factories,
 * small functions of the layer's options that return a SpatialOpFactory: la-ops.ts (`laLayerOp`),
 * lesa-ops.ts (`lesaOp`, `staticLesaOp`, `lesaSelfAttentionOp`), halonet-ops.ts
 * (`haloAttentionOp`), window-ops.ts (`sasaOp`, `neighborhoodOp`). The files a new operator
 * touches, in order, are listed in docs/adding-an-operator.md.
 */
import { kaimingNormal_ } from '../nn/init.js';
import { Conv2d } from '../nn/layers/conv.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * A module that maps one feature map to one feature map: a plain (unary) Module, named for the
 * role it plays here; kept as a public name.
 */
export type SpatialOp = Module;

/** Where in the network a spatial op is built, and what it must compute. */
export interface SpatialOpContext {
  /** Channels of the op's input (the bottleneck width; a basic block's planes). */
  inChannels: number;
  /** Channels the op must output (usually = inChannels; HaloNet's value width differs). */
  outChannels: number;
  /** The op's stride: the output is ⌈H/stride⌉ × ⌈W/stride⌉. */
  stride: number;
  /** The replaced conv's groups (ResNeXt's cardinality, else 1). */
  groups: number;
  /** Stage index, 0-based (stage 0 = `layer1`). */
  stage: number;
  /** Block index inside its stage, 0-based (`layer3.1` is stage 2, block 1). */
  blockIndex: number;
  /** [H, W] of the op's input at the model's `inputSize` (before the op's own stride). */
  featureSize: [number, number];
  /** The block's stochastic-depth rate (timm's linear schedule); absent or 0 when off. */
  dropPath?: number;
}

/**
 * Builds the spatial op of one block. Optional properties tell the builder how to wire it:
 * `keepBn2: false` drops the block's `bn2` after the op (LESA does); the builder's `keepBn2`
 * option overrides it.
 */
export interface SpatialOpFactory {
  (ctx: SpatialOpContext): SpatialOp;
  /** Keep the bottleneck's BN after this op (default true). */
  keepBn2?: boolean;
  /** A short name for summaries ('conv3x3', 'la', 'lesa', …). */
  label?: string;
}

/**
 * The baseline spatial op: a 3×3 convolution with padding 1, the slot's stride and groups, no
 * bias — torchvision's `conv3x3` (torchvision/models/resnet.py). Its weight is initialised as
 * torchvision initialises every conv of a ResNet: kaiming normal, fan out, ReLU gain.
 *
 * Parameters: `weight` (C_out, C_in / groups, 3, 3).
 */
export const conv3x3Op: SpatialOpFactory = Object.assign(
  (ctx: SpatialOpContext): SpatialOp => {
    const conv = new Conv2d({
      inChannels: ctx.inChannels, outChannels: ctx.outChannels, kernelSize: 3,
      stride: ctx.stride, padding: 1, groups: ctx.groups, bias: false,
    });
    kaimingNormal_(conv.weight, { mode: 'fanOut', nonlinearity: 'relu' });
    return conv;
  },
  { keepBn2: true, label: 'conv3x3' },
);
