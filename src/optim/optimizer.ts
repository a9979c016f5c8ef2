/**
 * Optimizer: the base of SGD and AdamW, after torch.optim.Optimizer (PyTorch 1.13.1,
 * torch/optim/optimizer.py).
 *
 *   const optimizer = new SGD([{ params: decay }, { params: noDecay, weightDecay: 0 }], { lr: 0.1, weightDecay: 1e-4 });
 *   loss.backward(); optimizer.step(); optimizer.zeroGrad();
 *
 * Parameter groups carry their own hyper-parameters; a group's missing ones come from the
 * optimizer's options, and then from the optimizer's defaults. Subclasses give the update of one
 * parameter (`updateParameter`), written as PyTorch 1.13's single-tensor (foreach=False) loop, the
 * default on every device in 1.13, so trajectories match it op for op.
 *
 * State: per-parameter tensors (momentum buffers, moments) are kept out of every scope and owned
 * by the optimizer: replaced ones are disposed at once, the rest by `dispose()`.
 *
 * State dicts use PyTorch's keys (`momentum_buffer`, `exp_avg`, `param_groups`, `weight_decay`):
 * `{ state: { [paramIndex]: { ... } }, param_groups: [{ lr, ..., params: [indices] }] }`, with
 * parameters numbered across groups in order, so a dict converted from `optimizer.state_dict()`
 * loads here and the reverse.
 */
import type { AnyModule } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import { Tensor, type Device } from '../tensor/tensor.js';

/** One hyper-parameter value: a number, a flag, or a tuple such as AdamW's betas. */
export type Hyperparameter = number | boolean | readonly number[];

/** A group's parameters with its complete hyper-parameters (`initialLr` is set by a schedule). */
export type ParamGroup<H> = H & { params: Tensor[]; initialLr?: number };

/** What a caller passes for one group: its parameters and any hyper-parameters to override. */
export type ParamGroupOptions<H> = Partial<H> & { params: Iterable<Tensor> };

/** Plain parameters (one group) or a list of groups, as torch.optim takes them. */
export type ParamsArgument<H> = Iterable<Tensor> | readonly ParamGroupOptions<H>[];

/** A parameter's state: tensors and counters under PyTorch's keys. */
export type ParamState = Record<string, Tensor | number>;

/** The state dict of an optimizer: JSON-able except for the state tensors. */
export interface OptimizerStateDict {
  state: Record<number, Record<string, Tensor | number | null>>;
  param_groups: ({ params: number[] } & Record<string, Hyperparameter | number[] | null>)[];
}

// Keys PyTorch writes into param_groups that select an implementation, not the update: loading a
// PyTorch dict ignores them.
const PYTORCH_IMPLEMENTATION_KEYS = new Set(['foreach', 'capturable', 'differentiable', 'fused']);

/**
 * The base of every optimizer. `H` is the full set of a group's hyper-parameters.
 *
 * Errors: a TypeError for unknown options (in the options or a group), a hyper-parameter of the
 * wrong type, or a parameter that is not a Tensor; an Error for a parameter in two groups, no
 * parameters at all, or a state dict that does not fit (group count, group sizes, another
 * optimizer's keys); the subclasses add RangeErrors for out-of-range values.
 */
export abstract class Optimizer<H extends { lr: number }> {
  readonly paramGroups: ParamGroup<H>[] = [];
  /** Per-parameter state, created by the first step that sees the parameter's gradient. */
  state = new Map<Tensor, ParamState>();
  /** The hyper-parameters a group gets for the ones it does not give. */
  readonly defaults: H;
  // The subclass's own defaults: their types are the types every group must have.
  private readonly standards: H;

  /**
   * @param options - the caller's options; keys not in `defaults` throw.
   * @param defaults - every hyper-parameter with its default value (the known keys).
   */
  protected constructor(params: ParamsArgument<H>, options: Partial<H>, defaults: H) {
    checkKeys(this.constructor.name, options as object, defaults, 'options', '');
    this.standards = defaults;
    this.defaults = { ...defaults, ...definedEntries(options) } as H;
    for (const group of toGroups<H>(params, this.constructor.name)) this.addParamGroup(group);
    if (this.paramGroups.every((g) => g.params.length === 0)) {
      throw new Error(`${this.constructor.name}: got an empty parameter list; pass model.parameters() ` +
        'or at least one group with parameters');
    }
  }

