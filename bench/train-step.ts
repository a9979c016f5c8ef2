/**
 * Seconds per training step (forward, cross-entropy, backward, SGD step) of registered models on
 * random data at their default input size: the quick probe behind docs/benchmarks.md's LA-layer
 * and window-attention tables. Median of the last 4 of 6 steps; wall time, so compare models
 * within one run.
 *
 *   npm run build:ts && node dist/bench/train-step.js resnet_nano la_resnet_nano [--batch-size 128]
 */
import { parseArgs } from 'node:util';
import { createModel, modelInfo } from '../src/models/registry.js';
import { SGD } from '../src/optim/index.js';
import { manualSeed, randint, randn } from '../src/tensor/creation.js';
import { flushFinalizers } from '../src/tensor/memory.js';
import { scope } from '../src/tensor/scope.js';
import { trainStep } from '../src/train/classifier-loop.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'batch-size': { type: 'string', default: '128' } } });
const batchSize = Number(values['batch-size']);
for (const name of positionals) {
  const info = modelInfo(name);
  manualSeed(0);
  const model = createModel(name);
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const batch = { images: randn([batchSize, info.inChannels, info.inputSize, info.inputSize]), labels: randint(0, info.numClasses, [batchSize]) };
  model.train();
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const start = performance.now();
    {
      using _ = scope();
      trainStep(model, optimizer, batch);
    }
    await flushFinalizers();
    if (i >= 2) times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  const ms = (times[1] + times[2]) / 2;
  console.log(`${name}: ${ms.toFixed(0)} ms/step at batch ${batchSize}, ${((batchSize / ms) * 1000).toFixed(0)} images/s`);
  batch.images.dispose();
  batch.labels.dispose();
  optimizer.dispose();
  model.dispose();
}
