/**
 * Multiply-accumulate counting by observing the ops a forward pass calls (ops/call.ts
 * `observeOps`), with the conventions of model-specs.md §0 — the papers' "FLOPs":
 *   conv1d / conv2d           out.numel · C_in/groups · ∏kernel            (bias ignored)
 *   linear                    out.numel · in_features
 *   matmul, mm, bmm, baddbmm, addmm   out.numel · k  (= batch·n·m·k, batch broadcast included)
 *   einsum (≥ 2 operands)     ∏ of every distinct index size (ellipsis dims broadcast)
 * and, outside the headline, in `other`:
 *   grid_sampler              4 per sampled value bilinear (8 trilinear, 16 bicubic, 0 nearest)
 * The forward runs on the composite path (ops/fused.ts, kernel mode 'composite'): the formulation
 * the papers count, so fused kernels, scaled_dot_product_attention and algebraic reorderings
 * (cheaper ways to the same function) never change a model's MACs.
 * Not counted: norms, activations, softmax, pooling, adds, element-wise products, gathers.
 * Only the ops vicinity calls are seen (libtorch's internal conv2d → convolution is not), so each
 * op is counted once. The count is for the given input's batch; pass batch 1 for per-image MACs.
 */
import type { Module } from '../nn/module.js';
import { observeOps } from '../ops/call.js';
import { withKernelMode } from '../ops/fused.js';
import { noGrad } from '../tensor/autograd.js';
import { randn } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { Tensor, type Device } from '../tensor/tensor.js';

/** MACs of one op call: headline and 'other' (sampling), or null for ops that cost none. */
export interface OpMacs {
  macs: number;
  other: number;
}

type Rule = (args: unknown[], result: unknown) => OpMacs;

const shapeOf = (t: unknown): number[] => (t instanceof Tensor ? t.shape : []);
const numelOf = (t: unknown): number => (t instanceof Tensor ? t.numel : 0);
const product = (xs: number[]) => xs.reduce((a, b) => a * b, 1);
const headline = (macs: number): OpMacs => ({ macs, other: 0 });

/** conv: out.numel × (C_in/groups · ∏kernel), which is the weight's shape after dim 0. */
const conv: Rule = (args, result) => headline(numelOf(result) * product(shapeOf(args[1]).slice(1)));

/** matmul-like: out.numel × k, k the last dim of the left operand at `left`. */
const matmulLike = (left: number): Rule => (args, result) => {
  const a = shapeOf(args[left]);
  return headline(numelOf(result) * (a.length ? a[a.length - 1] : 0));
};

const einsum: Rule = (args) => headline(einsumMacs(args[0] as string, args[1] as Tensor[]));

const gridSampler: Rule = (args, result) => {
  const mode = args[2] as number;   // 0 bilinear, 1 nearest, 2 bicubic (F.gridSample)
  const corners = mode === 1 ? 0 : mode === 2 ? 16 : shapeOf(args[0]).length === 5 ? 8 : 4;
  return { macs: 0, other: corners * numelOf(result) };
};

/** The counting rule of each op name (as ops/call.ts reports it). */
export const MAC_RULES: Readonly<Record<string, Rule>> = {
  'aten::conv1d': conv,
  'aten::conv2d': conv,
  'aten::linear': (args, result) => headline(numelOf(result) * (shapeOf(args[1])[1] ?? 0)),
  'aten::matmul': matmulLike(0),
  'aten::mm': matmulLike(0),
  'aten::bmm': matmulLike(0),
  'aten::baddbmm': matmulLike(1),
  'aten::addmm': matmulLike(1),
  'aten::einsum': einsum,
  'aten::grid_sampler': gridSampler,
};

/** MACs of one observed op call; null when the op is not one that counts. */
export function opMacs(op: string, args: unknown[], result: unknown): OpMacs | null {
  const rule = MAC_RULES[op];
  return rule ? rule(args, result) : null;
}

/**
 * The product of the sizes of every distinct index of an einsum equation, i.e. the naive
 * contraction's multiply-accumulates; ellipsis dims are broadcast across operands. One operand
 * (a permutation or reduction) costs 0.
 */
export function einsumMacs(equation: string, operands: Tensor[]): number {
  const terms = equation.replace(/\s/g, '').split('->')[0].split(',');
  if (terms.length < 2) return 0;
  if (terms.length !== operands.length) {
    throw new RangeError(`einsumMacs: equation '${equation}' has ${terms.length} operands but ${operands.length} tensors were given`);
  }
  const sizes = new Map<string, number>();
  let ellipsis: number[] = [];
  terms.forEach((term, i) => {
    const shape = operands[i].shape;
    const at = term.indexOf('...');
    const letters = term.replace('...', '').split('');
    const extra = shape.length - letters.length;   // dims the ellipsis stands for
    letters.forEach((c, j) => {
      const dim = at >= 0 && j >= at ? j + extra : j;
      sizes.set(c, Math.max(sizes.get(c) ?? 1, shape[dim]));
    });
    if (at >= 0) ellipsis = broadcast(ellipsis, shape.slice(at, at + extra));
  });
  return product([...sizes.values()]) * product(ellipsis);
}

