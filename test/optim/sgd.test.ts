/**
 * SGD trajectories against torch.optim.SGD (PyTorch 1.13): two parameters, a fixed sequence of
 * gradients (some steps without a gradient for one parameter) or the gradients of a quadratic
 * loss, 12 steps, parameters compared after the last step. One Python process for all cases.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parameter } from '../../src/nn/parameter.js';
import { SGD, type SGDOptions } from '../../src/optim/sgd.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { trajectorySuite, type TrajectoryCase } from './trajectory.js';

const CASES: TrajectoryCase<SGDOptions>[] = [
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

trajectorySuite({
  title: 'SGD = torch.optim.SGD',
  torchClass: 'torch.optim.SGD',
  create: (groups, options) => new SGD(groups, options),
  cases: CASES,
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
