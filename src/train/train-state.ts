/**
 * Checkpoints of a training run, written atomically after every epoch and on interruption:
 *
 *   <run>/last.state.safetensors  everything an exact resume needs: the model's and the EMA's
 *                                 weights, the optimizer's state tensors (tensors `model.<name>`,
 *                                 `ema.<name>`, `optimizer.<param index>.<key>`) and, as JSON in
 *                                 the metadata key `vicinity.train_state`, the position (epoch,
 *                                 batch, step), the optimizer's param groups and counters, the
 *                                 schedule's state, the resolved config and recipe, the best
 *                                 top-1, the partial epoch's loss sums and the metrics rows.
 *   <run>/last.safetensors        the model's weights under their PyTorch names, loadable with
 *                                 createModel + loadWeights; metadata: the model's
 *                                 pretrained_cfg (model-metadata.ts), epoch (epochs completed),
 *                                 batch, step, top1 (percent, the last evaluation).
 *   <run>/best.safetensors        the same, written when the evaluated top-1 improves.
 *   <run>/ema.safetensors         the EMA's weights, when the run keeps an EMA.
 *
 * Integrity: the state file's metadata holds a SHA-256 digest of its tensors (`vicinity.sha256`,
 * checkpoint/digest.ts), verified by readTrainState, so a resume never continues from flipped bytes.
 *
 * Order and consistency: each file is written to a temporary file, fsynced and renamed
 * (writeSafetensors). The state file is written first and holds the weights itself, so a resume
 * never depends on the weights file: a crash between the two renames leaves a state one checkpoint
 * ahead of last.safetensors, and the next checkpoint rewrites both. Both carry the same `step`.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { DIGEST_KEY, tensorsDigest } from '../checkpoint/digest.js';
import { CheckpointError, type RawTensor } from '../checkpoint/raw-tensor.js';
import { readSafetensors, writeSafetensors } from '../checkpoint/safetensors.js';
import { rawToTensor, tensorToRaw } from '../checkpoint/tensor-io.js';
import type { Module, StateDict } from '../nn/module.js';
import type { LrSchedule, Optimizer, OptimizerStateDict, ScheduleStateDict } from '../optim/index.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ModelEma } from './ema.js';
import type { MetricsRow } from './metrics-log.js';
import type { ResolvedRecipe } from './recipes.js';
import type { TrainConfig } from './train-config.js';
import { encodePretrainedCfg, pretrainedCfgForRun } from './model-metadata.js';

export const STATE_FILE = 'last.state.safetensors';
export const WEIGHTS_FILE = 'last.safetensors';
export const BEST_FILE = 'best.safetensors';
export const EMA_FILE = 'ema.safetensors';
const STATE_KEY = 'vicinity.train_state';
const STATE_FORMAT = 'vicinity-train-state';
const STATE_VERSION = 1;

/** Where training stands: epoch `epoch` (0-based) has run `batch` of its `stepsPerEpoch` batches. */
export interface TrainPosition {
  /** Epochs completed. */
  epoch: number;
  /** Batches of the current epoch done (0 at an epoch boundary). */
  batch: number;
  /** Optimizer steps so far. */
  step: number;
  stepsPerEpoch: number;
}

/** The JSON part of a train state. */
export interface TrainStateMeta {
  position: TrainPosition;
  /** The run's config as first given (resume excluded) and its resolved recipe. */
  config: Omit<TrainConfig, 'resume'>;
  recipe: ResolvedRecipe;
  /** What the weights file's metadata says about the model and data. */
  model: { numClasses: number; inChannels: number; inputSize: [number, number]; classes?: string[]; modelArgs?: Record<string, number> };
  bestTop1: number | null;
  bestEpoch: number | null;
  /** Loss sum and image count of the current epoch's steps so far (its train_loss on resume). */
  epochLoss: { sum: number; count: number };
  /** Every completed epoch's row. */
  history: MetricsRow[];
  /** Training seconds before this checkpoint, over every session of the run. */
  elapsedSeconds: number;
}

/** What a checkpoint holds live. */
export interface TrainParts {
  model: Module;
  optimizer: Optimizer<{ lr: number }>;
  schedule: LrSchedule;
  ema: ModelEma<Module> | null;
}

/** A missing, corrupt or mismatched train state; the message names the file and the fix. */
export class TrainStateError extends Error {
  constructor(readonly file: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TrainStateError';
  }
}

interface StoredMeta extends TrainStateMeta {
  format: string;
  version: number;
  optimizer: { param_groups: OptimizerStateDict['param_groups']; counters: Record<string, Record<string, number>> };
  schedule: ScheduleStateDict;
  emaUpdates: number | null;
}