  /**
   * Checks one group's complete hyper-parameters beyond their types (ranges, combinations).
   * `where` names the group in messages, e.g. ' (param group 1)'.
   */
  /**
   * Keys newer PyTorch writes into this optimizer's param groups whose value the class fixes
   * (2.x AdamW: decoupled_weight_decay = true); a loaded dict must carry that value, and
   * stateDict() leaves them out, as PyTorch 1.13 writes them and 2.x fills them in on load.
   */
  protected readonly pytorchFixed: Readonly<Record<string, Hyperparameter>> = {};

  protected abstract validate(hyperparameters: H, where: string): void;

  /** Updates one parameter in place (under noGrad, inside a scope) from its gradient. */
  protected abstract updateParameter(param: Tensor, grad: Tensor, state: ParamState, group: ParamGroup<H>): void;

  /** Adds a group (torch add_param_group): its missing hyper-parameters come from `defaults`. */
  addParamGroup(options: ParamGroupOptions<H>): void {
    const name = this.constructor.name;
    const where = ` (param group ${this.paramGroups.length})`;
    const { params, ...overrides } = options;
    checkKeys(name, overrides, this.defaults, 'option', where);
    const list = Array.from(params);
    const seen = new Set(this.paramGroups.flatMap((g) => g.params));
    for (const [i, p] of list.entries()) {
      if (!(p instanceof Tensor)) {
        throw new TypeError(`${name}: params[${i}]${where} is ${describe(p)}, not a Tensor; pass model.parameters()`);
      }
      if (seen.has(p)) {
        throw new Error(`${name}: params[${i}]${where} already appears in a param group; ` +
          'each parameter may belong to one group only');
      }
      seen.add(p);
    }
    const group = { ...this.defaults, ...definedEntries(overrides), params: list } as ParamGroup<H>;
    this.checkHyperparameters(group, where);
    this.paramGroups.push(group);
  }

  /** Applies one update to every parameter that has a gradient; the others are skipped. */
  step(): void {
    noGrad(() => tidy(() => {
      for (const group of this.paramGroups) {
        for (const param of group.params) {
          const grad = param.grad;
          if (grad === null) continue;
          const state = this.state.get(param) ?? {};
          this.updateParameter(param, grad, state, group);
          if (Object.keys(state).length > 0) this.state.set(param, state);
        }
      }
    }));
  }

  /**
   * Clears the gradients: to null by default (PyTorch ≥ 2.0's set_to_none=True), which frees
   * them; `{ setToNone: false }` zeroes them in place instead.
   */
  zeroGrad(options: { setToNone?: boolean } = {}): void {
    const setToNone = options.setToNone ?? true;
    noGrad(() => tidy(() => {
      for (const group of this.paramGroups) {
        for (const p of group.params) {
          if (setToNone) p.grad = null;
          else p.grad?.zero_();
        }
      }
    }));
  }

  /**
   * The state as PyTorch's optimizer.state_dict() lays it out. The tensors are the live state,
   * not copies (as in PyTorch): save or clone them before the next step.
   */
  stateDict(): OptimizerStateDict {
    const index = new Map<Tensor, number>();
    const paramGroups = this.paramGroups.map((group) => {
      const packed: Record<string, Hyperparameter | number[]> = {};
      for (const [key, value] of Object.entries(group) as [string, Hyperparameter][]) {
        if (key !== 'params') packed[snakeCase(key)] = Array.isArray(value) ? [...value] : value;
      }
      const params = group.params.map((p) => {
        if (!index.has(p)) index.set(p, index.size);
        return index.get(p)!;
      });
      return { ...packed, params };
    });
    const state: OptimizerStateDict['state'] = {};
    for (const [p, s] of this.state) {
      const i = index.get(p);
      if (i !== undefined) state[i] = { ...s };
    }
    return { state, param_groups: paramGroups };
  }

