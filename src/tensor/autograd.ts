/**
 * Grad mode and torch.autograd.grad. libtorch's grad mode is thread-local; ops run on Node's
 * main thread, so a synchronous scope is exact. An async callback would let other tasks run with
 * the wrong mode between awaits, so noGrad/enableGrad refuse one.
 */
import { native } from '../native/binding.js';
import type { Tensor } from './tensor.js';

function withGradMode<T>(enabled: boolean, fn: () => T, name: string): T {
  const previous = native.setGradEnabled(enabled);
  try {
    const result = fn();
    if (result instanceof Promise) {
      throw new TypeError(`${name}(fn): fn returned a Promise; run only the synchronous tensor work inside ${name}()`);
    }
    return result;
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs fn without recording autograd history (torch.no_grad). */
export function noGrad<T>(fn: () => T): T {
  return withGradMode(false, fn, 'noGrad');
}

/** Runs fn with autograd recording on, also inside noGrad (torch.enable_grad). */
export function enableGrad<T>(fn: () => T): T {
  return withGradMode(true, fn, 'enableGrad');
}

export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}

export function setGradEnabled(enabled: boolean): boolean {
  return native.setGradEnabled(enabled);
}

export interface GradOptions {
  gradOutputs?: (Tensor | null)[];
  retainGraph?: boolean;
  createGraph?: boolean;
  allowUnused?: boolean;
}

/** Gradients of `outputs` with respect to `inputs`, without touching `.grad` (torch.autograd.grad). */
export function grad(outputs: Tensor | Tensor[], inputs: Tensor | Tensor[], options: GradOptions = {}): (Tensor | null)[] {
  const outs = Array.isArray(outputs) ? outputs : [outputs];
  const ins = Array.isArray(inputs) ? inputs : [inputs];
  return native.grad(
    outs, ins, options.gradOutputs ?? outs.map(() => null),
    options.retainGraph ?? false, options.createGraph ?? false, options.allowUnused ?? false,
  ) as (Tensor | null)[];
}
