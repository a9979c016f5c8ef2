/**
 * The generic op call the generated wrappers use (native/core/dispatch.cc).
 *
 * Results are built with the class tensor.ts registers (`native.setTensorClass(Tensor)`) when it
 * is loaded. This file does not import tensor.ts (that would be a cycle: tensor.ts calls the
 * generated ops); every way to obtain a first tensor (creation.ts, checkpoint readers, the
 * package root) loads tensor.ts before any op can run.
 */
import { native } from '../native/binding.js';

/** A number or boolean where libtorch takes a Scalar; integral numbers become integer Scalars. */
export type Scalar = number | boolean;
export type MemoryFormat = 'contiguous' | 'channelsLast' | 'preserve';

/** Sees every op called through the generated wrappers: name, arguments, result. */
export type OpObserver = (op: string, args: unknown[], result: unknown) => void;

const opNames: string[] = [];
let observer: OpObserver | null = null;

/** Resolves `namespace::name` + overload once; the id is what `call` takes. */
export function opId(name: string, overload: string): number {
  const id = native.opId(name, overload);
  opNames[id] = overload ? `${name}.${overload}` : name;
  return id;
}

export function call(id: number, args: unknown[]): unknown {
  const result = native.call(id, args);
  if (observer !== null) observer(opNames[id], args, result);
  return result;
}

/**
 * Runs fn while `watch` sees every op it calls (MAC counting, op tracing); ops that libtorch
 * calls internally (conv2d → convolution) are not seen, only the ones vicinity calls.
 */
export function observeOps<T>(watch: OpObserver, fn: () => T): T {
  const previous = observer;
  observer = watch;
  try {
    return fn();
  } finally {
    observer = previous;
  }
}
