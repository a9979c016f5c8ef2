/**
 * runTraining: the engine behind `vicinity train`. One run, from a TrainConfig to a run directory:
 *
 *   data      loadDataset (train and test splits; `trainLimit` keeps the first n training images,
 *             the option `evalLimit` the first n test images),
 *             DataLoader with the recipe's transforms and mixing (input-pipeline.ts)
 *   model     createModel(config.model) with the dataset's classes and channels, its input size
 *             (the entry's for fixed-size models, else the dataset's image size) and the recipe's
 *             drop-path, on config.device
 *   optimize  SGD or AdamW, no weight decay on norms and biases (paramGroupsNoWeightDecay), a
 *             per-step schedule with linear warm-up, label smoothing or mixup soft targets,
 *             gradient-norm clipping, an EMA of the weights (ema.ts)
 *   record    after every epoch: evaluation (loss, top-1, top-5; the EMA's too), a row in
 *             metrics.jsonl and summary.csv (metrics-log.ts), and an atomic checkpoint
 *             (train-state.ts); config.json once at the start
 *
 * Exact resume. A run continues from its state file bit for bit: weights, optimizer and schedule
 * state and the EMA are restored, the loader reproduces the rest of the epoch from (seed, epoch,
 * batch), and every step re-seeds the global generator from (seed, step) before its forward pass,
 * so dropout and drop-path draw the same numbers whether or not the run was interrupted (libtorch's
 * generator state is not saved; it need not be). Interruption: when `signal` aborts, the run stops
 * after the current step, writes a checkpoint holding the batch position, and returns
 * `interrupted: true`.
 *
 * Output: progress (progress.ts) and log lines go to stderr by default; the caller prints the
 * final summary (TrainResult) where it likes.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ImageDataset } from '../data/dataset.js';
import { loadDataset } from '../data/load-dataset.js';
import { DataLoader } from '../data/loader.js';
import { createModel, modelInfo, type Classifier } from '../models/registry.js';
import type { RawTensor } from '../checkpoint/raw-tensor.js';
import { readStateDictFile } from '../checkpoint/tensor-io.js';
import { applyPretrained, freezeStages } from './fine-tune.js';
import {
  AdamW, ConstantSchedule, CosineSchedule, SGD, StepSchedule, paramGroupsNoWeightDecay,
  type LrSchedule, type Optimizer,
} from '../optim/index.js';
import { fileWriteError } from '../checkpoint/safetensors.js';
import { manualSeed } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import { evaluate, trainEpoch, type EvalResult } from './classifier-loop.js';
import { ModelEma } from './ema.js';
import { evalTransform, mixSpec, trainTransform } from './input-pipeline.js';
import { MetricsLog, type MetricsRow } from './metrics-log.js';
import { Progress, formatEpochLine } from './progress.js';
import { recipeFor, type ResolvedRecipe } from './recipes.js';
import { claimRunDirectory } from './run-directory.js';
import type { DistributedTraining } from './distributed-run.js';
import type { TrainConfig } from './train-config.js';
import {
  STATE_FILE, TrainStateError, WEIGHTS_FILE, readTrainState, resolveStateFile, restoreTrainState, resumeSettings, writeCheckpoint,
  type LoadedTrainState, type TrainPosition, type TrainStateMeta,
} from './train-state.js';

/** What runTraining reports about each step (for callers that watch or stop a run). */
export interface StepInfo {
  /** 0-based epoch and batch index within it. */
  epoch: number;
  batch: number;
  /** Optimizer steps done, this one included. */
  step: number;
  loss: number;
  lr: number;
}

export interface TrainOptions {
  /** Stops the run after the current step, with a checkpoint (the CLI wires Ctrl-C here). */
  signal?: AbortSignal;
  /** Receives the info and per-epoch lines; default: stderr (nothing with progress 'none'). */
  log?: (line: string) => void;
  /** Called with each epoch's row after its checkpoint is written. */
  onEpoch?: (row: MetricsRow) => void;
  /** Called after every optimizer step. */
  onStep?: (step: StepInfo) => void;
  /** Where progress bars and lines go; default process.stderr. */
  progressStream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Evaluate on the first n test images only (smoke runs, tests); default all. */
  evalLimit?: number;
  /** Architecture settings of the model entry (createModel's modelArgs; `vicinity sweep`); a resume keeps the run's. */
  modelArgs?: Record<string, number>;
  /**
   * The settings the user gave (the CLI: config file and flags, not defaults). On resume only
   * these are compared with the run's (resumeSettings); default: every key of the config.
   */
  given?: ReadonlySet<string>;
  /** This process's part of a data-parallel run (distributed-run.ts); default: a single process. */
  distributed?: DistributedTraining;
}

