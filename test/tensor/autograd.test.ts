/**
 * Autograd (src/tensor/autograd.ts, Tensor.backward/grad/detach): backward with a gradient and
 * retainGraph, accumulation, detach, noGrad/enableGrad (refusing async callbacks), grad() with
 * allowUnused, createGraph and gradOutputs, requiresGrad rules; and the custom op
 * `vicinity::la_normalized_weight` (native/kernels/la_normalized_weight.cc): its forward equals
 * the composite expression Σ softplus(key)·q / (Σ softplus(key) + eps), its hand-written
 * backward equals PyTorch autograd's gradient of that expression, and it passes gradcheck.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertGradcheck } from '../../src/autograd/gradcheck.js';
import * as F from '../../src/ops/functional.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { enableGrad, grad, isGradEnabled, noGrad, setGradEnabled } from '../../src/tensor/autograd.js';
import { arange, ones, randn, tensor } from '../../src/tensor/creation.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertClose, opSuite, type OpCase } from '../support/parity.js';

const rn = (shape: number[], seed: number, dtype: DType = 'float32') => randn(shape, { seed, dtype });
const leaf = (shape: number[], seed: number, dtype: DType = 'float32') => rn(shape, seed, dtype).requiresGrad_();

test('backward of a scalar fills .grad of the leaves (d/dx Σ x²·w = 2xw)', () => {
  assertNoLeaks(() => {
    const x = leaf([3], 1);
    const w = leaf([3], 2);
    x.pow(2).mul(w).sum().backward();
    assertClose(x.grad!, x.detach().mul(w.detach()).mul(2), { label: 'dx' });
    assertClose(w.grad!, x.detach().pow(2), { label: 'dw' });
  });
});

test('backward with an explicit gradient; a non-scalar without one is refused', () => {
  assertNoLeaks(() => {
    const x = leaf([2, 2], 3);
    const y = x.mul(3);
    assert.throws(() => y.backward(), /backward\(\) without a gradient needs a scalar output, got shape \[2, 2\]/);
    const g = tensor([[1, 2], [3, 4]]);
    y.backward(g);
    assertClose(x.grad!, g.mul(3), { label: 'dx' });
  });
});

test('retainGraph allows a second backward, which accumulates; without it the graph is freed', () => {
  assertNoLeaks(() => {
    const x = leaf([3], 4);
    const y = x.exp().sum();
    y.backward(undefined, { retainGraph: true });
    const first = x.grad!.clone();
    y.backward();
    assertClose(x.grad!, first.mul(2), { label: 'accumulated twice' });
    assert.throws(() => y.backward(), /Trying to backward through the graph a second time/);
  });
});

test('gradients accumulate across graphs until reset with grad = null or grad.zero_()', () => {
  assertNoLeaks(() => {
    const x = leaf([2], 5);
    x.mul(2).sum().backward();
    x.mul(3).sum().backward();
    assertClose(x.grad!, [5, 5], { label: 'accumulated' });
    x.grad!.zero_();
    x.mul(4).sum().backward();
    assertClose(x.grad!, [4, 4], { label: 'after zero_' });
    x.grad = null;
    assert.equal(x.grad, null);
    x.sum().backward();
    assertClose(x.grad!, [1, 1], { label: 'after reset' });
    x.grad = tensor([10, 20]);
    x.sum().backward();
    assertClose(x.grad!, [11, 21], { label: 'accumulates into an assigned grad' });
  });
});

test('isLeaf, gradFn and requiresGrad follow the graph', () => {
  assertNoLeaks(() => {
    const x = leaf([2], 6);
    const y = x.mul(2);
    assert.deepEqual([x.isLeaf, x.gradFn, y.isLeaf, y.requiresGrad], [true, null, false, true]);
    assert.match(y.gradFn!, /^MulBackward/);
    assert.equal(x.add(1).gradFn, 'AddBackward1');
    const plain = rn([2], 7);
    assert.deepEqual([plain.requiresGrad, plain.isLeaf, plain.mul(2).requiresGrad], [false, true, false]);
    assert.equal(plain.requiresGrad_(), plain);
    assert.equal(plain.requiresGrad, true);
    plain.requiresGrad_(false);
    assert.equal(plain.requiresGrad, false);
  });
});

test('detach cuts the graph and shares storage', () => {
  assertNoLeaks(() => {
    const x = leaf([3], 8);
    const d = x.detach();
    assert.deepEqual([d.requiresGrad, d.isLeaf, d.gradFn], [false, true, null]);
    x.mul(d).sum().backward(); // d is a constant: dx = d
    assertClose(x.grad!, d, { label: 'dx' });
    const before = x.detach().clone();
    d.add_(1); // a write through the detached view shows in x
    assertClose(x.detach(), before.add(1), { label: 'shared storage' });
  });
});

test('requiresGrad on integer and bool tensors is refused with libtorch\'s message', () => {
  assertNoLeaks(() => {
    assert.throws(() => { arange(3).requiresGrad = true; }, /Only Tensors of floating point and complex dtype can require gradients/);
    assert.throws(() => tensor([true]).requiresGrad_(), /Only Tensors of floating point and complex dtype can require gradients/);
    assert.throws(() => arange(3, undefined, 1, { requiresGrad: true }), /floating point/);
  });
});

test('noGrad records nothing, enableGrad re-enables inside it, and the mode is restored even on throw', () => {
  assertNoLeaks(() => {
    const x = leaf([2], 9);
    assert.equal(isGradEnabled(), true);
    const y = noGrad(() => {
      assert.equal(isGradEnabled(), false);
      const inner = enableGrad(() => x.mul(2));
      assert.equal(inner.requiresGrad, true);
      return x.mul(2);
    });
    assert.equal(y.requiresGrad, false);
    assert.equal(isGradEnabled(), true);
    assert.throws(() => noGrad(() => { throw new Error('inside'); }), /inside/);
    assert.equal(isGradEnabled(), true);
    assert.equal(setGradEnabled(false), true);
    assert.equal(x.mul(2).requiresGrad, false);
    assert.equal(setGradEnabled(true), false);
  });
});

test('noGrad and enableGrad refuse an async fn and restore the mode', async () => {
  await assertNoLeaks(async () => {
    let ran = false;
    assert.throws(() => noGrad(async () => { ran = true; }), /noGrad\(fn\): fn returned a Promise; run only the synchronous tensor work inside noGrad\(\)/);
    assert.equal(isGradEnabled(), true);
    setGradEnabled(false);
    assert.throws(() => enableGrad(async () => 1), /enableGrad\(fn\): fn returned a Promise/);
    assert.equal(isGradEnabled(), false);
    setGradEnabled(true);
    assert.equal(ran, true);
  });
});

test('grad() returns gradients without touching .grad; allowUnused gives null', () => {
  assertNoLeaks(() => {
    const x = leaf([3], 10);
    const unused = leaf([2], 11);
    const y = x.sin().sum();
    assert.throws(() => grad(y, [x, unused], { retainGraph: true }),
      // libtorch's words: 1.13 "One of the", 2.x "element 1of the".
      /(One of|element 1 ?of) the differentiated Tensors appears to not have been used in the graph/);
    const [gx, gu] = grad(y, [x, unused], { allowUnused: true });
    assertClose(gx!, x.detach().cos(), { label: 'd sin' });
    assert.equal(gu, null);
    assert.equal(x.grad, null);
  });
});

test('grad() with gradOutputs, several outputs, and createGraph for a second derivative', () => {
  assertNoLeaks(() => {
    const x = leaf([3], 12, 'float64');
    const y = x.pow(3);
    const [g1] = grad(y, x, { gradOutputs: [ones([3], { dtype: 'float64' })], createGraph: true });
    assertClose(g1!, x.detach().pow(2).mul(3), { label: '3x²' });
    assert.equal(g1!.requiresGrad, true);
    const [g2] = grad(g1!.sum(), x);
    assertClose(g2!, x.detach().mul(6), { label: '6x' });
    const a = x.mul(2).sum(); // null gradOutput: implicit 1, allowed for a scalar
    const b = x.exp();
    const [gab] = grad([a, b], [x], { gradOutputs: [null, ones([3], { dtype: 'float64' }).mul(0.5)] });
    assertClose(gab!, x.detach().exp().mul(0.5).add(2), { label: 'sum over outputs' });
  });
});

// ---- vicinity::la_normalized_weight ---------------------------------------------------------

const Q = rn([2, 5, 3], 20);
const KEY = rn([2, 5, 3], 21).mul(2);
const Q64 = rn([2, 4, 3], 22, 'float64');
const KEY64 = rn([2, 4, 3], 23, 'float64');

/** The composite reference: Σ_c softplus(key_c)·q_c / (Σ_c softplus(key_c) + eps). */
function composite(q: Tensor, key: Tensor, dim: number, eps = 1e-6): Tensor {
  const sp = F.softplus(key);
  return sp.mul(q).sum(dim).div(sp.sum(dim).add(eps));
}
const PY_COMPOSITE = (dim: number, eps = 1e-6) =>
  `sp = F.softplus(key)\nout = (sp * q).sum(${dim}) / (sp.sum(${dim}) + ${eps})`;

