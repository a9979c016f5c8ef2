/**
 * Seconds per training step (forward, cross-entropy, backward, SGD step) of registered models on
 * random data at their default input size, and MAC-throughput (images/s × MACs per image, the
 * papers' MACs from the registry) relative to the first model named — issue 9's yardstick with
 * resnet_nano first. Median of the last 4 of 6 steps; wall time, so compare models within one run.
 *
 *   npm run build:ts && node dist/bench/train-step.js resnet_nano la_resnet_nano [--batch-size 128]
 *                                                     [--kernels auto|composite]
 *
 * --kernels composite runs the models without the fused kernels (src/ops/fused.ts), as in
 * bench/layers.ts.
 */
import { parseArgs } from 'node:util';
import { createModel, modelInfo } from '../src/models/registry.js';
import { manualSeed } from '../src/tensor/creation.js';
import { setKernelMode, type KernelMode } from '../src/ops/fused.js';
import { medianStepSeconds } from './step-time.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { 'batch-size': { type: 'string', default: '128' }, kernels: { type: 'string', default: 'auto' } },
});
const batchSize = Number(values['batch-size']);
setKernelMode(values.kernels as KernelMode);
let baseline: { name: string; macsPerSecond: number } | null = null;
for (const name of positionals) {
  const info = modelInfo(name);
  manualSeed(0);
  const model = createModel(name);
  const ms = 1000 * await medianStepSeconds(model, [batchSize, info.inChannels, info.inputSize, info.inputSize], info.numClasses);
  const imagesPerSecond = (batchSize / ms) * 1000;
  const macsPerSecond = imagesPerSecond * info.macs;
  baseline ??= { name, macsPerSecond };
  console.log(`${name}: ${ms.toFixed(0)} ms/step at batch ${batchSize}, ${imagesPerSecond.toFixed(0)} images/s, ` +
    `${(info.macs / 1e6).toFixed(1)} M MACs/image, MAC-throughput ${(macsPerSecond / baseline.macsPerSecond).toFixed(2)}× ${baseline.name}'s`);
  model.dispose();
}
