/**
 * The foundation's smoke test: a small convnet trained for 2 epochs on the bundled Fashion-MNIST
 * subset reaches > 80% test accuracy. Its time (about 10 s on an idle 2-core machine) is printed,
 * never asserted: a loaded machine must not fail a test (benchmarks live in bench/).
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { ImageBatches } from '../../src/data/image-batches.js';
import { SmallConvNet } from '../../src/models/small-convnet.js';
import { SGD } from '../../src/optim/index.js';
import { manualSeed } from '../../src/tensor/creation.js';
import { memory } from '../../src/tensor/memory.js';
import { evaluate, trainEpoch } from '../../src/train/classifier-loop.js';

const MEAN = [0.286];
const STD = [0.353];
test('a small convnet reaches > 80% on the bundled Fashion-MNIST subset in 2 epochs', async (t) => {
  const [trainSplit, testSplit] = await Promise.all([
    loadFashionMnist({ split: 'train', source: 'subset' }),
    loadFashionMnist({ split: 'test', source: 'subset' }),
  ]);
  assert.equal(trainSplit.count, 10_000);
  const started = Date.now();
  manualSeed(0);
  const model = new SmallConvNet();
  const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  const train = new ImageBatches(trainSplit, { batchSize: 64, shuffle: true, seed: 0, mean: MEAN, std: STD });
  const evalBatches = new ImageBatches(testSplit, { batchSize: 500, mean: MEAN, std: STD });
  const liveBefore = memory().liveTensors;
  let result = await evaluate(model, evalBatches.epoch());
  const epochs = 2;
  for (let epoch = 0; epoch < epochs; epoch++) {
    await trainEpoch(model, optimizer, train.epoch(epoch));
    result = await evaluate(model, evalBatches.epoch());
  }
  const seconds = (Date.now() - started) / 1000;
  t.diagnostic(`test top-1 ${(100 * result.top1).toFixed(2)}% after ${seconds.toFixed(1)} s`);
  assert.ok(result.top1 > 0.8, `top-1 ${result.top1} ≤ 0.80`);
  // Only the optimizer's momentum buffers (one per parameter) outlive the steps. (The count can
  // also drop: the GC may collect tensors made before liveBefore was read.)
  assert.ok(memory().liveTensors - liveBefore <= model.parameters().length, 'tensors leaked from training steps');
  optimizer.dispose();
  train.dispose();
  evalBatches.dispose();
  model.dispose();
});

test('evaluate: NaN outputs are counted as non-finite and score NaN, not chance-level hits', async () => {
  const { full, tensor } = await import('../../src/tensor/creation.js');
  const batches = [0, 1].map(() => ({ images: full([4, 1, 2, 2], 0), labels: tensor([0, 1, 2, 3], { dtype: 'int64' }) }));
  let calls = 0;
  // Outputs: the first batch all NaN, the second finite but for one row.
  const model = {
    eval() { /* no layers */ },
    forward: () => (calls++ === 0 ? full([4, 10], NaN) : tensor([[1, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
      [0, 0, 1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0, Infinity, 0, 0, 0, 0, 0, 0]])),
  } as unknown as Parameters<typeof evaluate>[0];
  const r = await evaluate(model, batches);
  assert.deepEqual(r, { loss: NaN, top1: NaN, top5: NaN, count: 8, nonFinite: 5 });
});
