/**
 * AdamW trajectories against torch.optim.AdamW (PyTorch 1.13, foreach=False): two parameters, a
 * fixed sequence of gradients (some steps without a gradient for one parameter) or the gradients
 * of a quadratic loss, 12 steps, parameters and state compared after the last step. One Python
 * process for all cases.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { parameter } from '../../src/nn/parameter.js';
import { AdamW, type AdamWHyperparameters, type AdamWOptions } from '../../src/optim/adamw.js';
import type { ParamGroupOptions } from '../../src/optim/optimizer.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertClose, caseOutputs, expected, runTorch, type TorchResults } from '../support/parity.js';

const STEPS = 12;
const SHAPES = [[3, 4], [5]];

interface Case {
  name: string;
  dtype?: DType;
  options: AdamWOptions;
  /** Groups as indices into the two parameters, with their overrides; default one group of both. */
  groups?: { params: number[]; options?: Partial<AdamWOptions> }[];
  /** [step, parameter] pairs whose gradient is null (the parameter is skipped that step). */
  nulls?: [number, number][];
  /** Gradients from loss = Σᵢ cᵢ·Σ(pᵢ − tᵢ)² instead of the fixed sequence. */
  quadratic?: boolean;
}

const CASES: Case[] = [
  { name: 'defaults (lr 1e-3, weight decay 0.01)', options: {} },
  { name: 'no weight decay', options: { lr: 0.01, weightDecay: 0 } },
  { name: 'weight decay, betas and eps', options: { lr: 0.02, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 } },
  { name: 'amsgrad', options: { lr: 0.01, amsgrad: true } },
  { name: 'amsgrad, weight decay, float32', dtype: 'float32', options: { lr: 0.01, amsgrad: true, weightDecay: 0.05 } },
  { name: 'maximize', options: { lr: 0.01, maximize: true, weightDecay: 0.02 } },
  { name: 'float32', dtype: 'float32', options: { lr: 0.005, betas: [0.9, 0.95] } },
  { name: 'skips parameters without a gradient', options: { lr: 0.01, amsgrad: true }, nulls: [[0, 1], [3, 1], [4, 0], [7, 1]] },
  {
    name: 'param groups with their own lr, weight decay and amsgrad',
    options: { lr: 1e-3, weightDecay: 0.05 },
    groups: [{ params: [1], options: { lr: 0.03, weightDecay: 0 } }, { params: [0], options: { amsgrad: true, betas: [0.5, 0.9] } }],
  },
  { name: 'quadratic loss', options: { lr: 0.05, weightDecay: 0.01 }, quadratic: true },
  { name: 'quadratic loss, amsgrad, float32', dtype: 'float32', options: { lr: 0.05, amsgrad: true }, quadratic: true },
];

const snake = (key: string) => key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const pythonOptions = (o: object) => Object.fromEntries(Object.entries(o).map(([k, v]) => [snake(k), v]));