/** The outcome of a run (or of the part run by this call, for a resumed or interrupted one). */
export interface TrainResult {
  /** Epochs completed in all. */
  epochs: number;
  /** The last evaluation: top-1 and top-5 in percent, mean loss (NaN before the first epoch ends). */
  top1: number;
  top5: number;
  evalLoss: number;
  /** The EMA model's last top-1 (percent), when an EMA is kept. */
  emaTop1?: number;
  /** The best top-1 so far (percent; NaN before the first epoch ends). */
  bestTop1: number;
  /** Optimizer steps done in all. */
  steps: number;
  /** Paths: last.safetensors, last.state.safetensors, the run directory, metrics.jsonl, summary.csv. */
  checkpoint: string;
  stateFile: string;
  runDir: string;
  metricsFile: string;
  summaryFile: string;
  /** Wall time of this call. */
  seconds: number;
  /** True when the signal stopped the run before its last epoch. */
  interrupted: boolean;
}

/** Datasets and what the model is built for. */
interface RunData {
  train: ImageDataset;
  test: ImageDataset;
  numClasses: number;
  channels: 1 | 3;
  inputSize: [number, number];
  /** Fine-tuning: the --pretrained state dict (not read when resuming: the state holds the weights). */
  pretrained: Map<string, RawTensor> | null;
}

/**
 * Trains (or resumes) one run; see the file header.
 *
 * Errors: UnknownModelError, a RangeError for a bad recipe or setting, DatasetError for missing
 * or bad data, TrainStateError for a resume state that is missing, corrupt or from another run,
 * and an Error when the loss becomes non-finite.
 *
 * Example:
 *   const result = await runTraining({ model: 'resnet_nano', dataset: 'fashion-mnist', dataSource: 'auto',
 *     trainLimit: 0, evalBatchSize: 1000, workers: 2, seed: 0, out: 'runs/nano', device: 'cpu', progress: 'auto' });
 *   console.log(`${result.top1.toFixed(2)}% top-1`);
 */
export async function runTraining(config: TrainConfig, options: TrainOptions = {}): Promise<TrainResult> {
  const started = performance.now();
  const log = options.log ?? (config.progress === 'none' ? () => undefined : (line: string) => process.stderr.write(`${line}\n`));
  let resumed: LoadedTrainState | null = null;
  let effective: Omit<TrainConfig, 'resume'> = config;
  let recipe: ResolvedRecipe;
  let runDir = config.out;
  if (config.resume) {
    resumed = await readTrainState(await resolveStateFile(config.resume));
    runDir = path.dirname(resumed.file);
    ({ config: effective, recipe } = resumeSettings(config, resumed, log, options.given));
    effective = { ...effective, out: runDir };
  } else {
    recipe = recipeFor(config);
  }
  if (options.distributed) recipe = options.distributed.scaleRecipe(config, recipe);
  const { overwrite: _overwrite, ...runConfig } = effective;   // overwrite: an action of this call, not a setting of the run
  effective = runConfig;
  await mkdir(runDir, { recursive: true }).catch((e: unknown) => { throw fileWriteError(e, runDir); });
  // Locks the directory (one run at a time), removes dead writers' temp files, refuses to replace a run silently.
  // In a distributed run rank 0 owns the directory (the other ranks write nothing).
  const lock = options.distributed && !options.distributed.writes ? null
    : await claimRunDirectory(runDir, { resume: resumed !== null, overwrite: config.overwrite === true, log });
  try {
    const data = await loadRunData(effective, options.evalLimit ?? 0, log, resumed === null);
    const modelArgs = resumed ? resumed.meta.model.modelArgs : options.modelArgs;
    const session = new Session(effective, recipe, data, runDir, { ...options, modelArgs }, log);
    try {
      return await session.run(resumed, started);
    } finally {
      await session.close();
    }
  } finally {
    await lock?.release();
  }
}

