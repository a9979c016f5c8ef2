/**
 * Train-state checkpoints: written atomically (no temporary files left), the weights file loads
 * with createModel + loadWeights and carries the run's metadata, a state restores model, EMA,
 * optimizer and schedule exactly, and missing, corrupt, foreign or mismatched states are
 * TrainStateErrors that say what to do.
 */
import { PRETRAINED_CFG_KEY } from '../../src/train/model-metadata.js';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { loadWeights } from '../../src/checkpoint/tensor-io.js';
import { createModel, type Classifier } from '../../src/models/registry.js';
import type { Module } from '../../src/nn/module.js';
import * as F from '../../src/ops/functional.js';
import { CosineSchedule, SGD, paramGroupsNoWeightDecay } from '../../src/optim/index.js';
import { manualSeed, randint, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { ModelEma } from '../../src/train/ema.js';
import { recipeFor } from '../../src/train/recipes.js';
import type { TrainConfig } from '../../src/train/train-config.js';
import {
  TrainStateError, readTrainState, resolveStateFile, restoreTrainState, resumeSettings, writeCheckpoint,
  type TrainParts, type TrainStateMeta,
} from '../../src/train/train-state.js';

const CONFIG: TrainConfig = {
  model: 'small_convnet', dataset: 'fashion-mnist', dataSource: 'subset', trainLimit: 64, evalBatchSize: 100,
  workers: 0, seed: 3, out: 'unused', device: 'cpu', progress: 'none', epochs: 2,
};

function parts(seed: number): TrainParts & { model: Classifier } {
  manualSeed(seed);
  const model = createModel('small_convnet');
  const optimizer = new SGD(paramGroupsNoWeightDecay(model, 5e-4), { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 5e-4 });
  const schedule = new CosineSchedule({ optimizer, totalSteps: 20, warmupSteps: 2 });
  const ema = new ModelEma({ model, copy: createModel('small_convnet'), decay: 0.9 });
  return { model, optimizer, schedule, ema };
}

function train(p: TrainParts & { model: Classifier }, steps: number): void {
  p.model.train();
  for (let i = 0; i < steps; i++) {
    tidy(() => {
      const loss = F.crossEntropy(p.model.forward(randn([8, 1, 28, 28], { seed: i })), randint(0, 10, [8], { seed: 50 + i }));
      p.optimizer.zeroGrad();
      loss.backward();
      p.optimizer.step();
      p.schedule.step();
      p.ema!.update(p.model);
    });
  }
}

const FASHION_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

function meta(): TrainStateMeta {
  const { resume: _r, ...config } = CONFIG;
  return {
    position: { epoch: 1, batch: 3, step: 5, stepsPerEpoch: 2 }, config, recipe: recipeFor(CONFIG),
    model: { numClasses: 10, inChannels: 1, inputSize: [28, 28], classes: FASHION_CLASSES }, bestTop1: 71.5, bestEpoch: 0,
    epochLoss: { sum: 12.5, count: 24 }, history: [], elapsedSeconds: 3.25,
  };
}

/** name → values of every state entry (model, EMA) and optimizer buffer. */
function snapshot(p: TrainParts): Map<string, number[]> {
  return tidy(() => {
    const out = new Map<string, number[]>();
    const add = (prefix: string, m: Module) => {
      for (const [k, t] of m.stateDict()) out.set(prefix + k, Array.from(t.double().dataSync() as Float64Array));
    };
    add('model.', p.model);
    add('ema.', p.ema!.module);
    const state = p.optimizer.stateDict().state;
    for (const [i, entry] of Object.entries(state)) {
      out.set(`momentum.${i}`, Array.from((entry.momentum_buffer as import('../../src/tensor/tensor.js').Tensor).double().dataSync() as Float64Array));
    }
    return out;
  });
}

describe('train state', () => {
  let dir: string;
  let saved: TrainParts & { model: Classifier };
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'vicinity-state-'));
    saved = parts(1);
    train(saved, 5);
    await writeCheckpoint(dir, saved, meta(), { top1: 71.5, emaTop1: 70, isBest: true });
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('writes the four files and no temporary ones', async () => {
    assert.deepEqual((await readdir(dir)).sort(), ['best.safetensors', 'ema.safetensors', 'last.safetensors', 'last.state.safetensors']);
  });

  test('last.safetensors loads into createModel and carries the run metadata', async () => {
    const { metadata } = await readSafetensors(path.join(dir, 'last.safetensors'));
    const { [PRETRAINED_CFG_KEY]: cfgText, ...flat } = metadata;
    assert.deepEqual(flat, {
      format: 'pt', model: 'small_convnet', dataset: 'fashion-mnist', epoch: '1', batch: '3', step: '5', numClasses: '10',
      inChannels: '1', inputSize: '28x28', top1: '71.5', recipe: 'fashion-mnist-sgd',
    });
    assert.deepEqual(JSON.parse(cfgText!), {
      architecture: 'small_convnet', model_args: { numClasses: 10, inChannels: 1, inputSize: 28 }, num_classes: 10,
      label_names: FASHION_CLASSES, input_size: [1, 28, 28], mean: [0.286], std: [0.353], interpolation: 'bilinear',
      crop_pct: 1, crop_mode: 'squash', dataset: 'fashion-mnist',
    });
    const model = createModel('small_convnet');
    const report = await loadWeights(model, path.join(dir, 'best.safetensors'));
    assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
    const want = snapshot(saved);
    const got = tidy(() => new Map([...model.stateDict()].map(([k, t]) => [k, Array.from(t.double().dataSync() as Float64Array)])));
    for (const [k, v] of got) assert.deepEqual(v, want.get(`model.${k}`), k);
    model.dispose();
  });

  test('a restored state equals the saved one: weights, EMA, momentum, schedule, position', async () => {
    const loaded = await readTrainState(await resolveStateFile(dir));
    assert.deepEqual(loaded.meta.position, meta().position);
    assert.deepEqual(loaded.meta.epochLoss, { sum: 12.5, count: 24 });
    const fresh = parts(2);
    const initial = snapshot(fresh);
    restoreTrainState(loaded, fresh);
    const got = snapshot(fresh);
    const want = snapshot(saved);
    assert.notDeepEqual(initial.get('model.features.0.weight'), want.get('model.features.0.weight'));
    assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort());
    for (const [k, v] of want) assert.deepEqual(got.get(k), v, k);
    assert.equal(fresh.schedule.stepCount, 5);
    assert.deepEqual(fresh.schedule.lastLr, saved.schedule.lastLr);
    assert.deepEqual(fresh.optimizer.paramGroups.map((g) => g.lr), saved.optimizer.paramGroups.map((g) => g.lr));
    assert.equal(fresh.ema!.updates, 5);
    // The restored run continues exactly: one more step on each gives the same weights.
    train(saved, 1);
    train(fresh, 1);
    assert.deepEqual(snapshot(fresh), snapshot(saved));
    fresh.model.dispose();
    fresh.ema!.dispose();
    fresh.optimizer.dispose();
  });

  test('a corrupt, foreign or missing state is a TrainStateError saying what to do', async () => {
    const bytes = await readFile(path.join(dir, 'last.state.safetensors'));
    const corrupt = path.join(dir, 'corrupt.state.safetensors');
    await writeFile(corrupt, bytes.subarray(0, bytes.length >> 1));
    await assert.rejects(readTrainState(corrupt), (e: Error) =>
      e instanceof TrainStateError && /unreadable or corrupt/.test(e.message) && /without --resume/.test(e.message));
    await rm(corrupt);
    await assert.rejects(readTrainState(path.join(dir, 'last.safetensors')), /not a vicinity train state/);
    const empty = await mkdtemp(path.join(os.tmpdir(), 'vicinity-state-empty-'));
    await assert.rejects(resolveStateFile(empty), (e: Error) =>
      e instanceof TrainStateError && e.message.includes(`${path.join(empty, 'last.state.safetensors')} does not exist`));
    await rm(empty, { recursive: true });
    assert.equal(await resolveStateFile(path.join(dir, 'last.safetensors')), path.join(dir, 'last.state.safetensors'));
  });

  test('restoring into another model is a TrainStateError naming the part', async () => {
    const loaded = await readTrainState(path.join(dir, 'last.state.safetensors'));
    const model = createModel('resnet_nano');
    const optimizer = new SGD(model.parameters(), { lr: 0.1 });
    const schedule = new CosineSchedule({ optimizer, totalSteps: 4 });
    assert.throws(() => restoreTrainState(loaded, { model, optimizer, schedule, ema: null }),
      (e: Error) => e instanceof TrainStateError && /its model state does not fit this run/.test(e.message));
    model.dispose();
  });

  test('resumeSettings keeps the saved run, takes given run-control settings and epochs, refuses other changes', async () => {
    const loaded = await readTrainState(path.join(dir, 'last.state.safetensors'));
    const lines: string[] = [];
    const asked: TrainConfig = { ...CONFIG, workers: 2, device: 'cpu', epochs: 4, lr: 0.5, seed: 9, model: 'resnet_nano', dataRoot: '/data/fm' };
    // Only what the user gave counts: here workers, epochs and dataRoot; the rest are defaults.
    const { config, recipe } = resumeSettings(asked, loaded, (l) => lines.push(l), new Set(['workers', 'epochs', 'dataRoot']));
    assert.equal(config.workers, 2);
    assert.equal(config.seed, 3);
    assert.equal(config.model, 'small_convnet');
    assert.equal(config.dataRoot, '/data/fm');
    assert.equal(recipe.epochs, 4);
    assert.equal(recipe.lr, 0.1);
    assert.deepEqual(lines, [
      "resume: reading the data from /data/fm (the run read the dataset's default location)",
      'resume: epochs 2 → 4; the schedule is laid out for 4 epochs from here on',
    ]);
    // Given with a different value, run-defining and recipe settings are refused, every one named.
    assert.throws(() => resumeSettings(asked, loaded, () => undefined, new Set(['model', 'seed', 'lr', 'workers'])), (e: Error) =>
      e instanceof TrainStateError && /with different settings: model resnet_nano \(the run's: small_convnet\), seed 9 \(the run's: 3\), lr 0\.5 \(the run's: 0\.1\);/.test(e.message));
    // A library caller's config counts as given whole: the same values pass quietly.
    const quiet: string[] = [];
    resumeSettings({ ...CONFIG }, loaded, (l) => quiet.push(l));
    assert.deepEqual(quiet, []);
  });

  test('a state file carries a digest of its tensors; flipped bytes are a TrainStateError', async () => {
    const file = path.join(dir, 'last.state.safetensors');
    const { metadata } = await readSafetensors(file);
    assert.match(metadata['vicinity.sha256'], /^[0-9a-f]{64}$/);
    const bytes = await readFile(file);
    const flipped = path.join(dir, 'flipped.state.safetensors');
    bytes[bytes.length - 3] ^= 0x10;   // inside the last tensor's data: the file still parses
    await writeFile(flipped, bytes);
    await assert.rejects(readTrainState(flipped), (e: Error) => e instanceof TrainStateError &&
      new RegExp(`the tensors in ${flipped} do not match the SHA-256 digest stored with them .*the file is corrupt`).test(e.message));
    await rm(flipped);
  });
});
