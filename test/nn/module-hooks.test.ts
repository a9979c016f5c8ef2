/** Forward hooks with torch semantics: order, prepend, replacement of input and output, removal, submodules. */
import assert from 'node:assert/strict';
import test from 'node:test';
import { Linear, Module, ReLU, Sequential } from '../../src/nn/index.js';
import { manualSeed, tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';

function model(): Sequential {
  manualSeed(0);
  return Sequential.fromEntries([['fc1', new Linear({ inFeatures: 2, outFeatures: 3 })], ['act', new ReLU()], ['fc2', new Linear({ inFeatures: 3, outFeatures: 1 })]]);
}
const values = (t: unknown) => Array.from((t as Tensor).dataSync() as Float32Array);

test('hooks run in order (prepend first), see args and output, and stop after remove()', () => {
  const m = model();
  const calls: string[] = [];
  const fc1 = m.getSubmodule('fc1');
  const h1 = fc1.registerForwardHook((mod, args, out) => {
    assert.equal(mod, fc1);
    assert.deepEqual((args[0] as Tensor).shape, [4, 2]);
    assert.deepEqual((out as Tensor).shape, [4, 3]);
    calls.push('post1');
  });
  const h2 = fc1.registerForwardHook(() => { calls.push('post2'); });
  const h0 = fc1.registerForwardHook(() => { calls.push('post0'); }, { prepend: true });
  const p1 = fc1.registerForwardPreHook(() => { calls.push('pre1'); });
  tidy(() => m.forward(tensor([[1, 2], [3, 4], [5, 6], [7, 8]])));
  assert.deepEqual(calls, ['pre1', 'post0', 'post1', 'post2']);
  calls.length = 0;
  h1.remove();
  h1.remove();   // a second remove is a no-op
  tidy(() => m.forward(tensor([[1, 2]])));
  assert.deepEqual(calls, ['pre1', 'post0', 'post2']);
  for (const h of [h0, h2, p1]) h.remove();
  assert.equal(Object.prototype.hasOwnProperty.call(fc1, 'forward'), false, 'the last remove() puts the class forward back');
  m.dispose();
});

test('a pre-hook may replace the input and a hook the output', () => {
  const m = model();
  tidy(() => {
    const x = tensor([[1, -2], [0.5, 3]]);
    const plain = values(m.forward(x));
    const doubled = values(m.forward(x.mul(2)));
    const pre = m.getSubmodule('fc1').registerForwardPreHook((_m, [input]) => (input as Tensor).mul(2));
    assert.deepEqual(values(m.forward(x)), doubled);
    pre.remove();
    const zero = m.getSubmodule('act').registerForwardHook((_m, _a, out) => (out as Tensor).mul(0));
    const bias = values((m.getSubmodule('fc2') as Linear).bias!);
    assert.deepEqual(values(m.forward(x)), [bias[0], bias[0]]);
    zero.remove();
    assert.deepEqual(values(m.forward(x)), plain);
  });
  m.dispose();
});

test('the same function registered twice runs twice; a hook on the root sees the model input', () => {
  const m = model();
  let n = 0;
  const f = () => { n++; };
  const a = m.registerForwardHook(f);
  const b = m.registerForwardHook(f);
  tidy(() => m.forward(tensor([[1, 1]])));
  assert.equal(n, 2);
  a.remove();
  b.remove();
  assert.throws(() => m.registerForwardHook(42 as unknown as () => void), /a forward hook must be a function/);
  assert.throws(() => m.getSubmodule('fc1.weight'), /Linear has no child 'weight'/);
  assert.ok(m.getSubmodule('') instanceof Module);
  m.dispose();
});

test('hooks are typed by the module: a Linear hook gets [Tensor] and a Tensor, with no casts', () => {
  manualSeed(0);
  const fc = new Linear({ inFeatures: 2, outFeatures: 2 });
  tidy(() => {
    // `x` and `out` are Tensors here (ForwardInput/ForwardOutput of Linear = Module<[Tensor], Tensor>).
    const pre = fc.registerForwardPreHook((_m, [x]) => x.mul(0));
    const post = fc.registerForwardHook((_m, [x], out) => out.add(x));
    const input = tensor([[1, 2]]);
    // The pre-hook zeroes the input, so fc gives its bias; the hook then adds the (zeroed) input.
    assert.deepEqual(values(fc.forward(input)), values(fc.bias!));
    pre.remove();
    post.remove();
  });
  fc.dispose();
});
