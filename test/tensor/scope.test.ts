/**
 * Scopes (src/tensor/scope.ts): tidy (sync and async) keeps exactly the returned tensors —
 * including those nested in arrays, plain objects and Maps — and disposes the rest; `using
 * s = scope()`; keep(); nested scopes hand survivors to their parent; errors still clean up;
 * concurrent async scopes stay apart; Parameters are never scoped; counters return to baseline.
 */
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { test } from 'node:test';
import { parameter } from '../../src/nn/parameter.js';
import { ones, randn, zeros } from '../../src/tensor/creation.js';
import { memory } from '../../src/tensor/memory.js';
import { currentScope, keep, scope, tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks, withLeakCheck } from '../support/leaks.js';

const live = () => memory().liveTensors;

test('tidy disposes every intermediate and keeps the returned tensor', () => {
  const base = memory();
  let intermediate: Tensor | undefined;
  const y = tidy(() => {
    const x = ones([4]);
    intermediate = x.mul(2);
    return intermediate.add(1);
  });
  assert.equal(intermediate!.disposed, true);
  assert.equal(y.disposed, false);
  assert.deepEqual(y.toArray(), [3, 3, 3, 3]);
  assert.equal(live() - base.liveTensors, 1);
  assert.equal(memory().liveBytes - base.liveBytes, 16);
  y.dispose();
  assert.equal(live(), base.liveTensors);
  assert.equal(memory().liveBytes, base.liveBytes);
});

test('tidy keeps tensors nested in arrays, plain objects and Maps, and nothing else', () => {
  const base = live();
  let dropped: Tensor | undefined;
  const out = tidy(() => {
    dropped = zeros([1]);
    const m = new Map<string, Tensor>([['m', ones([1])]]);
    return { a: [zeros([2]), [ones([3])]], b: { c: zeros([4]) }, m, n: 3, s: 'x' };
  });
  assert.equal(dropped!.disposed, true);
  const kept = [out.a[0] as Tensor, (out.a[1] as Tensor[])[0], out.b.c, out.m.get('m')!];
  assert.ok(kept.every((t) => !t.disposed));
  assert.equal(live() - base, 4);
  for (const t of kept) t.dispose();
  assert.equal(live(), base);
});

test('tidy returning a non-tensor disposes everything; returning an input keeps it alive', () => {
  const base = live();
  const x = ones([2]);
  const n = tidy(() => x.mul(3).sum().item());
  assert.equal(n, 6);
  const same = tidy(() => { x.add(1); return x; });
  assert.equal(same, x);
  assert.equal(x.disposed, false);
  assert.equal(live() - base, 1);
  x.dispose();
});

test('async tidy spans await and disposes when the promise settles', async () => {
  const base = live();
  let inner: Tensor | undefined;
  const pending = tidy(async () => {
    inner = ones([2]);
    await tick();
    const a = inner.mul(2); // made after an await: still in this scope
    await tick();
    assert.equal(inner.disposed, false, 'alive until the scope ends');
    return { a };
  });
  const { a } = await pending;
  assert.equal(inner!.disposed, true);
  assert.deepEqual(a.toArray(), [2, 2]);
  assert.equal(live() - base, 1);
  a.dispose();
});

test('tidy cleans up when fn throws or its promise rejects', async () => {
  const base = live();
  let made: Tensor | undefined;
  assert.throws(() => tidy(() => { made = ones([3]); throw new Error('boom'); }), /boom/);
  assert.equal(made!.disposed, true);
  await assert.rejects(tidy(async () => { made = ones([3]); await tick(); throw new Error('late boom'); }), /late boom/);
  assert.equal(made!.disposed, true);
  assert.equal(live(), base);
});

test('concurrent async tidies keep their own tensors apart', async () => {
  const base = live();
  const task = (value: number) => tidy(async () => {
    const mine: Tensor[] = [];
    for (let i = 0; i < 3; i++) {
      mine.push(ones([1]).mul(value));
      await tick();
    }
    return mine[2];
  });
  const [a, b] = await Promise.all([task(2), task(5)]);
  assert.deepEqual([a.item(), b.item()], [2, 5]);
  assert.equal(live() - base, 2);
  a.dispose();
  b.dispose();
});

