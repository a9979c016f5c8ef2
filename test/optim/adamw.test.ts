/**
 * AdamW trajectories against torch.optim.AdamW (PyTorch 1.13, foreach=False): two parameters, a
 * fixed sequence of gradients (some steps without a gradient for one parameter) or the gradients
 * of a quadratic loss, 12 steps, parameters and state compared after the last step. One Python
 * process for all cases.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parameter } from '../../src/nn/parameter.js';
import { AdamW, type AdamWOptions } from '../../src/optim/adamw.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { assertNoLeaks } from '../support/leaks.js';
import { trajectorySuite, type TrajectoryCase } from './trajectory.js';

const CASES: TrajectoryCase<AdamWOptions>[] = [
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

trajectorySuite({
  title: 'AdamW = torch.optim.AdamW',
  torchClass: 'torch.optim.AdamW',
  create: (groups, options) => new AdamW(groups, options),
  cases: CASES,
  seed: 7,
  state: { tensors: ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'], step: true },
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
