/**
 * Module: the base of every layer and model, after torch.nn.Module. Children, parameters and
 * buffers are registered under their PyTorch state-dict names, written once as strings:
 *
 *   this.conv = this.register('conv1', new Conv2d({ ... }));
 *   this.weight = this.registerParameter('weight', parameter(randn([n])));
 *
 * so `stateDict()` keys match PyTorch checkpoints (`layer1.0.conv1.weight`).
 */
import type { DType } from '../native/binding.js';
import { noGrad } from '../tensor/autograd.js';
import { keep } from '../tensor/scope.js';
import { Tensor, type Device } from '../tensor/tensor.js';
import { Parameter, parameter } from './parameter.js';

export class StateDictError extends Error {
  constructor(message: string, readonly report: LoadReport) {
    super(message);
    this.name = 'StateDictError';
  }
}

export interface LoadReport {
  /** Keys the module has but the state dict lacks. */
  missing: string[];
  /** Keys the state dict has but the module lacks. */
  unexpected: string[];
  /** Keys present in both with different shapes. */
  mismatched: { key: string; expected: number[]; got: number[] }[];
}

export type StateDict = Map<string, Tensor>;

/**
 * Any module, whatever its forward takes and returns: the type of children, hook targets and
 * other code that walks a tree of modules without calling them.
 */
// `any[]` (not unknown[]) so that every Module<In, Out> is assignable, whatever forward takes.
export type AnyModule = Module<any[], unknown>;
/** The argument list of a module's forward (`[Tensor]` for a unary module). */
export type ForwardInput<M extends AnyModule> = M extends Module<infer In, unknown> ? In : never;
/** What a module's forward returns. */
export type ForwardOutput<M extends AnyModule> = M extends Module<infer _In, infer Out> ? Out : never;

/**
 * Runs before `forward` with its arguments (torch's forward pre-hook). Returning undefined keeps
 * them; an array replaces the whole argument list; any other value replaces the single argument.
 */
export type ForwardPreHook<M extends AnyModule = AnyModule> =
  (module: M, args: ForwardInput<M>) => ForwardInput<M> | ForwardInput<M>[0] | void;
/** Runs after `forward` with its arguments and output; a returned value other than undefined replaces the output. */
export type ForwardHook<M extends AnyModule = AnyModule> =
  (module: M, args: ForwardInput<M>, output: ForwardOutput<M>) => ForwardOutput<M> | void;

/** What registerForward(Pre)Hook returns: `remove()` unregisters the hook (a second call does nothing). */
export interface RemovableHandle {
  remove(): void;
}

/** Hook lists of one module, in call order. */
interface Hooks {
  pre: ForwardPreHook[];
  post: ForwardHook[];
}

/**
 * `In` is forward's argument list and `Out` what it returns; the default is the unary module
 * (one tensor in, one tensor out) that Sequential chains, e.g. `Module<[Tensor, Tensor | null], Tensor>`
 * for a layer that also takes a mask.
 */
export abstract class Module<In extends unknown[] = [Tensor], Out = Tensor> {
  training = true;
  private readonly parametersByName = new Map<string, Parameter | null>();
  private readonly buffersByName = new Map<string, Tensor | null>();
  private readonly nonPersistent = new Set<string>();
  private readonly childrenByName = new Map<string, AnyModule | null>();
  private hooks: Hooks | null = null;

  abstract forward(...args: In): Out;

  // ---- hooks ---------------------------------------------------------------------------------

  /**
   * Registers a hook that runs before every `forward` call of this module and may replace its
   * arguments (see {@link ForwardPreHook}); hooks run in registration order, or first with
   * `{ prepend: true }`, as torch.nn.Module.register_forward_pre_hook.
   *
   * vicinity modules call each other's `forward` directly, so the hook is installed by giving this
   * instance an own `forward` that wraps its class's; it is removed with the last hook.
   *
   * @example
   * const handle = model.layer4.registerForwardPreHook((_m, [x]) => { console.log((x as Tensor).shape); });
   * model.forward(x);
   * handle.remove();
   */
  registerForwardPreHook<M extends AnyModule>(this: M, hook: ForwardPreHook<M>, options: { prepend?: boolean } = {}): RemovableHandle {
    return this.addHook('pre', hook as ForwardPreHook, options.prepend ?? false);
  }

