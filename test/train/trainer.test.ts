/**
 * runTraining on the bundled Fashion-MNIST subset with small_convnet (512 training images, 8 steps
 * per epoch, 500 test images), with an EMA, mixup soft targets, label smoothing and gradient clipping on, so that
 * every piece of state takes part. The acceptance criterion: two epochs straight through give
 * bit-identical tensors (weights, EMA, optimizer state) and the same summary to
 *   - one epoch, stopped at the epoch boundary, then a NEW runTraining resuming for the second;
 *   - a run stopped by its AbortSignal in the middle of epoch 2, then resumed.
 * Plus the run directory's files, and errors for a missing or corrupt state.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { memory } from '../../src/tensor/memory.js';
import type { MetricsRow } from '../../src/train/metrics-log.js';
import type { TrainConfig } from '../../src/train/train-config.js';
import { TrainStateError } from '../../src/train/train-state.js';
import { runTraining, stepSeed, type TrainResult } from '../../src/train/trainer.js';

const BASE: TrainConfig = {
  model: 'small_convnet', dataset: 'fashion-mnist', dataSource: 'subset', trainLimit: 512, evalBatchSize: 500,
  workers: 0, seed: 7, out: '', device: 'cpu', progress: 'none',
  epochs: 2, batchSize: 64, lr: 0.05, warmupEpochs: 0.5, emaDecay: 0.9, mixup: 0.2, labelSmoothing: 0.1, clipGrad: 2,
};
const STEPS_PER_EPOCH = 8;
/** Evaluation on 500 of the 2,000 test images keeps the file fast. */
const FAST = { evalLimit: 500 };

/** Every tensor of a safetensors file, as raw bytes by name. */
async function tensors(file: string): Promise<Map<string, Uint8Array>> {
  const { tensors: raw } = await readSafetensors(file);
  return new Map([...raw].map(([name, t]) => [name, Uint8Array.from(t.data)]));
}

async function assertSameTensors(fileA: string, fileB: string): Promise<void> {
  const [a, b] = await Promise.all([tensors(fileA), tensors(fileB)]);
  assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
  for (const [name, bytes] of a) assert.ok(Buffer.from(bytes).equals(Buffer.from(b.get(name)!)), `${path.basename(fileA)}: ${name} differs`);
}