function broadcast(a: number[], b: number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => Math.max(a[a.length - n + i] ?? 1, b[b.length - n + i] ?? 1));
}

/** Per module (dotted name, '' for the model): MACs of everything it ran, its children's included. */
export interface ModuleMacs {
  type: string;
  macs: number;
  other: number;
  /** How many times its forward ran. */
  calls: number;
  /** The shape of its first output (or of each output when it returns an array); null otherwise. */
  outputShape: number[] | number[][] | null;
}

export interface MacCount {
  /** Headline MACs: the sum of byOp. */
  total: number;
  /** Headline MACs per op name ('aten::conv2d', …). */
  byOp: Record<string, number>;
  /** Counted but not in the headline (bilinear sampling, LA's normalised weights). */
  other: number;
  otherByOp: Record<string, number>;
  /** The shape of the model's input. */
  inputShape: number[];
  /** With `perModule: true`: every module by dotted name ('' = the model), depth first. */
  perModule?: Map<string, ModuleMacs>;
}

export interface CountMacsOptions {
  /** Attribute MACs and output shapes to every module (wraps each module's forward for the pass). */
  perModule?: boolean;
  /** Run in training mode (default: eval mode, so batch 1 works with BatchNorm). */
  training?: boolean;
}

type Forward = (...args: unknown[]) => unknown;

/**
 * Counts the MACs of one forward pass of `model` on `input` (a tensor, or a shape filled with
 * N(0, 1) on the model's device and dtype), under noGrad and in eval mode; the model's modes are
 * restored afterwards.
 *
 * @example
 * const { total } = countMacs(createModel('resnet50'), [1, 3, 224, 224]);   // 4,089,184,256
 */
export function countMacs(model: Module, input: Tensor | number[], options: CountMacsOptions = {}): MacCount {
  const modes = Array.from(model.modules(), (m) => [m, m.training] as const);
  const stack: string[] = [];
  const perModule = options.perModule ? new Map<string, ModuleMacs>() : undefined;
  const restore = perModule ? wrapForwards(model, stack, perModule) : () => {};
  const count: MacCount = { total: 0, byOp: {}, other: 0, otherByOp: {}, inputShape: [] };
  const watch = (op: string, args: unknown[], result: unknown) => {
    const m = opMacs(op, args, result);
    if (!m) return;
    if (m.macs) {
      count.total += m.macs;
      count.byOp[op] = (count.byOp[op] ?? 0) + m.macs;
    }
    if (m.other) {
      count.other += m.other;
      count.otherByOp[op] = (count.otherByOp[op] ?? 0) + m.other;
    }
    if (perModule) {
      for (const name of new Set(stack)) {
        const entry = perModule.get(name) as ModuleMacs;
        entry.macs += m.macs;
        entry.other += m.other;
      }
    }
  };
  try {
    model.train(options.training ?? false);
    noGrad(() => tidy(() => {
      const x = input instanceof Tensor ? input : randn(input, { ...placement(model), seed: 0 });
      count.inputShape = x.shape;
      observeOps(watch, () => withKernelMode('composite', () => model.forward(x)));
    }));
  } finally {
    restore();
    for (const [m, training] of modes) m.training = training;
  }
  if (perModule) count.perModule = perModule;
  return count;
}

/** The device and floating dtype of the model's first parameter (CPU float32 without any). */
function placement(model: Module): { device?: Device; dtype?: Tensor['dtype'] } {
  const p = model.parameters().find((t) => t.dtype.startsWith('float') || t.dtype === 'bfloat16');
  return p ? { device: p.device as Device, dtype: p.dtype } : {};
}

/**
 * Gives every module an own `forward` that pushes its name while it runs and records its output
 * shape; returns the function that puts the original methods back.
 */
function wrapForwards(model: Module, stack: string[], out: Map<string, ModuleMacs>): () => void {
  const undo: (() => void)[] = [];
  for (const [name, m] of model.namedModules()) {
    const entry: ModuleMacs = { type: m.constructor.name, macs: 0, other: 0, calls: 0, outputShape: null };
    out.set(name, entry);
    const target = m as unknown as { forward: Forward };
    const own = Object.prototype.hasOwnProperty.call(m, 'forward');
    const original = target.forward;
    target.forward = function (this: unknown, ...args: unknown[]) {
      stack.push(name);
      try {
        const result = original.apply(this, args);
        if (entry.calls++ === 0) entry.outputShape = outputShape(result);
        return result;
      } finally {
        stack.pop();
      }
    };
    undo.push(() => {
      if (own) target.forward = original;
      else delete (target as { forward?: Forward }).forward;
    });
  }
  return () => undo.reverse().forEach((f) => f());
}

function outputShape(result: unknown): number[] | number[][] | null {
  if (result instanceof Tensor) return result.shape;
  if (Array.isArray(result) && result.length > 0 && result.every((r) => r instanceof Tensor)) return result.map((r: Tensor) => r.shape);
  return null;
}
