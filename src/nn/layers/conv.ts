/**
 * Conv1d and Conv2d, after torch.nn.Conv1d/Conv2d (PyTorch 1.13, torch/nn/modules/conv.py):
 * the same options (camelCase), parameter shapes, state-dict names and default initialisation.
 *
 * Padding: a number per spatial dim, 'valid' (none) or 'same' (output size = input size, stride
 * 1 only; an odd total goes to the right/bottom, as libtorch does). `paddingMode` other than
 * 'zeros' pads the input with F.pad first, as PyTorch's `_conv_forward` does.
 */
import * as F from '../../ops/functional.js';
import type { Tensor } from '../../tensor/tensor.js';
import { kaimingUniform_, uniform_, fanInAndFanOut } from '../init.js';
import { Module } from '../module.js';
import type { Parameter } from '../parameter.js';
import { newParameter } from './new-parameter.js';
import { booleanOption, checkInput, divisibleBy, integerAtLeast, knownOptions, oneOf, optionNames, sizeTuple } from './validation.js';

export type PaddingMode = 'zeros' | 'reflect' | 'replicate' | 'circular';
const PADDING_MODES: readonly PaddingMode[] = ['zeros', 'reflect', 'replicate', 'circular'];

interface ConvOptionsBase {
  inChannels: number;
  outChannels: number;
  /** Default 1: every input channel feeds every output channel. */
  groups?: number;
  /** Default true. */
  bias?: boolean;
  /** How the border is padded; default 'zeros'. */
  paddingMode?: PaddingMode;
}

export interface Conv1dOptions extends ConvOptionsBase {
  kernelSize: number | [number];
  stride?: number | [number];
  padding?: number | [number] | 'same' | 'valid';
  dilation?: number | [number];
}

export interface Conv2dOptions extends ConvOptionsBase {
  kernelSize: number | [number, number];
  stride?: number | [number, number];
  padding?: number | [number, number] | 'same' | 'valid';
  dilation?: number | [number, number];
}

type ConvOptions = Conv1dOptions | Conv2dOptions;

const CONV_OPTION_NAMES = optionNames<Conv2dOptions>({
  inChannels: 1, outChannels: 1, kernelSize: 1, stride: 1, padding: 1, dilation: 1, groups: 1, bias: 1, paddingMode: 1,
});

/** Shared by Conv1d and Conv2d: option checks, parameters, padding and the input check. */
abstract class ConvNd extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: number[];
  readonly stride: number[];
  readonly padding: number[] | 'same' | 'valid';
  readonly dilation: number[];
  readonly groups: number;
  readonly paddingMode: PaddingMode;
  /** (outChannels, inChannels / groups, ...kernelSize). */
  readonly weight: Parameter;
  /** (outChannels), or null with `bias: false`. */
  readonly bias: Parameter | null;
  // What forward passes on: F.pad's list (last dim first) or null, and the conv's own padding.
  private readonly explicitPads: number[] | null;
  private readonly convPadding: number[];

  protected constructor(private readonly layer: string, private readonly spatialDims: number, o: ConvOptions) {
    super();
    knownOptions(layer, o, CONV_OPTION_NAMES);
    this.inChannels = integerAtLeast(layer, 'inChannels', o.inChannels, 1);
    this.outChannels = integerAtLeast(layer, 'outChannels', o.outChannels, 1);
    this.groups = integerAtLeast(layer, 'groups', o.groups ?? 1, 1);
    divisibleBy(layer, 'inChannels', this.inChannels, 'groups', this.groups);
    divisibleBy(layer, 'outChannels', this.outChannels, 'groups', this.groups);
    this.kernelSize = sizeTuple(layer, 'kernelSize', o.kernelSize, spatialDims, 1);
    this.stride = sizeTuple(layer, 'stride', o.stride ?? 1, spatialDims, 1);
    this.dilation = sizeTuple(layer, 'dilation', o.dilation ?? 1, spatialDims, 1);
    this.paddingMode = oneOf(layer, 'paddingMode', o.paddingMode ?? 'zeros', PADDING_MODES);
    const padding = o.padding ?? 0;
    this.padding = typeof padding === 'string'
      ? oneOf(layer, 'padding', padding, ['same', 'valid'] as const)
      : sizeTuple(layer, 'padding', padding, spatialDims, 0);
    if (this.padding === 'same' && this.stride.some((s) => s !== 1)) {
      throw new RangeError(`${layer}: padding 'same' needs stride 1, got stride [${this.stride}]; ` +
        'pass a number for padding to use a strided convolution');
    }
    [this.explicitPads, this.convPadding] = this.planPadding();

    const weightShape = [this.outChannels, this.inChannels / this.groups, ...this.kernelSize];
    this.weight = this.registerParameter('weight', newParameter(weightShape));
    const bias = booleanOption(layer, 'bias', o.bias ?? true);
    this.bias = this.registerParameter('bias', bias ? newParameter([this.outChannels]) : null);
    this.resetParameters();
  }

  /**
   * PyTorch's default init: weight ~ kaiming_uniform(a = √5), i.e. U(±1/√fanIn), and bias ~
   * U(±1/√fanIn) with fanIn = inChannels / groups · ∏kernelSize.
   */
  resetParameters(): void {
    kaimingUniform_(this.weight, { a: Math.sqrt(5) });
    if (this.bias) {
      const { fanIn } = fanInAndFanOut(this.weight);
      const bound = fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
      uniform_(this.bias, { a: -bound, b: bound });
    }
  }

  /** Per spatial dim (left, right) padding, then how to apply it. */
  private planPadding(): [number[] | null, number[]] {
    const n = this.spatialDims;
    const sides: [number, number][] = [];
    for (let i = 0; i < n; i++) {
      if (this.padding === 'valid') sides.push([0, 0]);
      else if (this.padding === 'same') {
        const total = this.dilation[i] * (this.kernelSize[i] - 1);
        sides.push([Math.floor(total / 2), total - Math.floor(total / 2)]);
      } else sides.push([this.padding[i], this.padding[i]]);
    }
    const symmetric = sides.every(([l, r]) => l === r);
    if (this.paddingMode === 'zeros' && symmetric) return [null, sides.map(([l]) => l)];
    const pads = sides.slice().reverse().flat();   // F.pad order: last dim first
    return [pads.some((p) => p > 0) ? pads : null, new Array<number>(n).fill(0)];
  }

  forward(x: Tensor): Tensor {
    const names = this.spatialDims === 1 ? 'L' : 'H, W';
    checkInput(this.layer, x, `(N, C_in=${this.inChannels}, ${names}) or (C_in=${this.inChannels}, ${names})`, {
      ranks: [this.spatialDims + 1, this.spatialDims + 2],
      channels: { dim: -(this.spatialDims + 1), size: this.inChannels },
    });
    const mode = this.paddingMode === 'zeros' ? 'constant' : this.paddingMode;
    const input = this.explicitPads ? F.pad(x, this.explicitPads, { mode }) : x;
    return this.convolve(input, this.convPadding);
  }

  protected abstract convolve(x: Tensor, padding: number[]): Tensor;
}

