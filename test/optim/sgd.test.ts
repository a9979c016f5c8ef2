/**
 * SGD trajectories against torch.optim.SGD (PyTorch 1.13): two parameters, a fixed sequence of
 * gradients (some steps without a gradient for one parameter) or the gradients of a quadratic
 * loss, 12 steps, parameters compared after the last step. One Python process for all cases.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { parameter } from '../../src/nn/parameter.js';
import { SGD, type SGDHyperparameters, type SGDOptions } from '../../src/optim/sgd.js';
import type { ParamGroupOptions } from '../../src/optim/optimizer.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { assertClose, expected, runTorch, type TorchResults } from '../support/parity.js';
import { assertNoLeaks } from '../support/leaks.js';

const STEPS = 12;
const SHAPES = [[3, 4], [5]];

interface Case {
  name: string;
  dtype?: DType;
  options: SGDOptions;
  /** Groups as indices into the two parameters, with their overrides; default one group of both. */
  groups?: { params: number[]; options?: Partial<SGDOptions> }[];
  /** [step, parameter] pairs whose gradient is null (the parameter is skipped that step). */
  nulls?: [number, number][];
  /** Gradients from loss = Σᵢ cᵢ·Σ(pᵢ − tᵢ)² instead of the fixed sequence. */
  quadratic?: boolean;
}

const CASES: Case[] = [
  { name: 'plain', options: { lr: 0.1 } },
  { name: 'momentum', options: { lr: 0.05, momentum: 0.9 } },
  { name: 'momentum with dampening', options: { lr: 0.05, momentum: 0.9, dampening: 0.3 } },
  { name: 'nesterov', options: { lr: 0.05, momentum: 0.9, nesterov: true } },
  { name: 'weight decay', options: { lr: 0.1, weightDecay: 0.01 } },
  { name: 'momentum and weight decay', options: { lr: 0.1, momentum: 0.8, weightDecay: 0.05 } },
  { name: 'maximize', options: { lr: 0.1, momentum: 0.5, weightDecay: 0.1, maximize: true } },
  { name: 'nesterov, weight decay, float32', dtype: 'float32', options: { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 } },
  { name: 'skips parameters without a gradient', options: { lr: 0.05, momentum: 0.9 }, nulls: [[0, 1], [3, 1], [4, 0], [7, 1]] },
  {
    name: 'param groups with their own lr, momentum and weight decay',
    options: { lr: 0.01, momentum: 0.9, weightDecay: 1e-3 },
    groups: [{ params: [1], options: { lr: 0.2, weightDecay: 0 } }, { params: [0], options: { momentum: 0.5, nesterov: true } }],
  },
  { name: 'quadratic loss, nesterov', options: { lr: 0.02, momentum: 0.9, nesterov: true, weightDecay: 1e-2 }, quadratic: true },
  { name: 'quadratic loss, float32', dtype: 'float32', options: { lr: 0.05, momentum: 0.7, dampening: 0.1 }, quadratic: true },
];

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const pythonOptions = (o: object) => Object.fromEntries(Object.entries(o).map(([k, v]) => [snake(k), v]));

/** Shared by the oracle and this side: the initial values, gradients and loss targets of a case. */
function inputsOf(c: Case, index: number): Record<string, Tensor> {
  const dtype = c.dtype ?? 'float64';
  const seed = 100 * index;
  const out: Record<string, Tensor> = {};
  SHAPES.forEach((shape, i) => {
    out[`p${i}`] = randn(shape, { dtype, seed: seed + i });
    out[`g${i}`] = randn([STEPS, ...shape], { dtype, seed: seed + 10 + i });
    out[`t${i}`] = randn(shape, { dtype, seed: seed + 20 + i });
  });
  return out;
}

