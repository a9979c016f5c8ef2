/**
 * Containers, after torch.nn.Sequential, ModuleList and ModuleDict (PyTorch 1.13,
 * torch/nn/modules/container.py). Children are registered under the names PyTorch gives them —
 * '0', '1', … for Sequential and ModuleList, the keys for ModuleDict — so state-dict keys match
 * (`features.3.weight`).
 *
 * Deviations: 1. Sequential and ModuleList do not replace an element by index (PyTorch's
 * `seq[i] = m`); ModuleDict.set replaces as `dict[key] = m` does. 2. ModuleDict built from a plain
 * object follows JavaScript's key order (integer-like keys first); pass an array of
 * [key, module] pairs to fix the order.
 */
import type { Tensor } from '../../tensor/tensor.js';
import { Module, type AnyModule } from '../module.js';

/** Resolves a possibly negative index, or throws naming the container and its length. */
function resolveIndex(container: string, index: number, length: number): number {
  if (!Number.isInteger(index)) throw new TypeError(`${container}: index must be an integer, got ${String(index)}`);
  const i = index < 0 ? index + length : index;
  if (i < 0 || i >= length) {
    throw new RangeError(`${container}: index ${index} is out of range for ${length} module${length === 1 ? '' : 's'}`);
  }
  return i;
}

/**
 * Chains modules: forward(x) = mₙ(… m₁(m₀(x))) (torch.nn.Sequential). Children are named '0',
 * '1', … or, with Sequential.fromEntries, by their keys.
 *
 * Shape: whatever the first module takes → whatever the last one returns.
 *
 * @example
 * const stem = new Sequential(
 *   new Conv2d({ inChannels: 3, outChannels: 64, kernelSize: 7, stride: 2, padding: 3, bias: false }),
 *   new BatchNorm2d({ numFeatures: 64 }),
 *   new ReLU(),
 * );   // state dict: 0.weight, 1.weight, 1.bias, 1.running_mean, …
 */
export class Sequential extends Module {
  private readonly items: Module[] = [];

  constructor(...modules: Module[]) {
    super();
    for (const m of modules) this.push(m);
  }

  /** A Sequential whose children have the given names (torch: Sequential(OrderedDict(...))). */
  static fromEntries(entries: Iterable<[string, Module]> | Record<string, Module>): Sequential {
    const seq = new Sequential();
    const list = Symbol.iterator in entries ? entries as Iterable<[string, Module]> : Object.entries(entries);
    for (const [name, m] of list) {
      seq.register(name, m);
      seq.items.push(m);
    }
    return seq;
  }

  get length(): number {
    return this.items.length;
  }

  /** The module at `index` (negative counts from the end). */
  at(index: number): Module {
    return this.items[resolveIndex('Sequential', index, this.items.length)];
  }

  /** Appends modules, named by their position (torch: Sequential.append). */
  push(...modules: Module[]): this {
    for (const m of modules) {
      if (!(m instanceof Module)) throw new TypeError(`Sequential: expected a Module, got ${String(m)}`);
      this.register(String(this.items.length), m);
      this.items.push(m);
    }
    return this;
  }

  [Symbol.iterator](): Iterator<Module> {
    return this.items[Symbol.iterator]();
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.items) y = m.forward(y);
    return y;
  }
}

/**
 * A list of modules whose parameters are registered (torch.nn.ModuleList); it has no forward:
 * the owner decides how to call its items.
 *
 * @example
 * const blocks = new ModuleList(Array.from({ length: 4 }, () => new Linear({ inFeatures: 8, outFeatures: 8 })));
 * for (const block of blocks) x = block.forward(x);
 */
export class ModuleList<M extends AnyModule = AnyModule> extends Module<[], never> {
  private readonly items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    this.push(...modules);
  }

  get length(): number {
    return this.items.length;
  }

  /** The module at `index` (negative counts from the end). */
  at(index: number): M {
    return this.items[resolveIndex('ModuleList', index, this.items.length)];
  }

  /** Appends modules, named '0', '1', … by position (torch: append / extend). */
  push(...modules: M[]): this {
    for (const m of modules) {
      if (!(m instanceof Module)) throw new TypeError(`ModuleList: expected a Module, got ${String(m)}`);
      this.register(String(this.items.length), m);
      this.items.push(m);
    }
    return this;
  }

  [Symbol.iterator](): Iterator<M> {
    return this.items[Symbol.iterator]();
  }

  forward(): never {
    throw new TypeError('ModuleList has no forward: iterate it and call each module');
  }
}

/**
 * Modules by name (torch.nn.ModuleDict); each key is the child's state-dict name, so it must be
 * non-empty and contain no '.'. It has no forward.
 *
 * @example
 * const heads = new ModuleDict([['cls', new Linear({ inFeatures: 256, outFeatures: 10 })]]);
 * const logits = heads.get('cls')!.forward(features);
 */
export class ModuleDict<M extends AnyModule = AnyModule> extends Module<[], never> {
  private readonly items = new Map<string, M>();

  constructor(entries: Iterable<[string, M]> | Record<string, M> = []) {
    super();
    const list = Symbol.iterator in entries ? entries as Iterable<[string, M]> : Object.entries(entries);
    for (const [key, m] of list) this.set(key, m);
  }

  get size(): number {
    return this.items.size;
  }

  get(key: string): M | undefined {
    return this.items.get(key);
  }

  has(key: string): boolean {
    return this.items.has(key);
  }

  /** Adds a module, or replaces the one under an existing key (keeping its position), as PyTorch. */
  set(key: string, module: M): this {
    if (!(module instanceof Module)) throw new TypeError(`ModuleDict: expected a Module for key '${key}', got ${String(module)}`);
    this.register(key, module, { replace: true });
    this.items.set(key, module);
    return this;
  }

  keys(): IterableIterator<string> {
    return this.items.keys();
  }

  values(): IterableIterator<M> {
    return this.items.values();
  }

  entries(): IterableIterator<[string, M]> {
    return this.items.entries();
  }

  [Symbol.iterator](): IterableIterator<[string, M]> {
    return this.items.entries();
  }

  forward(): never {
    throw new TypeError('ModuleDict has no forward: get a module by key and call it');
  }
}
