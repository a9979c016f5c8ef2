/**
 * Channel attention after timm (timm/layers/squeeze_excite.py SEModule, timm/layers/eca.py
 * EcaModule): a gate per channel from the globally averaged map, x · sigmoid(g(mean_hw x)).
 * Key names are timm's, so timm state dicts load without renaming.
 */
import { Module } from '../module.js';
import type { Tensor } from '../../tensor/tensor.js';
import { ReLU, SiLU } from './activation.js';
import { Conv1d, Conv2d } from './conv.js';
import { integerAtLeast, knownOptions, optionNames } from './validation.js';

export interface SqueezeExciteOptions {
  channels: number;
  /** Bottleneck width (timm's rd_channels). */
  reducedChannels: number;
  /** Non-linearity between the two 1×1 convs; default 'relu' (timm's SEModule default). */
  activation?: 'relu' | 'silu';
}

const SQUEEZE_EXCITE_OPTION_NAMES = optionNames<SqueezeExciteOptions>({ channels: 1, reducedChannels: 1, activation: 1 });

/**
 * timm's SEModule: x · sigmoid(fc2(act(fc1(mean_hw x)))), the fcs 1×1 convs with bias.
 * timm sizes the bottleneck as make_divisible(C · rd_ratio, 8, round_limit=0) (rd_ratio 1/16 by
 * default); the caller passes the result as `reducedChannels`.
 *
 * Shape: (B, C, H, W) → (B, C, H, W). Parameters: `fc1.weight` (rd, C, 1, 1), `fc1.bias` (rd),
 * `fc2.weight` (C, rd, 1, 1), `fc2.bias` (C); Conv2d's default init.
 *
 * Errors: RangeError for channels or reducedChannels that are not integers ≥ 1.
 */
export class SqueezeExcite extends Module {
  readonly fc1: Conv2d;
  readonly act: ReLU | SiLU;
  readonly fc2: Conv2d;

  constructor(o: SqueezeExciteOptions) {
    super();
    knownOptions('SqueezeExcite', o, SQUEEZE_EXCITE_OPTION_NAMES);
    const channels = integerAtLeast('SqueezeExcite', 'channels', o.channels, 1);
    const rd = integerAtLeast('SqueezeExcite', 'reducedChannels', o.reducedChannels, 1);
    this.fc1 = this.register('fc1', new Conv2d({ inChannels: channels, outChannels: rd, kernelSize: 1 }));
    this.act = this.register('act', o.activation === 'silu' ? new SiLU() : new ReLU());
    this.fc2 = this.register('fc2', new Conv2d({ inChannels: rd, outChannels: channels, kernelSize: 1 }));
  }

  forward(x: Tensor): Tensor {
    const s = x.mean([2, 3], { keepdim: true });                        // (B, C, 1, 1)
    const gate = this.fc2.forward(this.act.forward(this.fc1.forward(s))).sigmoid();
    return x.mul(gate);
  }
}

/**
 * ECA's adaptive kernel size (Wang et al., CVPR 2020, Eq. 12, as timm computes it):
 * t = int(|log2(C) + beta| / gamma), k = t if t is odd else t + 1, at least 3.
 */
export function ecaKernelSize(channels: number, gamma = 2, beta = 1): number {
  const t = Math.trunc(Math.abs(Math.log(channels) / Math.log(2) + beta) / gamma);
  return Math.max(t % 2 ? t : t + 1, 3);
}

export interface EfficientChannelAttentionOptions {
  /** Channels; when given, the kernel size is ecaKernelSize(channels). */
  channels?: number;
  /** Used when channels is not given; odd. Default 3. */
  kernelSize?: number;
}

const EFFICIENT_CHANNEL_ATTENTION_OPTION_NAMES = optionNames<EfficientChannelAttentionOptions>({ channels: 1, kernelSize: 1 });

/**
 * timm's EcaModule (default, non-MLP form): a 1-D conv across the channel means, no bias,
 * x · sigmoid(conv1d(mean_hw x)).
 *
 * Shape: (B, C, H, W) → (B, C, H, W). Parameters: `conv.weight` (1, 1, k); Conv1d's default init.
 *
 * Errors: RangeError for an even kernel size or channels that are not an integer ≥ 1.
 */
export class EfficientChannelAttention extends Module {
  readonly conv: Conv1d;
  readonly kernelSize: number;

  constructor(o: EfficientChannelAttentionOptions = {}) {
    super();
    knownOptions('EfficientChannelAttention', o, EFFICIENT_CHANNEL_ATTENTION_OPTION_NAMES);
    const k = o.channels !== undefined
      ? ecaKernelSize(integerAtLeast('EfficientChannelAttention', 'channels', o.channels, 1))
      : integerAtLeast('EfficientChannelAttention', 'kernelSize', o.kernelSize ?? 3, 1);
    if (k % 2 !== 1) throw new RangeError(`EfficientChannelAttention: kernelSize must be odd, got ${k}`);
    this.kernelSize = k;
    this.conv = this.register('conv', new Conv1d({ inChannels: 1, outChannels: 1, kernelSize: k, padding: (k - 1) / 2, bias: false }));
  }

  forward(x: Tensor): Tensor {
    const [batch, channels] = x.shape;
    const y = x.mean([2, 3]).reshape([batch, 1, channels]);            // (B, 1, C)
    const gate = this.conv.forward(y).sigmoid().reshape([batch, channels, 1, 1]);
    return x.mul(gate);
  }
}