/** Shared by the oracle and this side: the initial values, gradients and loss targets of a case. */
function inputsOf(c: Case, index: number): Record<string, Tensor> {
  const dtype = c.dtype ?? 'float64';
  const seed = 100 * index + 7;
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
opt = torch.optim.AdamW([{'params': [ps[i] for i in g['params']], **g['options']} for g in groups], **defaults)
for s in range(steps):
    if quadratic:
        for p in ps: p.grad = None
        sum(c * ((p - t) ** 2).sum() for p, t, c in zip(ps, ts, cs)).backward()
    else:
        for i, p in enumerate(ps):
            p.grad = None if [s, i] in nulls else gs[i][s].clone()
    opt.step()
out = {'p0': ps[0].detach(), 'p1': ps[1].detach()}
for i, p in enumerate(ps):
    for k, v in opt.state[p].items(): out['s%d.%s' % (i, k)] = v.item() if k == 'step' else v
`;

/** Runs a case here and returns the final parameters and the optimizer (for its state). */
function runCase(c: Case, inputs: Record<string, Tensor>): { ps: Tensor[]; optimizer: AdamW } {
  const ps = [parameter(inputs.p0.clone()), parameter(inputs.p1.clone())];
  const groups: ParamGroupOptions<AdamWHyperparameters>[] = (c.groups ?? [{ params: [0, 1] }])
    .map((g) => ({ params: g.params.map((i) => ps[i]), ...g.options }));
  const optimizer = new AdamW(groups, c.options);
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
  return { ps, optimizer };
}

describe('AdamW = torch.optim.AdamW', () => {
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
    const { ps, optimizer } = runCase(c, inputs[i]);
    const tolerance = (c.dtype ?? 'float64') === 'float64' ? { rtol: 1e-12, atol: 1e-14 } : { rtol: 1e-6, atol: 1e-7 };
    ps.forEach((p, j) => {
      assertClose(p, expected(results, c.name, `out.p${j}`), { label: `${c.name} p${j}`, ...tolerance });
      const state = optimizer.state.get(p)!;
      const outputs = caseOutputs(results, c.name);
      for (const key of ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq']) {
        const ours = state[key] as Tensor | undefined;
        const theirs = outputs.get(`out.s${j}.${key}`);
        assert.equal(ours === undefined, theirs === undefined, `${c.name} p${j}: state ${key} is in one optimizer only`);
        if (ours && theirs) assertClose(ours, theirs, { label: `${c.name} ${key}${j}`, ...tolerance });
      }
      assert.equal(state.step, expected(results, c.name, `out.s${j}.step`).data[0], 'state.step');
    });
    optimizer.dispose();
    ps.forEach((p) => p.dispose());
  }));
});

describe('AdamW errors', () => {
  const p = () => parameter(tensor([1, 2, 3]));

  test('negative lr, eps or weight decay', () => {
    assert.throws(() => new AdamW([p()], { lr: -1e-3 }), /AdamW: lr must be ≥ 0, got -0.001/);
    assert.throws(() => new AdamW([p()], { eps: -1 }), /eps must be ≥ 0, got -1/);
    assert.throws(() => new AdamW([p()], { weightDecay: -0.01 }), /weightDecay must be ≥ 0, got -0.01/);
  });

  test('betas outside [0, 1) or not a pair', () => {
    assert.throws(() => new AdamW([p()], { betas: [1, 0.999] }), /AdamW: betas\[0\] must be in \[0, 1\), got 1/);
    assert.throws(() => new AdamW([{ params: [p()], betas: [0.9, -0.1] }]), /betas\[1\] must be in \[0, 1\), got -0.1 \(param group 0\)/);
    assert.throws(() => new AdamW([p()], { betas: [0.9] as unknown as [number, number] }),
      /betas must be an array of 2 finite numbers, got \[0.9\]/);
  });

  test('unknown options', () => {
    assert.throws(() => new AdamW([p()], { momentum: 0.9 } as AdamWOptions),
      /AdamW: unknown options 'momentum'; known options: lr, betas, eps, weightDecay, amsgrad, maximize/);
    assert.throws(() => new AdamW([{ params: [p()], beta1: 0.9 } as never]), /unknown option 'beta1' \(param group 0\)/);
  });
});

test('AdamW.step leaks no tensor after the first step', () => {
  const ps = [parameter(randn([4, 4], { seed: 1 })), parameter(randn([4], { seed: 2 }))];
  const optimizer = new AdamW(ps, { amsgrad: true, maximize: true });
  const iteration = () => {
    ps.forEach((q) => (q.grad = q.mul(2)));
    optimizer.step();
    optimizer.zeroGrad();
  };
  tidy(iteration); // the first step makes the moments
  assertNoLeaks(iteration);
  assertNoLeaks(iteration);
  assert.equal(optimizer.state.get(ps[0])!.step, 3);
  optimizer.dispose();
  ps.forEach((q) => q.dispose());
});