/** Copies a state dict's tensors to raw bytes under a prefix, disposing the detached views. */
function addRaw(out: Map<string, RawTensor>, prefix: string, dict: StateDict): void {
  for (const [name, t] of dict) {
    out.set(`${prefix}${name}`, tensorToRaw(t));
    t.dispose();
  }
}

/** The optimizer's state tensors as raw bytes, and its number-valued state (e.g. AdamW's step). */
function optimizerRaw(optimizer: Optimizer<{ lr: number }>, out: Map<string, RawTensor>): StoredMeta['optimizer'] {
  const dict = optimizer.stateDict();
  const counters: Record<string, Record<string, number>> = {};
  for (const [index, entry] of Object.entries(dict.state)) {
    for (const [key, value] of Object.entries(entry)) {
      if (value === null) continue;
      if (typeof value === 'number') (counters[index] ??= {})[key] = value;
      else out.set(`optimizer.${index}.${key}`, tensorToRaw(value));
    }
  }
  return { param_groups: dict.param_groups, counters };
}

/** The weights file's metadata (all strings, as safetensors requires). */
export function weightsMetadata(meta: TrainStateMeta, top1: number | null): Record<string, string> {
  const { position, config, model } = meta;
  // The model's pretrained_cfg (model-metadata.ts); states saved before class names were kept get index names.
  const classes = model.classes ?? Array.from({ length: model.numClasses }, (_, i) => String(i));
  const cfg = pretrainedCfgForRun({
    model: config.model, dataset: config.dataset, classes, inChannels: model.inChannels as 1 | 3,
    inputSize: model.inputSize, dropPathRate: meta.recipe.dropPath, modelArgs: model.modelArgs,
  });
  return {
    format: 'pt', ...encodePretrainedCfg(cfg), epoch: String(position.epoch),
    batch: String(position.batch), step: String(position.step),
    top1: top1 === null ? '' : String(top1), recipe: meta.recipe.name,
  };
}

/**
 * Writes the state file, then last.safetensors (and best.safetensors when `isBest`, ema.safetensors
 * when an EMA is kept). Returns the paths written.
 */
export async function writeCheckpoint(
  runDir: string, parts: TrainParts, meta: TrainStateMeta, options: { top1: number | null; emaTop1?: number | null; isBest: boolean },
): Promise<{ stateFile: string; checkpoint: string; best: string | null }> {
  const stateTensors = new Map<string, RawTensor>();
  const weights = new Map<string, RawTensor>();
  const stored = tidy(() => {
    addRaw(weights, '', parts.model.stateDict());
    for (const [name, raw] of weights) stateTensors.set(`model.${name}`, raw);
    const emaWeights = new Map<string, RawTensor>();
    if (parts.ema) addRaw(emaWeights, '', parts.ema.stateDict());
    for (const [name, raw] of emaWeights) stateTensors.set(`ema.${name}`, raw);
    const optimizer = optimizerRaw(parts.optimizer, stateTensors);
    const full: StoredMeta = {
      ...meta, format: STATE_FORMAT, version: STATE_VERSION, optimizer,
      schedule: parts.schedule.stateDict(), emaUpdates: parts.ema ? parts.ema.updates : null,
    };
    return { full, emaWeights };
  });
  const stateFile = path.join(runDir, STATE_FILE);
  const checkpoint = path.join(runDir, WEIGHTS_FILE);
  await writeSafetensors(stateFile, stateTensors, {
    format: STATE_FORMAT, [STATE_KEY]: JSON.stringify(stored.full), [DIGEST_KEY]: tensorsDigest(stateTensors),
  });
  const metadata = weightsMetadata(meta, options.top1);
  await writeSafetensors(checkpoint, weights, metadata);
  let best: string | null = null;
  if (options.isBest) {
    best = path.join(runDir, BEST_FILE);
    await writeSafetensors(best, weights, metadata);
  }
  if (parts.ema) {
    const emaTop1 = options.emaTop1 ?? null;
    await writeSafetensors(path.join(runDir, EMA_FILE), stored.emaWeights, { ...weightsMetadata(meta, emaTop1), ema: 'true' });
  }
  return { stateFile, checkpoint, best };
}

/** A state file read back: its JSON part and its tensors (raw bytes, not yet on a device). */
export interface LoadedTrainState {
  file: string;
  meta: TrainStateMeta;
  stored: StoredMeta;
  tensors: Map<string, RawTensor>;
}