const laCases: OpCase[] = [
  { name: 'la_normalized_weight dim 1 = composite (PyTorch autograd grads)', inputs: { q: Q, key: KEY },
    ts: ({ q, key }) => aten.vicinity_la_normalized_weight(q, key, 1), py: PY_COMPOSITE(1), grad: true },
  { name: 'la_normalized_weight dim -1, eps 1e-2', inputs: { q: Q, key: KEY },
    ts: ({ q, key }) => aten.vicinity_la_normalized_weight(q, key, -1, 1e-2), py: PY_COMPOSITE(-1, 1e-2), grad: true },
  { name: 'la_normalized_weight dim 0, float64', inputs: { q: Q64, key: KEY64 },
    ts: ({ q, key }) => aten.vicinity_la_normalized_weight(q, key, 0), py: PY_COMPOSITE(0), grad: true },
  { name: 'la_normalized_weight of very negative keys (tiny denominators)', inputs: { q: Q64, key: KEY64.sub(12) },
    ts: ({ q, key }) => aten.vicinity_la_normalized_weight(q, key, 1, 1e-3), py: PY_COMPOSITE(1, 0.001), grad: true },
];

opSuite('vicinity::la_normalized_weight against PyTorch', laCases);

test('la_normalized_weight forward and backward equal the composite expression in vicinity too', () => {
  assertNoLeaks(() => {
    const [q1, k1, q2, k2] = [Q, KEY, Q, KEY].map((t) => t.detach().clone().requiresGrad_());
    const cot = rn([2, 3], 24);
    const fused = aten.vicinity_la_normalized_weight(q1, k1, 1);
    const reference = composite(q2, k2, 1);
    assertClose(fused, reference, { label: 'forward' });
    fused.mul(cot).sum().backward();
    reference.mul(cot).sum().backward();
    assertClose(q1.grad!, q2.grad!, { label: 'dq', rtol: 1e-5, atol: 1e-6 });
    assertClose(k1.grad!, k2.grad!, { label: 'dkey', rtol: 1e-5, atol: 1e-6 });
    assert.equal(fused.gradFn, 'torch::autograd::CppNode<vicinity::(anonymous namespace)::LaNormalizedWeight>');
  });
});

