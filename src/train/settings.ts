/**
 * Every user setting of a training run in one table — TrainConfig's own keys and RecipeSettings'
 * overrides — with its flag, type, range, default and help; and the defaults and their merge.
 * Everything else derives from the table: validation (config-validation.ts), config files
 * (config-file.ts) and the `vicinity train` flags (src/cli/train-flags.ts).
 *
 *   const file = await loadConfigFile('run.yaml');                       // validated Partial<TrainConfig>
 *   const flags = validateConfig(flagValues(command.opts()), 'command line', { flags: true });
 *   const config = mergeConfig(defaultTrainConfig(), file, flags);     // flags > file > defaults
 */
import os from 'node:os';
import path from 'node:path';
import { DATASET_NAMES } from '../data/load-dataset.js';
import { THREADS_PER_CORE, maxThreads, threadCountRule } from '../native/thread-limit.js';
import { checkModel, checkRandAugment, checkRecipe } from './setting-checks.js';
import type { TrainConfig } from './train-config.js';

/** How a setting is written and checked: numbers with bounds, a switch, free text, one of `choices`, a file path. */
export type SettingType = 'int' | 'number' | 'bool' | 'string' | 'choice' | 'path';

/** One row of the table: a TrainConfig key as the user sees it. */
export interface SettingSpec {
  key: keyof TrainConfig & string;
  /** The `vicinity train` flag: '--' + the key in kebab-case. */
  flag: string;
  type: SettingType;
  /** 'run': TrainConfig's own settings; 'recipe': RecipeSettings overrides (default: the recipe's). */
  group: 'run' | 'recipe';
  /** Bounds of int/number settings; `…Exclusive` makes the bound open. */
  min?: number;
  minExclusive?: boolean;
  max?: number;
  maxExclusive?: boolean;
  choices?: readonly string[];
  help: string;
  /** The value's name in help texts, e.g. '<name>' (default: by type, see PLACEHOLDER). */
  valueName?: string;
  /** What the value must be, in words, where the bounds alone do not say it (default: from type and bounds). */
  expect?: string;
  /** Extra check of a well-typed value (registry names): the problem, or undefined when fine. */
  check?: (value: string) => string | undefined;
}

export const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function row(key: SettingSpec['key'], type: SettingType, group: SettingSpec['group'], help: string,
  extra: Partial<SettingSpec> = {}): SettingSpec {
  return { key, flag: `--${kebab(key)}`, type, group, help, ...extra };
}

const PROBABILITY = { min: 0, max: 1 };
const FRACTION = { min: 0, max: 1, maxExclusive: true };

/** The table, in the order help texts and `--print-config` list it. */
export const TRAIN_SETTINGS: readonly SettingSpec[] = [
  // ---- what, on what, where ----
  row('model', 'string', 'run', 'registry name (vicinity list-models)', { check: checkModel, valueName: '<name>' }),
  row('dataset', 'choice', 'run', 'dataset to train and test on', { choices: DATASET_NAMES }),
  row('dataRoot', 'path', 'run', 'dataset directory (needed by mnist, cifar10, cifar100, imagefolder)'),
  row('dataSource', 'choice', 'run', "fashion-mnist: 'auto' (full if installed, else the bundled subset), 'full' or 'subset'",
    { choices: ['auto', 'full', 'subset'] }),
  row('recipe', 'string', 'run', "training recipe (default: the model's, see vicinity list-models)", { check: checkRecipe, valueName: '<name>' }),
  row('trainLimit', 'int', 'run', 'use only the first n training images (smoke runs); 0 = all', { min: 0 }),
  row('evalBatchSize', 'int', 'run', 'batch size of evaluation', { min: 1 }),
  row('workers', 'int', 'run', `worker threads decoding and augmenting images; 0 = the main thread, at most ${THREADS_PER_CORE} per core`,
    { min: 0, max: maxThreads(), expect: threadCountRule(0) }),
  row('seed', 'int', 'run', 'seed of initialisation, data order and augmentation', { min: 0, max: Number.MAX_SAFE_INTEGER }),
  row('out', 'path', 'run', 'run directory: checkpoints, metrics.jsonl, summary.csv, config.json'),
  row('resume', 'path', 'run', 'continue exactly from a run directory or its state file'),
  row('overwrite', 'bool', 'run', "replace the run already in --out (its files are deleted first); without it, train refuses a directory that holds a run"),
  // ---- fine-tuning (fine-tune.ts) ----
  row('pretrained', 'path', 'run', 'start from these weights (.safetensors, .pth, a timm train.py checkpoint): loaded strictly, then a new classifier'),
  row('pretrainedEma', 'bool', 'run', "take the EMA weights of the --pretrained checkpoint (timm's state_dict_ema)"),
  row('numClasses', 'int', 'run', "classifier outputs (default: the dataset's classes; not fewer)", { min: 1 }),
  row('freeze', 'int', 'run', 'with --pretrained: freeze the stem and the first n stages; 0 = none', { min: 0 }),
  row('inputSize', 'int', 'run', "train and test at this image side (e.g. a model trained at another resolution); default the model's", { min: 8 }),
  row('device', 'choice', 'run', 'where the model runs', { choices: ['cpu', 'cuda'] }),
  row('progress', 'choice', 'run', "'auto': a progress bar on a terminal, plain lines otherwise",
    { choices: ['auto', 'bar', 'plain', 'none'] }),
  // ---- recipe overrides ----
  row('epochs', 'int', 'recipe', 'training epochs', { min: 1 }),
  row('batchSize', 'int', 'recipe', 'training images per step', { min: 1 }),
  row('optimizer', 'choice', 'recipe', 'optimizer', { choices: ['sgd', 'adamw'] }),
  row('lr', 'number', 'recipe', 'peak learning rate (after warm-up)', { min: 0, minExclusive: true }),
  row('momentum', 'number', 'recipe', 'SGD momentum, or AdamW beta1', FRACTION),
  row('nesterov', 'bool', 'recipe', 'Nesterov momentum (SGD)'),
  row('beta2', 'number', 'recipe', 'AdamW beta2', FRACTION),
  row('eps', 'number', 'recipe', 'AdamW epsilon', { min: 0, minExclusive: true }),
  row('weightDecay', 'number', 'recipe', 'weight decay (not on norms and biases)', { min: 0 }),
  row('schedule', 'choice', 'recipe', 'learning-rate schedule, per step', { choices: ['cosine', 'step', 'constant'] }),
  row('warmupEpochs', 'number', 'recipe', 'linear warm-up length in epochs (fractions allowed)', { min: 0 }),
  row('warmupLr', 'number', 'recipe', 'learning rate at the start of the warm-up', { min: 0 }),
  row('minLr', 'number', 'recipe', 'cosine floor', { min: 0 }),
  row('stepEpochs', 'number', 'recipe', "'step' schedule: epochs between decays", { min: 0, minExclusive: true }),
  row('stepGamma', 'number', 'recipe', "'step' schedule: factor of each decay", { min: 0, minExclusive: true, max: 1 }),
  row('labelSmoothing', 'number', 'recipe', 'label smoothing', FRACTION),
  row('clipGrad', 'number', 'recipe', 'max global gradient norm; 0 = no clipping', { min: 0 }),
  row('mixup', 'number', 'recipe', 'mixup Beta alpha; 0 = off', { min: 0 }),
  row('cutmix', 'number', 'recipe', 'CutMix Beta alpha; 0 = off', { min: 0 }),
  row('randAugment', 'string', 'recipe', "timm RandAugment string, e.g. 'rand-m9-mstd0.5-inc1'; '' = off", { check: checkRandAugment, valueName: '<config>' }),
  row('randomErasing', 'number', 'recipe', 'random-erasing probability; 0 = off', FRACTION),
  row('hflip', 'number', 'recipe', 'horizontal-flip probability', PROBABILITY),
  row('cropPadding', 'int', 'recipe', 'random crop after zero padding by this many pixels; 0 = off', { min: 0 }),
  row('dropPath', 'number', 'recipe', 'stochastic depth rate (timm drop_path_rate)', FRACTION),
  row('emaDecay', 'number', 'recipe', 'EMA of the weights with this decay, e.g. 0.9998; 0 = off', FRACTION),
];

