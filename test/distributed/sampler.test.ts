/** DistributedSampler: torch's semantics, and W ranks at batch b == one process at batch W·b. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LOADER_RNG_TAGS } from '../../src/data/loader.js';
import { permutation } from '../../src/data/rng.js';
import { DistributedSampler } from '../../src/distributed/sampler.js';

test('shards are disjoint, equally long, padded from the start, reshuffled per epoch', () => {
  const count = 10;
  const shards = [0, 1, 2].map((rank) => new DistributedSampler({ count, rank, worldSize: 3, seed: 5 }));
  assert.deepEqual(shards.map((s) => s.length), [4, 4, 4]);
  const epoch0 = shards.map((s) => Array.from(s.indices(0)));
  const order = Array.from(permutation(count, 5, 0, LOADER_RNG_TAGS.order));
  const padded = [...order, ...order.slice(0, 2)];
  assert.deepEqual(epoch0, [0, 1, 2].map((r) => padded.filter((_, i) => i % 3 === r)));
  assert.deepEqual(new Set(epoch0.flat()), new Set(order));  // every image, the 2 pads repeated
  assert.notDeepEqual(Array.from(shards[0].indices(1)), epoch0[0]);
  assert.deepEqual(Array.from(shards[0].indices(0)), epoch0[0]);  // deterministic
});

test('dropLast cuts to a multiple of the world size; shuffle false keeps dataset order', () => {
  const s = new DistributedSampler({ count: 10, rank: 1, worldSize: 3, shuffle: false, dropLast: true });
  assert.equal(s.length, 3);
  assert.deepEqual(Array.from(s.indices(0)), [1, 4, 7]);
  assert.throws(() => new DistributedSampler({ count: 10, rank: 3, worldSize: 3 }), /rank must be an integer in \[0, 3\)/);
});

test('2 ranks at batch 4 see, batch by batch, the images 1 process sees at batch 8', () => {
  const count = 40;
  const one = new DistributedSampler({ count, rank: 0, worldSize: 1, seed: 3 }).indices(2);
  // One rank is the DataLoader's own shuffled order.
  assert.deepEqual(Array.from(one), Array.from(permutation(count, 3, 2, LOADER_RNG_TAGS.order)));
  const ranks = [0, 1].map((rank) => new DistributedSampler({ count, rank, worldSize: 2, seed: 3 }).indices(2));
  for (let k = 0; k < count / 8; k++) {
    const together = [...ranks[0].slice(4 * k, 4 * k + 4), ...ranks[1].slice(4 * k, 4 * k + 4)].sort((a, b) => a - b);
    assert.deepEqual(together, Array.from(one.slice(8 * k, 8 * k + 8)).sort((a, b) => a - b));
  }
});
