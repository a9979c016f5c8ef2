/**
 * The Tensor handle (src/tensor/tensor.ts over native/core/tensor.cc): the native error funnel
 * (libtorch errors become JS Errors with libtorch's message, argument errors TypeErrors, never a
 * crash), disposal, the refused constructor, properties, and readback — item(), toArray(),
 * dataSync() and data() — for every dtype.
 */
import assert from 'node:assert/strict';
import os from 'node:os';
import { test } from 'node:test';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { arange, randn, scalar, tensor, zeros } from '../../src/tensor/creation.js';
import { getNumThreads, memory, setNumThreads } from '../../src/tensor/memory.js';
import { Tensor, type DType } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';

const DTYPES: DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];
const READBACK: Record<DType, Function> = {
  float32: Float32Array, float64: Float64Array, bfloat16: Float32Array, float16: Float32Array, int64: BigInt64Array,
  int32: Int32Array, int16: Int16Array, int8: Int8Array, uint8: Uint8Array, bool: Uint8Array,
};

/** Asserts fn throws an instance of `kind` whose message matches `pattern` and carries no C++ backtrace. */
function throwsClean(fn: () => unknown, kind: ErrorConstructor | TypeErrorConstructor, pattern: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof kind, `expected ${kind.name}, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.doesNotMatch(e.message, /Exception raised from|frame #\d/, 'no C++ backtrace in the message');
    return true;
  });
}

test('libtorch errors reach JS as Errors with libtorch\'s message, and the process goes on', () => {
  assertNoLeaks(() => {
    const a = randn([2, 3], { seed: 1 });
    throwsClean(() => a.matmul(randn([4, 5], { seed: 2 })), Error, /^mat1 and mat2 shapes cannot be multiplied \(2x3 and 4x5\)$/);
    throwsClean(() => a.add(randn([4], { seed: 3 })), Error, /The size of tensor a \(3\) must match the size of tensor b \(4\) at non-singleton dimension 1/);
    throwsClean(() => a.view([4, -1]), Error, /shape '\[4, -1\]' is invalid for input of size 6/);
    throwsClean(() => a.t().view([6]), Error, /view size is not compatible with input tensor's size and stride/);
    throwsClean(() => a.permute(0, 0), Error, /permute\(\): duplicate dims are not allowed/);
    throwsClean(() => a.expand(3, 3), Error, /The expanded size of the tensor \(3\) must match the existing size \(2\)/);
    throwsClean(() => a.sum(2), Error, /Dimension out of range \(expected to be in range of \[-2, 1\], but got 2\)/);
    assert.deepEqual(a.matmul(randn([3, 4], { seed: 4 })).shape, [2, 4], 'the next op works');
  });
});

test('bad arguments are TypeErrors naming the argument and the schema type', () => {
  assertNoLeaks(() => {
    const a = randn([2, 3], { seed: 1 });
    throwsClean(() => a.reshape('a' as never), TypeError, /argument 'shape' expects int\[\], got string 'a'/);
    throwsClean(() => a.sum(1.5), TypeError, /argument 'dim' expects int\[\]\?, got number 1.5/);
    throwsClean(() => aten.add_Tensor(a, 3 as never), TypeError, /argument 'other' must be a Tensor/);
    throwsClean(() => a.to({ dtype: 'float128' as DType }), TypeError, /unknown dtype 'float128'; use one of float32, float64/);
    throwsClean(() => a.to('float128' as DType), TypeError, /unknown device 'float128'; use 'cpu', 'cuda' or 'cuda:N'/);
    throwsClean(() => a.to({ device: 'tpu' as never }), Error, /tpu/);
  });
});

test('a disposed tensor throws a clear error wherever it is used; disposing twice is harmless', async () => {
  const t = randn([3], { seed: 5 });
  const before = memory();
  t.dispose();
  t.dispose();
  const after = memory();
  assert.equal(t.disposed, true);
  assert.equal(before.liveTensors - after.liveTensors, 1);
  assert.equal(before.liveBytes - after.liveBytes, 12);
  const message = /Tensor is disposed; keep\(\) it or return it from its scope to use it later/;
  throwsClean(() => t.shape, Error, message);
  throwsClean(() => t.dtype, Error, message);
  throwsClean(() => t.add(1), Error, message);
  throwsClean(() => zeros([3]).add(t), Error, message);
  throwsClean(() => t.dataSync(), Error, message);
  throwsClean(() => t.item(), Error, message);
  assert.throws(() => t.data(), message);
  assert.equal(randn([1], { seed: 1 }).disposed, false);
});

test('new Tensor() is refused: tensors come from factories and ops', () => {
  throwsClean(() => new Tensor(), TypeError, /Tensors are made by tensor\(\), zeros\(\), randn\(\) and the ops, not by new Tensor\(\)/);
});

test('properties: shape, strides, dtype, device, ndim, numel, isContiguous, version, sameAs', () => {
  assertNoLeaks(() => {
    const x = arange(24, undefined, 1, { dtype: 'float32' }).reshape(2, 3, 4);
    assert.deepEqual([x.shape, x.strides, x.dtype, x.device, x.ndim, x.numel, x.isContiguous], [[2, 3, 4], [12, 4, 1], 'float32', 'cpu', 3, 24, true]);
    const p = x.permute(2, 0, 1);
    assert.deepEqual([p.shape, p.strides, p.isContiguous], [[4, 2, 3], [1, 12, 4], false]);
    const s = scalar(2);
    assert.deepEqual([s.shape, s.strides, s.ndim, s.numel], [[], [], 0, 1]);
    const v0 = x.version;
    x.add_(1);
    assert.equal(x.version, v0 + 1);
    assert.ok(x.sameAs(x));
    assert.ok(!x.sameAs(x.clone()));
    assert.equal(zeros([0, 3]).numel, 0);
  });
});

test('item() returns a number (a boolean for bool) for each dtype and refuses many elements', () => {
  assertNoLeaks(() => {
    for (const dtype of DTYPES) {
      const t = tensor([[0, 1], [3, 0]], { dtype });
      const expected = dtype === 'bool' ? true : 3;
      assert.equal(t.select(0, 1).select(0, 0).item(), expected, dtype);
    }
    assert.equal(tensor([0.1], { dtype: 'float64' }).item(), 0.1);
    assert.equal(tensor([0.1]).item(), Math.fround(0.1));
    assert.equal(tensor([1 / 3], { dtype: 'bfloat16' }).item(), 0.333984375);
    assert.equal(tensor(BigInt64Array.of(-(2n ** 40n))).item(), -(2 ** 40));
    assert.equal(scalar(false).item(), false);
    throwsClean(() => tensor([1, 2]).item(), Error, /item\(\) needs a tensor with one element, got shape \[2\]/);
    throwsClean(() => zeros([0]).item(), Error, /got shape \[0\]/);
  });
});

test('toArray() nests by shape for each dtype: numbers, int64 as numbers, bool as booleans, 0-d as a scalar', () => {
  assertNoLeaks(() => {
    const values = [[1, 0, 2], [0, 3, 1]];
    for (const dtype of DTYPES) {
      const expected = dtype === 'bool' ? values.map((r) => r.map((v) => v !== 0)) : values;
      assert.deepEqual(tensor(values, { dtype }).toArray(), expected, dtype);
    }
    assert.deepEqual(tensor([-1.5, 2.25], { dtype: 'float64' }).toArray(), [-1.5, 2.25]);
    assert.equal(scalar(2.5).toArray(), 2.5);
    assert.deepEqual(arange(8).reshape(2, 2, 2).permute(2, 1, 0).toArray(), [[[0, 4], [2, 6]], [[1, 5], [3, 7]]]);
    assert.deepEqual(zeros([2, 0]).toArray(), [[], []]);
  });
});

test('dataSync() and data() return the same TypedArray kind and values for each dtype, in logical order', async () => {
  await assertNoLeaks(async () => {
    for (const dtype of DTYPES) {
      const t = tensor([[1, 0, 2], [0, 3, 1]], { dtype }).t(); // non-contiguous: logical order expected
      const sync = t.dataSync();
      const async_ = await t.data();
      assert.equal(sync.constructor, READBACK[dtype], `${dtype} dataSync`);
      assert.equal(async_.constructor, READBACK[dtype], `${dtype} data`);
      const expected = dtype === 'bool' ? [1, 0, 0, 1, 1, 1] : [1, 0, 0, 3, 2, 1];
      assert.deepEqual(Array.from(sync as ArrayLike<number | bigint>, Number), expected, `${dtype} dataSync values`);
      assert.deepEqual(Array.from(async_ as ArrayLike<number | bigint>, Number), expected, `${dtype} data values`);
    }
  });
});

test('data() resolves after the tensor is disposed (it reads a detached copy) and its array is a copy', async () => {
  const t = tensor([1, 2, 3]);
  const pending = t.data();
  t.dispose();
  assert.deepEqual(Array.from((await pending) as Float32Array), [1, 2, 3]);
  const u = tensor([4, 5]);
  const read = u.dataSync();
  read[0] = 99;
  assert.deepEqual(Array.from(u.dataSync() as Float32Array), [4, 5]);
  u.dispose();
});

test('toString() is libtorch\'s printout, and print() logs it', (t) => {
  assertNoLeaks(() => {
    const x = tensor([[1.5, -2], [0, 4]]);
    const s = x.toString();
    assert.match(s, /1\.5000/);
    assert.match(s, /\[ CPUFloatType\{2,2\} \]/);
    assert.match(tensor([1, 2], { dtype: 'int64' }).toString(), /\[ CPULongType\{2\} \]/);
    const log = t.mock.method(console, 'log', () => undefined);
    x.print();
    assert.deepEqual(log.mock.calls.map((c) => c.arguments), [[s]]);
  });
});

test("tensor() refuses elements that are not numbers or booleans (['a', 'b'] is not NaN)", () => {
  assert.throws(() => tensor(['a', 'b'] as unknown as number[]), {
    name: 'TypeError', message: "tensor(): elements must be numbers or booleans, got the string 'a' at flat index 0; convert the data first (e.g. Number(x)), or use a TypedArray",
  });
  assert.throws(() => tensor([[1, 2], [3, null]] as unknown as number[][]), /got null at flat index 3/);
});

test('setNumThreads refuses counts outside the one thread rule (1 to 4 per core)', () => {
  const max = 4 * os.availableParallelism();
  for (const bad of [0, -1, 1e5, max + 1, 1.5, NaN]) {
    assert.throws(() => setNumThreads(bad), (e: Error) => e instanceof RangeError &&
      e.message.startsWith(`setNumThreads: the thread count must be an integer from 1 to ${max}`), String(bad));
  }
});

test('setNumThreads / getNumThreads round trip', () => {
  const previous = getNumThreads();
  setNumThreads(1);
  assert.equal(getNumThreads(), 1);
  setNumThreads(previous);
  assert.equal(getNumThreads(), previous);
});

test('memory counters count live tensors and owned bytes; views own no bytes', () => {
  const base = memory();
  const t = zeros([256], { dtype: 'float64' });
  const v = t.view([16, 16]);
  const m = memory();
  assert.equal(m.liveTensors - base.liveTensors, 2);
  assert.equal(m.liveBytes - base.liveBytes, 2048);
  assert.ok(m.createdTensors - base.createdTensors >= 2);
  assert.ok(m.rss > 0);
  v.dispose();
  assert.equal(memory().liveBytes - base.liveBytes, 2048);
  t.dispose();
  assert.equal(memory().liveTensors, base.liveTensors);
  assert.equal(memory().liveBytes, base.liveBytes);
});

// Snapshot semantics of data() and storage accounting in native/core/tensor.cc.
test('data() returns the values at call time, not those of a later in-place write', async () => {
  const t = tensor([1, 2, 3]);
  const pending = t.data();
  t.add_(10);
  const values = Array.from((await pending) as Float32Array);
  t.dispose();
  assert.deepEqual(values, [1, 2, 3]);
});

test('liveBytes counts a shared storage once (grad reads, detach, no-op contiguous)', () => {
  const x = zeros([1024]);
  const base = memory().liveBytes;
  const aliases = [x.detach(), x.contiguous(), x.detach()];
  const grown = memory().liveBytes - base;
  for (const a of aliases) a.dispose();
  x.dispose();
  assert.equal(grown, 0);
});
