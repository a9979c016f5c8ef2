/**
 * `vicinity train`: trains and evaluates a classifier on Fashion-MNIST, printing progress,
 * writing metrics (JSONL) and an atomic safetensors checkpoint every epoch.
 *
 * The foundation's version: one model (SmallConvNet) and SGD with Nesterov momentum and a
 * per-step cosine schedule. The paper models, recipes and datasets plug in here later.
 */
import { mkdir, appendFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { saveSafetensors } from '../checkpoint/tensor-io.js';
import { loadFashionMnist } from '../data/fashion-mnist.js';
import { ImageBatches } from '../data/image-batches.js';
import { SmallConvNet } from '../models/small-convnet.js';
import { CosineSchedule, SGD, paramGroupsNoWeightDecay } from '../optim/index.js';
import { manualSeed } from '../tensor/creation.js';
import { evaluate, trainEpoch } from '../train/classifier-loop.js';

export interface TrainCommandOptions {
  data: 'auto' | 'full' | 'subset';
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  seed: number;
  out: string;
}

const FASHION_MEAN = [0.286];
const FASHION_STD = [0.353];

export async function train(o: TrainCommandOptions): Promise<number> {
  const [trainSplit, testSplit] = await Promise.all([
    loadFashionMnist({ split: 'train', source: o.data }),
    loadFashionMnist({ split: 'test', source: o.data }),
  ]);
  console.log(`data: Fashion-MNIST ${trainSplit.source} (${trainSplit.count} train, ${testSplit.count} test) from ${trainSplit.root}`);
  manualSeed(o.seed);
  const model = new SmallConvNet();
  console.log(`model: SmallConvNet, ${model.numParameters().toLocaleString('en-US')} parameters`);
  const optimizer = new SGD(paramGroupsNoWeightDecay(model, o.weightDecay), { lr: o.lr, momentum: 0.9, nesterov: true });
  const trainBatches = new ImageBatches(trainSplit, { batchSize: o.batchSize, shuffle: true, seed: o.seed, mean: FASHION_MEAN, std: FASHION_STD });
  const testBatches = new ImageBatches(testSplit, { batchSize: 1000, mean: FASHION_MEAN, std: FASHION_STD });
  const totalSteps = o.epochs * trainBatches.length;
  const schedule = new CosineSchedule({ optimizer, totalSteps, warmupSteps: Math.min(200, Math.floor(totalSteps / 10)) });
  await mkdir(o.out, { recursive: true });
  const metricsFile = path.join(o.out, 'metrics.jsonl');
  const checkpoint = path.join(o.out, 'last.safetensors');
  await writeFile(metricsFile, '');
  const started = Date.now();
  let last = { top1: NaN, top5: NaN, loss: NaN };
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    const epochStart = Date.now();
    const trainLoss = await trainEpoch(model, optimizer, trainBatches.epoch(epoch), { onStep: () => schedule.step() });
    const seconds = (Date.now() - epochStart) / 1000;
    last = await evaluate(model, testBatches.epoch());
    const row = {
      epoch: epoch + 1, train_loss: trainLoss, eval_loss: last.loss, eval_top1: 100 * last.top1, eval_top5: 100 * last.top5,
      lr: schedule.lastLr[0], epoch_seconds: seconds, images_per_second: trainSplit.count / seconds,
    };
    await appendFile(metricsFile, `${JSON.stringify(row)}\n`);
    await saveSafetensors(checkpoint, model, { epoch: String(epoch + 1), model: 'SmallConvNet' });
    console.log(
      `epoch ${epoch + 1}/${o.epochs}  train loss ${trainLoss.toFixed(4)}  test loss ${last.loss.toFixed(4)}  ` +
        `top-1 ${(100 * last.top1).toFixed(2)}%  ${seconds.toFixed(1)} s  ${row.images_per_second.toFixed(0)} img/s`,
    );
  }
  console.log(`\ntest accuracy: ${(100 * last.top1).toFixed(2)}% top-1, ${(100 * last.top5).toFixed(2)}% top-5 ` +
    `after ${o.epochs} epochs in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`checkpoint: ${checkpoint}\nmetrics:    ${metricsFile}`);
  optimizer.dispose();
  trainBatches.dispose();
  testBatches.dispose();
  model.dispose();
  return 0;
}