  /**
   * Restores a state dict from `stateDict()` (or a converted PyTorch one) into an optimizer built
   * with the same groups. Tensors are copied, cast to their parameter's dtype and device as
   * PyTorch does; hyper-parameters (lr included) are replaced by the saved ones.
   */
  loadStateDict(dict: OptimizerStateDict): void {
    const name = `${this.constructor.name}.loadStateDict`;
    if (typeof dict !== 'object' || dict === null || !Array.isArray(dict.param_groups) ||
        typeof dict.state !== 'object' || dict.state === null) {
      throw new TypeError(`${name}: expected { state, param_groups } from stateDict(), got ${describe(dict)}`);
    }
    const saved = dict.param_groups;
    if (saved.length !== this.paramGroups.length) {
      throw new Error(`${name}: the state dict has ${saved.length} param groups but this optimizer has ` +
        `${this.paramGroups.length}; build the optimizer with the same param groups as the one that was saved`);
    }
    const byIndex = new Map<number, Tensor>();
    const groups = saved.map((s, i) => {
      const own = this.paramGroups[i].params;
      if (!Array.isArray(s.params) || s.params.length !== own.length) {
        throw new Error(`${name}: param group ${i} of the state dict has ${s.params?.length} parameters but ` +
          `this optimizer's group ${i} has ${own.length}; build the optimizer with the same param groups`);
      }
      s.params.forEach((index, j) => byIndex.set(index, own[j]));
      return { ...this.hyperparametersFrom(s, i), params: own } as ParamGroup<H>;
    });
    const state = new Map<Tensor, ParamState>();
    for (const key of Object.keys(dict.state)) {
      if (!byIndex.has(Number(key))) {
        throw new Error(`${name}: the state dict has state for parameter ${key}, which no param group lists`);
      }
    }
    // Copies are made inside a scope so that dtype/device casts do not outlive the load.
    try {
      tidy(() => {
        for (const [key, entry] of Object.entries(dict.state)) {
          const param = byIndex.get(Number(key))!;
          state.set(param, castState(entry, param));
        }
      });
    } catch (e) {
      disposeState(state);
      throw e;
    }
    this.dispose();
    this.state = state;
    this.paramGroups.splice(0, this.paramGroups.length, ...groups);
  }

  /** Frees the state tensors; the optimizer starts afresh if stepped again. */
  dispose(): void {
    disposeState(this.state);
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Type checks against the defaults' types, then the subclass's range checks. */
  private checkHyperparameters(group: H, where: string): void {
    const name = this.constructor.name;
    for (const [key, standard] of Object.entries(this.standards)) {
      const value = (group as Record<string, unknown>)[key];
      const ok = Array.isArray(standard)
        ? Array.isArray(value) && value.length === standard.length && value.every((v) => typeof v === 'number' && Number.isFinite(v))
        : typeof standard === 'number'
          ? typeof value === 'number' && !Number.isNaN(value)
          : typeof value === typeof standard;
      if (!ok) {
        const expected = Array.isArray(standard) ? `an array of ${standard.length} finite numbers` : `a ${typeof standard}`;
        throw new TypeError(`${name}: ${key} must be ${expected}, got ${describe(value)}${where}`);
      }
    }
    this.validate(group, where);
  }

  /** A saved group's hyper-parameters under this optimizer's names, checked. */
  private hyperparametersFrom(saved: Record<string, unknown>, i: number): H {
    const name = `${this.constructor.name}.loadStateDict`;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(saved)) {
      if (key === 'params' || PYTORCH_IMPLEMENTATION_KEYS.has(key)) continue;
      if (key in this.pytorchFixed) {
        if (value !== this.pytorchFixed[key]) {
          throw new Error(`${name}: param group ${i} has ${key} = ${String(value)}, but ${this.constructor.name} ` +
            `means ${key} = ${String(this.pytorchFixed[key])}; was it saved by another optimizer?`);
        }
        continue;
      }
      const camel = camelCase(key);
      if (!(camel in this.defaults) && camel !== 'initialLr') {
        throw new Error(`${name}: param group ${i} has '${key}', which ${this.constructor.name} does not use ` +
          `(it takes ${Object.keys(this.defaults).map(snakeCase).join(', ')}); was it saved by another optimizer?`);
      }
      out[camel] = Array.isArray(value) ? [...value] : value;
    }
    for (const key of Object.keys(this.defaults)) {
      if (!(key in out)) {
        throw new Error(`${name}: param group ${i} lacks '${snakeCase(key)}'; was it saved by another optimizer?`);
      }
    }
    this.checkHyperparameters(out as H, ` (param group ${i} of the state dict)`);
    return out as H;
  }
}

