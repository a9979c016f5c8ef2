import assert from 'node:assert/strict';
import test from 'node:test';
import { countMacs, einsumMacs, opMacs } from '../../src/analysis/macs.js';
import { Conv1d, Conv2d, Linear, Module, ReLU, Sequential, BatchNorm2d } from '../../src/nn/index.js';
import * as F from '../../src/ops/functional.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';

/** A module around a function, so countMacs can run any op sequence. */
class Fn extends Module {
  constructor(private readonly fn: (x: Tensor) => Tensor) {
    super();
  }
  forward(x: Tensor): Tensor {
    return this.fn(x);
  }
}

const macsOf = (fn: (x: Tensor) => Tensor, shape: number[]) => countMacs(new Fn(fn), shape);

test('conv2d with groups, stride and padding: out.numel · C_in/groups · kH · kW, bias ignored', () => {
  const conv = new Conv2d({ inChannels: 8, outChannels: 16, kernelSize: [3, 5], stride: 2, padding: 1, groups: 4 });
  const r = countMacs(conv, [2, 8, 9, 11]);
  // output (2, 16, 5, 5): H = ⌊(9 + 2 − 3)/2⌋ + 1 = 5, W = ⌊(11 + 2 − 5)/2⌋ + 1 = 5
  assert.equal(r.total, 2 * 16 * 5 * 5 * (8 / 4) * 3 * 5);
  assert.deepEqual(r.byOp, { 'aten::conv2d': r.total });
  assert.equal(r.other, 0);
  assert.deepEqual(r.inputShape, [2, 8, 9, 11]);
});

test('conv1d and linear (on a 3-D input): out.numel · C_in/groups · k and out.numel · in_features', () => {
  const conv = new Conv1d({ inChannels: 6, outChannels: 4, kernelSize: 3, groups: 2 });
  assert.equal(countMacs(conv, [3, 6, 10]).total, 3 * 4 * 8 * 3 * 3);
  const fc = new Linear({ inFeatures: 12, outFeatures: 5 });
  assert.equal(countMacs(fc, [2, 7, 12]).total, 2 * 7 * 5 * 12);
  assert.deepEqual(countMacs(fc, [2, 7, 12]).byOp, { 'aten::linear': 2 * 7 * 5 * 12 });
});

test('matmul (broadcast batch), bmm, mm, baddbmm, addmm: batch · n · m · k', () => {
  tidy(() => {
    const b = randn([5, 4]);
    assert.equal(macsOf((x) => x.matmul(b), [2, 3, 6, 5]).total, 2 * 3 * 6 * 4 * 5);
    const bb = randn([3, 1, 5, 7]);
    assert.equal(macsOf((x) => x.matmul(bb), [4, 6, 5]).total, 3 * 4 * 6 * 7 * 5, 'batch broadcast (4) × (3, 1) → (3, 4)');
    const v = randn([5]);
    assert.equal(macsOf((x) => x.matmul(v), [6, 5]).total, 6 * 5, 'matrix · vector');
    const m2 = randn([3, 5, 2]);
    assert.equal(macsOf((x) => x.bmm(m2), [3, 4, 5]).total, 3 * 4 * 2 * 5);
    const r = macsOf((x) => aten.baddbmm(randn([3, 4, 2]), x, m2), [3, 4, 5]);
    assert.deepEqual(r.byOp, { 'aten::baddbmm': 3 * 4 * 2 * 5 });
    const w = randn([5, 9]);
    assert.equal(macsOf((x) => aten.mm(x, w), [4, 5]).total, 4 * 9 * 5);
    assert.equal(macsOf((x) => aten.addmm(randn([9]), x, w), [4, 5]).total, 4 * 9 * 5);
  });
});

test('einsum: the product of all distinct index sizes; ellipsis broadcast; one operand costs 0', () => {
  tidy(() => {
    const k = randn([2, 4, 7, 8]);
    const r = macsOf((q) => aten.einsum('bhqd,bhkd->bhqk', [q, k]), [2, 4, 6, 8]);
    assert.deepEqual(r.byOp, { 'aten::einsum': 2 * 4 * 6 * 7 * 8 });
    const w = randn([8, 3]);
    assert.equal(macsOf((x) => aten.einsum('...c, cd -> ...d', [x, w]), [2, 5, 8]).total, 2 * 5 * 8 * 3);
    assert.equal(einsumMacs('...ij,...jk->...ik', [randn([2, 1, 3, 4]), randn([5, 4, 6])]), 2 * 5 * 3 * 4 * 6);
    assert.equal(macsOf((x) => aten.einsum('ij->ji', [x]), [3, 4]).total, 0);
  });
});

test('grid_sampler goes to `other`, not the headline', () => {
  tidy(() => {
    const grid = randn([2, 5, 6, 2]);
    const r = macsOf((x) => F.gridSample(x, grid), [2, 3, 8, 8]);
    assert.equal(r.total, 0);
    assert.equal(r.other, 4 * 2 * 3 * 5 * 6, '4 per sampled value');
    assert.deepEqual(r.otherByOp, { 'aten::grid_sampler': r.other });
    assert.equal(macsOf((x) => F.gridSample(x, grid, { mode: 'nearest' }), [2, 3, 8, 8]).other, 0);
  });
  const fake = opMacs('aten::relu', [], null);
  assert.equal(fake, null, 'element-wise ops are not counted');
});

test('perModule: inclusive MACs and output shapes per module; forwards and modes restored', () => {
  const net = new Sequential(
    new Conv2d({ inChannels: 3, outChannels: 4, kernelSize: 3, padding: 1 }),
    new BatchNorm2d({ numFeatures: 4 }),
    new ReLU(),
    new Sequential(new Conv2d({ inChannels: 4, outChannels: 2, kernelSize: 1 })),
  );
  net.train();
  const r = countMacs(net, [1, 3, 5, 5], { perModule: true });
  const conv1 = 25 * 4 * 3 * 9;
  const conv2 = 25 * 2 * 4;
  assert.equal(r.total, conv1 + conv2);
  const pm = Object.fromEntries(r.perModule ?? []);
  assert.deepEqual([...(r.perModule ?? new Map()).keys()], ['', '0', '1', '2', '3', '3.0']);
  assert.equal(pm[''].macs, r.total);
  assert.equal(pm['0'].macs, conv1);
  assert.equal(pm['1'].macs, 0);
  assert.equal(pm['3'].macs, conv2);
  assert.equal(pm['3.0'].macs, conv2);
  assert.deepEqual(pm['3.0'].outputShape, [1, 2, 5, 5]);
  assert.equal(pm['0'].type, 'Conv2d');
  assert.equal(pm['0'].calls, 1);
  for (const [, m] of net.namedModules()) {
    assert.ok(!Object.prototype.hasOwnProperty.call(m, 'forward'), 'the wrapper is gone');
    assert.equal(m.training, true, 'training mode restored');
  }
  // Batch 1 ran in eval mode: BatchNorm on a 1×1 map would throw in training mode.
  assert.doesNotThrow(() => countMacs(new Sequential(new BatchNorm2d({ numFeatures: 2 })), [1, 2, 1, 1]));
  assertNoLeaks(() => countMacs(net, [2, 3, 5, 5], { perModule: true }), 'countMacs frees its input and intermediates');
  net.dispose();
});

test('countMacs accepts a tensor and counts its batch', () => {
  const fc = new Linear({ inFeatures: 4, outFeatures: 3 });
  tidy(() => assert.equal(countMacs(fc, randn([6, 4])).total, 6 * 3 * 4));
});
