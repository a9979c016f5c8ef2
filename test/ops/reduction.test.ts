/**
 * Parity with PyTorch for reductions (sum, mean, prod, max, min, amax, amin, argmax, argmin,
 * logsumexp, var, std, norm, all, any, cumsum), ordering (sort, argsort, topk) and products
 * (matmul, mm, bmm, einsum, linear, outer): dims, negative dims, dim lists, keepdim, float32
 * and float64 — values and input gradients.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as F from '../../src/ops/functional.js';
import { randint, randn, tensor } from '../../src/tensor/creation.js';
import type { DType } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { opSuite, type OpCase } from '../support/parity.js';

const rn = (shape: number[], seed: number, dtype: DType = 'float32') => randn(shape, { seed, dtype });

const X = rn([3, 4, 5], 1);
const X64 = rn([3, 4, 5], 2, 'float64');
const M = rn([4, 6], 3);
const I = randint(-4, 5, [3, 4], { seed: 4 });
const MASK = rn([3, 4], 5).gt(0.3);
const V = rn([6], 6);
const W = rn([6], 7);
const A = rn([2, 3, 4], 8);
const B = rn([2, 4, 5], 9);
const B1 = rn([4, 5], 10);
const P = rn([5, 6], 11);
const Q = rn([6, 3], 12);

const sums: OpCase[] = [
  { name: 'sum()', inputs: { x: X }, ts: ({ x }) => x.sum(), py: 'x.sum()', grad: true },
  { name: 'sum(1)', inputs: { x: X }, ts: ({ x }) => x.sum(1), py: 'x.sum(1)', grad: true },
  { name: 'sum(-1, keepdim)', inputs: { x: X }, ts: ({ x }) => x.sum(-1, { keepdim: true }), py: 'x.sum(-1, keepdim=True)', grad: true },
  { name: 'sum([0, 2]), float64', inputs: { x: X64 }, ts: ({ x }) => x.sum([0, 2]), py: 'x.sum((0, 2))', grad: true },
  { name: 'sum of int64 is int64', inputs: { i: I }, ts: ({ i }) => [i.sum(), i.sum(0)], py: '[i.sum(), i.sum(0)]' },
  { name: 'sum of bool counts as int64', inputs: { m: MASK }, ts: ({ m }) => [m.sum(), m.sum(1)], py: '[m.sum(), m.sum(1)]' },
  { name: 'mean()', inputs: { x: X }, ts: ({ x }) => x.mean(), py: 'x.mean()', grad: true },
  { name: 'mean(0)', inputs: { x: X }, ts: ({ x }) => x.mean(0), py: 'x.mean(0)', grad: true },
  { name: 'mean([1, 2], keepdim), float64', inputs: { x: X64 }, ts: ({ x }) => x.mean([1, 2], { keepdim: true }),
    py: 'x.mean((1, 2), keepdim=True)', grad: true },
  { name: 'prod()', inputs: { v: V }, ts: ({ v }) => v.prod(), py: 'v.prod()', grad: true },
  { name: 'prod() int64', inputs: { i: I.narrow(1, 0, 2).clamp(1, 3) }, ts: ({ i }) => i.prod(), py: 'i.prod()' },
  { name: 'cumsum(1)', inputs: { x: X }, ts: ({ x }) => x.cumsum(1), py: 'x.cumsum(1)', grad: true },
  { name: 'cumsum(-1) int64', inputs: { i: I }, ts: ({ i }) => i.cumsum(-1), py: 'i.cumsum(-1)' },
  { name: 'logsumexp(2)', inputs: { x: X }, ts: ({ x }) => x.logsumexp(2), py: 'x.logsumexp(2)', grad: true },
  { name: 'logsumexp([0, 1], keepdim)', inputs: { x: X64 }, ts: ({ x }) => x.logsumexp([0, 1], { keepdim: true }),
    py: 'x.logsumexp((0, 1), keepdim=True)', grad: true },
  { name: 'logsumexp of large values does not overflow', inputs: { x: X.mul(100).add(500) }, ts: ({ x }) => x.logsumexp(1),
    py: 'x.logsumexp(1)', grad: true },
  { name: 'var()', inputs: { x: X }, ts: ({ x }) => x.var(), py: 'x.var()', grad: true },
  { name: 'var(1) unbiased', inputs: { x: X }, ts: ({ x }) => x.var(1), py: 'x.var(1)', grad: true },
  { name: 'var(correction 0, keepdim)', inputs: { x: X64 }, ts: ({ x }) => x.var([0, 2], { correction: 0, keepdim: true }),
    py: 'torch.var(x, (0, 2), correction=0, keepdim=True)', grad: true },
  { name: 'std()', inputs: { x: X }, ts: ({ x }) => x.std(), py: 'x.std()', grad: true },
  { name: 'std(-1, correction 0)', inputs: { x: X }, ts: ({ x }) => x.std(-1, { correction: 0 }), py: 'torch.std(x, -1, correction=0)', grad: true },
  { name: 'std(0, keepdim)', inputs: { x: X64 }, ts: ({ x }) => x.std(0, { keepdim: true }), py: 'x.std(0, keepdim=True)', grad: true },
  { name: 'norm()', inputs: { x: X }, ts: ({ x }) => x.norm(), py: 'torch.linalg.vector_norm(x)', grad: true },
  { name: 'norm(1, 1)', inputs: { x: X }, ts: ({ x }) => x.norm(1, 1), py: 'torch.linalg.vector_norm(x, 1, 1)', grad: true },
  { name: 'norm(2, [1, 2], keepdim)', inputs: { x: X64 }, ts: ({ x }) => x.norm(2, [1, 2], { keepdim: true }),
    py: 'torch.linalg.vector_norm(x, 2, (1, 2), keepdim=True)', grad: true },
  { name: 'norm(Infinity, -1)', inputs: { x: X }, ts: ({ x }) => x.norm(Infinity, -1), py: "torch.linalg.vector_norm(x, float('inf'), -1)", grad: true },
  { name: 'norm(3.5)', inputs: { x: X }, ts: ({ x }) => x.norm(3.5), py: 'torch.linalg.vector_norm(x, 3.5)', grad: true },
];

const extrema: OpCase[] = [
  { name: 'max()', inputs: { x: X }, ts: ({ x }) => x.max(), py: 'x.max()', grad: true },
  { name: 'max(1) values and indices', inputs: { x: X }, ts: ({ x }) => x.max(1), py: 'x.max(1)', grad: true },
  { name: 'max(-1, keepdim)', inputs: { x: X64 }, ts: ({ x }) => x.max(-1, { keepdim: true }), py: 'x.max(-1, keepdim=True)', grad: true },
  { name: 'max int64', inputs: { i: I }, ts: ({ i }) => [i.max(), i.max(0).values], py: '[i.max(), i.max(0).values]' },
  { name: 'min()', inputs: { x: X }, ts: ({ x }) => x.min(), py: 'x.min()', grad: true },
  { name: 'min(0)', inputs: { x: X }, ts: ({ x }) => x.min(0), py: 'x.min(0)', grad: true },
  { name: 'min(2, keepdim)', inputs: { x: X }, ts: ({ x }) => x.min(2, { keepdim: true }), py: 'x.min(2, keepdim=True)', grad: true },
  { name: 'amax()', inputs: { x: X }, ts: ({ x }) => x.amax(), py: 'x.amax()', grad: true },
  { name: 'amax([0, 2])', inputs: { x: X }, ts: ({ x }) => x.amax([0, 2]), py: 'x.amax((0, 2))', grad: true },
  { name: 'amin(1, keepdim)', inputs: { x: X64 }, ts: ({ x }) => x.amin(1, { keepdim: true }), py: 'x.amin(1, keepdim=True)', grad: true },
  { name: 'amax with ties splits the gradient', inputs: { t: tensor([[1, 3, 3], [2, 2, 0]]) }, ts: ({ t }) => t.amax(1), py: 't.amax(1)', grad: true },
  { name: 'argmax()', inputs: { x: X }, ts: ({ x }) => x.argmax(), py: 'x.argmax()' },
  { name: 'argmax(1)', inputs: { x: X }, ts: ({ x }) => x.argmax(1), py: 'x.argmax(1)' },
  { name: 'argmax(-1, keepdim)', inputs: { x: X }, ts: ({ x }) => x.argmax(-1, { keepdim: true }), py: 'x.argmax(-1, keepdim=True)' },
  { name: 'argmin()', inputs: { x: X }, ts: ({ x }) => x.argmin(), py: 'x.argmin()' },
  { name: 'argmin(0, keepdim)', inputs: { x: X }, ts: ({ x }) => x.argmin(0, { keepdim: true }), py: 'x.argmin(0, keepdim=True)' },
  { name: 'all()/any()', inputs: { m: MASK }, ts: ({ m }) => [m.all(), m.any(), m.logicalOr(m.logicalNot()).all()],
    py: '[m.all(), m.any(), (m | ~m).all()]' },
  { name: 'all(1)/any(0, keepdim)', inputs: { m: MASK }, ts: ({ m }) => [m.all(1), m.any(0, { keepdim: true })],
    py: '[m.all(1), m.any(0, keepdim=True)]' },
  { name: 'all/any of floats', inputs: { x: X.round() }, ts: ({ x }) => [x.all(), x.any(1)], py: '[x.all(), x.any(1)]' },
  { name: 'sort() last dim', inputs: { x: X }, ts: ({ x }) => x.sort(), py: 'x.sort()', grad: true },
  { name: 'sort(0, descending)', inputs: { x: X64 }, ts: ({ x }) => x.sort(0, { descending: true }), py: 'x.sort(0, descending=True)', grad: true },
  { name: 'argsort(1)', inputs: { x: X }, ts: ({ x }) => x.argsort(1), py: 'x.argsort(1)' },
  { name: 'argsort descending', inputs: { x: X }, ts: ({ x }) => x.argsort(-1, { descending: true }), py: 'x.argsort(-1, descending=True)' },
  { name: 'topk(2)', inputs: { x: X }, ts: ({ x }) => x.topk(2), py: 'x.topk(2)', grad: true },
  { name: 'topk(3, dim 1, smallest)', inputs: { x: X }, ts: ({ x }) => x.topk(3, 1, { largest: false }), py: 'x.topk(3, 1, largest=False)', grad: true },
  { name: 'topk(4, 0) float64', inputs: { m: M.double().t() }, ts: ({ m }) => m.topk(4, 0), py: 'm.topk(4, 0)', grad: true },
];

const products: OpCase[] = [
  { name: 'matmul 1-D · 1-D', inputs: { v: V, w: W }, ts: ({ v, w }) => v.matmul(w), py: 'v @ w', grad: true },
  { name: 'matmul 2-D · 1-D', inputs: { m: M, w: W }, ts: ({ m, w }) => m.matmul(w), py: 'm @ w', grad: true },
  { name: 'matmul 1-D · 2-D', inputs: { v: V, q: Q }, ts: ({ v, q }) => v.matmul(q), py: 'v @ q', grad: true },
  { name: 'matmul 2-D', inputs: { p: P, q: Q }, ts: ({ p, q }) => p.matmul(q), py: 'p @ q', grad: true },
  { name: 'matmul batched broadcast', inputs: { a: A, b: B1 }, ts: ({ a, b }) => a.matmul(b), py: 'a @ b', grad: true },
  { name: 'matmul batched, float64', inputs: { a: A.double(), b: B.double() }, ts: ({ a, b }) => F.matmul(a, b), py: 'a @ b', grad: true },
  { name: 'matmul of a transpose', inputs: { p: P, q: Q }, ts: ({ p, q }) => q.t().matmul(p.t()), py: 'q.t() @ p.t()', grad: true },
  { name: 'mm', inputs: { p: P, q: Q }, ts: ({ p, q }) => p.mm(q), py: 'p.mm(q)', grad: true },
  { name: 'bmm', inputs: { a: A, b: B }, ts: ({ a, b }) => a.bmm(b), py: 'a.bmm(b)', grad: true },
  { name: 'einsum batched matmul', inputs: { a: A, b: B }, ts: ({ a, b }) => F.einsum('bij,bjk->bik', a, b), py: "torch.einsum('bij,bjk->bik', a, b)", grad: true },
  { name: 'einsum trace-like and transpose', inputs: { m: rn([4, 4], 13) }, ts: ({ m }) => [F.einsum('ii->', m), F.einsum('ij->ji', m), F.einsum('ii->i', m)],
    py: "[torch.einsum('ii->', m), torch.einsum('ij->ji', m), torch.einsum('ii->i', m)]", grad: true },
  { name: 'einsum outer and ellipsis', inputs: { v: V, w: W, a: A }, ts: ({ v, w, a }) => [F.einsum('i,j->ij', v, w), F.einsum('...ij->...ji', a)],
    py: "[torch.einsum('i,j->ij', v, w), torch.einsum('...ij->...ji', a)]", grad: true },
  { name: 'einsum three operands, float64', inputs: { p: P.double(), q: Q.double(), v: V.double().narrow(0, 0, 5) },
    ts: ({ p, q, v }) => F.einsum('i,ij,jk->k', v, p, q), py: "torch.einsum('i,ij,jk->k', v, p, q)", grad: true },
  { name: 'linear with bias', inputs: { x: A, w: rn([5, 4], 14), b: rn([5], 15) }, ts: ({ x, w, b }) => F.linear(x, w, b),
    py: 'F.linear(x, w, b)', grad: true },
  { name: 'linear without bias', inputs: { x: M, w: rn([3, 6], 16) }, ts: ({ x, w }) => F.linear(x, w), py: 'F.linear(x, w)', grad: true },
  { name: 'outer', inputs: { v: V, w: W.narrow(0, 0, 4) }, ts: ({ v, w }) => F.outer(v, w), py: 'torch.outer(v, w)', grad: true },
];

opSuite('sum, mean, prod, cumsum, logsumexp, var, std, norm', sums);
opSuite('max, min, amax, amin, argmax, argmin, all, any, sort, topk', extrema);
opSuite('matmul, mm, bmm, einsum, linear, outer', products);

test('shape mismatches in products throw libtorch\'s messages', () => {
  assertNoLeaks(() => {
    assert.throws(() => P.mm(P), /mat1 and mat2 shapes cannot be multiplied \(5x6 and 5x6\)/);
    assert.throws(() => A.bmm(A), /Expected size for first two dimensions of batch2 tensor to be: \[2, 4\] but got: \[2, 3\]/);
    assert.throws(() => F.einsum('ij,jk->ik', P, P), /einsum\(\): subscript j has size 5 for operand 1 which does not broadcast with previously seen size 6/);
    assert.throws(() => X.sum(3), /Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)/);
  });
});
