/**
 * Parity with PyTorch for tensor creation (src/tensor/creation.ts): arange (int64 vs float),
 * linspace, eye, full (dtype inference), zeros/ones/empty, the *Like family, scalar; seeded
 * sampling (rand, randn, randint, randperm with `seed`, `generator` and manualSeed draw exactly
 * what torch.Generator().manual_seed(s) / torch.manual_seed(s) draw on the CPU); dtype round
 * trips TypedArray → tensor → dataSync for every dtype; and conversions with .to().
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  arange, empty, emptyLike, eye, full, fullLike, generator, linspace, manualSeed, ones, onesLike, rand, randint,
  randLike, randn, randnLike, randperm, scalar, tensor, zeros, zerosLike,
} from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertClose, opSuite, type OpCase } from '../support/parity.js';

const values = (t: Tensor): number[] => Array.from(t.dataSync() as ArrayLike<number>);

const X = randn([2, 3], { seed: 1 });
const I = randint(0, 9, [2, 3], { seed: 2 });

const factories: OpCase[] = [
  { name: 'arange(5) is int64', inputs: {}, ts: () => arange(5), py: 'torch.arange(5)' },
  { name: 'arange(2, 11, 3) is int64', inputs: {}, ts: () => arange(2, 11, 3), py: 'torch.arange(2, 11, 3)' },
  { name: 'arange(10, 0, -3)', inputs: {}, ts: () => arange(10, 0, -3), py: 'torch.arange(10, 0, -3)' },
  { name: 'arange(0, 1, 0.25) is float32', inputs: {}, ts: () => arange(0, 1, 0.25), py: 'torch.arange(0, 1, 0.25)' },
  { name: 'arange(1.5, 4) is float32', inputs: {}, ts: () => arange(1.5, 4), py: 'torch.arange(1.5, 4)' },
  { name: 'arange(-1, 1, 0.1) length and values', inputs: {}, ts: () => arange(-1, 1, 0.1), py: 'torch.arange(-1, 1, 0.1)' },
  { name: 'arange(5) float64 by option', inputs: {}, ts: () => arange(5, undefined, 1, { dtype: 'float64' }), py: 'torch.arange(5, dtype=torch.float64)' },
  { name: 'linspace(0, 1, 5)', inputs: {}, ts: () => linspace(0, 1, 5), py: 'torch.linspace(0, 1, 5)' },
  { name: 'linspace(-2, 3, 7) float64', inputs: {}, ts: () => linspace(-2, 3, 7, { dtype: 'float64' }), py: 'torch.linspace(-2, 3, 7, dtype=torch.float64)' },
  { name: 'linspace one step', inputs: {}, ts: () => linspace(3, 9, 1), py: 'torch.linspace(3, 9, 1)' },
  { name: 'linspace descending', inputs: {}, ts: () => linspace(1, -1, 4), py: 'torch.linspace(1, -1, 4)' },
  { name: 'eye(3)', inputs: {}, ts: () => eye(3), py: 'torch.eye(3)' },
  { name: 'eye(2, 4)', inputs: {}, ts: () => eye(2, 4), py: 'torch.eye(2, 4)' },
  { name: 'eye(3, 2) int64', inputs: {}, ts: () => eye(3, 2, { dtype: 'int64' }), py: 'torch.eye(3, 2, dtype=torch.int64)' },
  { name: 'full fractional is float32', inputs: {}, ts: () => full([2, 3], 1.5), py: 'torch.full((2, 3), 1.5)' },
  { name: 'full boolean is bool', inputs: {}, ts: () => full([3], true), py: 'torch.full((3,), True)' },
  { name: 'full integral with dtype int64', inputs: {}, ts: () => full([2], 7, { dtype: 'int64' }), py: 'torch.full((2,), 7)' },
  { name: 'full float64', inputs: {}, ts: () => full([2, 2], -0.1, { dtype: 'float64' }), py: 'torch.full((2, 2), -0.1, dtype=torch.float64)' },
  { name: 'zeros', inputs: {}, ts: () => zeros([2, 0, 3]), py: 'torch.zeros(2, 0, 3)' },
  { name: 'ones int32', inputs: {}, ts: () => ones([3], { dtype: 'int32' }), py: 'torch.ones(3, dtype=torch.int32)' },
  { name: 'zeros bool', inputs: {}, ts: () => zeros([2], { dtype: 'bool' }), py: 'torch.zeros(2, dtype=torch.bool)' },
  { name: 'zerosLike, onesLike keep the dtype', inputs: { i: I }, ts: ({ i }) => [zerosLike(i), onesLike(i)], py: '[torch.zeros_like(i), torch.ones_like(i)]' },
  { name: 'zerosLike with dtype', inputs: { x: X }, ts: ({ x }) => zerosLike(x, { dtype: 'float64' }), py: 'torch.zeros_like(x, dtype=torch.float64)' },
  { name: 'fullLike', inputs: { x: X }, ts: ({ x }) => fullLike(x, -2.5), py: 'torch.full_like(x, -2.5)' },
  { name: 'fullLike int64 truncates', inputs: { i: I }, ts: ({ i }) => fullLike(i, 2.75), py: 'torch.full_like(i, 2.75)' },
  { name: 'scalar', inputs: {}, ts: () => [scalar(3), scalar(true), scalar(2, { dtype: 'int64' })],
    py: '[torch.scalar_tensor(3), torch.scalar_tensor(True, dtype=torch.bool), torch.scalar_tensor(2, dtype=torch.int64)]' },
];

/** Seeded draws: each must equal PyTorch's exactly (same libtorch generators on the CPU). */
const seeded: OpCase[] = [
  { name: 'randn seed 0, 3 values', inputs: {}, ts: () => randn([3], { seed: 0 }), py: 'torch.randn(3, generator=torch.Generator().manual_seed(0))', rtol: 0, atol: 0 },
  { name: 'randn seed 42, [4, 5] (vectorised path)', inputs: {}, ts: () => randn([4, 5], { seed: 42 }),
    py: 'torch.randn(4, 5, generator=torch.Generator().manual_seed(42))', rtol: 0, atol: 0 },
  { name: 'randn seed 7, 1000 float64', inputs: {}, ts: () => randn([1000], { seed: 7, dtype: 'float64' }),
    py: 'torch.randn(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(7))', rtol: 0, atol: 0 },
  { name: 'rand seed 3, 7 values', inputs: {}, ts: () => rand([7], { seed: 3 }), py: 'torch.rand(7, generator=torch.Generator().manual_seed(3))', rtol: 0, atol: 0 },
  { name: 'rand seed 3, [10, 10] float64', inputs: {}, ts: () => rand([10, 10], { seed: 3, dtype: 'float64' }),
    py: 'torch.rand(10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3))', rtol: 0, atol: 0 },
  { name: 'randint seed 5', inputs: {}, ts: () => randint(-5, 5, [50], { seed: 5 }), py: 'torch.randint(-5, 5, (50,), generator=torch.Generator().manual_seed(5))' },
  { name: 'randint seed 5 int32', inputs: {}, ts: () => randint(0, 1000, [4, 3], { seed: 5, dtype: 'int32' }),
    py: 'torch.randint(0, 1000, (4, 3), dtype=torch.int32, generator=torch.Generator().manual_seed(5))' },
  { name: 'randperm seed 11, n 10', inputs: {}, ts: () => randperm(10, { seed: 11 }), py: 'torch.randperm(10, generator=torch.Generator().manual_seed(11))' },
  { name: 'randperm seed 11, n 300', inputs: {}, ts: () => randperm(300, { seed: 11 }), py: 'torch.randperm(300, generator=torch.Generator().manual_seed(11))' },
  { name: 'a generator advances across calls', inputs: {},
    ts: () => { const g = generator(5); return [randn([4], { generator: g }), rand([3], { generator: g }), randint(0, 9, [3], { generator: g }), randperm(5, { generator: g })]; },
    py: 'g = torch.Generator().manual_seed(5)\nout = [torch.randn(4, generator=g), torch.rand(3, generator=g), torch.randint(0, 9, (3,), generator=g), torch.randperm(5, generator=g)]',
    rtol: 0, atol: 0 },
  { name: 'manualSeed then the global generator', inputs: { x: X },
    ts: ({ x }) => { manualSeed(123); return [randn([4]), rand([2, 2]), randint(0, 100, [3]), randperm(6), randnLike(x), randLike(x)]; },
    py: 'torch.manual_seed(123)\nout = [torch.randn(4), torch.rand(2, 2), torch.randint(0, 100, (3,)), torch.randperm(6), torch.randn_like(x), torch.rand_like(x)]',
    rtol: 0, atol: 0 },
  { name: 'manualSeed then uniform_ and normal_', inputs: { x: X },
    ts: ({ x }) => { manualSeed(9); return [x.clone().uniform_(-1, 2), x.clone().normal_(1, 0.5), x.clone().uniform_()]; },
    py: 'torch.manual_seed(9)\nout = [x.clone().uniform_(-1, 2), x.clone().normal_(1, 0.5), x.clone().uniform_()]', rtol: 0, atol: 0 },
];