/** Both splits, the training split cut to trainLimit, and the model's input shape. */
async function loadRunData(
  config: Omit<TrainConfig, 'resume'>, evalLimit: number, log: (line: string) => void, readPretrained = true,
): Promise<RunData> {
  const source = config.dataset === 'fashion-mnist' ? config.dataSource : undefined;
  const spec = { name: config.dataset, root: config.dataRoot, source };
  const [full, fullTest] = await Promise.all([
    loadDataset({ ...spec, split: 'train' }), loadDataset({ ...spec, split: 'test' }),
  ]);
  const train = limitDataset(full, config.trainLimit);
  const test = limitDataset(fullTest, evalLimit);
  const channels = train.store.channels;
  const info = modelInfo(config.model);
  const inputSize: [number, number] = config.inputSize !== undefined ? [config.inputSize, config.inputSize]
    : !info.fixedInputSize && train.store.kind === 'memory' ? [train.store.height, train.store.width]
      : [info.inputSize, info.inputSize];
  const numClasses = fineTuneClasses(config, train.classes.length);
  const pretrained = config.pretrained && readPretrained
    ? await readStateDictFile(config.pretrained, { ema: config.pretrainedEma }) : null;
  const from = train.source ? `${train.name} ${train.source}` : train.name;
  log(`data: ${from} (${train.count.toLocaleString('en-US')} train${train.count < full.count ? ` of ${full.count.toLocaleString('en-US')}` : ''}, ` +
    `${test.count.toLocaleString('en-US')} test, ${train.classes.length} classes) from ${train.root}`);
  return { train, test, numClasses, channels, inputSize, pretrained };
}

/** The classifier size: --num-classes (not fewer than the dataset's classes) or the dataset's; checks --freeze. */
function fineTuneClasses(config: Omit<TrainConfig, 'resume'>, datasetClasses: number): number {
  if (config.freeze && !config.pretrained) {
    throw new RangeError('--freeze needs --pretrained: freezing randomly initialised stages would train only the head');
  }
  if (config.pretrainedEma && !config.pretrained) throw new RangeError('--pretrained-ema needs --pretrained <file>');
  const n = config.numClasses ?? datasetClasses;
  if (n < datasetClasses) {
    throw new RangeError(`--num-classes ${n} is fewer than the dataset's ${datasetClasses} classes; give at least ${datasetClasses}`);
  }
  return n;
}

/** The first `limit` images of a dataset (all when limit is 0 or not below the count). */
export function limitDataset(dataset: ImageDataset, limit: number): ImageDataset {
  if (!(limit > 0) || limit >= dataset.count) return dataset;
  const { store } = dataset;
  const limited = store.kind === 'memory'
    ? { ...store, pixels: store.pixels.subarray(0, limit * store.height * store.width * store.channels) }
    : { ...store, paths: store.paths.slice(0, limit) };
  return { ...dataset, labels: dataset.labels.subarray(0, limit), count: limit, store: limited };
}

/** The global generator's seed for optimizer step `step` of a run seeded `seed`. */
export function stepSeed(seed: number, step: number): number {
  // A multiplicative hash keeps neighbouring (seed, step) pairs apart; the result is a uint32.
  return (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + Math.imul(step + 1, 0x85ebca6b)) >>> 0;
}

/** Everything live during a run. */
class Session {
  private readonly model: Classifier;
  /** What the training step runs: the model, or its DistributedDataParallel wrapper. */
  private readonly stepModel: Classifier;
  private readonly optimizer: Optimizer<{ lr: number }>;
  private readonly schedule: LrSchedule;
  private readonly ema: ModelEma<Classifier> | null;
  private readonly trainLoader: DataLoader;
  private readonly evalLoader: DataLoader;
  private readonly metrics: MetricsLog;
  private readonly progress: Progress;
  private readonly stepsPerEpoch: number;
  private position: TrainPosition;
  private epochLoss = { sum: 0, count: 0 };
  private history: MetricsRow[] = [];
  private bestTop1: number | null = null;
  private bestEpoch: number | null = null;
  private elapsedSeconds = 0;

