/** The generic op call the generated wrappers use (native/core/dispatch.cc). */
import { native } from '../native/binding.js';
// Results are built with the registered Tensor class: make sure it is registered before any op
// runs, whichever module the program imported first.
import '../tensor/tensor.js';

/** A number or boolean where libtorch takes a Scalar; integral numbers become integer Scalars. */
export type Scalar = number | boolean;
export type MemoryFormat = 'contiguous' | 'channelsLast' | 'preserve';

export const call: (id: number, args: unknown[]) => unknown = native.call;
export const opId: (name: string, overload: string) => number = native.opId;
