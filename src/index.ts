/**
 * vicinity: local-attention vision networks for TypeScript, on libtorch.
 *
 *   import { randn, nn, F, optim, tidy } from 'vicinity';
 */
export { Tensor, isDType, type DType, type Device, type NestedArray, type TypedData } from './tensor/tensor.js';
export * from './tensor/creation.js';
export { scope, tidy, keep, currentScope, Scope } from './tensor/scope.js';
export { noGrad, enableGrad, isGradEnabled, setGradEnabled, grad, type GradOptions } from './tensor/autograd.js';
export { memory, setNumThreads, getNumThreads, type MemoryInfo } from './tensor/memory.js';
export * as F from './ops/functional.js';
export * as aten from './ops/generated/ops.gen.js';
export { native } from './native/binding.js';