/**
 * The state file a `--resume` value names: a run directory (its last.state.safetensors), a state
 * file, or a run's weights file (its sibling state file).
 *
 * Errors: TrainStateError when no state file exists there.
 */
export async function resolveStateFile(resume: string): Promise<string> {
  const candidates = resume.endsWith('.state.safetensors')
    ? [resume]
    : resume.endsWith('.safetensors') ? [path.join(path.dirname(resume), STATE_FILE)] : [path.join(resume, STATE_FILE)];
  for (const file of candidates) {
    try {
      await access(file);
      return file;
    } catch { /* try the next */ }
  }
  throw new TrainStateError(candidates[0], `cannot resume from ${resume}: ${candidates[0]} does not exist; pass a run ` +
    `directory written by \`vicinity train\` (it holds ${STATE_FILE}) or the state file itself`);
}

/**
 * Reads and checks a state file.
 *
 * Errors: TrainStateError for an unreadable, truncated or corrupt file, or one that is not a
 * vicinity train state (or of an unknown version).
 */
export async function readTrainState(file: string): Promise<LoadedTrainState> {
  let parsed;
  try {
    parsed = await readSafetensors(file);
  } catch (e) {
    const why = e instanceof CheckpointError ? e.message : (e as Error).message;
    throw new TrainStateError(file, `cannot resume: the train state ${file} is unreadable or corrupt (${why}); ` +
      `resume from another run directory, or start the run afresh without --resume`, { cause: e });
  }
  const text = parsed.metadata[STATE_KEY];
  let stored: StoredMeta | undefined;
  try {
    stored = text === undefined ? undefined : JSON.parse(text) as StoredMeta;
  } catch { /* reported below */ }
  if (!stored || stored.format !== STATE_FORMAT || !stored.position || !stored.config || !stored.recipe) {
    throw new TrainStateError(file, `cannot resume: ${file} is a safetensors file but not a vicinity train state ` +
      `(its metadata lacks a valid '${STATE_KEY}'); pass the run directory or its ${STATE_FILE}`);
  }
  if (stored.version !== STATE_VERSION) {
    throw new TrainStateError(file, `cannot resume: ${file} is train-state version ${stored.version}, this vicinity ` +
      `reads version ${STATE_VERSION}; resume it with the vicinity that wrote it`);
  }
  verifyDigest(file, parsed.metadata[DIGEST_KEY], parsed.tensors);
  return { file, meta: stored, stored, tensors: parsed.tensors };
}

/** The state file's tensors against the digest written with them (files written before digests have none). */
function verifyDigest(file: string, stored: string | undefined, tensors: Map<string, RawTensor>): void {
  if (stored === undefined) return;
  const actual = tensorsDigest(tensors);
  if (actual !== stored) {
    throw new TrainStateError(file, `cannot resume: the tensors in ${file} do not match the SHA-256 digest stored with ` +
      `them (${DIGEST_KEY} ${stored.slice(0, 12)}…, the bytes give ${actual.slice(0, 12)}…): the file is corrupt; ` +
      'restore it from a copy, or start the run afresh with --overwrite');
  }
}

/** The tensors under a prefix, as CPU tensors by the remaining name (the caller disposes them). */
function tensorsUnder(loaded: LoadedTrainState, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, raw] of loaded.tensors) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), rawToTensor(raw));
  return out;
}

/**
 * Loads a state into live parts built like the saved run's (same model, optimizer groups,
 * schedule kind): weights, EMA weights, optimizer state, then the schedule (which rewrites the lrs).
 *
 * Errors: TrainStateError naming the part that does not fit (a different model or optimizer).
 */
export function restoreTrainState(loaded: LoadedTrainState, parts: TrainParts): void {
  const { file, stored } = loaded;
  const fail = (what: string, e: unknown): never => {
    throw new TrainStateError(file, `cannot resume from ${file}: its ${what} does not fit this run ` +
      `(${(e as Error).message}); resume with the model and settings the run started with`, { cause: e });
  };
  const load = (prefix: string, into: (dict: Map<string, Tensor>) => void, what: string) => {
    const dict = tensorsUnder(loaded, prefix);
    try {
      into(dict);
    } catch (e) {
      fail(what, e);
    } finally {
      for (const t of dict.values()) t.dispose();
    }
  };
  load('model.', (dict) => parts.model.loadStateDict(dict), 'model state');
  if (parts.ema) {
    if (stored.emaUpdates === null) fail('EMA', new Error('the saved run kept no EMA'));
    load('ema.', (dict) => parts.ema!.loadStateDict(dict), 'EMA state');
    parts.ema.updates = stored.emaUpdates!;
  }
  load('optimizer.', (flat) => parts.optimizer.loadStateDict(optimizerDict(flat, stored.optimizer)), 'optimizer state');
  try {
    parts.schedule.loadStateDict(stored.schedule);
  } catch (e) {
    fail('schedule state', e);
  }
}