  /**
   * Registers a hook that runs after every `forward` call of this module with its arguments and
   * output, and may replace the output (see {@link ForwardHook}); order as registerForwardPreHook.
   *
   * @example
   * const features: Tensor[] = [];
   * const handle = model.getSubmodule('layer4').registerForwardHook((_m, _args, out) => { features.push(keep(out as Tensor)); });
   */
  registerForwardHook<M extends AnyModule>(this: M, hook: ForwardHook<M>, options: { prepend?: boolean } = {}): RemovableHandle {
    return this.addHook('post', hook as ForwardHook, options.prepend ?? false);
  }

  private addHook(kind: 'pre' | 'post', hook: ForwardPreHook | ForwardHook, prepend: boolean): RemovableHandle {
    if (typeof hook !== 'function') throw new TypeError(`${this.constructor.name}: a forward hook must be a function, got ${typeof hook}`);
    if (!this.hooks) this.installHookedForward();
    const list = this.hooks![kind] as (ForwardPreHook | ForwardHook)[];
    // A wrapper object gives each registration its own identity (the same function may be registered twice).
    const entry = ((...a: Parameters<ForwardHook>) => (hook as ForwardHook)(...a)) as ForwardPreHook & ForwardHook;
    if (prepend) list.unshift(entry);
    else list.push(entry);
    let removed = false;
    return {
      remove: () => {
        if (removed) return;
        removed = true;
        const index = list.indexOf(entry);
        if (index >= 0) list.splice(index, 1);
        if (this.hooks && this.hooks.pre.length === 0 && this.hooks.post.length === 0) this.uninstallHookedForward();
      },
    };
  }

  private installHookedForward(): void {
    const hooks: Hooks = { pre: [], post: [] };
    this.hooks = hooks;
    const original = (this as unknown as { forward: (...args: unknown[]) => unknown }).forward;
    const module = this;
    const hooked = function (this: unknown, ...callArgs: unknown[]): unknown {
      let args = callArgs;
      for (const pre of [...hooks.pre]) {
        const result = pre(module, args);
        if (result !== undefined) args = Array.isArray(result) ? result : [result];
      }
      let output = original.apply(this, args);
      for (const post of [...hooks.post]) {
        const result = post(module, args, output);
        if (result !== undefined) output = result;
      }
      return output;
    };
    Object.defineProperty(hooked, 'original', { value: original });
    Object.defineProperty(this, 'forward', { value: hooked, writable: true, configurable: true, enumerable: false });
  }

  private uninstallHookedForward(): void {
    const hooked = Object.getOwnPropertyDescriptor(this, 'forward')?.value as { original?: unknown } | undefined;
    // Another wrapper installed over ours (countMacs while a hook is on) keeps ours, now empty, beneath it.
    if (hooked?.original === undefined) return;
    delete (this as { forward?: unknown }).forward;
    if ((this as unknown as { forward: unknown }).forward !== hooked.original) {
      Object.defineProperty(this, 'forward', { value: hooked.original, writable: true, configurable: true, enumerable: false });
    }
    this.hooks = null;
  }

  /** The descendant at a dotted path ('' is this module), as torch's get_submodule. */
  getSubmodule(target: string): AnyModule {
    if (target === '') return this;
    let m: AnyModule = this;
    for (const part of target.split('.')) {
      const next = m.childrenByName.get(part);
      if (!next) {
        const names = [...m.childrenByName.keys()];
        throw new Error(`${this.constructor.name}.getSubmodule('${target}'): ${m.constructor.name} has no child '${part}'` +
          (names.length ? `; its children are ${names.join(', ')}` : ''));
      }
      m = next;
    }
    return m;
  }

  // ---- registration --------------------------------------------------------------------------

  /**
   * Registers a child module under its state-dict name and returns it. `{ replace: true }`
   * swaps out an existing child of that name (PyTorch's attribute assignment).
   */
  register<M extends AnyModule | null>(name: string, module: M, options: { replace?: boolean } = {}): M {
    if (!(options.replace && this.childrenByName.has(name))) checkName(name, this.childrenByName, 'module');
    this.childrenByName.set(name, module);
    return module;
  }

  /** Registers a parameter (a Tensor becomes a Parameter) and returns it. */
  registerParameter(name: string, value: Tensor | null): Parameter {
    checkName(name, this.parametersByName, 'parameter');
    const p = value === null || value instanceof Parameter ? value : parameter(value);
    this.parametersByName.set(name, p);
    return p as Parameter;
  }

