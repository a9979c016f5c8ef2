/**
 * Parameter: a leaf tensor owned by a Module. Like torch.nn.Parameter it requires grad by
 * default; unlike other tensors it is never disposed by a scope (its Module owns it).
 */
import { native } from '../native/binding.js';
import * as aten from '../ops/generated/ops.gen.js';
import { Tensor } from '../tensor/tensor.js';

export class Parameter extends Tensor {}

/** Wraps `data` (detached, sharing its storage) as a Parameter. */
export function parameter(data: Tensor, requiresGrad = true): Parameter {
  // The binding builds each result with the registered class: switch it for this one call.
  native.setTensorClass(Parameter);
  let p: Parameter;
  try {
    p = aten.detach(data) as Parameter;
  } finally {
    native.setTensorClass(Tensor);
  }
  p.requiresGrad = requiresGrad;
  return p;
}
