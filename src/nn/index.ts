/**
 * vicinity/nn: Module and Parameter, the layers, and weight initialisation (as the namespace
 * `init`, like torch.nn.init).
 *
 *   import { nn } from 'vicinity';
 *   const conv = new nn.Conv2d({ inChannels: 3, outChannels: 16, kernelSize: 3 });
 *   nn.init.kaimingNormal_(conv.weight, { mode: 'fanOut', nonlinearity: 'relu' });
 */
export { Module, StateDictError, describeReport, type AnyModule, type ForwardInput, type ForwardOutput, type LoadReport, type StateDict } from './module.js';
export { Parameter, parameter } from './parameter.js';
export * as init from './init.js';
export { ShapeError } from './layers/validation.js';
export { Conv1d, Conv2d, type Conv1dOptions, type Conv2dOptions, type PaddingMode } from './layers/conv.js';
export { Linear, type LinearOptions } from './layers/linear.js';
export { BatchNorm1d, BatchNorm2d, type BatchNormOptions } from './layers/batch-norm.js';
export { LayerNorm, type LayerNormOptions } from './layers/layer-norm.js';
export { GroupNorm, type GroupNormOptions } from './layers/group-norm.js';
export { Dropout, DropPath, type DropoutOptions, type DropPathOptions } from './layers/dropout.js';
export {
  ReLU, GELU, SiLU, Sigmoid, Tanh, Softplus, LeakyReLU, Identity,
  type GELUOptions, type SoftplusOptions, type LeakyReLUOptions,
} from './layers/activation.js';
export {
  MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d,
  type MaxPool2dOptions, type AvgPool2dOptions, type AdaptivePoolOptions, type AdaptiveSize,
} from './layers/pooling.js';
export { Flatten, type FlattenOptions } from './layers/flatten.js';
export { Sequential, ModuleList, ModuleDict } from './layers/containers.js';
export {
  SqueezeExcite, EfficientChannelAttention, ecaKernelSize,
  type SqueezeExciteOptions, type EfficientChannelAttentionOptions,
} from './layers/channel-attention.js';
