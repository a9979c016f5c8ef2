/**
 * docs/results.md: every family's `*_nano` model, the plain ResNet baseline and the LA-layer with
 * both aggregations, trained on full Fashion-MNIST under one shared budget, then evaluated on the
 * 10,000 test images.
 *
 * The budget is wall-clock training time (default 300 s per model, `--budget`), not epochs: the
 * families differ up to ~10× in cost per image on a CPU, so equal epochs would either starve the
 * cheap models or take hours for the window-attention ones. Each model's cosine schedule is sized
 * to the steps that fit its budget — the step time is measured first on a throw-away copy — and
 * capped at the recipe's epochs, so every run ends its schedule at lr 0 as a full run would.
 * Recipe: 'fashion-mnist-sgd' for all (what the nano entries name), seed 0, batch 128.
 *
 *   npm run build:ts && node dist/bench/results.js [--budget 300] [--models a,b] [--out docs/results.md]
 */
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { loadDataset } from '../src/data/load-dataset.js';
import { DataLoader } from '../src/data/loader.js';
import { createModel, modelInfo, type Classifier } from '../src/models/registry.js';
import { CosineSchedule, SGD, paramGroupsNoWeightDecay } from '../src/optim/index.js';
import { manualSeed, randint, randn } from '../src/tensor/creation.js';
import { flushFinalizers, getNumThreads } from '../src/tensor/memory.js';
import { scope } from '../src/tensor/scope.js';
import { disposeBatch, evaluate, trainStep } from '../src/train/classifier-loop.js';
import { evalTransform, trainTransform } from '../src/train/input-pipeline.js';
import { resolveRecipe } from '../src/train/recipes.js';
import type { ImageDataset } from '../src/data/dataset.js';

/** The runs: the baseline, then one nano per family; the LA-layer with both aggregations. */
const RUNS: { model: string; family: string }[] = [
  { model: 'resnet_nano', family: 'ResNet (baseline, 3×3 convs)' },
  { model: 'la_resnet_nano', family: 'LA-layer, normalized aggregation' },
  { model: 'la_resnet_nano_softmax', family: 'LA-layer, softmax aggregation' },
  { model: 'lesa_resnet_nano', family: 'LESA' },
  { model: 'lsag_nano', family: 'LSAG' },
  { model: 'halonet_nano', family: 'HaloNet' },
  { model: 'sasa_resnet_nano', family: 'SASA (7×7 windows)' },
  { model: 'na_resnet_nano', family: 'Neighbourhood attention (7×7)' },
];

const RECIPE = 'fashion-mnist-sgd';
const SEED = 0;

interface RunResult {
  model: string;
  family: string;
  params: number;
  macs: number;
  steps: number;
  epochs: number;
  trainSeconds: number;
  imagesPerSecond: number;
  evalSeconds: number;
  top1: number;
  top5: number;
  evalLoss: number;
}

const recipe = resolveRecipe(RECIPE);

function build(name: string): Classifier {
  return createModel(name, { numClasses: 10, inChannels: 1, inputSize: 28 });
}

/** Median seconds of one training step at the recipe's batch size, on random data and a copy. */
async function stepSeconds(name: string): Promise<number> {
  const model = build(name);
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const times: number[] = [];
  model.train();
  for (let i = 0; i < 6; i++) {
    const batch = { images: randn([recipe.batchSize, 1, 28, 28]), labels: randint(0, 10, [recipe.batchSize]) };
    const start = performance.now();
    {
      using _ = scope();
      trainStep(model, optimizer, batch);
    }
    if (i >= 2) times.push((performance.now() - start) / 1000);
    disposeBatch(batch);
    await flushFinalizers();
  }
  optimizer.dispose();
  model.dispose();
  return times.sort((a, b) => a - b)[Math.floor(times.length / 2)];
}

