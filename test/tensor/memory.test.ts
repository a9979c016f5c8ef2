/**
 * memory()'s allocator statistics (native/core/memory_stats.cc): exact byte counts of libtorch's
 * CPU allocations, current and peak since resetPeakMemory().
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { zeros } from '../../src/tensor/creation.js';
import { memory, resetPeakMemory } from '../../src/tensor/memory.js';
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