/** Rebuilds an optimizer state dict from `<index>.<key>` tensors and the stored counters. */
function optimizerDict(flat: Map<string, Tensor>, saved: StoredMeta['optimizer']): OptimizerStateDict {
  const state: OptimizerStateDict['state'] = {};
  for (const [name, t] of flat) {
    const dot = name.indexOf('.');
    const index = Number(name.slice(0, dot));
    (state[index] ??= {})[name.slice(dot + 1)] = t;
  }
  for (const [index, counters] of Object.entries(saved.counters)) Object.assign((state[Number(index)] ??= {}), counters);
  return { state, param_groups: saved.param_groups };
}

/** Settings a resumed run may take from the new config: where and how it runs, not what it computes. */
const RUN_CONTROL_KEYS = ['device', 'workers', 'progress', 'evalBatchSize', 'dataRoot'] as const;
/** Settings that define the run; the new config may repeat them but not change them. */
const RUN_DEFINING_KEYS = ['model', 'dataset', 'dataSource', 'recipe', 'trainLimit', 'seed'] as const;

/**
 * The config and recipe a resumed run continues with: the saved run's, except
 *   - run-control settings (device, workers, progress, evalBatchSize, dataRoot) the user gave,
 *     which replace the run's (a different dataRoot is said on `log`: the data must be the same,
 *     which the batches-per-epoch check and the model's shapes then verify);
 *   - `epochs`, which may be raised or lowered (said on `log`: the schedule is then laid out for
 *     the new total, so the continuation is no longer the uninterrupted run's).
 * `given` lists the settings the user gave (the CLI: config file and flags, not defaults); by
 * default every key of `config`. A given run-defining or recipe setting that differs from the
 * run's is refused: a resumed run keeps its own settings.
 *
 * Errors: TrainStateError listing every conflicting setting.
 */
export function resumeSettings(
  config: TrainConfig, loaded: LoadedTrainState, log: (line: string) => void, given: ReadonlySet<string> = new Set(Object.keys(config)),
): { config: Omit<TrainConfig, 'resume'>; recipe: ResolvedRecipe } {
  const saved = loaded.meta;
  const effective: Omit<TrainConfig, 'resume'> = { ...saved.config };
  const target = effective as unknown as Record<string, unknown>;
  const asked = config as unknown as Record<string, unknown>;
  const isGiven = (key: string) => given.has(key) && asked[key] !== undefined && asked[key] !== '';
  for (const key of RUN_CONTROL_KEYS) {
    if (!isGiven(key)) continue;
    if (key === 'dataRoot' && config.dataRoot !== saved.config.dataRoot) {
      log(`resume: reading the data from ${config.dataRoot} (the run read ${saved.config.dataRoot ?? "the dataset's default location"})`);
    }
    target[key] = asked[key];
  }
  const conflicts: string[] = [];
  for (const key of RUN_DEFINING_KEYS) {
    if (isGiven(key) && asked[key] !== saved.config[key]) conflicts.push(`${key} ${String(asked[key])} (the run's: ${String(saved.config[key])})`);
  }
  const recipe: ResolvedRecipe = { ...saved.recipe };
  for (const key of Object.keys(saved.recipe) as (keyof ResolvedRecipe)[]) {
    if (key === 'name' || key === 'overridden' || !isGiven(key) || asked[key] === saved.recipe[key]) continue;
    if (key === 'epochs') {
      log(`resume: epochs ${saved.recipe.epochs} → ${String(asked[key])}; the schedule is laid out for ${String(asked[key])} epochs from here on`);
      recipe.epochs = asked[key] as number;
      effective.epochs = asked[key] as number;
    } else {
      conflicts.push(`${key} ${String(asked[key])} (the run's: ${String(saved.recipe[key])})`);
    }
  }
  if (conflicts.length) {
    throw new TrainStateError(loaded.file, `cannot resume the run of ${saved.config.model} on ${saved.config.dataset} from ` +
      `${loaded.file} with different settings: ${conflicts.join(', ')}; a resumed run keeps its own settings (only ` +
      `epochs and ${RUN_CONTROL_KEYS.join(', ')} may change): drop those settings, or start a new run with another --out`);
  }
  return { config: effective, recipe };
}