async function trainOne(run: (typeof RUNS)[number], train: ImageDataset, test: ImageDataset, budget: number): Promise<RunResult> {
  const perStep = await stepSeconds(run.model);
  const stepsPerEpoch = Math.floor(train.count / recipe.batchSize);
  const steps = Math.max(1, Math.min(Math.floor(budget / perStep), recipe.epochs * stepsPerEpoch));
  console.error(`${run.model}: ${perStep.toFixed(3)} s/step → ${steps} steps (${(steps / stepsPerEpoch).toFixed(2)} epochs)`);
  manualSeed(SEED);
  const model = build(run.model);
  const optimizer = new SGD(paramGroupsNoWeightDecay(model, recipe.weightDecay), { lr: recipe.lr, momentum: recipe.momentum, nesterov: recipe.nesterov });
  const warmupSteps = Math.min(Math.round(recipe.warmupEpochs * stepsPerEpoch), Math.floor(steps / 10));
  const schedule = new CosineSchedule({ optimizer, totalSteps: steps, warmupSteps, warmupStartLr: recipe.warmupLr, minLr: recipe.minLr });
  const loader = new DataLoader({
    dataset: train, transform: trainTransform(recipe, 'fashion-mnist', [28, 28], 1), batchSize: recipe.batchSize,
    shuffle: true, dropLast: true, seed: SEED, workers: 1,
  });
  let done = 0;
  const started = performance.now();
  model.train();
  for (let epoch = 0; done < steps; epoch++) {
    for await (const batch of loader.epoch(epoch)) {
      if (done < steps) {
        using _ = scope();
        trainStep(model, optimizer, batch, { labelSmoothing: recipe.labelSmoothing });
        schedule.step();
        done++;
      }
      disposeBatch(batch);
      await flushFinalizers();
      if (done >= steps) break;
    }
  }
  const trainSeconds = (performance.now() - started) / 1000;
  await loader.close();
  const evalLoader = new DataLoader({
    dataset: test, transform: evalTransform('fashion-mnist', [28, 28], 1), batchSize: 500, shuffle: false, seed: 0, workers: 1,
  });
  const evalStart = performance.now();
  const result = await evaluate(model, evalLoader.epoch(0));
  const evalSeconds = (performance.now() - evalStart) / 1000;
  await evalLoader.close();
  optimizer.dispose();
  model.dispose();
  const info = modelInfo(run.model);
  return {
    model: run.model, family: run.family, params: info.params, macs: info.macs, steps,
    epochs: (steps * recipe.batchSize) / train.count, trainSeconds, imagesPerSecond: (steps * recipe.batchSize) / trainSeconds,
    evalSeconds, top1: 100 * result.top1, top5: 100 * result.top5, evalLoss: result.loss,
  };
}

function markdown(results: RunResult[], budget: number, machine: string): string {
  const rows = results.map((r) =>
    `| \`${r.model}\` | ${r.family} | **${r.top1.toFixed(2)}** | ${r.top5.toFixed(2)} | ${r.epochs.toFixed(2)} | ${r.trainSeconds.toFixed(0)} | ` +
    `${r.imagesPerSecond.toFixed(0)} | ${(r.params / 1e6).toFixed(3)} M | ${(r.macs / 1e6).toFixed(1)} M |`);
  return [
    '# Results: the nano models on Fashion-MNIST',
    '',
    `Written by \`bench/results.ts\` (\`npm run build:ts && node dist/bench/results.js --budget ${budget}\`) on ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `Every model trains on the full Fashion-MNIST training set (60,000 images, 28×28×1) for **${budget} s of wall-clock`,
    'training time** — one shared budget — with the same recipe (`fashion-mnist-sgd`: SGD Nesterov 0.9, lr 0.1 at batch 128,',
    'weight decay 5e-4 off norms and biases, linear warm-up then cosine to 0, horizontal flips), seed 0. Each model\'s cosine',
    'schedule is sized to the steps its measured step time fits into the budget (capped at the recipe\'s 5 epochs), so every',
    'run finishes its schedule. Test accuracy is on all 10,000 test images, after the last step (no EMA, no checkpoint picking).',
    'Parameters and MACs (one 28×28 image, model-specs.md §0 conventions) are the registry\'s exact counts.',
    '',
    `Machine: ${machine}.`,
    '',
    '| model | family | test top-1 % | top-5 % | epochs | train s | train img/s | params | MACs |',
    '|---|---|---|---|---|---|---|---|---|',
    ...rows,
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { budget: { type: 'string', default: '300' }, models: { type: 'string' }, out: { type: 'string', default: 'docs/results.md' } },
  });
  const budget = Number(values.budget);
  if (!(budget > 0)) throw new Error(`--budget must be a positive number of seconds, got '${values.budget}'`);
  const wanted = values.models?.split(',');
  const runs = wanted ? RUNS.filter((r) => wanted.includes(r.model)) : RUNS;
  const [train, test] = await Promise.all([
    loadDataset({ name: 'fashion-mnist', split: 'train', source: 'full' }),
    loadDataset({ name: 'fashion-mnist', split: 'test', source: 'full' }),
  ]);
  const results: RunResult[] = [];
  for (const run of runs) {
    const r = await trainOne(run, train, test, budget);
    console.error(`${r.model}: top-1 ${r.top1.toFixed(2)}% in ${r.epochs.toFixed(2)} epochs, ${r.trainSeconds.toFixed(0)} s, ${r.imagesPerSecond.toFixed(0)} img/s`);
    results.push(r);
    await writeFile(values.out.replace(/\.md$/, '.json'), `${JSON.stringify(results, null, 2)}\n`);
  }
  const machine = `${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores, ${getNumThreads()} libtorch threads, ` +
    `Node ${process.version}, load average ${os.loadavg()[0].toFixed(1)} at the end`;
  await writeFile(values.out, markdown(results, budget, machine));
  console.log(`wrote ${values.out}`);
}

await main();