  /** Registers a buffer: state that is saved (unless persistent: false) but not trained. */
  registerBuffer(name: string, value: Tensor | null, options: { persistent?: boolean } = {}): Tensor {
    checkName(name, this.buffersByName, 'buffer');
    if (value) keep(value);
    this.buffersByName.set(name, value);
    if (options.persistent === false) this.nonPersistent.add(name);
    return value as Tensor;
  }

  /** Replaces a registered buffer's tensor (for code that rebinds, e.g. after `to()`). */
  protected setBuffer(name: string, value: Tensor): void {
    if (!this.buffersByName.has(name)) throw new Error(`${this.constructor.name}: no buffer '${name}'`);
    this.buffersByName.set(name, keep(value));
  }

  getBuffer(name: string): Tensor | null {
    return this.buffersByName.get(name) ?? null;
  }

  getParameter(name: string): Parameter | null {
    return this.parametersByName.get(name) ?? null;
  }

  // ---- traversal -----------------------------------------------------------------------------

  *namedChildren(): Generator<[string, AnyModule]> {
    for (const [name, m] of this.childrenByName) if (m) yield [name, m];
  }

  *children(): Generator<AnyModule> {
    for (const [, m] of this.namedChildren()) yield m;
  }

  /** This module and every descendant, depth first, with dotted names ('' for this one). */
  *namedModules(prefix = '', seen = new Set<AnyModule>()): Generator<[string, AnyModule]> {
    if (seen.has(this)) return;
    seen.add(this);
    yield [prefix, this];
    for (const [name, child] of this.namedChildren()) {
      yield* child.namedModules(prefix ? `${prefix}.${name}` : name, seen);
    }
  }

  *modules(): Generator<AnyModule> {
    for (const [, m] of this.namedModules()) yield m;
  }

