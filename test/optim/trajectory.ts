/**
 * The optimizer trajectory harness shared by the optimizer tests, with torch.optim as the oracle
 * (PyTorch 1.13): two parameters, a fixed sequence of gradients (some steps without a gradient for
 * one parameter) or the gradients of a quadratic loss, 12 steps, parameters (and optionally state)
 * compared after the last step. One Python process for all cases of a suite.
 *
 * trajectorySuite() is generic over the optimizer: a factory builds ours, `torchClass` names
 * PyTorch's. torchCaseSuite() is the describe/before/runTorch scaffolding underneath it, also used
 * by tests whose cases are not trajectories.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { parameter } from '../../src/nn/parameter.js';
import type { Optimizer } from '../../src/optim/optimizer.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { assertClose, caseOutputs, expected, runTorch, type TorchCase, type TorchResults } from '../support/parity.js';

/**
 * A describe block `title` of one test per case: each case's inputs are drawn when the suite is
 * declared, PyTorch runs all cases in one process before the tests, and `check` compares a case
 * with its results.
 */
export function torchCaseSuite<C extends { name: string }>(
  title: string,
  cases: readonly C[],
  inputsOf: (c: C, index: number) => Record<string, Tensor>,
  torchCase: (c: C) => Pick<TorchCase, 'params' | 'code'>,
  check: (c: C, inputs: Record<string, Tensor>, results: TorchResults) => void,
): void {
  describe(title, () => {
    let results: TorchResults = new Map();
    const inputs = cases.map((c, i) => inputsOf(c, i));
    before(() => {
      results = runTorch(cases.map((c, i) => ({ name: c.name, inputs: inputs[i], ...torchCase(c) })));
    });
    cases.forEach((c, i) => test(c.name, () => check(c, inputs[i], results)));
  });
}

const STEPS = 12;
const SHAPES = [[3, 4], [5]];
/** The loss weights cᵢ of the quadratic loss. */
const WEIGHTS = [0.7, 1.3];

/** One group of a case's optimizer: our parameters and the group's overrides of the options. */
export type TrajectoryGroup<O extends object> = Partial<O> & { params: Tensor[] };

export interface TrajectoryCase<O extends object> {
  name: string;
  dtype?: DType;
  options: O;
  /** Groups as indices into the two parameters, with their overrides; default one group of both. */
  groups?: { params: number[]; options?: Partial<O> }[];
  /** [step, parameter] pairs whose gradient is null (the parameter is skipped that step). */
  nulls?: [number, number][];
  /** Gradients from loss = Σᵢ cᵢ·Σ(pᵢ − tᵢ)² instead of the fixed sequence. */
  quadratic?: boolean;
}

export interface TrajectorySuite<O extends object, H extends { lr: number }> {
  /** The describe block's title, e.g. 'SGD = torch.optim.SGD'. */
  title: string;
  /** PyTorch's optimizer class, e.g. 'torch.optim.SGD'. */
  torchClass: string;
  /** Builds our optimizer, e.g. `(groups, options) => new SGD(groups, options)`. */
  create: (groups: TrajectoryGroup<O>[], options: O) => Optimizer<H>;
  cases: readonly TrajectoryCase<O>[];
  /** Added to every seed of the inputs (0 by default), so that suites draw different inputs. */
  seed?: number;
  /**
   * The per-parameter state compared with torch's opt.state after the last step: `tensors`, each
   * present in both optimizers or in neither, and `step` (a number) when asked; none by default.
   */
  state?: { tensors: string[]; step?: boolean };
}

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const pythonOptions = (o: object) => Object.fromEntries(Object.entries(o).map(([k, v]) => [snake(k), v]));

/** Shared by the oracle and this side: the initial values, gradients and loss targets of a case. */
function inputsOf(c: TrajectoryCase<object>, index: number, offset: number): Record<string, Tensor> {
  const dtype = c.dtype ?? 'float64';
  const seed = 100 * index + offset;
  const out: Record<string, Tensor> = {};
  SHAPES.forEach((shape, i) => {
    out[`p${i}`] = randn(shape, { dtype, seed: seed + i });
    out[`g${i}`] = randn([STEPS, ...shape], { dtype, seed: seed + 10 + i });
    out[`t${i}`] = randn(shape, { dtype, seed: seed + 20 + i });
  });
  return out;
}