/**
 * Two groups in timm's order (timm.optim.param_groups_weight_decay): parameters with ndim ≤ 1
 * (norm weights, biases), names ending in '.bias', and those `skip` selects get weight decay 0;
 * the rest get `weightDecay`. Parameters with requiresGrad false are left out, as in timm.
 */
export function paramGroupsNoWeightDecay(
  model: AnyModule,
  weightDecay: number,
  options: { skip?: (name: string, param: Tensor) => boolean } = {},
): [{ params: Tensor[]; weightDecay: number }, { params: Tensor[]; weightDecay: number }] {
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    if (p.ndim <= 1 || name.endsWith('.bias') || options.skip?.(name, p)) noDecay.push(p);
    else decay.push(p);
  }
  return [{ params: noDecay, weightDecay: 0 }, { params: decay, weightDecay }];
}

// ---- validation helpers for subclasses ---------------------------------------------------------

/** Throws a RangeError unless `value ≥ 0`. */
export function requireNonNegative(optimizer: string, key: string, value: number, where: string): void {
  if (!(value >= 0)) {
    throw new RangeError(`${optimizer}: ${key} must be ≥ 0, got ${value}${where}`);
  }
}

// ---- internals --------------------------------------------------------------------------------

function toGroups<H>(params: ParamsArgument<H>, name: string): ParamGroupOptions<H>[] {
  if (params === null || typeof params !== 'object' || !(Symbol.iterator in params)) {
    throw new TypeError(`${name}: params must be an array of Tensors or of { params, ...options } groups, ` +
      `got ${describe(params)}`);
  }
  const items = Array.from(params as Iterable<unknown>);
  if (items.length > 0 && !(items[0] instanceof Tensor)) {
    return items.map((item, i) => {
      if (item === null || typeof item !== 'object' || !('params' in item)) {
        throw new TypeError(`${name}: param group ${i} is ${describe(item)}; a group is { params: Tensor[], ...options }`);
      }
      return item as ParamGroupOptions<H>;
    });
  }
  return [{ params: items as Tensor[] } as unknown as ParamGroupOptions<H>];
}

function checkKeys(name: string, given: object, known: object, what: string, where: string): void {
  for (const key of Object.keys(given)) {
    if (!(key in known)) {
      throw new TypeError(`${name}: unknown ${what} '${key}'${where}; known options: ${Object.keys(known).join(', ')}`);
    }
  }
}

/** Drops keys whose value is undefined, so `{ lr: undefined }` means "use the default". */
function definedEntries<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function disposeState(state: Map<Tensor, ParamState>): void {
  for (const s of state.values()) {
    for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
  }
  state.clear();
}

/** A saved parameter state copied for `param`: floating tensors take its dtype, all its device. */
function castState(entry: Record<string, Tensor | number | null>, param: Tensor): ParamState {
  const out: ParamState = {};
  for (const [key, value] of Object.entries(entry)) {
    if (value === null) continue; // PyTorch's momentum_buffer: None
    if (!(value instanceof Tensor)) {
      out[key] = value;
    } else if (key === 'step') {
      out[key] = Number(value.item()); // PyTorch 1.13 keeps the step count in a tensor
    } else {
      const floating = value.dtype.startsWith('float') || value.dtype === 'bfloat16';
      const moved = value.to({ device: param.device as Device, dtype: floating ? param.dtype : value.dtype });
      out[key] = (moved === value ? value.clone() : moved).keep();
    }
  }
  return out;
}

function snakeCase(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

function camelCase(key: string): string {
  return key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

function describe(value: unknown): string {
  if (value instanceof Tensor) return `a Tensor of shape [${value.shape}]`;
  if (Array.isArray(value)) return `[${value.map(describe).join(', ')}]`;
  if (typeof value === 'string') return `'${value}'`;
  if (value === null || typeof value !== 'object') return String(value);
  return `an object with keys ${Object.keys(value).join(', ') || '(none)'}`;
}