export const BY_KEY: ReadonlyMap<string, SettingSpec> = new Map(TRAIN_SETTINGS.map((s) => [s.key, s]));

/** Old spellings of flags, kept working; hidden from help. */
export const FLAG_ALIASES: Readonly<Record<string, { flag: string; key: SettingSpec['key'] }>> = {
  data: { flag: '--data', key: 'dataSource' },
};

/** timm argument names that mean one of our keys: offered as "did you mean", never applied silently. */
export const TIMM_NAMES: Readonly<Record<string, SettingSpec['key']>> = {
  opt: 'optimizer', sched: 'schedule', smoothing: 'labelSmoothing', reprob: 'randomErasing', aa: 'randAugment',
  drop_path_rate: 'dropPath', model_ema_decay: 'emaDecay', decay_epochs: 'stepEpochs', decay_rate: 'stepGamma',
  opt_eps: 'eps', data_dir: 'dataRoot', output: 'out',
};

// ---- defaults --------------------------------------------------------------------------------------

/** TrainConfig's defaults: everything but `out` (derived from model and dataset by mergeConfig). */
export type TrainDefaults = Omit<TrainConfig, 'out'> & { out?: string };

/** The defaults of the run settings; recipe settings stay unset (the recipe decides). */
export function defaultTrainConfig(): TrainDefaults {
  return {
    model: 'la_resnet_nano_s2',
    dataset: 'fashion-mnist',
    dataSource: 'auto',
    trainLimit: 0,
    evalBatchSize: 500,
    // One core stays with the training loop; more than 2 decoders rarely pay on small images.
    workers: Math.max(0, Math.min(2, os.availableParallelism() - 1)),
    seed: 0,
    device: 'cpu',
    progress: 'auto',
  };
}

/** `runs/<model>-<dataset>`, the run directory when none is given. */
export function defaultOutDir(config: Pick<TrainConfig, 'model' | 'dataset'>): string {
  return path.join('runs', `${config.model}-${config.dataset}`);
}

/**
 * Layers the settings: flags override the file, which overrides the defaults. Unset (undefined)
 * values never override. `out` defaults to `runs/<model>-<dataset>` of the merged model and dataset.
 */
export function mergeConfig(defaults: TrainDefaults, file: Partial<TrainConfig> = {}, flags: Partial<TrainConfig> = {}): TrainConfig {
  const merged: Record<string, unknown> = { ...defaults };
  for (const layer of [file, flags]) {
    for (const [key, value] of Object.entries(layer)) if (value !== undefined) merged[key] = value;
  }
  const config = merged as unknown as TrainConfig;
  if (config.out === undefined) config.out = defaultOutDir(config);
  return config;
}