/** The case in torch: `torchClass` over the same groups, inputs and steps; state when `withState`. */
function python(torchClass: string, withState: boolean): string {
  const code = `
ps = [p0.clone().requires_grad_(), p1.clone().requires_grad_()]
gs, ts, cs = [g0, g1], [t0, t1], [${WEIGHTS.join(', ')}]
opt = ${torchClass}([{'params': [ps[i] for i in g['params']], **g['options']} for g in groups], **defaults)
for s in range(steps):
    if quadratic:
        for p in ps: p.grad = None
        sum(c * ((p - t) ** 2).sum() for p, t, c in zip(ps, ts, cs)).backward()
    else:
        for i, p in enumerate(ps):
            p.grad = None if [s, i] in nulls else gs[i][s].clone()
    opt.step()
out = {'p0': ps[0].detach(), 'p1': ps[1].detach()}
`;
  return withState ? `${code}for i, p in enumerate(ps):
    for k, v in opt.state[p].items(): out['s%d.%s' % (i, k)] = v.item() if k == 'step' else v
` : code;
}

/** Runs a case here and returns the final parameters and the optimizer (for its state). */
function runCase<O extends object, H extends { lr: number }>(
  suite: TrajectorySuite<O, H>, c: TrajectoryCase<O>, inputs: Record<string, Tensor>,
): { ps: Tensor[]; optimizer: Optimizer<H> } {
  const ps = [parameter(inputs.p0.clone()), parameter(inputs.p1.clone())];
  const groups = (c.groups ?? [{ params: [0, 1] }])
    .map((g) => ({ params: g.params.map((i) => ps[i]), ...g.options }) as TrajectoryGroup<O>);
  const optimizer = suite.create(groups, c.options);
  const nulls = new Set((c.nulls ?? []).map(([s, i]) => `${s},${i}`));
  for (let s = 0; s < STEPS; s++) {
    tidy(() => {
      if (c.quadratic) {
        ps.forEach((p) => (p.grad = null));
        ps.map((p, i) => p.sub(inputs[`t${i}`]).pow(2).sum().mul(WEIGHTS[i])).reduce((a, b) => a.add(b)).backward();
      } else {
        ps.forEach((p, i) => (p.grad = nulls.has(`${s},${i}`) ? null : inputs[`g${i}`].select(0, s).clone()));
      }
      optimizer.step();
    });
  }
  return { ps, optimizer };
}

/**
 * A describe block of one test per case: 12 steps of our optimizer and of `torchClass` from the
 * same inputs, the final parameters (and the asked-for state) equal to 1e-12 in float64 and 1e-6
 * in float32.
 */
export function trajectorySuite<O extends object, H extends { lr: number }>(suite: TrajectorySuite<O, H>): void {
  const code = python(suite.torchClass, suite.state !== undefined);
  torchCaseSuite(suite.title, suite.cases, (c, i) => inputsOf(c, i, suite.seed ?? 0), (c) => ({
    params: {
      steps: STEPS, nulls: c.nulls ?? [], quadratic: c.quadratic ?? false, defaults: pythonOptions(c.options),
      groups: (c.groups ?? [{ params: [0, 1] }]).map((g) => ({ params: g.params, options: pythonOptions(g.options ?? {}) })),
    },
    code,
  }), (c, inputs, results) => {
    const { ps, optimizer } = runCase(suite, c, inputs);
    const tolerance = (c.dtype ?? 'float64') === 'float64' ? { rtol: 1e-12, atol: 1e-14 } : { rtol: 1e-6, atol: 1e-7 };
    ps.forEach((p, j) => {
      assertClose(p, expected(results, c.name, `out.p${j}`), { label: `${c.name} p${j}`, ...tolerance });
      if (!suite.state) return;
      const state = optimizer.state.get(p)!;
      const outputs = caseOutputs(results, c.name);
      for (const key of suite.state.tensors) {
        const ours = state[key] as Tensor | undefined;
        const theirs = outputs.get(`out.s${j}.${key}`);
        assert.equal(ours === undefined, theirs === undefined, `${c.name} p${j}: state ${key} is in one optimizer only`);
        if (ours && theirs) assertClose(ours, theirs, { label: `${c.name} ${key}${j}`, ...tolerance });
      }
      if (suite.state.step) assert.equal(state.step, expected(results, c.name, `out.s${j}.step`).data[0], 'state.step');
    });
    optimizer.dispose();
    ps.forEach((p) => p.dispose());
  });
}