const PYTHON = `
ps = [p0.clone().requires_grad_(), p1.clone().requires_grad_()]
gs, ts, cs = [g0, g1], [t0, t1], [0.7, 1.3]
opt = torch.optim.SGD([{'params': [ps[i] for i in g['params']], **g['options']} for g in groups], **defaults)
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

/** Runs a case here and returns the final parameters. */
function runCase(c: Case, inputs: Record<string, Tensor>): Tensor[] {
  const ps = [parameter(inputs.p0.clone()), parameter(inputs.p1.clone())];
  const groups: ParamGroupOptions<SGDHyperparameters>[] = (c.groups ?? [{ params: [0, 1] }])
    .map((g) => ({ params: g.params.map((i) => ps[i]), ...g.options }));
  const optimizer = new SGD(groups, c.options);
  const nulls = new Set((c.nulls ?? []).map(([s, i]) => `${s},${i}`));
  for (let s = 0; s < STEPS; s++) {
    tidy(() => {
      if (c.quadratic) {
        ps.forEach((p) => (p.grad = null));
        const cs = [0.7, 1.3];
        ps.map((p, i) => p.sub(inputs[`t${i}`]).pow(2).sum().mul(cs[i])).reduce((a, b) => a.add(b)).backward();
      } else {
        ps.forEach((p, i) => (p.grad = nulls.has(`${s},${i}`) ? null : inputs[`g${i}`].select(0, s).clone()));
      }
      optimizer.step();
    });
  }
  optimizer.dispose();
  return ps;
}

describe('SGD = torch.optim.SGD', () => {
  let results: TorchResults = new Map();
  const inputs = CASES.map((c, i) => inputsOf(c, i));
  before(() => {
    results = runTorch(CASES.map((c, i) => ({
      name: c.name,
      inputs: inputs[i],
      params: {
        steps: STEPS, nulls: c.nulls ?? [], quadratic: c.quadratic ?? false, defaults: pythonOptions(c.options),
        groups: (c.groups ?? [{ params: [0, 1] }]).map((g) => ({ params: g.params, options: pythonOptions(g.options ?? {}) })),
      },
      code: PYTHON,
    })));
  });
  CASES.forEach((c, i) => test(c.name, () => {
    const ps = runCase(c, inputs[i]);
    const f64 = (c.dtype ?? 'float64') === 'float64';
    ps.forEach((p, j) => assertClose(p, expected(results, c.name, `out.p${j}`),
      { label: `${c.name} p${j}`, rtol: f64 ? 1e-12 : 1e-6, atol: f64 ? 1e-14 : 1e-7 }));
    ps.forEach((p) => p.dispose());
  }));
});

describe('SGD errors', () => {
  const p = () => parameter(tensor([1, 2, 3]));

  test('negative lr, momentum or weight decay', () => {
    assert.throws(() => new SGD([p()], { lr: -0.1 }), /SGD: lr must be ≥ 0, got -0.1/);
    assert.throws(() => new SGD([p()], { lr: 0.1, momentum: -1 }), /momentum must be ≥ 0, got -1/);
    assert.throws(() => new SGD([{ params: [p()], weightDecay: -1e-4 }], { lr: 0.1 }),
      /weightDecay must be ≥ 0, got -0.0001 \(param group 0\)/);
  });

  test('lr is required', () => {
    assert.throws(() => new SGD([p()], {} as SGDOptions), /SGD: lr is required/);
  });

  test('nesterov needs momentum > 0 and dampening 0', () => {
    assert.throws(() => new SGD([p()], { lr: 0.1, nesterov: true }),
      /nesterov requires momentum > 0 and dampening 0, got momentum 0 and dampening 0/);
    assert.throws(() => new SGD([p()], { lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true }),
      /got momentum 0.9 and dampening 0.1/);
    assert.throws(() => new SGD([{ params: [p()], momentum: 0 }], { lr: 0.1, momentum: 0.9, nesterov: true }),
      /nesterov requires momentum > 0.*\(param group 0\)/);
  });

  test('unknown options, in the options or a group', () => {
    assert.throws(() => new SGD([p()], { lr: 0.1, weight_decay: 0.1 } as SGDOptions),
      /SGD: unknown options 'weight_decay'; known options: lr, momentum, dampening, weightDecay, nesterov, maximize/);
    assert.throws(() => new SGD([{ params: [p()] }, { params: [p()], weightDecy: 0 } as never], { lr: 0.1 }),
      /SGD: unknown option 'weightDecy' \(param group 1\)/);
  });

  test('wrong types, repeated and empty parameters', () => {
    assert.throws(() => new SGD([p()], { lr: 0.1, nesterov: 1 as unknown as boolean }), /nesterov must be a boolean, got 1/);
    const shared = p();
    assert.throws(() => new SGD([{ params: [shared] }, { params: [shared] }], { lr: 0.1 }),
      /params\[0\] \(param group 1\) already appears in a param group/);
    assert.throws(() => new SGD([], { lr: 0.1 }), /SGD: got an empty parameter list/);
    assert.throws(() => new SGD([{ params: [3 as unknown as Tensor] }], { lr: 0.1 }), /params\[0\] \(param group 0\) is 3, not a Tensor/);
  });
});

test('SGD.step leaks no tensor and zeroGrad sets grads to null', () => {
  const ps = [parameter(randn([4, 4], { seed: 1 })), parameter(randn([4], { seed: 2 }))];
  const optimizer = new SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 1e-4, nesterov: true });
  const iteration = () => {
    ps.forEach((q) => (q.grad = q.mul(2)));
    optimizer.step();
    optimizer.zeroGrad();
  };
  tidy(iteration); // the first step makes the momentum buffers
  assertNoLeaks(iteration);
  assert.equal(ps[0].grad, null);
  assert.equal(optimizer.state.size, 2);
  optimizer.dispose();
  ps.forEach((q) => q.dispose());
});