/**
 * 2-D convolution over (N, C_in, H, W) maps (torch.nn.Conv2d).
 *
 * Shape: input (N, C_in, H, W) or (C_in, H, W) → output (N, C_out, H_out, W_out) with
 * H_out = ⌊(H + 2·padding − dilation·(kernelSize − 1) − 1) / stride⌋ + 1 (likewise W).
 *
 * Parameters: `weight` (C_out, C_in / groups, kH, kW), `bias` (C_out); both U(±1/√fanIn) with
 * fanIn = C_in / groups · kH · kW (PyTorch's kaiming_uniform(a = √5) and bias init).
 *
 * Errors: RangeError/TypeError for a non-integer or non-positive size, channels not divisible by
 * groups, an unknown padding or paddingMode, padding 'same' with stride > 1; ShapeError for an
 * input that is not 3-D/4-D or has the wrong channel count.
 *
 * @example
 * const conv = new Conv2d({ inChannels: 3, outChannels: 16, kernelSize: 3, padding: 1 });
 * const y = conv.forward(randn([8, 3, 32, 32]));   // (8, 16, 32, 32)
 */
export class Conv2d extends ConvNd {
  constructor(options: Conv2dOptions) {
    super('Conv2d', 2, options);
  }

  protected convolve(x: Tensor, padding: number[]): Tensor {
    return F.conv2d(x, this.weight, this.bias, {
      stride: this.stride as [number, number],
      padding: padding as [number, number],
      dilation: this.dilation as [number, number],
      groups: this.groups,
    });
  }
}

/**
 * 1-D convolution over (N, C_in, L) sequences (torch.nn.Conv1d).
 *
 * Shape: input (N, C_in, L) or (C_in, L) → output (N, C_out, L_out) with
 * L_out = ⌊(L + 2·padding − dilation·(kernelSize − 1) − 1) / stride⌋ + 1.
 *
 * Parameters: `weight` (C_out, C_in / groups, k), `bias` (C_out); both U(±1/√fanIn) with
 * fanIn = C_in / groups · k.
 *
 * Errors: as Conv2d, with 2-D/3-D inputs.
 *
 * @example
 * const conv = new Conv1d({ inChannels: 64, outChannels: 128, kernelSize: 1, bias: false });
 * const y = conv.forward(randn([2, 64, 196]));   // (2, 128, 196)
 */
export class Conv1d extends ConvNd {
  constructor(options: Conv1dOptions) {
    super('Conv1d', 1, options);
  }

  protected convolve(x: Tensor, padding: number[]): Tensor {
    return F.conv1d(x, this.weight, this.bias, {
      stride: this.stride[0], padding: padding[0], dilation: this.dilation[0], groups: this.groups,
    });
  }
}
