/**
 * The kernels' thread-count determinism checks: run the same computation at 1 and at 2 intra-op
 * threads and compare, restoring the caller's thread count whatever happens.
 */
import assert from 'node:assert/strict';
import { getNumThreads, setNumThreads } from '../../src/tensor/memory.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/** run()'s results at 1 and at 2 threads. */
export function atOneAndTwoThreads<T>(run: () => T): [T, T] {
  const threads = getNumThreads();
  try {
    setNumThreads(1);
    const one = run();
    setNumThreads(2);
    return [one, run()];
  } finally {
    setNumThreads(threads);
  }
}

/** Asserts that every tensor run() returns has the same bits at 1 and at 2 threads. */
export function assertSameBitsAtOneAndTwoThreads(run: () => Tensor[], label = ''): void {
  const [one, two] = atOneAndTwoThreads(run);
  assert.equal(one.length, two.length);
  one.forEach((t, i) => assert.ok(t.equal(two[i]), `${label}output ${i} differs between 1 and 2 threads`));
}
