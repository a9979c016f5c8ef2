/**
 * Finite-difference gradient check in float64, after torch.autograd.gradcheck.
 *
 * For a function f of tensors, compares the gradients autograd computes with central differences
 *   ∂f/∂x_i ≈ (f(x + ε·e_i) − f(x − ε·e_i)) / 2ε
 * over every element of every input that requires grad. Two modes:
 *   - small outputs (numel ≤ jacobianMaxOutputs): the full Jacobian, one backward per output element;
 *   - larger outputs: the vector–Jacobian product with a fixed random cotangent r, i.e. the gradient
 *     of the scalar Σ f(x) ⊙ r, which any wrong Jacobian entry perturbs with probability 1.
 * An entry passes when |analytic − numerical| ≤ atol + rtol·|numerical|, torch.allclose's rule.
 *
 * Everything runs in a tidy scope: the check leaves no tensor behind, and the caller's inputs are
 * never modified (perturbations and backward passes use copies).
 */
import { noGrad, grad } from '../tensor/autograd.js';
import { randn } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';

export interface GradcheckOptions {
  /** Finite-difference step (default 1e-6). */
  eps?: number;
  /** Absolute tolerance (default 1e-5). */
  atol?: number;
  /** Relative tolerance, against the numerical value (default 1e-3). */
  rtol?: number;
  /** Seed of the random cotangent r (default 0). */
  seed?: number;
  /** Outputs with at most this many elements get the full Jacobian (default 16; 0 turns it off). */
  jacobianMaxOutputs?: number;
}

export interface GradcheckResult {
  ok: boolean;
  /** max |analytic − numerical| over every compared entry. */
  maxAbsError: number;
  /** max |analytic − numerical| / (|numerical| + atol): finite where the true gradient is 0. */
  maxRelError: number;
  /** One line per input that requires grad, with its worst entry; then the verdict. */
  report: string;
}

export type GradcheckFunction = (...inputs: Tensor[]) => Tensor;

interface Comparison {
  maxAbs: number;
  maxRel: number;
  failures: number;
  worst: { index: number; analytic: number; numerical: number };
}

/**
 * Checks fn's analytic gradients against central differences; see the file header.
 *
 * Errors: TypeError when a floating input or the output is not float64, when no input requires
 * grad, or when fn does not return a Tensor. A wrong gradient is not an error: `ok` is false.
 *
 * Example:
 *   const x = randn([2, 3], { dtype: 'float64', seed: 0 }).requiresGrad_();
 *   const { ok, report } = gradcheck((t) => F.softmax(t, 1), [x]);
 */
export function gradcheck(fn: GradcheckFunction, inputs: Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const eps = options.eps ?? 1e-6;
  const atol = options.atol ?? 1e-5;
  const rtol = options.rtol ?? 1e-3;
  const seed = options.seed ?? 0;
  const jacobianMaxOutputs = options.jacobianMaxOutputs ?? 16;
  const differentiable = validateInputs(inputs);
  return tidy(() => {
    const outShape = noGrad(() => checkOutput(fn(...inputs)).shape);
    const outNumel = outShape.reduce((a, b) => a * b, 1);
    const fullJacobian = outNumel <= jacobianMaxOutputs;
    const cotangent = fullJacobian ? null : randn(outShape, { dtype: 'float64', seed });
    const analytic = analyticGradients(fn, inputs, differentiable, cotangent, outNumel);
    const lines: string[] = [];
    let maxAbsError = 0;
    let maxRelError = 0;
    let failures = 0;
    for (const [k, i] of differentiable.entries()) {
      const numerical = numericalGradient(fn, inputs, i, eps, cotangent, outNumel);
      const c = compare(analytic[k], numerical, atol, rtol);
      maxAbsError = Math.max(maxAbsError, c.maxAbs);
      maxRelError = Math.max(maxRelError, c.maxRel);
      failures += c.failures;
      lines.push(describeInput(i, inputs[i], c, fullJacobian ? outNumel : 0));
    }
    const ok = failures === 0;
    const mode = fullJacobian ? `full Jacobian (${outNumel} outputs)` : `vector-Jacobian product, cotangent seed ${seed}`;
    lines.unshift(`gradcheck ${ok ? 'passed' : 'FAILED'}: ${mode}; eps ${eps}, atol ${atol}, rtol ${rtol}`);
    if (!ok) lines.push(`${failures} entries differ beyond atol + rtol·|numerical|: the analytic gradient is wrong`);
    return { ok, maxAbsError, maxRelError, report: lines.join('\n') };
  });
}

/** gradcheck, throwing an Error carrying the report when the check fails. */
export function assertGradcheck(fn: GradcheckFunction, inputs: Tensor[], options: GradcheckOptions = {}): GradcheckResult {
  const result = gradcheck(fn, inputs, options);
  if (!result.ok) throw new Error(result.report);
  return result;
}