const F32_SPECIAL = Float32Array.of(0, -0, 1.5, -3.25, NaN, Infinity, -Infinity, 1e-40, 3.4028234663852886e38, 1.1754943508222875e-38);
const F64_SPECIAL = Float64Array.of(0, -0, Math.PI, NaN, -Infinity, 5e-324, Number.MAX_VALUE, 0.1);

const conversions: OpCase[] = [
  { name: 'float64 → bfloat16 rounding', inputs: { v: tensor(F64_SPECIAL.map((v) => (Number.isFinite(v) ? v * 3.3 : v))) },
    ts: ({ v }) => v.to('bfloat16'), py: 'v.to(torch.bfloat16)' },
  { name: 'tensor(nested, bfloat16)', inputs: {}, ts: () => tensor([1.1, -2.7, 1000.5, 3e-3], { dtype: 'bfloat16' }),
    py: 'torch.tensor([1.1, -2.7, 1000.5, 3e-3], dtype=torch.float64).to(torch.bfloat16)' },
  { name: 'float32 → int64 truncates toward zero', inputs: { x: X.mul(3) }, ts: ({ x }) => [x.long(), x.int(), x.to('int16')],
    py: '[x.long(), x.int(), x.to(torch.int16)]' },
  { name: 'float32 → uint8, bool', inputs: { x: X.abs().mul(50) }, ts: ({ x }) => [x.to('uint8'), x.round().bool()], py: '[x.to(torch.uint8), x.round().bool()]' },
  { name: 'int64 → float32, float64', inputs: { i: I }, ts: ({ i }) => [i.float(), i.double(), i.to({ dtype: 'float16' })],
    py: '[i.float(), i.double(), i.half()]' },
  { name: 'bool → float32, int64', inputs: { m: X.gt(0) }, ts: ({ m }) => [m.float(), m.long()], py: '[m.float(), m.long()]' },
  { name: 'float64 → float32 → float16', inputs: { v: tensor([0.1, 1 / 3, 65504, 1e5, 6e-8], { dtype: 'float64' }) },
    ts: ({ v }) => [v.float(), v.to('float16')], py: '[v.float(), v.half()]' },
];