  constructor(
    private readonly config: Omit<TrainConfig, 'resume'>, private readonly recipe: ResolvedRecipe,
    private readonly data: RunData, private readonly runDir: string, private readonly options: TrainOptions,
    private readonly log: (line: string) => void,
  ) {
    const { train, test, numClasses, channels, inputSize } = data;
    this.trainLoader = new DataLoader({
      dataset: train, transform: trainTransform(recipe, config.dataset, inputSize, channels), batchSize: recipe.batchSize,
      shuffle: true, dropLast: train.count >= recipe.batchSize, seed: config.seed, workers: config.workers,
      mix: mixSpec(recipe, numClasses), sampler: options.distributed?.trainSampler(train.count, config.seed),
    });
    this.evalLoader = new DataLoader({
      dataset: test, transform: evalTransform(config.dataset, inputSize, channels), batchSize: config.evalBatchSize,
      shuffle: false, seed: config.seed, workers: config.workers, sampler: options.distributed?.evalSampler(test.count),
    });
    this.stepsPerEpoch = this.trainLoader.length;
    if (this.stepsPerEpoch === 0) {
      throw new RangeError(`runTraining: the training set has ${train.count} images, fewer than one batch ` +
        `of ${recipe.batchSize}; lower batchSize or raise trainLimit`);
    }
    this.position = { epoch: 0, batch: 0, step: 0, stepsPerEpoch: this.stepsPerEpoch };
    manualSeed(config.seed);
    this.model = this.buildModel();
    this.stepModel = options.distributed ? options.distributed.wrap(this.model) : this.model;
    this.ema = recipe.emaDecay > 0 ? new ModelEma({ model: this.model, copy: this.buildModel(), decay: recipe.emaDecay }) : null;
    this.optimizer = this.buildOptimizer();
    this.schedule = this.buildSchedule();
    this.metrics = new MetricsLog(runDir, this.ema !== null);
    this.progress = new Progress({ mode: config.progress, epochs: recipe.epochs, stream: options.progressStream });
  }

  private buildModel(): Classifier {
    const { numClasses, channels, inputSize } = this.data;
    const size = inputSize[0] === inputSize[1] ? inputSize[0] : inputSize;
    const model = createModel(this.config.model, {
      numClasses, inChannels: channels, inputSize: size, dropPathRate: this.recipe.dropPath, modelArgs: this.options.modelArgs,
    });
    if (this.data.pretrained) {
      const r = applyPretrained(model, this.data.pretrained, { numClasses, source: this.config.pretrained });
      this.log(`pretrained: ${this.config.pretrained}${this.config.pretrainedEma ? ' (EMA weights)' : ''}, ` +
        `${r.pretrainedClasses}-class head replaced by a new ${numClasses}-class one (${r.classifierKeys.join(', ')})`);
      this.data.pretrained = null;
    }
    const placed = model.to({ device: this.config.device });
    if (this.config.freeze) {
      this.log(`frozen: the stem and ${this.config.freeze} stage(s), ${freezeStages(placed, this.config.freeze).toLocaleString('en-US')} parameters`);
    }
    return placed;
  }

  private buildOptimizer(): Optimizer<{ lr: number }> {
    const r = this.recipe;
    const groups = paramGroupsNoWeightDecay(this.model, r.weightDecay);
    return r.optimizer === 'adamw'
      ? new AdamW(groups, { lr: r.lr, betas: [r.momentum, r.beta2], eps: r.eps, weightDecay: r.weightDecay })
      : new SGD(groups, { lr: r.lr, momentum: r.momentum, nesterov: r.nesterov, weightDecay: r.weightDecay });
  }

  private buildSchedule(): LrSchedule {
    const r = this.recipe;
    const optimizer = this.optimizer;
    const totalSteps = r.epochs * this.stepsPerEpoch;
    const warmupSteps = Math.min(totalSteps, Math.round(r.warmupEpochs * this.stepsPerEpoch));
    if (r.schedule === 'step') {
      return new StepSchedule({ optimizer, stepSize: Math.max(1, Math.round(r.stepEpochs * this.stepsPerEpoch)), gamma: r.stepGamma });
    }
    if (r.schedule === 'constant') return new ConstantSchedule({ optimizer, warmupSteps, warmupStartLr: r.warmupLr });
    return new CosineSchedule({ optimizer, totalSteps, warmupSteps, warmupStartLr: r.warmupLr, minLr: r.minLr });
  }

