/**
 * Parity with PyTorch for shape and view ops (src/tensor/tensor.ts, src/ops/functional.ts):
 * reshape, view, permute, transpose, t, flatten, unflatten, squeeze, unsqueeze, expand, expandAs,
 * narrow, slice, select, split, chunk, cat, stack, roll, unfold, flip, repeat, movedim, tril,
 * triu, pad (every mode), pixelShuffle, contiguous and strides — values and input gradients —
 * plus view aliasing: views see writes to their base, copies do not.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as F from '../../src/ops/functional.js';
import { randn } from '../../src/tensor/creation.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertClose, opSuite, type OpCase } from '../support/parity.js';

const rn = (shape: number[], seed: number, dtype: DType = 'float32') => randn(shape, { seed, dtype });

const X = rn([2, 3, 4], 1);
const X64 = rn([2, 3, 4], 2, 'float64');
const S = rn([1, 3, 1, 2], 3);
const M = rn([4, 5], 4);
const IMG = rn([2, 3, 5, 6], 5);
const SEQ = rn([2, 3, 7], 6);
const A = rn([2, 3], 7);
const B = rn([2, 3], 8);
const C = rn([2, 3], 9);
const PS = rn([1, 8, 2, 3], 10);

const views: OpCase[] = [
  { name: 'reshape [4, -1]', inputs: { x: X }, ts: ({ x }) => x.reshape([4, -1]), py: 'x.reshape(4, -1)', grad: true },
  { name: 'reshape variadic, float64', inputs: { x: X64 }, ts: ({ x }) => x.reshape(6, 4), py: 'x.reshape(6, 4)', grad: true },
  { name: 'reshape to scalar', inputs: { x: rn([1, 1], 11) }, ts: ({ x }) => x.reshape([]), py: 'x.reshape(())', grad: true },
  { name: 'view [3, 8]', inputs: { x: X }, ts: ({ x }) => x.view([3, 8]), py: 'x.view(3, 8)', grad: true },
  { name: 'view variadic -1', inputs: { x: X }, ts: ({ x }) => x.view(-1), py: 'x.view(-1)', grad: true },
  { name: 'permute [2, 0, 1]', inputs: { x: X }, ts: ({ x }) => x.permute([2, 0, 1]), py: 'x.permute(2, 0, 1)', grad: true },
  { name: 'permute variadic negative', inputs: { x: X64 }, ts: ({ x }) => x.permute(-1, 1, 0), py: 'x.permute(-1, 1, 0)', grad: true },
  { name: 'transpose(0, 2)', inputs: { x: X }, ts: ({ x }) => x.transpose(0, 2), py: 'x.transpose(0, 2)', grad: true },
  { name: 'transpose(-1, -2)', inputs: { x: X }, ts: ({ x }) => x.transpose(-1, -2), py: 'x.transpose(-1, -2)', grad: true },
  { name: 't()', inputs: { x: M }, ts: ({ x }) => x.t(), py: 'x.t()', grad: true },
  { name: 'flatten()', inputs: { x: X }, ts: ({ x }) => x.flatten(), py: 'x.flatten()', grad: true },
  { name: 'flatten(1)', inputs: { x: IMG }, ts: ({ x }) => x.flatten(1), py: 'x.flatten(1)', grad: true },
  { name: 'flatten(1, 2)', inputs: { x: IMG }, ts: ({ x }) => x.flatten(1, 2), py: 'x.flatten(1, 2)', grad: true },
  { name: 'unflatten(1, [3, 2])', inputs: { x: rn([2, 6, 2], 12) }, ts: ({ x }) => x.unflatten(1, [3, 2]), py: 'x.unflatten(1, (3, 2))', grad: true },
  { name: 'unflatten(-1, [2, -1])', inputs: { x: X }, ts: ({ x }) => x.unflatten(-1, [2, -1]), py: 'x.unflatten(-1, (2, -1))', grad: true },
  { name: 'squeeze()', inputs: { x: S }, ts: ({ x }) => x.squeeze(), py: 'x.squeeze()', grad: true },
  { name: 'squeeze(2)', inputs: { x: S }, ts: ({ x }) => x.squeeze(2), py: 'x.squeeze(2)', grad: true },
  { name: 'squeeze(1) of a non-1 dim is a no-op', inputs: { x: S }, ts: ({ x }) => x.squeeze(1), py: 'x.squeeze(1)', grad: true },
  { name: 'unsqueeze(0)', inputs: { x: X }, ts: ({ x }) => x.unsqueeze(0), py: 'x.unsqueeze(0)', grad: true },
  { name: 'unsqueeze(-1)', inputs: { x: X }, ts: ({ x }) => x.unsqueeze(-1), py: 'x.unsqueeze(-1)', grad: true },
  { name: 'expand [2, -1, 3, 2]', inputs: { x: S }, ts: ({ x }) => x.expand([2, -1, 3, 2]), py: 'x.expand(2, -1, 3, 2)', grad: true },
  { name: 'expand variadic adds leading dims', inputs: { x: A }, ts: ({ x }) => x.expand(4, 2, 3), py: 'x.expand(4, 2, 3)', grad: true },
  { name: 'expandAs', inputs: { x: rn([3, 1], 13), y: rn([4, 3], 16).t() }, ts: ({ x, y }) => x.expandAs(y), py: 'x.expand_as(y)', grad: ['x'] },
  { name: 'narrow(1, 1, 2)', inputs: { x: X }, ts: ({ x }) => x.narrow(1, 1, 2), py: 'x.narrow(1, 1, 2)', grad: true },
  { name: 'narrow(-1, 0, 3)', inputs: { x: X64 }, ts: ({ x }) => x.narrow(-1, 0, 3), py: 'x.narrow(-1, 0, 3)', grad: true },
  { name: 'slice(2, 1, 4)', inputs: { x: X }, ts: ({ x }) => x.slice(2, 1, 4), py: 'x[:, :, 1:4]', grad: true },
  { name: 'slice(2, undefined, undefined, 2)', inputs: { x: X }, ts: ({ x }) => x.slice(2, undefined, undefined, 2), py: 'x[:, :, ::2]', grad: true },
  { name: 'slice negative bounds', inputs: { x: X }, ts: ({ x }) => x.slice(1, -2), py: 'x[:, -2:]', grad: true },
  { name: 'slice(0, 1, -1, 3)', inputs: { x: M }, ts: ({ x }) => x.slice(1, 1, -1, 3), py: 'x[:, 1:-1:3]', grad: true },
  { name: 'slice past the end clamps', inputs: { x: M }, ts: ({ x }) => x.slice(0, 2, 100), py: 'x[2:100]', grad: true },
  { name: 'select(1, 2)', inputs: { x: X }, ts: ({ x }) => x.select(1, 2), py: 'x.select(1, 2)', grad: true },
  { name: 'select(-1, -1)', inputs: { x: X }, ts: ({ x }) => x.select(-1, -1), py: 'x[..., -1]', grad: true },
  { name: 'movedim(0, 2)', inputs: { x: X }, ts: ({ x }) => x.movedim(0, 2), py: 'x.movedim(0, 2)', grad: true },
  { name: 'unfold(2, 3, 2)', inputs: { x: SEQ }, ts: ({ x }) => x.unfold(2, 3, 2), py: 'x.unfold(2, 3, 2)', grad: true },
  { name: 'unfold(-1, 2, 1), float64', inputs: { x: X64 }, ts: ({ x }) => x.unfold(-1, 2, 1), py: 'x.unfold(-1, 2, 1)', grad: true },
  { name: 'strides of permute', inputs: { x: X }, ts: ({ x }) => x.permute(2, 0, 1).strides, py: 'x.permute(2, 0, 1).stride()' },
  { name: 'strides of expand', inputs: { x: S }, ts: ({ x }) => x.expand(4, 3, 5, 2).strides, py: 'x.expand(4, 3, 5, 2).stride()' },
  { name: 'contiguous() of a transpose', inputs: { x: X }, ts: ({ x }) => [x.transpose(0, 2).contiguous(), x.transpose(0, 2).contiguous().strides],
    py: 'out = [x.transpose(0, 2).contiguous(), x.transpose(0, 2).contiguous().stride()]', grad: true },
];

const copies: OpCase[] = [
  { name: 'split(2, 2)', inputs: { x: X }, ts: ({ x }) => x.split(2, 2), py: 'x.split(2, 2)', grad: true },
  { name: 'split(2) uneven', inputs: { x: rn([5, 2], 14) }, ts: ({ x }) => x.split(2), py: 'x.split(2)', grad: true },
  { name: 'split([1, 3], -1)', inputs: { x: X }, ts: ({ x }) => x.split([1, 3], -1), py: 'x.split([1, 3], -1)', grad: true },
  { name: 'chunk(3, 1)', inputs: { x: X }, ts: ({ x }) => x.chunk(3, 1), py: 'x.chunk(3, 1)', grad: true },
  { name: 'chunk(3) uneven gives 2 chunks', inputs: { x: rn([4, 2], 15) }, ts: ({ x }) => x.chunk(3), py: 'x.chunk(3)', grad: true },
  { name: 'cat dim 0', inputs: { a: A, b: B, c: C }, ts: ({ a, b, c }) => F.cat([a, b, c]), py: 'torch.cat([a, b, c])', grad: true },
  { name: 'cat dim -1 mixed widths', inputs: { a: A, b: M.narrow(0, 0, 2) }, ts: ({ a, b }) => F.cat([a, b], -1), py: 'torch.cat([a, b], -1)', grad: true },
  { name: 'stack dim 0', inputs: { a: A, b: B }, ts: ({ a, b }) => F.stack([a, b]), py: 'torch.stack([a, b])', grad: true },
  { name: 'stack dim 2', inputs: { a: A, b: B, c: C }, ts: ({ a, b, c }) => F.stack([a, b, c], 2), py: 'torch.stack([a, b, c], 2)', grad: true },
  { name: 'roll(1, 2)', inputs: { x: X }, ts: ({ x }) => x.roll(1, 2), py: 'x.roll(1, 2)', grad: true },
  { name: 'roll([-1, 2], [0, 2])', inputs: { x: X }, ts: ({ x }) => x.roll([-1, 2], [0, 2]), py: 'x.roll((-1, 2), (0, 2))', grad: true },
  { name: 'roll(5) without dims flattens', inputs: { x: X }, ts: ({ x }) => x.roll(5), py: 'x.roll(5)', grad: true },
  { name: 'flip(0)', inputs: { x: X }, ts: ({ x }) => x.flip(0), py: 'x.flip(0)', grad: true },
  { name: 'flip([1, 2])', inputs: { x: X64 }, ts: ({ x }) => x.flip([1, 2]), py: 'x.flip(1, 2)', grad: true },
  { name: 'repeat(2, 1, 3)', inputs: { x: X }, ts: ({ x }) => x.repeat(2, 1, 3), py: 'x.repeat(2, 1, 3)', grad: true },
  { name: 'repeat([2, 1, 1, 2]) adds a dim', inputs: { x: X }, ts: ({ x }) => x.repeat([2, 1, 1, 2]), py: 'x.repeat(2, 1, 1, 2)', grad: true },
  { name: 'tril()', inputs: { x: M }, ts: ({ x }) => x.tril(), py: 'x.tril()', grad: true },
  { name: 'tril(-1) batched', inputs: { x: X }, ts: ({ x }) => x.tril(-1), py: 'x.tril(-1)', grad: true },
  { name: 'triu(1)', inputs: { x: M }, ts: ({ x }) => x.triu(1), py: 'x.triu(1)', grad: true },
  { name: 'pixelShuffle(2)', inputs: { x: PS }, ts: ({ x }) => F.pixelShuffle(x, 2), py: 'F.pixel_shuffle(x, 2)', grad: true },
];

const pads: OpCase[] = [
  { name: 'pad constant 0, last dim', inputs: { x: X }, ts: ({ x }) => F.pad(x, [1, 2]), py: 'F.pad(x, [1, 2])', grad: true },
  { name: 'pad constant value, two dims', inputs: { x: IMG }, ts: ({ x }) => F.pad(x, [1, 0, 2, 3], { value: -1.5 }),
    py: "F.pad(x, [1, 0, 2, 3], mode='constant', value=-1.5)", grad: true },
  { name: 'pad constant three dims', inputs: { x: IMG }, ts: ({ x }) => F.pad(x, [1, 1, 0, 1, 2, 0]), py: 'F.pad(x, [1, 1, 0, 1, 2, 0])', grad: true },
  { name: 'pad constant negative crops', inputs: { x: IMG }, ts: ({ x }) => F.pad(x, [-1, 2, 0, -2]), py: 'F.pad(x, [-1, 2, 0, -2])', grad: true },
  { name: 'pad reflect 1-D', inputs: { x: SEQ }, ts: ({ x }) => F.pad(x, [3, 2], { mode: 'reflect' }), py: "F.pad(x, [3, 2], mode='reflect')", grad: true },
  { name: 'pad reflect 2-D', inputs: { x: IMG }, ts: ({ x }) => F.pad(x, [2, 1, 1, 3], { mode: 'reflect' }),
    py: "F.pad(x, [2, 1, 1, 3], mode='reflect')", grad: true },
  { name: 'pad replicate 1-D', inputs: { x: SEQ }, ts: ({ x }) => F.pad(x, [2, 4], { mode: 'replicate' }), py: "F.pad(x, [2, 4], mode='replicate')", grad: true },
  { name: 'pad replicate 2-D, float64', inputs: { x: IMG.double() }, ts: ({ x }) => F.pad(x, [1, 2, 3, 0], { mode: 'replicate' }),
    py: "F.pad(x, [1, 2, 3, 0], mode='replicate')", grad: true },
  { name: 'pad circular 1-D', inputs: { x: SEQ }, ts: ({ x }) => F.pad(x, [2, 3], { mode: 'circular' }), py: "F.pad(x, [2, 3], mode='circular')", grad: true },
  { name: 'pad circular 2-D', inputs: { x: IMG }, ts: ({ x }) => F.pad(x, [1, 2, 2, 1], { mode: 'circular' }),
    py: "F.pad(x, [1, 2, 2, 1], mode='circular')", grad: true },
];

opSuite('views (values, gradients, strides)', views);
opSuite('split, chunk, cat, stack, roll, flip, repeat, tril/triu, pixelShuffle', copies);
opSuite('pad: constant, reflect, replicate, circular', pads);

test('pad rejects a value outside constant mode', () => {
  assert.throws(() => F.pad(IMG, [1, 1], { mode: 'reflect', value: 1 }), /value only applies to mode 'constant', not 'reflect'/);
});

test('reflect padding as wide as the input is refused by libtorch with its message', () => {
  assertNoLeaks(() => {
    assert.throws(() => F.pad(SEQ, [7, 0], { mode: 'reflect' }), /Padding size should be less than the corresponding input dimension/);
  });
});

test('views alias their base; split/chunk pieces alias it too; flip, roll and repeat copy', () => {
  assertNoLeaks(() => {
    const base = X.clone();
    const aliasing: Record<string, (x: Tensor) => Tensor> = {
      reshape: (x) => x.reshape([6, 4]), view: (x) => x.view([4, 6]), permute: (x) => x.permute(2, 0, 1),
      transpose: (x) => x.transpose(0, 1), flatten: (x) => x.flatten(), unflatten: (x) => x.unflatten(2, [2, 2]),
      squeeze: (x) => x.unsqueeze(0).squeeze(0), unsqueeze: (x) => x.unsqueeze(1), expand: (x) => x.expand(3, 2, 3, 4),
      narrow: (x) => x.narrow(2, 1, 2), slice: (x) => x.slice(2, 0, 4, 2), select: (x) => x.select(0, 1),
      unfold: (x) => x.unfold(2, 2, 1), movedim: (x) => x.movedim(2, 0), split: (x) => x.split(1, 1)[1],
      chunk: (x) => x.chunk(2, 2)[1], detach: (x) => x.detach(),
    };
    const copying: Record<string, (x: Tensor) => Tensor> = {
      flip: (x) => x.flip(0), roll: (x) => x.roll(1, 1), repeat: (x) => x.repeat(1, 1, 1), clone: (x) => x.clone(),
      contiguousOfPermute: (x) => x.permute(1, 0, 2).contiguous(),
    };
    const views = Object.entries(aliasing).map(([name, f]) => [name, f(base), f] as const);
    const copies = Object.entries(copying).map(([name, f]) => [name, f(base), f(base).clone()] as const);
    base.mul_(-2).add_(1);
    for (const [name, v, f] of views) assertClose(v, f(base), { label: `${name} sees the write` });
    for (const [name, c, before] of copies) assertClose(c, before, { label: `${name} keeps its values` });
    assert.equal(base.transpose(0, 1).isContiguous, false);
    assert.equal(base.transpose(0, 1).contiguous().isContiguous, true);
  });
});
