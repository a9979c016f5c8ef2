/**
 * Parity with PyTorch for elementwise math, comparisons, logic, where, clamp and type promotion
 * (src/tensor/tensor.ts, F.where) — values and input gradients, with broadcasting, scalars,
 * float32 and float64 — and for the in-place methods, which must return the same object, bump
 * its version and match PyTorch's in-place results (also under autograd).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as F from '../../src/ops/functional.js';
import { rand, randint, randn, tensor } from '../../src/tensor/creation.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { opSuite, type OpCase } from '../support/parity.js';

const rn = (shape: number[], seed: number, dtype: DType = 'float32') => randn(shape, { seed, dtype });

const X = rn([3, 4], 1);
const Y = rn([3, 4], 2);
const ROW = rn([4], 3);
const COL = rn([3, 1], 4);
const X64 = rn([2, 3], 5, 'float64');
const Y64 = rn([2, 3], 6, 'float64');
const P = rand([3, 4], { seed: 7 }).add(0.5); // positive, for sqrt/log/pow
const P64 = rand([2, 3], { seed: 8, dtype: 'float64' }).add(0.5);
const NONZERO = rn([3, 4], 9).sign().mul(rand([3, 4], { seed: 10 }).add(0.5)); // |v| in [0.5, 1.5)
const HALVES = tensor([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 1.25, -3.7]); // round half to even
const SPECIAL = tensor([1, NaN, Infinity, -Infinity, 0, -0.5]);
const I = randint(-5, 6, [3, 4], { seed: 11 });
const J = randint(1, 4, [4], { seed: 12 });
const ROUNDED = X.mul(2).round(); // ties for eq/le/ge
const ROUNDED2 = Y.mul(2).round();
const MASK = rn([3, 4], 13).gt(0);
const MASK2 = rn([3, 4], 14).gt(0);

const arithmetic: OpCase[] = [
  { name: 'add tensor', inputs: { x: X, y: Y }, ts: ({ x, y }) => x.add(y), py: 'x + y', grad: true },
  { name: 'add broadcast row and column', inputs: { r: ROW, c: COL }, ts: ({ r, c }) => r.add(c), py: 'r + c', grad: true },
  { name: 'add alpha', inputs: { x: X, y: ROW }, ts: ({ x, y }) => x.add(y, 2.5), py: 'torch.add(x, y, alpha=2.5)', grad: true },
  { name: 'add scalar', inputs: { x: X64 }, ts: ({ x }) => x.add(3.25), py: 'x + 3.25', grad: true },
  { name: 'sub tensor alpha, float64', inputs: { x: X64, y: Y64 }, ts: ({ x, y }) => x.sub(y, 0.5), py: 'torch.sub(x, y, alpha=0.5)', grad: true },
  { name: 'sub scalar', inputs: { x: X }, ts: ({ x }) => x.sub(1.5), py: 'x - 1.5', grad: true },
  { name: 'mul broadcast', inputs: { x: X, c: COL }, ts: ({ x, c }) => x.mul(c), py: 'x * c', grad: true },
  { name: 'mul scalar', inputs: { x: X }, ts: ({ x }) => x.mul(-3), py: 'x * -3', grad: true },
  { name: 'div tensor', inputs: { x: X, y: NONZERO }, ts: ({ x, y }) => x.div(y), py: 'x / y', grad: true },
  { name: 'div scalar, float64', inputs: { x: X64 }, ts: ({ x }) => x.div(7), py: 'x / 7', grad: true },
  { name: 'div floor', inputs: { x: X.mul(3), y: NONZERO }, ts: ({ x, y }) => x.div(y, { roundingMode: 'floor' }),
    py: "torch.div(x, y, rounding_mode='floor')", grad: true },
  { name: 'div trunc scalar', inputs: { x: X.mul(3) }, ts: ({ x }) => x.div(0.7, { roundingMode: 'trunc' }),
    py: "torch.div(x, 0.7, rounding_mode='trunc')", grad: true },
  { name: 'div floor int64', inputs: { i: I, j: J }, ts: ({ i, j }) => i.div(j, { roundingMode: 'floor' }), py: "torch.div(i, j, rounding_mode='floor')" },
  { name: 'remainder tensor (sign of divisor)', inputs: { x: X.mul(3), y: NONZERO }, ts: ({ x, y }) => x.remainder(y), py: 'torch.remainder(x, y)', grad: true },
  { name: 'remainder scalar, int64', inputs: { i: I }, ts: ({ i }) => i.remainder(3), py: 'torch.remainder(i, 3)' },
  { name: 'pow scalar 2.5', inputs: { p: P }, ts: ({ p }) => p.pow(2.5), py: 'p ** 2.5', grad: true },
  { name: 'pow scalar 2 of negatives', inputs: { x: X }, ts: ({ x }) => x.pow(2), py: 'x ** 2', grad: true },
  { name: 'pow tensor', inputs: { p: P, y: Y }, ts: ({ p, y }) => p.pow(y), py: 'p ** y', grad: true },
  { name: 'pow int64 by 3', inputs: { i: I }, ts: ({ i }) => i.pow(3), py: 'i ** 3' },
];

const unary: OpCase[] = [
  { name: 'neg', inputs: { x: X }, ts: ({ x }) => x.neg(), py: '-x', grad: true },
  { name: 'sqrt', inputs: { p: P }, ts: ({ p }) => p.sqrt(), py: 'p.sqrt()', grad: true },
  { name: 'sqrt float64', inputs: { p: P64 }, ts: ({ p }) => p.sqrt(), py: 'p.sqrt()', grad: true },
  { name: 'rsqrt', inputs: { p: P }, ts: ({ p }) => p.rsqrt(), py: 'p.rsqrt()', grad: true },
  { name: 'exp', inputs: { x: X }, ts: ({ x }) => x.exp(), py: 'x.exp()', grad: true },
  { name: 'log', inputs: { p: P }, ts: ({ p }) => p.log(), py: 'p.log()', grad: true },
  { name: 'log float64', inputs: { p: P64 }, ts: ({ p }) => p.log(), py: 'p.log()', grad: true },
  { name: 'log1p', inputs: { p: P }, ts: ({ p }) => p.log1p(), py: 'p.log1p()', grad: true },
  { name: 'abs', inputs: { x: X }, ts: ({ x }) => x.abs(), py: 'x.abs()', grad: true },
  { name: 'abs int64', inputs: { i: I }, ts: ({ i }) => i.abs(), py: 'i.abs()' },
  { name: 'sign', inputs: { x: X }, ts: ({ x }) => x.sign(), py: 'x.sign()', grad: true },
  { name: 'floor', inputs: { x: X.mul(2) }, ts: ({ x }) => x.floor(), py: 'x.floor()', grad: true },
  { name: 'ceil', inputs: { x: X.mul(2) }, ts: ({ x }) => x.ceil(), py: 'x.ceil()', grad: true },
  { name: 'round half to even', inputs: { h: HALVES }, ts: ({ h }) => h.round(), py: 'h.round()', grad: true },
  { name: 'round(2 decimals)', inputs: { x: X }, ts: ({ x }) => x.round(2), py: 'x.round(decimals=2)' },
  { name: 'trunc', inputs: { h: HALVES }, ts: ({ h }) => h.trunc(), py: 'h.trunc()', grad: true },
  { name: 'sin', inputs: { x: X }, ts: ({ x }) => x.sin(), py: 'x.sin()', grad: true },
  { name: 'cos float64', inputs: { x: X64 }, ts: ({ x }) => x.cos(), py: 'x.cos()', grad: true },
  { name: 'erf', inputs: { x: X }, ts: ({ x }) => x.erf(), py: 'x.erf()', grad: true },
  { name: 'reciprocal', inputs: { y: NONZERO }, ts: ({ y }) => y.reciprocal(), py: 'y.reciprocal()', grad: true },
  { name: 'sigmoid', inputs: { x: X }, ts: ({ x }) => x.sigmoid(), py: 'x.sigmoid()', grad: true },
  { name: 'tanh', inputs: { x: X }, ts: ({ x }) => x.tanh(), py: 'x.tanh()', grad: true },
  { name: 'relu', inputs: { x: X }, ts: ({ x }) => x.relu(), py: 'x.relu()', grad: true },
  { name: 'maximum broadcast', inputs: { x: X, r: ROW }, ts: ({ x, r }) => x.maximum(r), py: 'torch.maximum(x, r)', grad: true },
  { name: 'minimum', inputs: { x: X64, y: Y64 }, ts: ({ x, y }) => x.minimum(y), py: 'torch.minimum(x, y)', grad: true },
  { name: 'clamp(min, max)', inputs: { x: X }, ts: ({ x }) => x.clamp(-0.5, 0.7), py: 'x.clamp(-0.5, 0.7)', grad: true },
  { name: 'clamp(min)', inputs: { x: X }, ts: ({ x }) => x.clamp(0), py: 'x.clamp(min=0)', grad: true },
  { name: 'clamp(null, max)', inputs: { x: X }, ts: ({ x }) => x.clamp(null, 0.25), py: 'x.clamp(max=0.25)', grad: true },
  { name: 'clamp(tensor min, tensor max)', inputs: { x: X, lo: ROW.sub(1), hi: COL.add(1) }, ts: ({ x, lo, hi }) => x.clamp(lo, hi),
    py: 'x.clamp(lo, hi)', grad: true },
  { name: 'clamp(tensor min, number max)', inputs: { x: X, lo: ROW }, ts: ({ x, lo }) => x.clamp(lo, 0.5),
    py: 'x.clamp(lo, torch.tensor(0.5))', grad: ['x'] },
  { name: 'clamp int64', inputs: { i: I }, ts: ({ i }) => i.clamp(-2, 3), py: 'i.clamp(-2, 3)' },
  { name: 'lerp', inputs: { x: X, y: Y }, ts: ({ x, y }) => x.lerp(y, 0.3), py: 'torch.lerp(x, y, 0.3)', grad: true },
  { name: 'isnan', inputs: { s: SPECIAL }, ts: ({ s }) => s.isnan(), py: 's.isnan()' },
  { name: 'isfinite', inputs: { s: SPECIAL }, ts: ({ s }) => s.isfinite(), py: 's.isfinite()' },
  { name: 'exp/log of special values', inputs: { s: SPECIAL }, ts: ({ s }) => [s.exp(), s.log(), s.sqrt()], py: '[s.exp(), s.log(), s.sqrt()]' },
];

const comparisons: OpCase[] = [
  { name: 'eq tensor with ties', inputs: { a: ROUNDED, b: ROUNDED2 }, ts: ({ a, b }) => a.eq(b), py: 'a == b' },
  { name: 'eq scalar', inputs: { a: ROUNDED }, ts: ({ a }) => a.eq(1), py: 'a == 1' },
  { name: 'ne broadcast', inputs: { a: ROUNDED, b: ROUNDED2.select(0, 0) }, ts: ({ a, b }) => a.ne(b), py: 'a != b' },
  { name: 'ne scalar', inputs: { a: ROUNDED }, ts: ({ a }) => a.ne(0), py: 'a != 0' },
  { name: 'lt tensor', inputs: { a: ROUNDED, b: ROUNDED2 }, ts: ({ a, b }) => a.lt(b), py: 'a < b' },
  { name: 'lt scalar', inputs: { x: X }, ts: ({ x }) => x.lt(0.1), py: 'x < 0.1' },
  { name: 'le tensor', inputs: { a: ROUNDED, b: ROUNDED2 }, ts: ({ a, b }) => a.le(b), py: 'a <= b' },
  { name: 'le scalar', inputs: { a: ROUNDED }, ts: ({ a }) => a.le(-1), py: 'a <= -1' },
  { name: 'gt broadcast column', inputs: { x: X, c: COL }, ts: ({ x, c }) => x.gt(c), py: 'x > c' },
  { name: 'gt scalar int64', inputs: { i: I }, ts: ({ i }) => i.gt(2), py: 'i > 2' },
  { name: 'ge tensor', inputs: { a: ROUNDED, b: ROUNDED2 }, ts: ({ a, b }) => a.ge(b), py: 'a >= b' },
  { name: 'ge scalar', inputs: { a: ROUNDED }, ts: ({ a }) => a.ge(1), py: 'a >= 1' },
  { name: 'logicalAnd', inputs: { m: MASK, n: MASK2 }, ts: ({ m, n }) => m.logicalAnd(n), py: 'm.logical_and(n)' },
  { name: 'logicalOr', inputs: { m: MASK, n: MASK2 }, ts: ({ m, n }) => m.logicalOr(n), py: 'm.logical_or(n)' },
  { name: 'logicalNot', inputs: { m: MASK }, ts: ({ m }) => m.logicalNot(), py: 'm.logical_not()' },
  { name: 'logicalAnd of floats', inputs: { a: ROUNDED, b: ROUNDED2 }, ts: ({ a, b }) => a.logicalAnd(b), py: 'a.logical_and(b)' },
  { name: 'equal', inputs: { x: X, y: Y }, ts: ({ x, y }) => [x.equal(x.clone()), x.equal(y), x.equal(x.reshape(4, 3))],
    py: '[torch.equal(x, x.clone()), torch.equal(x, y), torch.equal(x, x.reshape(4, 3))]' },
  { name: 'allclose', inputs: { x: X }, ts: ({ x }) => [x.allclose(x.add(1e-6)), x.allclose(x.add(1e-3)), x.allclose(x.add(1e-3), { atol: 1e-2 }),
    x.allclose(x.mul(1.01), { rtol: 0.02, atol: 0 })],
    py: '[torch.allclose(x, x + 1e-6), torch.allclose(x, x + 1e-3), torch.allclose(x, x + 1e-3, atol=1e-2), torch.allclose(x, x * 1.01, rtol=0.02, atol=0)]' },
  { name: 'where tensors', inputs: { m: MASK, x: X, y: Y }, ts: ({ m, x, y }) => F.where(m, x, y), py: 'torch.where(m, x, y)', grad: true },
  { name: 'where broadcast', inputs: { m: MASK.select(0, 1), x: X, c: COL }, ts: ({ m, x, c }) => F.where(m, x, c), py: 'torch.where(m, x, c)', grad: true },
  { name: 'where scalar other', inputs: { m: MASK, x: X }, ts: ({ m, x }) => F.where(m, x, -1.5), py: 'torch.where(m, x, -1.5)', grad: true },
  { name: 'where scalar self', inputs: { m: MASK, y: Y64.reshape(-1).narrow(0, 0, 4) }, ts: ({ m, y }) => F.where(m, 2.5, y),
    py: 'torch.where(m, 2.5, y)', grad: true },
  { name: 'where scalars', inputs: { m: MASK }, ts: ({ m }) => F.where(m, 1.5, -2.5), py: 'torch.where(m, 1.5, -2.5)' },
];

const promotion: OpCase[] = [
  { name: 'int64 + integral number stays int64', inputs: { i: I }, ts: ({ i }) => i.add(2), py: 'i + 2' },
  { name: 'int64 + fractional number is float32', inputs: { i: I }, ts: ({ i }) => i.add(1.5), py: 'i + 1.5' },
  { name: 'int64 / int64 is float32', inputs: { i: I, j: J }, ts: ({ i, j }) => i.div(j), py: 'i / j' },
  { name: 'int32 * int64 is int64', inputs: { i: I.int(), j: J }, ts: ({ i, j }) => i.mul(j), py: 'i * j' },
  { name: 'int64 * float32 tensor is float32', inputs: { i: I, x: X }, ts: ({ i, x }) => i.mul(x), py: 'i * x', grad: ['x'] },
  { name: 'float32 + float64 tensors is float64', inputs: { x: X.narrow(0, 0, 2).narrow(1, 0, 3), y: Y64 },
    ts: ({ x, y }) => x.add(y), py: 'x + y', grad: true },
  { name: 'float32 + 0-d float64 stays float32', inputs: { x: X, s: Y64.select(0, 0).select(0, 0) }, ts: ({ x, s }) => x.add(s), py: 'x + s', grad: true },
  { name: 'uint8 + uint8 wraps', inputs: { u: tensor(Uint8Array.of(250, 3, 128)) }, ts: ({ u }) => u.add(u), py: 'u + u' },
  { name: 'bool + bool is bool', inputs: { m: MASK, n: MASK2 }, ts: ({ m, n }) => m.add(n), py: 'm + n' },
];

/** In place on a clone: asserts the method returns that very object and bumps its version. */
function inPlace(f: (y: Tensor, inputs: Record<string, Tensor>) => Tensor) {
  return (inputs: Record<string, Tensor>): Tensor => {
    const y = inputs.x.clone();
    const version = y.version;
    const result = f(y, inputs);
    assert.equal(result, y, 'an in-place method must return this');
    assert.ok(y.version > version, 'an in-place method must bump the version counter');
    return y;
  };
}

