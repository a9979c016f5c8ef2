/**
 * Parity with PyTorch for indexing ops (src/tensor/tensor.ts): indexSelect, index (advanced
 * indexing with tensors, nulls, negative indices and boolean masks), gather, scatter (tensor and
 * value sources), scatterAdd, maskedFill (number and 0-d tensor) and F.oneHot — values and
 * gradients with respect to the data (indices are not differentiable) — plus out-of-range errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as F from '../../src/ops/functional.js';
import { randint, randn, tensor } from '../../src/tensor/creation.js';
import type { DType } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { opSuite, type OpCase } from '../support/parity.js';

const rn = (shape: number[], seed: number, dtype: DType = 'float32') => randn(shape, { seed, dtype });
const long = (values: number[][] | number[]) => tensor(values, { dtype: 'int64' });

const X = rn([4, 5], 1);
const X3 = rn([2, 3, 4], 2);
const X64 = rn([4, 5], 3, 'float64');
const IDX = long([3, 0, 3, 1]); // repeats: gradients accumulate
const NEG = long([-1, 0, -4]);
const GATHER1 = randint(0, 5, [4, 3], { seed: 4 });
const GATHER0 = randint(0, 4, [2, 5], { seed: 5 });
const SRC = rn([4, 3], 6);
const SCATTER_INDEX = long([[0, 1, 2], [2, 3, 4], [4, 0, 1], [1, 2, 3]]); // unique per row
const MASK = rn([4, 5], 7).gt(0);
const LABELS = long([0, 3, 1, 3, 2]);

const cases: OpCase[] = [
  { name: 'indexSelect(0) with repeats', inputs: { x: X, i: IDX }, ts: ({ x, i }) => x.indexSelect(0, i), py: 'x.index_select(0, i)', grad: ['x'] },
  { name: 'indexSelect(-1)', inputs: { x: X3, i: long([2, 0]) }, ts: ({ x, i }) => x.indexSelect(-1, i), py: 'x.index_select(-1, i)', grad: ['x'] },
  { name: 'indexSelect int32 index, float64', inputs: { x: X64, i: IDX.int() }, ts: ({ x, i }) => x.indexSelect(1, i),
    py: 'x.index_select(1, i)', grad: ['x'] },
  { name: 'index one tensor', inputs: { x: X, i: IDX }, ts: ({ x, i }) => x.index([i]), py: 'x[i]', grad: ['x'] },
  { name: 'index negative', inputs: { x: X, i: NEG }, ts: ({ x, i }) => x.index([i]), py: 'x[i]', grad: ['x'] },
  { name: 'index null then tensor', inputs: { x: X3, i: long([3, 1]) }, ts: ({ x, i }) => x.index([null, null, i]), py: 'x[:, :, i]', grad: ['x'] },
  { name: 'index two tensors broadcast', inputs: { x: X, i: long([[0], [2]]), j: long([1, 4, 0]) }, ts: ({ x, i, j }) => x.index([i, j]),
    py: 'x[i, j]', grad: ['x'] },
  { name: 'index boolean mask', inputs: { x: X, m: MASK }, ts: ({ x, m }) => x.index([m]), py: 'x[m]', grad: ['x'] },
  { name: 'index boolean row mask', inputs: { x: X, m: long([1, 0, 1, 1]).bool() }, ts: ({ x, m }) => x.index([m]), py: 'x[m]', grad: ['x'] },
  { name: 'gather(1)', inputs: { x: X, i: GATHER1 }, ts: ({ x, i }) => x.gather(1, i), py: 'x.gather(1, i)', grad: ['x'] },
  { name: 'gather(0)', inputs: { x: X64, i: GATHER0 }, ts: ({ x, i }) => x.gather(0, i), py: 'x.gather(0, i)', grad: ['x'] },
  { name: 'gather(-1) 3-D', inputs: { x: X3, i: randint(0, 4, [2, 3, 6], { seed: 8 }) }, ts: ({ x, i }) => x.gather(-1, i),
    py: 'x.gather(-1, i)', grad: ['x'] },
  { name: 'scatter src', inputs: { x: X, i: SCATTER_INDEX, s: SRC }, ts: ({ x, i, s }) => x.scatter(1, i, s), py: 'x.scatter(1, i, s)', grad: ['x', 's'] },
  { name: 'scatter value', inputs: { x: X, i: SCATTER_INDEX }, ts: ({ x, i }) => x.scatter(1, i, -7.5), py: 'x.scatter(1, i, -7.5)', grad: ['x'] },
  { name: 'scatter(0) src', inputs: { x: X64, i: long([[3, 0, 1, 2, 0]]), s: X64.narrow(0, 1, 1).neg() },
    ts: ({ x, i, s }) => x.scatter(0, i, s), py: 'x.scatter(0, i, s)', grad: ['x', 's'] },
  { name: 'scatterAdd with duplicate targets', inputs: { x: X, i: GATHER1, s: SRC }, ts: ({ x, i, s }) => x.scatterAdd(1, i, s),
    py: 'x.scatter_add(1, i, s)', grad: ['x', 's'] },
  { name: 'scatterAdd into zeros (bincount-like)', inputs: { z: rn([6], 9).mul(0), i: long([0, 2, 2, 5, 2]), s: rn([5], 10) },
    ts: ({ z, i, s }) => z.scatterAdd(0, i, s), py: 'z.scatter_add(0, i, s)', grad: ['s'] },
  { name: 'maskedFill number', inputs: { x: X, m: MASK }, ts: ({ x, m }) => x.maskedFill(m, 3.5), py: 'x.masked_fill(m, 3.5)', grad: ['x'] },
  { name: 'maskedFill broadcast mask', inputs: { x: X, m: MASK.select(0, 2) }, ts: ({ x, m }) => x.maskedFill(m, -Infinity),
    py: "x.masked_fill(m, float('-inf'))", grad: ['x'] },
  { name: 'maskedFill 0-d tensor', inputs: { x: X, m: MASK, v: rn([], 11) }, ts: ({ x, m, v }) => x.maskedFill(m, v),
    py: 'x.masked_fill(m, v)', grad: ['x', 'v'] },
  { name: 'maskedFill int64', inputs: { i: GATHER1, m: MASK.narrow(1, 0, 3) }, ts: ({ i, m }) => i.maskedFill(m, -1), py: 'i.masked_fill(m, -1)' },
  { name: 'oneHot inferred classes', inputs: { l: LABELS }, ts: ({ l }) => F.oneHot(l), py: 'F.one_hot(l)' },
  { name: 'oneHot 6 classes, 2-D', inputs: { l: long([[0, 5], [2, 2]]) }, ts: ({ l }) => F.oneHot(l, 6), py: 'F.one_hot(l, 6)' },
];

opSuite('indexSelect, index, gather, scatter, scatterAdd, maskedFill, oneHot', cases);

test('out-of-range indices throw libtorch\'s messages, not crashes', () => {
  assertNoLeaks(() => {
    assert.throws(() => X.indexSelect(0, long([4])), /index out of range in self/);
    assert.throws(() => X.index([long([4])]), /index 4 is out of bounds for dimension 0 with size 4/);
    assert.throws(() => X.gather(1, long([[5]])), /index 5 is out of bounds for dimension 1 with size 5/);
    assert.throws(() => X.select(0, 9), /select\(\): index 9 out of range for tensor of size \[4, 5\] at dimension 0/);
    assert.throws(() => F.oneHot(long([0, 3]), 3), /Class values must be smaller than num_classes/);
    assert.throws(() => X.indexSelect(0, tensor([0.5])), /index_select\(\): Expected dtype int32 or int64 for index/);
  });
});
