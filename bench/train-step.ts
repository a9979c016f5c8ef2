/**
 * Seconds per training step (forward, cross-entropy, backward, SGD step) of registered models on
 * random data at their default input size, and MAC-throughput (images/s × MACs per image, the
 * papers' MACs from the registry) relative to the first model named — issue 9's yardstick with
 * resnet_nano first. Each other model is timed in alternation with the first (a step of each per
 * round, 5 rounds after 2 warm-up ones: step-time.ts pairedStepSeconds), so each ratio compares
 * the two under the same machine state; the first model's time is printed per pairing.
 *
 *   npm run build:ts && node dist/bench/train-step.js resnet_nano la_resnet_nano [--batch-size 128]
 *                                                     [--kernels auto|composite] [--conv-twins]
 *
 * --kernels composite runs the models without the fused kernels (src/ops/fused.ts), as in
 * bench/layers.ts. --conv-twins also times the plain-convolution twins of the bottleneck nano
 * layouts (each attention layer a 3×3 conv, MACs counted by countMacs): what the same network
 * reaches without attention, the ceiling its attention layers are measured against.
 */
import { parseArgs } from 'node:util';
import { countMacs } from '../src/analysis/macs.js';
import { createModel, modelInfo, type Classifier } from '../src/models/registry.js';
import { HALONET_NANO, haloNet } from '../src/models/entries/halonet.js';
import { resnetFamily } from '../src/models/resnet-family.js';
import { manualSeed } from '../src/tensor/creation.js';
import { setKernelMode, type KernelMode } from '../src/ops/fused.js';
import { medianStepSeconds, pairedStepSeconds } from './step-time.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'batch-size': { type: 'string', default: '128' },
    kernels: { type: 'string', default: 'auto' },
    'conv-twins': { type: 'boolean', default: false },
  },
});
const batchSize = Number(values['batch-size']);
setKernelMode(values.kernels as KernelMode);

interface Candidate {
  name: string;
  build: () => Classifier;
  /** MACs per image, or null to count them. */
  macs: number | null;
  inChannels: number;
  inputSize: number;
  numClasses: number;
}

const nano = { numClasses: 10, inChannels: 1, inputSize: 28 };
const CONV_TWINS: Candidate[] = [
  {
    name: 'conv twin of sasa/na_resnet_nano (bottlenecks [1, 1, 1, 1], planes 32–256)', macs: null, ...nano,
    build: () => resnetFamily({ depths: [1, 1, 1, 1], stem: 'cifar', stemWidth: 32, widths: [32, 64, 128, 256], ...nano }),
  },
  {
    name: 'conv twin of lesa_resnet_nano (bottlenecks [1, 1, 2, 2], widths 16–128)', macs: null, ...nano,
    build: () => resnetFamily({ depths: [1, 1, 2, 2], widths: [16, 32, 64, 128], stem: 'cifar', stemWidth: 32, stageStrides: [1, 2, 2, 1], ...nano }),
  },
  {
    name: 'conv twin of halonet_nano (every stage a conv stage)', macs: null, ...nano,
    build: () => haloNet({ ...HALONET_NANO, convStages: 4, ...nano }),
  },
];

const candidates: Candidate[] = positionals.map((name) => {
  const info = modelInfo(name);
  return { name, build: () => createModel(name), macs: info.macs, inChannels: info.inChannels, inputSize: info.inputSize, numClasses: info.numClasses };
});
if (values['conv-twins']) candidates.push(...CONV_TWINS);

const [first, ...others] = candidates;
if (first === undefined) throw new Error('train-step: name at least one model (the baseline first, e.g. resnet_nano)');
manualSeed(0);
const base = first.build();
const baseMacs = first.macs ?? countMacs(base, [1, first.inChannels, first.inputSize, first.inputSize]).total;
const inputOf = (c: Candidate): [number, number, number, number] => [batchSize, c.inChannels, c.inputSize, c.inputSize];
const report = (name: string, ms: number, macs: number, ratio: number, note = ''): void => {
  const imagesPerSecond = (batchSize / ms) * 1000;
  console.log(`${name}: ${ms.toFixed(0)} ms/step at batch ${batchSize}, ${imagesPerSecond.toFixed(0)} images/s, ` +
    `${(macs / 1e6).toFixed(1)} M MACs/image, MAC-throughput ${ratio.toFixed(2)}× ${first.name}'s${note}`);
};
if (others.length === 0) report(first.name, 1000 * await medianStepSeconds(base, inputOf(first), first.numClasses), baseMacs, 1);
for (const c of others) {
  manualSeed(0);
  const model = c.build();
  const macs = c.macs ?? countMacs(model, [1, c.inChannels, c.inputSize, c.inputSize]).total;
  const [baseSeconds, seconds] = await pairedStepSeconds(
    { model: base, input: inputOf(first), numClasses: first.numClasses }, { model, input: inputOf(c), numClasses: c.numClasses });
  const ratio = (macs / seconds) / (baseMacs / baseSeconds);
  report(c.name, 1000 * seconds, macs, ratio, ` (${first.name} ${(1000 * baseSeconds).toFixed(0)} ms in the same rounds)`);
  model.dispose();
}
base.dispose();
