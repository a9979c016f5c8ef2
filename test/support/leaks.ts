/**
 * Leak checks for tests (architecture.md, "Memory": zero live tensors after each scope).
 *
 *   assertNoLeaks(() => { ... });                       // sync
 *   await assertNoLeaks(async () => { ... });           // async, the scope spans await
 *   test('op', (t) => withLeakCheck(t, () => { ... }));
 *
 * fn runs inside tidy() and its result is dropped, so every tensor it makes through the scopes is
 * disposed; what remains alive afterwards escaped the scopes (keep() without dispose(), a native
 * path that bypasses the Tensor constructor, ...). Finalizers of unrelated garbage can lower the
 * counter meanwhile, so only an increase counts.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { memory } from '../../src/tensor/memory.js';
import { tidy } from '../../src/tensor/scope.js';

function check(before: number, label: string | undefined): void {
  const after = memory().liveTensors;
  assert.ok(after <= before,
    `${label ? `${label}: ` : ''}${after - before} tensor(s) leaked (live tensors ${before} before, ${after} after)`);
}

/** Runs fn in a tidy scope and fails if live tensors increased; async fns return a Promise. */
export function assertNoLeaks(fn: () => Promise<unknown>, label?: string): Promise<void>;
export function assertNoLeaks(fn: () => unknown, label?: string): void;
export function assertNoLeaks(fn: () => unknown, label?: string): void | Promise<void> {
  const before = memory().liveTensors;
  let isAsync = false;
  const result = tidy(() => {
    const r = fn();
    if (r instanceof Promise) {
      isAsync = true;
      return r.then(() => undefined); // resolve to nothing: no tensor survives the scope
    }
    return undefined;
  });
  if (isAsync) return (result as Promise<undefined>).then(() => check(before, label));
  check(before, label);
}

/** assertNoLeaks labelled with the test's name: `test('x', (t) => withLeakCheck(t, () => ...))`. */
export function withLeakCheck(t: TestContext, fn: () => Promise<unknown>): Promise<void>;
export function withLeakCheck(t: TestContext, fn: () => unknown): void;
export function withLeakCheck(t: TestContext, fn: () => unknown): void | Promise<void> {
  return assertNoLeaks(fn, t.name);
}
