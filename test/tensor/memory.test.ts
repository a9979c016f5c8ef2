/**
 * memory()'s allocator statistics (native/core/memory_stats.cc): exact byte counts of libtorch's
 * CPU allocations, current and peak since resetPeakMemory(), and the cache of freed large blocks
 * (reuse by size class, the limit, emptyCache()).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { zeros } from '../../src/tensor/creation.js';
import { emptyCache, memory, resetPeakMemory, setCpuCacheLimit } from '../../src/tensor/memory.js';
import { tidy } from '../../src/tensor/scope.js';

test('a tensor adds exactly its bytes, and dispose() returns them', () => {
  const before = memory();
  const t = zeros([250, 1000]);                     // float32: 1 000 000 bytes
  const during = memory();
  assert.equal(during.allocatedBytes - before.allocatedBytes, 1_000_000);
  assert.equal(during.allocations - before.allocations, 1);
  const d = zeros([3, 5], { dtype: 'float64' });    // 120 bytes
  assert.equal(memory().allocatedBytes - during.allocatedBytes, 120);
  d.dispose();
  t.dispose();
  assert.equal(memory().allocatedBytes, before.allocatedBytes);
});

test('the peak is the most held since resetPeakMemory(), freed tensors included', () => {
  const a = zeros([1000, 100]);                     // 400 000 bytes
  resetPeakMemory();
  const base = memory();
  assert.equal(base.peakAllocatedBytes, base.allocatedBytes, 'reset sets the peak to what is held now');
  const b = a.neg();                                // + 400 000
  const c = b.neg();                                // + 400 000
  b.dispose();
  c.dispose();
  const after = memory();
  assert.equal(after.allocatedBytes, base.allocatedBytes);
  assert.equal(after.peakAllocatedBytes - base.allocatedBytes, 800_000);
  resetPeakMemory();
  assert.equal(memory().peakAllocatedBytes, base.allocatedBytes);
  a.dispose();
});

test('intermediates a scope frees still count toward the peak', () => {
  const x = zeros([64, 64, 8]);                     // 131 072 bytes
  resetPeakMemory();
  const base = memory().allocatedBytes;
  const z = tidy(() => x.add(x).mul(x).neg());     // x+x and (x+x)·x freed by the scope
  assert.equal(memory().allocatedBytes - base, 131_072);
  assert.equal(memory().peakAllocatedBytes - base, 3 * 131_072);
  z.dispose();
  x.dispose();
});

test('a freed block of ≥ 1 MiB is cached and serves the next request of its size class', () => {
  emptyCache();
  const before = memory();
  const big = zeros([1000, 1000]);                   // 4 000 000 bytes: class 4 194 304 (4 MiB)
  assert.equal(memory().allocatedBytes - before.allocatedBytes, 4_000_000, 'requested bytes are counted, not the class');
  big.dispose();
  assert.equal(memory().cachedBytes, 4_194_304);
  assert.equal(memory().allocatedBytes, before.allocatedBytes);
  const again = zeros([1024, 1000]);                 // 4 096 000 bytes: the same class, the cached block
  assert.equal(memory().cachedBytes, 0);
  assert.equal((again.sum().item() as number), 0, 'a reused block holds what the op wrote');
  again.dispose();
  const small = zeros([100, 100]);                   // 40 000 bytes: below 1 MiB, never cached
  small.dispose();
  assert.equal(memory().cachedBytes, 4_194_304);
  emptyCache();
  assert.equal(memory().cachedBytes, 0);
});

test('setCpuCacheLimit bounds the cache (0 turns it off) and rejects bad limits', () => {
  try {
    setCpuCacheLimit(5_000_000);
    const [a, b] = [zeros([1000, 1000]), zeros([1000, 1000])];
    a.dispose();
    b.dispose();                                     // a second 4 MiB block would exceed 5 MB
    assert.equal(memory().cachedBytes, 4_194_304);
    setCpuCacheLimit(0);
    assert.equal(memory().cachedBytes, 0, 'setting a limit empties the cache');
    zeros([1000, 1000]).dispose();
    assert.equal(memory().cachedBytes, 0);
    assert.throws(() => setCpuCacheLimit(-1), /setCpuCacheLimit: bytes must be a finite number ≥ 0, got -1; pass 0 to turn the cache off/);
    assert.throws(() => setCpuCacheLimit(Number.NaN), /got NaN/);
  } finally {
    setCpuCacheLimit(2 ** 32);
  }
});

test('an allocation that fails empties the cache before it gives up, and says how much it asked for', () => {
  zeros([1000, 1000]).dispose();
  assert.equal(memory().cachedBytes, 4_194_304);
  assert.throws(() => zeros([2 ** 40]), /can't allocate memory: you tried to allocate 4398046511104 bytes/);
  assert.equal(memory().cachedBytes, 0);
});