  /** The epochs loop, from the start or from a resumed state. */
  async run(resumed: LoadedTrainState | null, started: number): Promise<TrainResult> {
    if (resumed) this.restore(resumed);
    if (this.writes) await this.writeRunConfig(resumed);
    if (this.writes) await this.metrics.reset(this.history);
    this.describe(resumed);
    const signal = this.options.signal;
    for (let epoch = this.position.epoch; epoch < this.recipe.epochs; epoch++) {
      const timing = await this.trainEpoch(epoch);
      if (signal?.aborted) {
        this.assertFiniteWeights(epoch);
        await this.checkpoint(false);
        return this.result(started, true);
      }
      const row = await this.evaluateEpoch(epoch, timing);
      this.options.onEpoch?.(row);
      if (signal?.aborted && epoch + 1 < this.recipe.epochs) return this.result(started, true);
    }
    return this.result(started, signal?.aborted === true && this.position.epoch < this.recipe.epochs);
  }

  private restore(loaded: LoadedTrainState): void {
    const meta = loaded.meta;
    if (meta.position.stepsPerEpoch !== this.stepsPerEpoch) {
      throw new TrainStateError(loaded.file, `cannot resume from ${loaded.file}: the run had ${meta.position.stepsPerEpoch} ` +
        `batches per epoch, this one has ${this.stepsPerEpoch}; the training data or batch size changed ` +
        '(resume with the same dataset, dataSource, trainLimit and batchSize)');
    }
    restoreTrainState(loaded, { model: this.model, optimizer: this.optimizer, schedule: this.schedule, ema: this.ema });
    this.position = { ...meta.position };
    this.epochLoss = { ...meta.epochLoss };
    this.history = [...meta.history];
    this.bestTop1 = meta.bestTop1;
    this.bestEpoch = meta.bestEpoch;
    this.elapsedSeconds = meta.elapsedSeconds;
  }

  private describe(resumed: LoadedTrainState | null): void {
    const r = this.recipe;
    const [h, w] = this.data.inputSize;
    this.log(`model: ${this.config.model}, ${this.model.numParameters().toLocaleString('en-US')} parameters, ` +
      `input ${this.data.channels}×${h}×${w}, ${this.data.numClasses} classes, on ${this.config.device}`);
    const overrides = r.overridden.length ? ` (overridden: ${r.overridden.join(', ')})` : '';
    const scaled = r.lrScaledFrom ? `, lr scaled from ${r.lrScaledFrom.lr} @ ${r.lrScaledFrom.batchSize}` : '';
    this.log(`recipe: ${r.name}${overrides}: ${r.optimizer} lr ${r.lr}${scaled}, batch ${r.batchSize}, ${r.epochs} epochs ` +
      `of ${this.stepsPerEpoch} steps, ${r.schedule} schedule`);
    if (resumed) {
      this.log(`resuming ${resumed.file}: epoch ${this.position.epoch + 1}, batch ${this.position.batch}/${this.stepsPerEpoch}, ` +
        `step ${this.position.step}`);
    }
    this.log(`run: ${this.runDir}`);
  }

  /** Trains epoch `epoch` from the current batch position; returns the seconds it ran and its images/s. */
  private async trainEpoch(epoch: number): Promise<{ seconds: number; imagesPerSecond: number }> {
    const start = this.position.epoch === epoch ? this.position.batch : 0;
    if (this.position.epoch !== epoch) this.position = { ...this.position, epoch, batch: 0 };
    const t0 = performance.now();
    this.model.train();
    this.progress.startEpoch(epoch, this.stepsPerEpoch, start);
    try {
      if (start < this.stepsPerEpoch) {
        const r = this.recipe;
        await trainEpoch(this.stepModel, this.optimizer, this.trainLoader.epoch(epoch, start), {
          labelSmoothing: r.labelSmoothing, clipGrad: r.clipGrad, device: this.config.device, signal: this.options.signal,
          // The step's own seed: dropout and drop-path draw the same numbers in a resumed run.
          beforeForward: () => manualSeed(stepSeed(this.config.seed, this.position.step)),
          afterUpdate: () => {
            this.schedule.step();
            this.ema?.update(this.model);
          },
          onStep: (step) => this.recordStep(step.loss, step.batchSize, epoch),
        }).catch((e: unknown) => { throw this.options.distributed ? this.options.distributed.explain('training step', e) : e; });
      }
    } finally {
      this.progress.endEpoch();
    }
    const seconds = (performance.now() - t0) / 1000;
    this.elapsedSeconds += seconds;
    return { seconds, imagesPerSecond: this.progress.imagesPerSecond };
  }

