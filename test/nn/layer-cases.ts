/**
 * The layer configurations test/nn/layers.test.ts checks against PyTorch: each pairs a
 * vicinity constructor with the torch.nn expression that should be identical to it.
 */
import type { DType } from '../../src/tensor/tensor.js';
import {
  AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, Dropout, Flatten, GELU,
  GroupNorm, Identity, LayerNorm, LeakyReLU, Linear, MaxPool2d, Module, ReLU, Sequential, Sigmoid, SiLU, Softplus, Tanh,
} from '../../src/nn/index.js';

export interface LayerCase {
  /** Test title. */
  name: string;
  /** The PyTorch module, as a Python expression (torch.nn imported as nn). */
  torch: string;
  build: () => Module;
  /** Input shape; without one, only the parameters and state-dict keys are compared. */
  input?: number[];
  /** Training mode of each forward/backward step; default [true, false]. */
  steps?: boolean[];
  /** Multiplies the standard-normal input (to reach activation thresholds); default 1. */
  scale?: number;
  /** Default float64. */
  dtype?: DType;
}

const conv2d = (o: ConstructorParameters<typeof Conv2d>[0]) => () => new Conv2d(o);

export const CASES: LayerCase[] = [
  // ---- convolutions ----
  { name: 'Conv2d 4→6 k3', torch: 'nn.Conv2d(4, 6, 3)', build: conv2d({ inChannels: 4, outChannels: 6, kernelSize: 3 }), input: [2, 4, 7, 6] },
  {
    name: 'Conv2d k(3,2) stride (2,1) padding (1,0) dilation (1,2) groups 2, no bias',
    torch: 'nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2), groups=2, bias=False)',
    build: conv2d({ inChannels: 4, outChannels: 6, kernelSize: [3, 2], stride: [2, 1], padding: [1, 0], dilation: [1, 2], groups: 2, bias: false }),
    input: [2, 4, 9, 8],
  },
  {
    name: "Conv2d k4 padding 'same' (asymmetric)", torch: "nn.Conv2d(3, 4, 4, padding='same')",
    build: conv2d({ inChannels: 3, outChannels: 4, kernelSize: 4, padding: 'same' }), input: [2, 3, 6, 5],
  },
  {
    name: "Conv2d paddingMode 'reflect'", torch: "nn.Conv2d(2, 4, 3, padding=1, padding_mode='reflect')",
    build: conv2d({ inChannels: 2, outChannels: 4, kernelSize: 3, padding: 1, paddingMode: 'reflect' }), input: [2, 2, 5, 5],
  },
  {
    name: "Conv2d paddingMode 'circular' groups 2", torch: "nn.Conv2d(2, 2, 3, padding=2, padding_mode='circular', groups=2)",
    build: conv2d({ inChannels: 2, outChannels: 2, kernelSize: 3, padding: 2, paddingMode: 'circular', groups: 2 }), input: [1, 2, 5, 6],
  },
  {
    name: "Conv2d padding 'same' (asymmetric in W) dilation (2, 1) paddingMode 'replicate'",
    torch: "nn.Conv2d(2, 3, (3, 4), padding='same', dilation=(2, 1), padding_mode='replicate')",
    build: conv2d({ inChannels: 2, outChannels: 3, kernelSize: [3, 4], padding: 'same', dilation: [2, 1], paddingMode: 'replicate' }),
    input: [2, 2, 6, 6],
  },
  {
    name: "Conv2d unbatched input, padding 'valid'", torch: "nn.Conv2d(3, 2, 3, padding='valid')",
    build: conv2d({ inChannels: 3, outChannels: 2, kernelSize: 3, padding: 'valid' }), input: [3, 5, 5],
  },
  {
    name: 'Conv2d float32', torch: 'nn.Conv2d(8, 16, 3, padding=1, stride=2)', dtype: 'float32',
    build: conv2d({ inChannels: 8, outChannels: 16, kernelSize: 3, padding: 1, stride: 2 }), input: [2, 8, 9, 9],
  },
  {
    name: 'Conv1d k3 stride 2 padding 1 groups 2', torch: 'nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2)',
    build: () => new Conv1d({ inChannels: 4, outChannels: 6, kernelSize: 3, stride: 2, padding: 1, groups: 2 }), input: [2, 4, 9],
  },
  {
    name: 'Conv1d k1 no bias', torch: 'nn.Conv1d(3, 4, 1, bias=False)',
    build: () => new Conv1d({ inChannels: 3, outChannels: 4, kernelSize: 1, bias: false }), input: [2, 3, 5],
  },
  {
    name: "Conv1d padding 'same' dilation 3, unbatched", torch: "nn.Conv1d(2, 3, 3, padding='same', dilation=3)",
    build: () => new Conv1d({ inChannels: 2, outChannels: 3, kernelSize: 3, padding: 'same', dilation: 3 }), input: [2, 11],
  },
  // ---- linear ----
  { name: 'Linear 5→3', torch: 'nn.Linear(5, 3)', build: () => new Linear({ inFeatures: 5, outFeatures: 3 }), input: [4, 5] },
  {
    name: 'Linear no bias, 3-D input', torch: 'nn.Linear(5, 3, bias=False)',
    build: () => new Linear({ inFeatures: 5, outFeatures: 3, bias: false }), input: [2, 3, 5],
  },
  { name: 'Linear 1-D input', torch: 'nn.Linear(4, 2)', build: () => new Linear({ inFeatures: 4, outFeatures: 2 }), input: [4] },
  { name: 'Linear float32', torch: 'nn.Linear(32, 7)', build: () => new Linear({ inFeatures: 32, outFeatures: 7 }), input: [6, 32], dtype: 'float32' },
  // ---- batch norm: two training steps (running statistics), then eval ----
  {
    name: 'BatchNorm2d', torch: 'nn.BatchNorm2d(3)', build: () => new BatchNorm2d({ numFeatures: 3 }),
    input: [4, 3, 3, 2], steps: [true, true, false],
  },
  {
    name: 'BatchNorm2d momentum null (cumulative average)', torch: 'nn.BatchNorm2d(3, momentum=None)',
    build: () => new BatchNorm2d({ numFeatures: 3, momentum: null }), input: [4, 3, 3, 2], steps: [true, true, false],
  },
  {
    name: 'BatchNorm2d affine false eps 1e-3 momentum 0.3', torch: 'nn.BatchNorm2d(3, eps=1e-3, momentum=0.3, affine=False)',
    build: () => new BatchNorm2d({ numFeatures: 3, eps: 1e-3, momentum: 0.3, affine: false }), input: [2, 3, 4, 4], steps: [true, true, false],
  },
  {
    name: 'BatchNorm2d trackRunningStats false', torch: 'nn.BatchNorm2d(3, track_running_stats=False)',
    build: () => new BatchNorm2d({ numFeatures: 3, trackRunningStats: false }), input: [3, 3, 2, 2], steps: [true, false],
  },
  {
    name: 'BatchNorm2d float32', torch: 'nn.BatchNorm2d(8)', dtype: 'float32',
    build: () => new BatchNorm2d({ numFeatures: 8 }), input: [4, 8, 5, 5], steps: [true, true, false],
  },
  { name: 'BatchNorm1d (N, C)', torch: 'nn.BatchNorm1d(4)', build: () => new BatchNorm1d({ numFeatures: 4 }), input: [5, 4], steps: [true, false] },
  {
    name: 'BatchNorm1d (N, C, L) momentum null', torch: 'nn.BatchNorm1d(4, momentum=None)',
    build: () => new BatchNorm1d({ numFeatures: 4, momentum: null }), input: [3, 4, 6], steps: [true, true, false],
  },
  // ---- layer and group norm ----
  { name: 'LayerNorm 6', torch: 'nn.LayerNorm(6)', build: () => new LayerNorm({ normalizedShape: 6 }), input: [2, 3, 6] },
  {
    name: 'LayerNorm [3, 4] eps 1e-3 no affine', torch: 'nn.LayerNorm((3, 4), eps=1e-3, elementwise_affine=False)',
    build: () => new LayerNorm({ normalizedShape: [3, 4], eps: 1e-3, elementwiseAffine: false }), input: [2, 3, 4],
  },
  { name: 'GroupNorm 2 groups of 3', torch: 'nn.GroupNorm(2, 6)', build: () => new GroupNorm({ numGroups: 2, numChannels: 6 }), input: [2, 6, 3, 3] },
  {
    name: 'GroupNorm 3-D input, no affine', torch: 'nn.GroupNorm(3, 3, eps=1e-4, affine=False)',
    build: () => new GroupNorm({ numGroups: 3, numChannels: 3, eps: 1e-4, affine: false }), input: [2, 3, 5],
  },
  // ---- activations (input scaled to cross thresholds) ----
  { name: 'ReLU', torch: 'nn.ReLU()', build: () => new ReLU(), input: [2, 3, 4], scale: 3 },
  { name: 'GELU', torch: 'nn.GELU()', build: () => new GELU(), input: [2, 3, 4], scale: 3 },
  { name: "GELU approximate 'tanh'", torch: "nn.GELU(approximate='tanh')", build: () => new GELU({ approximate: 'tanh' }), input: [2, 3, 4], scale: 3 },
  { name: 'SiLU', torch: 'nn.SiLU()', build: () => new SiLU(), input: [2, 3, 4], scale: 3 },
  { name: 'Sigmoid', torch: 'nn.Sigmoid()', build: () => new Sigmoid(), input: [2, 3, 4], scale: 3 },
  { name: 'Tanh', torch: 'nn.Tanh()', build: () => new Tanh(), input: [2, 3, 4], scale: 3 },
  { name: 'Softplus', torch: 'nn.Softplus()', build: () => new Softplus(), input: [2, 3, 4], scale: 3 },
  {
    name: 'Softplus beta 2 threshold 1', torch: 'nn.Softplus(beta=2, threshold=1)',
    build: () => new Softplus({ beta: 2, threshold: 1 }), input: [2, 3, 4], scale: 3,
  },
  { name: 'LeakyReLU', torch: 'nn.LeakyReLU()', build: () => new LeakyReLU(), input: [2, 3, 4], scale: 3 },
  { name: 'LeakyReLU 0.2', torch: 'nn.LeakyReLU(0.2)', build: () => new LeakyReLU({ negativeSlope: 0.2 }), input: [2, 3, 4], scale: 3 },
  { name: 'Identity', torch: 'nn.Identity()', build: () => new Identity(), input: [2, 3] },
  { name: 'Dropout in eval mode', torch: 'nn.Dropout(0.3)', build: () => new Dropout({ p: 0.3 }), input: [3, 4], steps: [false] },
  // ---- pooling ----
  {
    name: 'MaxPool2d k3 stride 2 padding 1', torch: 'nn.MaxPool2d(3, stride=2, padding=1)',
    build: () => new MaxPool2d({ kernelSize: 3, stride: 2, padding: 1 }), input: [2, 3, 7, 7],
  },
  {
    name: 'MaxPool2d k(2,3) dilation (2,1) ceilMode', torch: 'nn.MaxPool2d((2, 3), dilation=(2, 1), ceil_mode=True)',
    build: () => new MaxPool2d({ kernelSize: [2, 3], dilation: [2, 1], ceilMode: true }), input: [1, 2, 7, 8],
  },
  { name: 'MaxPool2d unbatched', torch: 'nn.MaxPool2d(2)', build: () => new MaxPool2d({ kernelSize: 2 }), input: [2, 4, 6] },
  {
    name: 'AvgPool2d k3 stride 2 padding 1', torch: 'nn.AvgPool2d(3, stride=2, padding=1)',
    build: () => new AvgPool2d({ kernelSize: 3, stride: 2, padding: 1 }), input: [2, 3, 7, 7],
  },
  {
    name: 'AvgPool2d ceilMode, countIncludePad false', torch: 'nn.AvgPool2d(2, padding=1, ceil_mode=True, count_include_pad=False)',
    build: () => new AvgPool2d({ kernelSize: 2, padding: 1, ceilMode: true, countIncludePad: false }), input: [1, 2, 5, 6],
  },
  {
    name: 'AvgPool2d divisorOverride 3', torch: 'nn.AvgPool2d(2, divisor_override=3)',
    build: () => new AvgPool2d({ kernelSize: 2, divisorOverride: 3 }), input: [1, 2, 4, 6],
  },
  { name: 'AdaptiveAvgPool2d 3', torch: 'nn.AdaptiveAvgPool2d(3)', build: () => new AdaptiveAvgPool2d({ outputSize: 3 }), input: [2, 2, 7, 5] },
  {
    name: 'AdaptiveAvgPool2d (null, 2)', torch: 'nn.AdaptiveAvgPool2d((None, 2))',
    build: () => new AdaptiveAvgPool2d({ outputSize: [null, 2] }), input: [2, 2, 3, 5],
  },
  {
    name: 'AdaptiveMaxPool2d (2, 3)', torch: 'nn.AdaptiveMaxPool2d((2, 3))',
    build: () => new AdaptiveMaxPool2d({ outputSize: [2, 3] }), input: [2, 2, 5, 7],
  },
  // ---- flatten and containers ----
  { name: 'Flatten', torch: 'nn.Flatten()', build: () => new Flatten(), input: [2, 3, 2, 2] },
  { name: 'Flatten 0…1', torch: 'nn.Flatten(0, 1)', build: () => new Flatten({ startDim: 0, endDim: 1 }), input: [2, 3, 2] },
  { name: 'Flatten -2…-1', torch: 'nn.Flatten(-2, -1)', build: () => new Flatten({ startDim: -2, endDim: -1 }), input: [2, 3, 2, 2] },
  {
    name: 'Sequential conv-bn-relu-pool-flatten-linear',
    torch: 'nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))',
    build: () => new Sequential(
      new Conv2d({ inChannels: 2, outChannels: 4, kernelSize: 3, padding: 1 }), new BatchNorm2d({ numFeatures: 4 }), new ReLU(),
      new AdaptiveAvgPool2d({ outputSize: 1 }), new Flatten(), new Linear({ inFeatures: 4, outFeatures: 3 }),
    ),
    input: [3, 2, 5, 5], steps: [true, true, false],
  },
  // ---- parameter shapes and counts only (larger configurations) ----
  { name: 'Conv2d 64→128 k3 groups 4', torch: 'nn.Conv2d(64, 128, 3, groups=4)', build: conv2d({ inChannels: 64, outChannels: 128, kernelSize: 3, groups: 4 }) },
  {
    name: 'Conv2d depthwise 96 k7 no bias', torch: 'nn.Conv2d(96, 96, 7, padding=3, groups=96, bias=False)',
    build: conv2d({ inChannels: 96, outChannels: 96, kernelSize: 7, padding: 3, groups: 96, bias: false }),
  },
  { name: 'Conv1d 256→512 k1 no bias', torch: 'nn.Conv1d(256, 512, 1, bias=False)', build: () => new Conv1d({ inChannels: 256, outChannels: 512, kernelSize: 1, bias: false }) },
  { name: 'Linear 2048→1000', torch: 'nn.Linear(2048, 1000)', build: () => new Linear({ inFeatures: 2048, outFeatures: 1000 }) },
  { name: 'BatchNorm2d 256', torch: 'nn.BatchNorm2d(256)', build: () => new BatchNorm2d({ numFeatures: 256 }) },
  { name: 'BatchNorm1d 512 affine false', torch: 'nn.BatchNorm1d(512, affine=False)', build: () => new BatchNorm1d({ numFeatures: 512, affine: false }) },
  { name: 'LayerNorm [7, 7, 96]', torch: 'nn.LayerNorm([7, 7, 96])', build: () => new LayerNorm({ normalizedShape: [7, 7, 96] }) },
  { name: 'GroupNorm 32 of 256', torch: 'nn.GroupNorm(32, 256)', build: () => new GroupNorm({ numGroups: 32, numChannels: 256 }) },
];