test('la_normalized_weight passes the float64 gradcheck (full Jacobian and vector-Jacobian modes)', () => {
  assertNoLeaks(() => {
    const q = Q64.detach().clone().requiresGrad_();
    const key = KEY64.detach().clone().requiresGrad_();
    const small = assertGradcheck((a, b) => aten.vicinity_la_normalized_weight(a, b, 1), [q, key]);
    assert.ok(small.report.includes('full Jacobian (6 outputs)'), small.report);
    const big = assertGradcheck((a, b) => aten.vicinity_la_normalized_weight(a, b, 2, 1e-3), [q, key], { jacobianMaxOutputs: 0 });
    assert.ok(big.report.includes('vector-Jacobian product'), big.report);
    assert.ok(big.maxAbsError < 1e-7, big.report);
  });
});

test('la_normalized_weight checks its arguments with clear messages', () => {
  assertNoLeaks(() => {
    assert.throws(() => aten.vicinity_la_normalized_weight(Q, KEY.narrow(1, 0, 4), 1),
      /la_normalized_weight: q has shape \[2, 5, 3\] but key has shape \[2, 4, 3\]; expand q to the key's shape first/);
    assert.throws(() => aten.vicinity_la_normalized_weight(Q, KEY, 1, 0), /la_normalized_weight: eps must be > 0, got 0/);
    assert.throws(() => aten.vicinity_la_normalized_weight(Q, KEY, 3), /Dimension out of range/);
  });
});

// Behaviour that follows PyTorch's checks in native/core/tensor.cc.
test('setting requiresGrad on a non-leaf is refused, as in PyTorch', () => {
  assertNoLeaks(() => {
    const y = leaf([2], 30).mul(2);
    assert.throws(() => { y.requiresGrad = false; }, /requiresGrad can only be changed on leaf tensors; this one was computed by MulBackward1/);
  });
});

test('assigning a .grad of the wrong shape or dtype is refused, as in PyTorch', () => {
  assertNoLeaks(() => {
    const x = leaf([3], 31);
    assert.throws(() => { x.grad = rn([4], 32); }, /assigned grad must match the tensor: got \[4\] float32 on cpu, expected \[3\] float32 on cpu/);
    assert.throws(() => { x.grad = rn([3], 33, 'float64'); }, /assigned grad must match the tensor: got \[3\] float64/);
  });
});