  /** Books a step's loss: the epoch's sums, the position, progress and onStep; a non-finite loss stops the run. */
  private recordStep(loss: number, n: number, epoch: number): void {
    if (!Number.isFinite(loss)) {
      throw new Error(`runTraining: the training loss is ${loss} at epoch ${epoch + 1}, batch ${this.position.batch} ` +
        `(lr ${this.optimizer.paramGroups[0].lr}); lower lr, add warm-up or set clipGrad`);
    }
    this.epochLoss.sum += loss * n;
    this.epochLoss.count += n;
    this.position = { ...this.position, batch: this.position.batch + 1, step: this.position.step + 1 };
    const lr = this.currentLr();
    this.progress.step({ done: this.position.batch, loss: this.epochLoss.sum / this.epochLoss.count, lr, images: n });
    this.options.onStep?.({ epoch, batch: this.position.batch - 1, step: this.position.step, loss, lr });
  }

  private currentLr(): number {
    const lrs = this.optimizer.paramGroups.map((g) => g.lr);
    return lrs.reduce((a, b) => a + b, 0) / lrs.length;
  }

  /** Evaluation, the epoch's row, metrics and checkpoint; moves the position to the next epoch. */
  private async evaluateEpoch(epoch: number, timing: { seconds: number; imagesPerSecond: number }): Promise<MetricsRow> {
    const device = this.config.device;
    const dist = this.options.distributed;
    let result = await evaluate(this.model, this.evalLoader.epoch(0), { device });
    let emaResult = this.ema ? await evaluate(this.ema.module, this.evalLoader.epoch(0), { device }) : null;
    let [lossSum, images, imagesPerSecond] = [this.epochLoss.sum, this.epochLoss.count, timing.imagesPerSecond];
    if (dist) {
      // Every rank's shard counts: sums and rates all-reduced (distributed-run.ts).
      result = dist.reduceEval(result);
      emaResult = emaResult && dist.reduceEval(emaResult);
      [lossSum, images, imagesPerSecond] = dist.sum([lossSum, images, imagesPerSecond]);
    }
    if (result.nonFinite > 0 || (emaResult?.nonFinite ?? 0) > 0) {
      const [which, r] = result.nonFinite > 0 ? ['model', result] : ['EMA model', emaResult!];
      this.diverged(epoch, `the ${which}'s outputs are not finite (NaN or ±Inf) on ${r.nonFinite} of ${r.count} test images`);
    }
    this.assertFiniteWeights(epoch);
    const row: MetricsRow = {
      epoch, train_loss: images ? lossSum / images : NaN, ...percentages('eval_', result),
      ...(emaResult ? percentages('ema_eval_', emaResult) : {}), lr: this.currentLr(), step: this.position.step,
      epoch_seconds: timing.seconds, images_per_second: imagesPerSecond, ...(dist ? { world_size: dist.worldSize } : {}),
    };
    this.history.push(row);
    this.position = { ...this.position, epoch: epoch + 1, batch: 0 };
    this.epochLoss = { sum: 0, count: 0 };
    const isBest = this.bestTop1 === null || row.eval_top1 > this.bestTop1;
    if (isBest) {
      this.bestTop1 = row.eval_top1;
      this.bestEpoch = epoch;
    }
    if (this.writes) await this.metrics.append(row);
    await this.checkpoint(isBest);
    this.log(formatEpochLine(row, this.recipe.epochs));
    return row;
  }

  /** Stops a diverged run before anything is written: the last checkpoint (if any) stays the last finite one. */
  private assertFiniteWeights(epoch: number): void {
    const bad = (model: Classifier) => model.parameters().find((p) => tidy(() => !(p.isfinite().all().item() as boolean)));
    const param = bad(this.model) ?? (this.ema ? bad(this.ema.module) : undefined);
    if (param) this.diverged(epoch, 'some weights are not finite (NaN or ±Inf)');
  }