/** The indices of the inputs that require grad; throws unless every floating input is float64. */
function validateInputs(inputs: Tensor[]): number[] {
  const differentiable: number[] = [];
  inputs.forEach((x, i) => {
    if (!(x instanceof Tensor)) throw new TypeError(`gradcheck: input ${i} is not a Tensor`);
    const floating = x.dtype.startsWith('float') || x.dtype === 'bfloat16';
    if (floating && x.dtype !== 'float64') {
      throw new TypeError(`gradcheck: input ${i} is ${x.dtype}; finite differences need float64 ` +
        `(pass x.double()), or ε = 1e-6 drowns in rounding error`);
    }
    if (x.requiresGrad) differentiable.push(i);
  });
  if (differentiable.length === 0) {
    throw new TypeError('gradcheck: no input requires grad; set requiresGrad on the inputs to check');
  }
  return differentiable;
}

function checkOutput(out: unknown): Tensor {
  if (!(out instanceof Tensor)) throw new TypeError('gradcheck: fn must return a Tensor');
  if (out.dtype !== 'float64') {
    throw new TypeError(`gradcheck: fn returned ${out.dtype}; it must compute in float64 from float64 inputs`);
  }
  return out;
}

/** Copies of the inputs: the differentiable ones as fresh leaves, the rest as given. */
function leaves(inputs: Tensor[], differentiable: number[]): Tensor[] {
  return inputs.map((x, i) => (differentiable.includes(i) ? x.detach().clone().requiresGrad_() : x));
}

/**
 * Per differentiable input, the flat analytic values: the gradient of Σ f ⊙ r (length numel), or
 * the Jacobian's columns for that input laid out row-major as [output][element] (full mode).
 */
function analyticGradients(
  fn: GradcheckFunction, inputs: Tensor[], differentiable: number[], cotangent: Tensor | null, outNumel: number,
): Float64Array[] {
  const xs = leaves(inputs, differentiable);
  const wrt = differentiable.map((i) => xs[i]);
  const out = fn(...xs);
  const rows = cotangent === null ? outNumel : 1;
  const result = wrt.map((x) => new Float64Array(rows * x.numel));
  for (let row = 0; row < rows; row++) {
    tidy(() => {
      if (!out.requiresGrad) return; // no path from any input: every analytic entry is 0
      const scalar = cotangent === null ? out.reshape([-1]).select(0, row) : out.mul(cotangent).sum();
      const grads = grad(scalar, wrt, { retainGraph: row < rows - 1, allowUnused: true });
      grads.forEach((g, k) => {
        if (g !== null) result[k].set(g.contiguous().dataSync() as Float64Array, row * wrt[k].numel);
      });
    });
  }
  return result;
}

/** Central differences for input `index`, in the layout analyticGradients uses. */
function numericalGradient(
  fn: GradcheckFunction, inputs: Tensor[], index: number, eps: number, cotangent: Tensor | null, outNumel: number,
): Float64Array {
  const base = inputs[index].detach().clone().contiguous();
  const flat = base.reshape([-1]); // shares base's storage
  const original = flat.dataSync() as Float64Array;
  const n = original.length;
  const rows = cotangent === null ? outNumel : 1;
  const result = new Float64Array(rows * n);
  const args = inputs.map((x, i) => (i === index ? base : x));
  const evaluate = (): Float64Array => tidy(() => {
    const out = fn(...args);
    const reduced = cotangent === null ? out : out.mul(cotangent).sum();
    return Float64Array.from(reduced.contiguous().dataSync() as Float64Array);
  });
  noGrad(() => {
    for (let e = 0; e < n; e++) {
      const element = flat.narrow(0, e, 1);
      element.fill_(original[e] + eps);
      const plus = evaluate();
      element.fill_(original[e] - eps);
      const minus = evaluate();
      element.fill_(original[e]);
      element.dispose();
      for (let row = 0; row < rows; row++) result[row * n + e] = (plus[row] - minus[row]) / (2 * eps);
    }
  });
  return result;
}

function compare(analytic: Float64Array, numerical: Float64Array, atol: number, rtol: number): Comparison {
  const c: Comparison = { maxAbs: 0, maxRel: 0, failures: 0, worst: { index: 0, analytic: analytic[0], numerical: numerical[0] } };
  let worstRel = -1;
  for (let i = 0; i < analytic.length; i++) {
    const a = analytic[i];
    const n = numerical[i];
    const diff = Math.abs(a - n);
    if (!(diff <= atol + rtol * Math.abs(n))) c.failures++; // NaN fails too
    const rel = diff / (Math.abs(n) + atol);
    const rank = Number.isNaN(rel) ? Infinity : rel;
    if (rank > worstRel) {
      worstRel = rank;
      c.worst = { index: i, analytic: a, numerical: n };
    }
    c.maxAbs = Math.max(c.maxAbs, diff); // Math.max keeps a NaN
    c.maxRel = Math.max(c.maxRel, rel);
  }
  return c;
}

function describeInput(i: number, x: Tensor, c: Comparison, outNumel: number): string {
  const where = outNumel > 0
    ? `output ${Math.floor(c.worst.index / x.numel)}, element ${c.worst.index % x.numel}`
    : `element ${c.worst.index}`;
  return `  input ${i} [${x.shape.join(', ')}]: ${c.failures === 0 ? 'ok' : `${c.failures} bad`}, ` +
    `max abs error ${c.maxAbs.toExponential(3)}, max rel error ${c.maxRel.toExponential(3)}; ` +
    `worst at ${where}: analytic ${c.worst.analytic.toPrecision(8)} vs numerical ${c.worst.numerical.toPrecision(8)}`;
}