const inPlaceCases: OpCase[] = [
  { name: 'add_ tensor alpha', inputs: { x: X, b: ROW }, ts: inPlace((y, { b }) => y.add_(b, 2)), py: 'out = x.clone().add_(b, alpha=2)' },
  { name: 'add_ number', inputs: { x: X }, ts: inPlace((y) => y.add_(0.5)), py: 'out = x.clone().add_(0.5)' },
  { name: 'add_ number alpha, int64', inputs: { x: I }, ts: inPlace((y) => y.add_(3, 2)), py: 'out = x.clone().add_(3, alpha=2)' },
  { name: 'sub_ tensor alpha', inputs: { x: X, b: COL }, ts: inPlace((y, { b }) => y.sub_(b, 0.5)), py: 'out = x.clone().sub_(b, alpha=0.5)' },
  { name: 'mul_ tensor', inputs: { x: X, b: Y }, ts: inPlace((y, { b }) => y.mul_(b)), py: 'out = x.clone().mul_(b)' },
  { name: 'mul_ number', inputs: { x: X64 }, ts: inPlace((y) => y.mul_(-1.5)), py: 'out = x.clone().mul_(-1.5)' },
  { name: 'div_ tensor', inputs: { x: X, b: NONZERO }, ts: inPlace((y, { b }) => y.div_(b)), py: 'out = x.clone().div_(b)' },
  { name: 'div_ number', inputs: { x: X }, ts: inPlace((y) => y.div_(3)), py: 'out = x.clone().div_(3)' },
  { name: 'addcmul_', inputs: { x: X, a: Y, b: ROW }, ts: inPlace((y, { a, b }) => y.addcmul_(a, b, 0.3)), py: 'out = x.clone().addcmul_(a, b, value=0.3)' },
  { name: 'addcmul_ default value', inputs: { x: X, a: Y, b: COL }, ts: inPlace((y, { a, b }) => y.addcmul_(a, b)), py: 'out = x.clone().addcmul_(a, b)' },
  { name: 'addcdiv_', inputs: { x: X, a: Y, b: P }, ts: inPlace((y, { a, b }) => y.addcdiv_(a, b, -0.2)), py: 'out = x.clone().addcdiv_(a, b, value=-0.2)' },
  { name: 'lerp_', inputs: { x: X, e: Y }, ts: inPlace((y, { e }) => y.lerp_(e, 0.9)), py: 'out = x.clone().lerp_(e, 0.9)' },
  { name: 'copy_ broadcasts and converts', inputs: { x: X, s: ROW.double() }, ts: inPlace((y, { s }) => y.copy_(s)), py: 'out = x.clone().copy_(s)' },
  { name: 'zero_', inputs: { x: X }, ts: inPlace((y) => y.zero_()), py: 'out = x.clone().zero_()' },
  { name: 'fill_ number', inputs: { x: X }, ts: inPlace((y) => y.fill_(2.5)), py: 'out = x.clone().fill_(2.5)' },
  { name: 'fill_ bool', inputs: { x: MASK }, ts: inPlace((y) => y.fill_(true)), py: 'out = x.clone().fill_(True)' },
  { name: 'clamp_', inputs: { x: X }, ts: inPlace((y) => y.clamp_(-0.3, 0.3)), py: 'out = x.clone().clamp_(-0.3, 0.3)' },
  { name: 'clamp_ max only', inputs: { x: X }, ts: inPlace((y) => y.clamp_(null, 0)), py: 'out = x.clone().clamp_(max=0)' },
  { name: 'maskedFill_', inputs: { x: X, m: MASK }, ts: inPlace((y, { m }) => y.maskedFill_(m, -9)), py: 'out = x.clone().masked_fill_(m, -9)' },
  { name: 'in-place chain on a non-leaf keeps autograd exact', inputs: { w: X, b: Y, c: P },
    ts: ({ w, b, c }) => { const y = w.mul(1); y.mul_(b).add_(c, 0.5).addcmul_(w, c, 2).div_(c).clamp_(-1, 1); return y; },
    py: 'y = w * 1\ny.mul_(b).add_(c, alpha=0.5).addcmul_(w, c, value=2).div_(c).clamp_(-1, 1)\nout = y', grad: true },
];

opSuite('arithmetic: add, sub, mul, div, remainder, pow', arithmetic);
opSuite('unary math, maximum/minimum, clamp, lerp, isnan/isfinite', unary);
opSuite('comparisons, logic, equal, allclose, where', comparisons);
opSuite('type promotion', promotion);
opSuite('in-place methods', inPlaceCases);

test('in-place on a leaf that requires grad is refused with libtorch\'s message', () => {
  assertNoLeaks(() => {
    const leaf = X.clone().requiresGrad_();
    assert.throws(() => leaf.add_(1), /a leaf Variable that requires grad is being used in an in-place operation/);
    assert.throws(() => leaf.mul_(X), /leaf Variable that requires grad/);
  });
});

test('in-place on a broadcast-incompatible shape throws and leaves the tensor unchanged', () => {
  assertNoLeaks(() => {
    const y = X.clone();
    assert.throws(() => y.add_(rn([4, 4], 20)), /must match the size of tensor b|doesn't match the broadcast shape/);
    assert.throws(() => y.add_(rn([2, 3, 4], 21)), /doesn't match the broadcast shape/);
    assert.ok(y.equal(X));
  });
});