  private diverged(epoch: number, what: string): never {
    const kept = this.position.step > 0 && this.history.length > 0
      ? `the last finite checkpoint, after epoch ${this.history.length}, is kept in ${this.runDir}`
      : 'no checkpoint was written';
    throw new Error(`runTraining: the run diverged in epoch ${epoch + 1}: ${what}; ${kept}. Lower lr ` +
      `(now ${this.currentLr()}), add warm-up or set clipGrad, and start again with --overwrite`);
  }

  private meta(): TrainStateMeta {
    const { resume: _resume, ...config } = this.config as TrainConfig;
    return {
      position: { ...this.position }, config, recipe: this.recipe,
      model: { numClasses: this.data.numClasses, inChannels: this.data.channels, inputSize: this.data.inputSize, classes: this.data.train.classes,
        ...(this.options.modelArgs ? { modelArgs: this.options.modelArgs } : {}) },
      bestTop1: this.bestTop1, bestEpoch: this.bestEpoch, epochLoss: { ...this.epochLoss }, history: [...this.history],
      elapsedSeconds: this.elapsedSeconds,
    };
  }

  /** False on the ranks of a distributed run other than 0, which write no files. */
  private get writes(): boolean {
    return this.options.distributed?.writes ?? true;
  }

  private async checkpoint(isBest: boolean): Promise<void> {
    if (!this.writes) return;
    const last = this.history.at(-1);
    await writeCheckpoint(this.runDir, { model: this.model, optimizer: this.optimizer, schedule: this.schedule, ema: this.ema },
      this.meta(), { top1: last?.eval_top1 ?? null, emaTop1: last?.ema_eval_top1 ?? null, isBest });
  }

  /** config.json: the effective config, the resolved recipe, the data and the step counts. */
  private async writeRunConfig(resumed: LoadedTrainState | null): Promise<void> {
    const { train, test, numClasses, channels, inputSize } = this.data;
    const totalSteps = this.recipe.epochs * this.stepsPerEpoch;
    const body = {
      config: this.config, recipe: this.recipe,
      data: { name: train.name, source: train.source ?? null, root: train.root, train: train.count, test: test.count, numClasses, channels, inputSize },
      model: { name: this.config.model, parameters: this.model.numParameters() },
      stepsPerEpoch: this.stepsPerEpoch, totalSteps, warmupSteps: Math.min(totalSteps, Math.round(this.recipe.warmupEpochs * this.stepsPerEpoch)),
      resumedFrom: resumed ? { file: resumed.file, ...resumed.meta.position } : null,
    };
    const file = path.join(this.runDir, 'config.json');
    await writeFile(`${file}.tmp`, `${JSON.stringify(body, null, 2)}\n`);
    await rename(`${file}.tmp`, file);
  }

  private result(started: number, interrupted: boolean): TrainResult {
    const last = this.history.at(-1);
    return {
      epochs: this.position.epoch, top1: last?.eval_top1 ?? NaN, top5: last?.eval_top5 ?? NaN, evalLoss: last?.eval_loss ?? NaN,
      ...(last?.ema_eval_top1 !== undefined ? { emaTop1: last.ema_eval_top1 } : {}), bestTop1: this.bestTop1 ?? NaN,
      steps: this.position.step, checkpoint: path.join(this.runDir, WEIGHTS_FILE),
      stateFile: path.join(this.runDir, STATE_FILE), runDir: this.runDir, metricsFile: this.metrics.metricsFile,
      summaryFile: this.metrics.summaryFile, seconds: (performance.now() - started) / 1000, interrupted,
    };
  }

  async close(): Promise<void> {
    this.progress.endEpoch();
    await Promise.all([this.trainLoader.close(), this.evalLoader.close()]);
    this.optimizer.dispose();
    this.ema?.dispose();
    this.model.dispose();
  }
}

/** An evaluation as summary-row fields (percentages). */
function percentages<P extends 'eval_' | 'ema_eval_'>(prefix: P, r: EvalResult): Record<`${P}${'loss' | 'top1' | 'top5'}`, number> {
  return { [`${prefix}loss`]: r.loss, [`${prefix}top1`]: 100 * r.top1, [`${prefix}top5`]: 100 * r.top5 } as
    Record<`${P}${'loss' | 'top1' | 'top5'}`, number>;
}