opSuite('arange, linspace, eye, full, zeros/ones, *Like, scalar', factories);
opSuite('seeded sampling equals PyTorch draws', seeded);
opSuite('dtype conversions', conversions);

test('full with an integral number is float32 (JS numbers carry no int/float distinction); torch.full infers int64', () => {
  assertNoLeaks(() => {
    assert.equal(full([2], 7).dtype, 'float32');
    assert.equal(arange(3).dtype, 'int64'); // arange does infer from integral arguments, as PyTorch does
  });
});

test('empty and emptyLike have the shape and dtype asked for', () => {
  assertNoLeaks(() => {
    const e = empty([2, 3], { dtype: 'int32' });
    assert.deepEqual([e.shape, e.dtype, e.numel], [[2, 3], 'int32', 6]);
    const l = emptyLike(X, { dtype: 'float64' });
    assert.deepEqual([l.shape, l.dtype], [[2, 3], 'float64']);
  });
});

test('requiresGrad option makes leaves', () => {
  assertNoLeaks(() => {
    for (const t of [zeros([2], { requiresGrad: true }), randn([2], { seed: 1, requiresGrad: true }), tensor([1, 2], { requiresGrad: true }),
      full([1], 2, { requiresGrad: true }), linspace(0, 1, 3, { requiresGrad: true })]) {
      assert.deepEqual([t.requiresGrad, t.isLeaf, t.gradFn], [true, true, null]);
    }
  });
});

test('a per-call seed leaves the global generator untouched', () => {
  assertNoLeaks(() => {
    manualSeed(1);
    const a = randn([5]);
    manualSeed(1);
    randn([100], { seed: 99 });
    rand([3], { generator: generator(4) });
    const b = randn([5]);
    assert.ok(a.equal(b));
    assert.ok(!randn([5], { seed: 1 }).equal(randn([5], { seed: 2 })));
    assert.ok(randn([5], { seed: 3 }).equal(randn([5], { seed: 3 })));
  });
});

