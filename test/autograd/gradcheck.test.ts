/**
 * gradcheck (src/autograd/gradcheck.ts): passes for correct float64 ops (conv2d, gridSample,
 * softmax, layerNorm, and ops with integer index inputs), FAILS for deliberately wrong gradients
 * (a straight-through estimator, a detach that drops half the product rule, a NaN), in both the
 * full-Jacobian and the vector–Jacobian modes; refuses non-float64 inputs; leaks nothing and
 * leaves the caller's inputs untouched.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertGradcheck, gradcheck } from '../../src/autograd/gradcheck.js';
import * as F from '../../src/ops/functional.js';
import { rand, randn, tensor } from '../../src/tensor/creation.js';
import { memory } from '../../src/tensor/memory.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';

const f64 = (shape: number[], seed: number) => randn(shape, { seed, dtype: 'float64' }).requiresGrad_();
const grid = (shape: number[], seed: number) => rand(shape, { seed, dtype: 'float64' }).mul(2.2).sub(1.1).requiresGrad_();

test('conv2d passes: input, weight and bias, with stride, padding, dilation and groups', () => {
  assertNoLeaks(() => {
    const r = assertGradcheck((x, w, b) => F.conv2d(x, w, b, { stride: [2, 1], padding: 1, dilation: [1, 2], groups: 2 }),
      [f64([1, 4, 5, 6], 1), f64([4, 2, 3, 2], 2), f64([4], 3)]);
    assert.ok(r.ok && r.maxAbsError < 1e-6, r.report);
    assert.match(r.report, /^gradcheck passed: vector-Jacobian product, cotangent seed 0/);
    assert.equal(r.report.split('\n').filter((l) => l.includes(': ok,')).length, 3, r.report);
  });
});

test('gridSample passes for input and grid, bilinear with zero padding, both alignCorners', () => {
  assertNoLeaks(() => {
    for (const alignCorners of [false, true]) {
      const r = assertGradcheck((x, g) => F.gridSample(x, g, { alignCorners }), [f64([2, 2, 4, 5], 4), grid([2, 3, 2, 2], 5)]);
      assert.ok(r.maxAbsError < 1e-6, r.report);
    }
  });
});

test('softmax and layerNorm pass; small outputs use the full Jacobian', () => {
  assertNoLeaks(() => {
    const s = assertGradcheck((x) => F.softmax(x, 1), [f64([2, 3], 6)]);
    assert.match(s.report, /full Jacobian \(6 outputs\)/);
    const big = assertGradcheck((x) => F.softmax(x, -1), [f64([3, 4, 5], 7)]);
    assert.match(big.report, /vector-Jacobian product/);
    const ln = assertGradcheck((x, w, b) => F.layerNorm(x, [5], { weight: w, bias: b }), [f64([3, 5], 8), f64([5], 9), f64([5], 10)]);
    assert.ok(ln.maxAbsError < 1e-6, ln.report);
  });
});

test('inputs that do not require grad, integer indices included, are passed through unperturbed', () => {
  assertNoLeaks(() => {
    const index = tensor([[2, 0], [1, 1]], { dtype: 'int64' });
    const scale = randn([2, 3], { seed: 11, dtype: 'float64' });
    const r = assertGradcheck((x, i, s) => x.mul(s).gather(1, i), [f64([2, 3], 12), index, scale]);
    assert.equal(r.report.split('\n').filter((l) => l.startsWith('  input')).length, 1, 'only input 0 is checked');
  });
});

test('a straight-through estimator FAILS: identity gradient, zero true derivative', () => {
  assertNoLeaks(() => {
    const x = f64([2, 3, 4], 13);
    const r = gradcheck((t) => t.add(t.round().sub(t).detach()), [x]);
    assert.equal(r.ok, false);
    assert.ok(r.maxAbsError > 0.1, r.report);
    assert.match(r.report, /^gradcheck FAILED/);
    assert.match(r.report, /24 bad/);
    assert.match(r.report, /numerical 0\.0000000/);
    assert.match(r.report, /the analytic gradient is wrong/);
    assert.throws(() => assertGradcheck((t) => t.add(t.round().sub(t).detach()), [x]), /gradcheck FAILED[\s\S]*input 0 \[2, 3, 4\]: 24 bad/);
  });
});

test('a half-detached product FAILS in full-Jacobian mode too (analytic x, true 2x)', () => {
  assertNoLeaks(() => {
    const r = gradcheck((t) => t.mul(t.detach()), [f64([3], 14)]);
    assert.equal(r.ok, false);
    assert.match(r.report, /full Jacobian \(3 outputs\)/);
    assert.match(r.report, /3 bad/); // only the diagonal of the 3x3 Jacobian is non-zero
    assert.ok(r.maxRelError > 0.4 && Number.isFinite(r.maxRelError), r.report);
  });
});

test('a wrong gradient in one input of several is named in the report', () => {
  assertNoLeaks(() => {
    const r = gradcheck((a, b) => a.mul(b.detach()).add(b), [f64([4, 5], 15), f64([4, 5], 16)]);
    assert.equal(r.ok, false);
    const lines = r.report.split('\n');
    assert.match(lines[1], /input 0 \[4, 5\]: ok/);
    assert.match(lines[2], /input 1 \[4, 5\]: 20 bad/);
  });
});

test('NaN gradients fail', () => {
  assertNoLeaks(() => {
    const x = tensor([-1, 0.5, 2], { dtype: 'float64' }).requiresGrad_();
    const r = gradcheck((t) => t.sqrt(), [x]);
    assert.equal(r.ok, false);
    assert.ok(Number.isNaN(r.maxAbsError), r.report);
  });
});

test('the verdict follows the tolerances', () => {
  assertNoLeaks(() => {
    // Central differences of exp with a large step err by about e^x·eps²/6.
    const x = f64([5], 17);
    assert.equal(gradcheck((t) => t.exp(), [x], { eps: 1e-2, atol: 1e-9, rtol: 1e-9 }).ok, false);
    assert.equal(gradcheck((t) => t.exp(), [x], { eps: 1e-2, atol: 1e-4, rtol: 1e-4 }).ok, true);
  });
});

test('gradcheck refuses non-float64 inputs and outputs, and inputs that need no grad', () => {
  assertNoLeaks(() => {
    assert.throws(() => gradcheck((t) => t, [randn([2], { seed: 1 }).requiresGrad_()]),
      /gradcheck: input 0 is float32; finite differences need float64 \(pass x\.double\(\)\)/);
    assert.throws(() => gradcheck((a, b) => a.add(b), [f64([2], 1), randn([2], { seed: 2, dtype: 'bfloat16' })]), /input 1 is bfloat16/);
    assert.throws(() => gradcheck((t) => t.float(), [f64([2], 3)]), /gradcheck: fn returned float32; it must compute in float64/);
    assert.throws(() => gradcheck((t) => t, [randn([2], { seed: 4, dtype: 'float64' })]), /gradcheck: no input requires grad/);
    assert.throws(() => gradcheck((() => 3) as unknown as (t: Tensor) => Tensor, [f64([2], 5)]), /fn must return a Tensor/);
  });
});

test('gradcheck leaks nothing, is deterministic, and leaves the inputs as they were', () => {
  const x = f64([2, 3], 18);
  const w = f64([3, 2], 19);
  const before = x.detach().clone();
  const live = memory().liveTensors;
  const fn = (a: Tensor, b: Tensor) => a.matmul(b).tanh();
  const r1 = gradcheck(fn, [x, w], { jacobianMaxOutputs: 0, seed: 3 });
  const r2 = gradcheck(fn, [x, w], { jacobianMaxOutputs: 0, seed: 3 });
  assert.equal(memory().liveTensors, live, 'no tensor left behind');
  assert.equal(r1.report, r2.report);
  assert.match(r1.report, /cotangent seed 3/);
  assert.ok(r1.ok, r1.report);
  assert.ok(x.detach().equal(before), 'input values unchanged');
  assert.deepEqual([x.grad, w.grad, x.requiresGrad, x.isLeaf], [null, null, true, true]);
  before.dispose();
});