  /** Every parameter once (shared ones under their first name), in registration order. */
  *namedParameters(): Generator<[string, Parameter]> {
    const seen = new Set<Parameter>();
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, p] of m.parametersByName) {
        if (!p || seen.has(p)) continue;
        seen.add(p);
        yield [prefix ? `${prefix}.${name}` : name, p];
      }
    }
  }

  parameters(): Parameter[] {
    return Array.from(this.namedParameters(), ([, p]) => p);
  }

  *namedBuffers(options: { persistentOnly?: boolean } = {}): Generator<[string, Tensor]> {
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, b] of m.buffersByName) {
        if (!b || (options.persistentOnly && m.nonPersistent.has(name))) continue;
        yield [prefix ? `${prefix}.${name}` : name, b];
      }
    }
  }

  buffers(): Tensor[] {
    return Array.from(this.namedBuffers(), ([, b]) => b);
  }

  /** The number of parameter elements (torch: sum(p.numel() for p in m.parameters())). */
  numParameters(options: { trainableOnly?: boolean } = {}): number {
    let n = 0;
    for (const p of this.parameters()) if (!options.trainableOnly || p.requiresGrad) n += p.numel;
    return n;
  }

  /** Calls fn on every module, children first, like torch.nn.Module.apply. */
  apply(fn: (m: AnyModule) => void): this {
    for (const child of this.children()) child.apply(fn);
    fn(this);
    return this;
  }

  // ---- modes and devices ---------------------------------------------------------------------

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /**
   * Moves parameters and floating-point buffers to a device and/or floating dtype, in place:
   * parameters keep their identity (optimizers holding them stay valid), as in PyTorch.
   */
  to(target: Device | DType | { device?: Device; dtype?: DType }): this {
    const spec = typeof target === 'string'
      ? (target.startsWith('cpu') || target.startsWith('cuda') ? { device: target as Device } : { dtype: target as DType })
      : target;
    noGrad(() => {
      for (const p of this.parameters()) {
        const moved = p.to({ device: spec.device, dtype: isFloating(p.dtype) ? spec.dtype : undefined });
        if (moved !== p) {
          p._setData(moved);
          moved.dispose();
        }
      }
      for (const m of this.modules()) {
        for (const [name, b] of m.buffersByName) {
          if (!b) continue;
          const moved = b.to({ device: spec.device, dtype: isFloating(b.dtype) ? spec.dtype : undefined });
          if (moved !== b) {
            m.buffersByName.set(name, keep(moved));
            b.dispose();
          }
        }
      }
    });
    return this;
  }

  /** Clears every parameter's gradient (set to none, PyTorch 2's default). */
  zeroGrad(): void {
    for (const p of this.parameters()) p.grad = null;
  }

  /** Frees every parameter and buffer now instead of waiting for garbage collection. */
  dispose(): void {
    for (const p of this.parameters()) p.dispose();
    for (const b of this.buffers()) b.dispose();
  }

  // ---- state dicts ---------------------------------------------------------------------------

  /**
   * Parameters and persistent buffers under their PyTorch names, detached (sharing storage). A
   * module reachable by two paths appears under both, as in PyTorch's state_dict.
   */
  stateDict(): StateDict {
    const out: StateDict = new Map();
    for (const [key, t] of this.stateTargets()) out.set(key, t.detach());
    return out;
  }

  /**
   * Copies values into the module's own tensors (converting dtype and device). strict (default):
   * any missing, unexpected or mis-shaped key throws a StateDictError listing all of them and
   * nothing is loaded; strict: false loads what matches and returns the report.
   */
  loadStateDict(stateDict: StateDict | Record<string, Tensor>, options: { strict?: boolean } = {}): LoadReport {
    const source = stateDict instanceof Map ? stateDict : new Map(Object.entries(stateDict));
    const targets = this.stateTargets();
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
    for (const key of targets.keys()) if (!source.has(key)) report.missing.push(key);
    for (const [key, value] of source) {
      const target = targets.get(key);
      if (!target) report.unexpected.push(key);
      else if (!sameShape(target.shape, value.shape)) report.mismatched.push({ key, expected: target.shape, got: value.shape });
    }
    const problems = report.missing.length + report.unexpected.length + report.mismatched.length;
    if ((options.strict ?? true) && problems > 0) {
      throw new StateDictError(`${this.constructor.name}.loadStateDict: ${describeReport(report)}`, report);
    }
    const mismatched = new Set(report.mismatched.map((m) => m.key));
    noGrad(() => {
      for (const [key, value] of source) {
        const target = targets.get(key);
        if (target && !mismatched.has(key)) target.copy_(value);
      }
    });
    return report;
  }

  /** Every state entry by full name, visiting shared children once per path. */
  private stateTargets(prefix = '', out = new Map<string, Tensor>()): Map<string, Tensor> {
    const key = (name: string) => (prefix ? `${prefix}.${name}` : name);
    for (const [name, p] of this.parametersByName) if (p) out.set(key(name), p);
    for (const [name, b] of this.buffersByName) if (b && !this.nonPersistent.has(name)) out.set(key(name), b);
    for (const [name, child] of this.namedChildren()) child.stateTargets(key(name), out);
    return out;
  }

  /** A one-line-per-module summary with parameter counts. */
  toString(): string {
    const lines: string[] = [];
    for (const [name, m] of this.namedModules()) {
      const depth = name === '' ? 0 : name.split('.').length;
      const own = Array.from(m.parametersByName.values()).reduce((n, p) => n + (p?.numel ?? 0), 0);
      lines.push(`${'  '.repeat(depth)}${name || '(root)'}: ${m.constructor.name}${own ? ` [${own} params]` : ''}`);
    }
    return lines.join('\n');
  }
}

function checkName(name: string, map: Map<string, unknown>, kind: string): void {
  if (name === '' || name.includes('.')) {
    throw new TypeError(`register: ${kind} name '${name}' must be non-empty and contain no '.'`);
  }
  if (map.has(name)) throw new TypeError(`register: ${kind} '${name}' is already registered`);
}

function isFloating(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'bfloat16' || dtype === 'float16';
}

function sameShape(a: number[], b: number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export function describeReport(r: LoadReport, limit = 20): string {
  const list = (keys: string[]) => keys.slice(0, limit).join(', ') + (keys.length > limit ? `, … (${keys.length} in all)` : '');
  const parts: string[] = [];
  if (r.missing.length) parts.push(`missing keys: ${list(r.missing)}`);
  if (r.unexpected.length) parts.push(`unexpected keys: ${list(r.unexpected)}`);
  if (r.mismatched.length) {
    parts.push(`shape mismatches: ${r.mismatched.slice(0, limit).map((m) => `${m.key} expected [${m.expected}] got [${m.got}]`).join(', ')}`);
  }
  return parts.length ? parts.join('; ') : 'all keys match';
}