/** Bit patterns survive TypedArray → tensor → dataSync for every TypedArray dtype. */
test('TypedArray round trips keep dtype and bits (float32, float64, int64, int32, int16, int8, uint8)', () => {
  assertNoLeaks(() => {
    const arrays: [ArrayBufferView & ArrayLike<number | bigint>, string][] = [
      [F32_SPECIAL, 'float32'], [F64_SPECIAL, 'float64'],
      [BigInt64Array.of(-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 2n ** 53n + 1n), 'int64'],
      [Int32Array.of(-(2 ** 31), 2 ** 31 - 1, 0, -7), 'int32'], [Int16Array.of(-32768, 32767, 5), 'int16'],
      [Int8Array.of(-128, 127, 0), 'int8'], [Uint8Array.of(0, 1, 128, 255), 'uint8'],
    ];
    for (const [data, dtype] of arrays) {
      const t = tensor(data);
      assert.equal(t.dtype, dtype);
      assert.deepEqual(t.shape, [data.length]);
      const back = t.dataSync();
      assert.equal(back.constructor, data.constructor, `${dtype} reads back as ${data.constructor.name}`);
      assert.deepEqual(new Uint8Array(back.buffer, back.byteOffset, back.byteLength),
        new Uint8Array(data.buffer, data.byteOffset, data.byteLength), `${dtype} bits`);
    }
  });
});

test('TypedArray with shape, subarray views, bool and bfloat16 read back', () => {
  assertNoLeaks(() => {
    const t = tensor(Float32Array.of(1, 2, 3, 4, 5, 6), { shape: [2, 3] });
    assert.deepEqual(t.toArray(), [[1, 2, 3], [4, 5, 6]]);
    const sub = tensor(Float64Array.of(9, 8, 7, 6).subarray(1, 3)); // honours byteOffset
    assert.deepEqual(values(sub), [8, 7]);
    const b = tensor([[true, false], [false, true]]);
    assert.deepEqual([b.dtype, b.shape, values(b)], ['bool', [2, 2], [1, 0, 0, 1]]);
    assert.ok(b.dataSync() instanceof Uint8Array);
    const u = tensor(Uint8Array.of(0, 2, 1), { dtype: 'bool' });
    assert.deepEqual([u.dtype, values(u)], ['bool', [0, 1, 1]]);
    const bf = tensor(Float32Array.of(1.5, 2.25, 1 / 3), { dtype: 'bfloat16' });
    assert.equal(bf.dtype, 'bfloat16');
    assert.ok(bf.dataSync() instanceof Float32Array);
    assert.deepEqual(values(bf), [1.5, 2.25, 0.333984375]);
    const n = tensor([[1, 2], [3, 4]], { dtype: 'int64' });
    assert.deepEqual(Array.from(n.dataSync() as BigInt64Array), [1n, 2n, 3n, 4n]);
    assert.equal(tensor([[1, 2]]).dtype, 'float32');
  });
});

test('tensor() rejects ragged arrays, unsupported TypedArrays and byte-count mismatches', () => {
  assertNoLeaks(() => {
    assert.throws(() => tensor([[1, 2], [3]]), /ragged nested array \(expected shape \[2,2\]\)/);
    assert.throws(() => tensor(new Uint16Array(3)), /unsupported TypedArray Uint16Array/);
    assert.throws(() => tensor(new Float32Array(5), { shape: [2, 3] }), /data holds 20 bytes but shape \[2, 3\] of float32 needs 24/);
  });
});

test('to() returns the same object when nothing changes; conversions make new tensors', () => {
  assertNoLeaks(() => {
    const x = X.clone();
    assert.equal(x.to('float32'), x);
    assert.equal(x.to({ device: 'cpu' }), x);
    assert.equal(x.cpu(), x);
    assert.equal(x.float(), x);
    const d = x.double();
    assert.notEqual(d, x);
    assertClose(d.float(), x, { rtol: 0, atol: 0, label: 'float32 → float64 → float32 is exact' });
    assert.throws(() => x.to('float128' as never), /unknown|float128/);
  });
});

test('random sampling results are independent tensors (not aliases of one buffer)', () => {
  assertNoLeaks(() => {
    const g = generator(0);
    const parts: Tensor[] = [randn([3], { generator: g }), randn([3], { generator: g })];
    assert.ok(!parts[0].equal(parts[1]));
  });
});