test('nested tidies hand the inner survivors to the parent, which disposes them unless it returns them', () => {
  const base = live();
  let handed: Tensor | undefined;
  const outer = tidy(() => {
    handed = tidy(() => ones([2]).mul(2));
    const returned = tidy(() => ones([2]).mul(3));
    assert.equal(handed.disposed, false);
    return returned;
  });
  assert.equal(handed!.disposed, true, 'the parent owned it and did not return it');
  assert.deepEqual(outer.toArray(), [3, 3]);
  assert.equal(live() - base, 1);
  outer.dispose();
});

test('`using s = scope()` disposes at the end of the block and restores the parent scope', () => {
  const base = live();
  let made: Tensor | undefined;
  const outerScope = currentScope();
  {
    using s = scope();
    assert.equal(currentScope(), s);
    made = ones([2]).add(1);
    assert.equal(made.disposed, false);
  }
  assert.equal(made.disposed, true);
  assert.equal(currentScope(), outerScope);
  assert.equal(live(), base);
});

test('`using` inside tidy nests: the block\'s tensors die with the block', () => {
  const base = live();
  const result = tidy(() => {
    let inBlock: Tensor;
    {
      using _s = scope();
      inBlock = ones([1]);
    }
    assert.equal(inBlock.disposed, true);
    return zeros([1]);
  });
  assert.equal(live() - base, 1);
  result.dispose();
});

test('`using` in an async function spans await', async () => {
  const base = live();
  let made: Tensor | undefined;
  await (async () => {
    using _s = scope();
    made = ones([1]);
    await tick();
    assert.equal(made.disposed, false);
  })();
  assert.equal(made!.disposed, true);
  assert.equal(live(), base);
});

test('keep() exempts a tensor from every enclosing scope until disposed by hand', () => {
  const base = live();
  let kept: Tensor | undefined;
  tidy(() => {
    tidy(() => {
      kept = keep(ones([2]).mul(4));
      assert.equal(kept.keep(), kept, 'Tensor.keep() returns this');
    });
  });
  assert.equal(kept!.disposed, false);
  assert.deepEqual(kept!.toArray(), [4, 4]);
  assert.equal(live() - base, 1);
  kept!.dispose();
  assert.equal(live(), base);
});

test('Parameters made inside a scope are not disposed by it', () => {
  const base = live();
  const p = tidy(() => {
    parameter(randn([3], { seed: 1 }));
    return 0;
  });
  assert.equal(p, 0);
  assert.equal(live() - base, 1, 'the Parameter alone survives');
  const q = tidy(() => {
    const param = parameter(randn([3], { seed: 1 }));
    return param;
  });
  assert.equal(q.requiresGrad, true);
  q.dispose();
});

test('tensors made outside any scope are untracked; Scope.end is idempotent', () => {
  assert.equal(currentScope(), undefined);
  const free = ones([1]);
  const s = scope();
  const inScope = ones([1]);
  s.end();
  s.end();
  s[Symbol.dispose]();
  assert.equal(inScope.disposed, true);
  assert.equal(free.disposed, false);
  free.dispose();
});

test('assertNoLeaks catches a kept tensor; withLeakCheck labels with the test name', (t) => {
  let leaked: Tensor | undefined;
  assert.throws(() => assertNoLeaks(() => { leaked = keep(ones([1])); }, 'demo'), /demo: 1 tensor\(s\) leaked/);
  leaked!.dispose();
  withLeakCheck(t, () => ones([5]).mul(2));
  assert.throws(() => withLeakCheck(t, () => { leaked = keep(zeros([1])); }), new RegExp(`${t.name.slice(0, 20).replace(/[()]/g, '.')}.*leaked`));
  leaked!.dispose();
});

test('a training-style loop with scopes keeps the live count flat', () => {
  const base = live();
  const w = keep(randn([8, 8], { seed: 2 }));
  for (let step = 0; step < 50; step++) {
    using _s = scope();
    const x = randn([4, 8], { seed: step });
    x.matmul(w).relu().sum().item();
  }
  assert.equal(live() - base, 1);
  w.dispose();
});