async function rows(dir: string): Promise<MetricsRow[]> {
  return (await readFile(path.join(dir, 'metrics.jsonl'), 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as MetricsRow);
}

describe('runTraining', () => {
  let root: string;
  let straight: TrainResult;
  const dir = (name: string) => path.join(root, name);

  before(async () => {
    root = await mkdtemp(path.join(os.tmpdir(), 'vicinity-trainer-'));
    const live = memory().liveTensors;
    straight = await runTraining({ ...BASE, out: dir('straight') }, FAST);
    // Model, EMA, optimizer state and batches are all freed when the run returns.
    assert.ok(memory().liveTensors <= live + 2, `live tensors ${live} → ${memory().liveTensors}`);
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  test('a run writes its directory: checkpoints, metrics, summary, config', async () => {
    assert.equal(straight.epochs, 2);
    assert.equal(straight.steps, 2 * STEPS_PER_EPOCH);
    assert.equal(straight.interrupted, false);
    assert.equal(straight.runDir, dir('straight'));
    assert.ok(straight.top1 > 30 && straight.top1 <= 100, `top-1 ${straight.top1}`);
    assert.ok(straight.top5 >= straight.top1 && straight.emaTop1! > 0);
    assert.deepEqual((await readdir(dir('straight'))).sort(), [
      'best.safetensors', 'config.json', 'ema.safetensors', 'last.safetensors', 'last.state.safetensors', 'metrics.jsonl', 'summary.csv',
    ]);
    const csv = (await readFile(straight.summaryFile, 'utf8')).trim().split('\n');
    assert.equal(csv[0], 'epoch,train_loss,eval_loss,eval_top1,eval_top5,ema_eval_loss,ema_eval_top1,ema_eval_top5,lr');
    assert.deepEqual(csv.slice(1).map((l) => l.split(',')[0]), ['0', '1']);
    const metrics = await rows(dir('straight'));
    assert.deepEqual(metrics.map((r) => [r.epoch, r.step]), [[0, 8], [1, 16]]);
    assert.equal(metrics[1].lr, 0);
    assert.equal(metrics[1].eval_top1, straight.top1);
    const { metadata } = await readSafetensors(straight.checkpoint);
    assert.deepEqual([metadata.model, metadata.dataset, metadata.epoch, metadata.batch, metadata.inputSize, metadata.top1],
      ['small_convnet', 'fashion-mnist', '2', '0', '28x28', String(straight.top1)]);
    const config = JSON.parse(await readFile(path.join(dir('straight'), 'config.json'), 'utf8'));
    assert.equal(config.recipe.name, 'fashion-mnist-sgd');
    assert.deepEqual([config.stepsPerEpoch, config.totalSteps, config.warmupSteps], [8, 16, 4]);
    assert.deepEqual(config.data.inputSize, [28, 28]);
  });

  test('resume at an epoch boundary continues bit for bit', async () => {
    const controller = new AbortController();
    const first = await runTraining({ ...BASE, out: dir('boundary') }, { ...FAST, signal: controller.signal, onEpoch: () => controller.abort() });
    assert.deepEqual([first.interrupted, first.epochs, first.steps], [true, 1, STEPS_PER_EPOCH]);
    const second = await runTraining({ ...BASE, out: dir('elsewhere'), resume: dir('boundary') }, FAST);
    assert.deepEqual([second.interrupted, second.epochs, second.steps, second.runDir], [false, 2, 16, dir('boundary')]);
    for (const file of ['last.safetensors', 'last.state.safetensors', 'ema.safetensors']) {
      await assertSameTensors(path.join(dir('straight'), file), path.join(dir('boundary'), file));
    }
    assert.equal(await readFile(path.join(dir('boundary'), 'summary.csv'), 'utf8'), await readFile(straight.summaryFile, 'utf8'));
    assert.equal(second.top1, straight.top1);
  });

  test('an AbortSignal mid-epoch stops after the step with a checkpoint, and resuming continues bit for bit', async () => {
    const controller = new AbortController();
    const seen: number[] = [];
    const stopped = await runTraining({ ...BASE, out: dir('mid') }, {
      ...FAST, signal: controller.signal,
      onStep: (s) => {
        seen.push(s.step);
        if (s.step === 11) controller.abort();
      },
    });
    assert.deepEqual([stopped.interrupted, stopped.epochs, stopped.steps], [true, 1, 11]);
    assert.deepEqual(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    const { metadata } = await readSafetensors(stopped.checkpoint);
    assert.deepEqual([metadata.epoch, metadata.batch, metadata.step], ['1', '3', '11']);
    const resumedSteps: number[] = [];
    const resumed = await runTraining({ ...BASE, resume: path.join(dir('mid'), 'last.state.safetensors') },
      { ...FAST, onStep: (s) => resumedSteps.push(s.batch) });
    assert.deepEqual(resumedSteps, [3, 4, 5, 6, 7]);
    assert.equal(resumed.steps, 16);
    for (const file of ['last.safetensors', 'last.state.safetensors', 'ema.safetensors']) {
      await assertSameTensors(path.join(dir('straight'), file), path.join(dir('mid'), file));
    }
    const [want, got] = [await rows(dir('straight')), await rows(dir('mid'))];
    const numbers = (r: MetricsRow) => [r.epoch, r.train_loss, r.eval_loss, r.eval_top1, r.ema_eval_top1, r.lr, r.step];
    assert.deepEqual(got.map(numbers), want.map(numbers));
  });

  test('resuming a missing or corrupt state is a TrainStateError', async () => {
    await assert.rejects(runTraining({ ...BASE, resume: dir('nothing-here') }), (e: Error) =>
      e instanceof TrainStateError && /last\.state\.safetensors does not exist/.test(e.message));
    const corrupt = path.join(root, 'corrupt.state.safetensors');
    await writeFile(corrupt, Buffer.from('not a checkpoint at all'));
    await assert.rejects(runTraining({ ...BASE, resume: corrupt }), (e: Error) =>
      e instanceof TrainStateError && /unreadable or corrupt/.test(e.message));
  });

  test('stepSeed: a fixed uint32 per (seed, step), different across steps and seeds', () => {
    assert.equal(stepSeed(7, 3), stepSeed(7, 3));
    const seeds = new Set<number>();
    for (let s = 0; s < 4; s++) for (let t = 0; t < 1000; t++) seeds.add(stepSeed(s, t));
    assert.equal(seeds.size, 4000);
    assert.ok([...seeds].every((x) => Number.isInteger(x) && x >= 0 && x < 2 ** 32));
  });
});
