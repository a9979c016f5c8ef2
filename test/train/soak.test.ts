/**
 * Memory soak (architecture.md, "Memory"): 2,000 training steps of a small network keep the
 * live-tensor count constant and the resident set bounded.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { Linear, ReLU, Sequential } from '../../src/nn/index.js';
import * as F from '../../src/ops/functional.js';
import { SGD } from '../../src/optim/index.js';
import { randint, randn } from '../../src/tensor/creation.js';
import { flushFinalizers, memory } from '../../src/tensor/memory.js';
import { scope } from '../../src/tensor/scope.js';

test('2,000 training steps: live tensors constant, RSS bounded', async (t) => {
  const model = new Sequential(new Linear({ inFeatures: 64, outFeatures: 128 }), new ReLU(), new Linear({ inFeatures: 128, outFeatures: 10 }));
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const step = (i: number) => {
    using _ = scope();
    const x = randn([32, 64], { seed: i });
    const y = randint(0, 10, [32], { seed: i });
    const loss = F.crossEntropy(model.forward(x), y);
    optimizer.zeroGrad();
    loss.backward();
    optimizer.step();
  };
  // As a data loader would, the loop awaits between steps: Node runs native finalizers then.
  for (let i = 0; i < 200; i++) {
    step(i);
    await flushFinalizers();
  }
  const live = memory().liveTensors;
  const rss = memory().rss;
  for (let i = 200; i < 2000; i++) {
    step(i);
    await flushFinalizers();
  }
  const after = memory();
  t.diagnostic(`live tensors ${live} → ${after.liveTensors}; RSS ${(rss / 2 ** 20).toFixed(1)} → ${(after.rss / 2 ** 20).toFixed(1)} MiB`);
  assert.equal(after.liveTensors, live);
  assert.ok(after.rss - rss < 16 * 2 ** 20, `RSS grew by ${((after.rss - rss) / 2 ** 20).toFixed(1)} MiB`);
  optimizer.dispose();
  model.dispose();
});
