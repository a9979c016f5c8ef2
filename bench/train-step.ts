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
import { manualSeed } from '../src/tensor/creation.js';
import { medianStepSeconds } from './step-time.js';

const { values, positionals } = parseArgs({ allowPositionals: true, options: { 'batch-size': { type: 'string', default: '128' } } });
const batchSize = Number(values['batch-size']);
for (const name of positionals) {
  const info = modelInfo(name);
  manualSeed(0);
  const model = createModel(name);
  const ms = 1000 * await medianStepSeconds(model, [batchSize, info.inChannels, info.inputSize, info.inputSize], info.numClasses);
  console.log(`${name}: ${ms.toFixed(0)} ms/step at batch ${batchSize}, ${((batchSize / ms) * 1000).toFixed(0)} images/s`);
  model.dispose();
}
