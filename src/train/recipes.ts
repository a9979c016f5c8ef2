/**
 * The named training recipes: every hyper-parameter of the papers' setups (numbers from the
 * model entries' headers, src/models/entries/*.ts), and the rule that merges a recipe with a
 * run's overrides.
 *
 *   const recipe = recipeFor({ model: 'la_resnet50', batchSize: 128 });  // 'la-sgd', lr 0.4 → 0.1
 *
 * Learning-rate scaling: a recipe's `lr` is its paper's peak lr for the recipe's `batchSize`.
 * When a run overrides `batchSize` but not `lr`, the lr is scaled linearly, lr · batch / recipe
 * batch (Goyal et al. 2017), as the papers state their lrs (LSAG: 5e-4 × batch/512; SASA and
 * torchvision: 0.1 per 256) and as timm's train.py does when no --lr is given (timm uses √ for
 * Adam-family optimizers; the LSAG/DeiT scripts scale AdamW linearly, so linear is used for all).
 * An explicit `lr` is used as given. `warmupLr` and `minLr` are absolute and never scaled.
 */
import { modelInfo } from '../models/registry.js';
import type { RecipeSettings, TrainConfig } from './train-config.js';

/** A named recipe: its settings, one line about it, and where the numbers come from. */
export type Recipe = RecipeSettings & {
  /** One line for listings. */
  description: string;
  /** The paper section / script the numbers come from. */
  source: string;
};

/** A recipe merged with a run's overrides (`recipeFor`). */
export type ResolvedRecipe = Recipe & {
  /** The recipe's name. */
  name: string;
  /** The settings the run overrode, by name (empty when none). */
  overridden: (keyof RecipeSettings)[];
  /** Set when lr was scaled for an overridden batch size: the recipe's lr and batch size. */
  lrScaledFrom?: { lr: number; batchSize: number };
};

/** Values every recipe starts from: no regularisation beyond what the recipe names (timm's defaults). */
const BASE: RecipeSettings = {
  optimizer: 'sgd', lr: 0.1, momentum: 0.9, nesterov: false, beta2: 0.999, eps: 1e-8, weightDecay: 0,
  epochs: 90, batchSize: 256, schedule: 'cosine', warmupEpochs: 0, warmupLr: 0, minLr: 0, stepEpochs: 30,
  stepGamma: 0.1, labelSmoothing: 0, clipGrad: 0, mixup: 0, cutmix: 0, randAugment: '', randomErasing: 0,
  hflip: 0.5, cropPadding: 0, dropPath: 0, emaDecay: 0,
};

/** Every recipe the model entries name, by name. */
export const RECIPES: Record<string, Recipe> = {
  'la-sgd': {
    ...BASE, nesterov: false, lr: 0.4, batchSize: 512, epochs: 100, weightDecay: 1e-4, warmupEpochs: 5,
    description: 'LA-layer ImageNet: SGD momentum 0.9, lr 0.4 @ 512, 5 warm-up epochs, cosine, 100 epochs, wd 1e-4',
    source: 'LA-layer paper §4.1 ("the same training setup as Li et al. (2022)"); src/models/entries/la.ts',
  },
  'lesa-sgd': {
    // "5 linear warm-up epochs + 90 epochs": 95 in all, the cosine counted from step 0 (timm).
    ...BASE, nesterov: true, lr: 0.05, batchSize: 128, epochs: 95, weightDecay: 8e-5, warmupEpochs: 5,
    description: 'LESA ImageNet: SGD Nesterov 0.9, lr 0.05 @ 128, 5 warm-up + 90 epochs, cosine, wd 8e-5',
    source: 'LESA paper §3.1, LESA_classification README and train.py defaults; src/models/entries/lesa.ts',
  },
  'lsag-adamw': {
    ...BASE, optimizer: 'adamw', lr: 5e-4, momentum: 0.9, beta2: 0.999, eps: 1e-8, batchSize: 512, epochs: 300,
    weightDecay: 0.05, warmupEpochs: 5, warmupLr: 1e-6, minLr: 1e-5, clipGrad: 5.0, labelSmoothing: 0.1,
    randAugment: 'rand-m9-mstd0.5-inc1', mixup: 0.8, cutmix: 1.0, randomErasing: 0.25, dropPath: 0.1,
    description: 'LSAG (DeiT loop): AdamW lr 5e-4 @ 512, wd 0.05, 300 epochs, cosine to 1e-5, 5 warm-up epochs, ' +
      'clip 5, LS 0.1, RandAugment m9, mixup 0.8, cutmix 1.0, erasing 0.25, drop-path 0.1',
    source: 'LSAG paper §4 and released main_*.py (ImageNet: drop-path 0.2, Tiny 20 warm-up epochs); ' +
      'src/models/entries/lsag.ts',
  },
  halonet: {
    // The slides give label smoothing and RandAugment only; the rest is timm train.py's defaults.
    ...BASE, nesterov: true, lr: 0.1, batchSize: 256, epochs: 300, weightDecay: 2e-5, warmupEpochs: 5,
    warmupLr: 1e-5, labelSmoothing: 0.1, randAugment: 'rand-m9-mstd0.5',
    description: 'HaloNet: label smoothing 0.1 + RandAugment m9 on timm train.py defaults (SGD Nesterov, lr 0.1 @ 256, ' +
      'cosine, 5 warm-up epochs, wd 2e-5, 300 epochs)',
    source: 'HaloNet slides Table 3 (LS, RA); timm train.py defaults for the rest; src/models/entries/halonet.ts',
  },
  'fashion-mnist-sgd': {
    // No random crop: in 5 epochs it costs small_convnet 1.3 points (docs/training.md, measured).
    ...BASE, nesterov: true, lr: 0.1, batchSize: 128, epochs: 5, weightDecay: 5e-4, warmupEpochs: 0.5,
    hflip: 0.5, cropPadding: 0,
    description: '28 px Fashion-MNIST: SGD Nesterov 0.9, lr 0.1 @ 128, wd 5e-4, ½ warm-up epoch, cosine, 5 epochs, flip',
    source: 'vicinity (docs/training.md, "fashion-mnist-sgd"); src/models/entries/baselines.ts',
  },
  'cifar-sgd': {
    ...BASE, lr: 0.1, batchSize: 128, epochs: 200, weightDecay: 5e-4, hflip: 0.5, cropPadding: 4,
    description: '32 px CIFAR: SGD momentum 0.9, lr 0.1 @ 128, wd 5e-4, cosine, 200 epochs, random crop (pad 4) + flip',
    source: 'bench/resnet18-step.ts (lr 0.1, momentum 0.9, wd 5e-4) with the usual CIFAR schedule; src/models/entries/baselines.ts',
  },
  'torchvision-imagenet': {
    ...BASE, lr: 0.1, batchSize: 256, epochs: 90, weightDecay: 1e-4, schedule: 'step', stepEpochs: 30, stepGamma: 0.1,
    description: 'torchvision ImageNet: SGD momentum 0.9, lr 0.1 @ 256, wd 1e-4, 90 epochs, ×0.1 every 30',
    source: 'torchvision references/classification/train.py defaults; src/models/entries/baselines.ts',
  },
  'sasa-sgd': {
    ...BASE, nesterov: true, lr: 0.1, batchSize: 256, epochs: 90, weightDecay: 1e-4, warmupEpochs: 10,
    labelSmoothing: 0.1,
    description: 'SASA ImageNet: SGD Nesterov 0.9, lr 0.1 @ 256, 10 warm-up epochs, cosine, wd 1e-4, LS 0.1, 90 epochs',
    source: 'SASA paper §4.1 (arXiv 1906.05909); src/models/entries/sasa.ts',
  },
};

/** The names of every recipe, sorted. */
export function recipeNames(): string[] {
  return Object.keys(RECIPES).sort();
}

/**
 * The recipe of that name (a copy).
 *
 * Errors: a RangeError listing the known names for an unknown one.
 */
export function resolveRecipe(name: string): Recipe {
  const recipe = Object.hasOwn(RECIPES, name) ? RECIPES[name] : undefined;
  if (!recipe) {
    throw new RangeError(`unknown recipe '${name}'; the recipes are ${recipeNames().join(', ')} ` +
      '(docs/training.md describes each)');
  }
  return { ...recipe };
}

const SETTING_KEYS = Object.keys(BASE) as (keyof RecipeSettings)[];

/**
 * The run's settings: the recipe named by `config.recipe` (default: the model entry's), with
 * every setting the config gives replacing the recipe's, and lr scaled linearly when only the
 * batch size is overridden (file header).
 *
 * Errors: UnknownModelError for an unknown model (when no recipe is named); a RangeError for an
 * unknown recipe or a setting out of range (named, with its value).
 */
export function recipeFor(config: Pick<TrainConfig, 'model' | 'recipe'> & Partial<RecipeSettings>): ResolvedRecipe {
  const name = config.recipe ?? modelInfo(config.model).recipe;
  const base = resolveRecipe(name);
  const resolved: ResolvedRecipe = { ...base, name, overridden: [] };
  const target = resolved as unknown as Record<string, unknown>;
  for (const key of SETTING_KEYS) {
    const value = config[key];
    if (value === undefined) continue;
    target[key] = value;
    if (value !== base[key]) resolved.overridden.push(key);
  }
  if (config.lr === undefined && resolved.batchSize !== base.batchSize) {
    resolved.lr = base.lr * resolved.batchSize / base.batchSize;
    resolved.lrScaledFrom = { lr: base.lr, batchSize: base.batchSize };
  }
  checkSettings(resolved);
  return resolved;
}

/** Range checks the optimizer and schedules would otherwise report later and less clearly. */
function checkSettings(r: ResolvedRecipe): void {
  const fail = (key: string, value: unknown, want: string): never => {
    throw new RangeError(`recipe '${r.name}': ${key} must be ${want}, got ${JSON.stringify(value)}`);
  };
  if (r.optimizer !== 'sgd' && r.optimizer !== 'adamw') fail('optimizer', r.optimizer, "'sgd' or 'adamw'");
  if (!['cosine', 'step', 'constant'].includes(r.schedule)) fail('schedule', r.schedule, "'cosine', 'step' or 'constant'");
  if (!(Number.isInteger(r.epochs) && r.epochs >= 1)) fail('epochs', r.epochs, 'an integer ≥ 1');
  if (!(Number.isInteger(r.batchSize) && r.batchSize >= 1)) fail('batchSize', r.batchSize, 'an integer ≥ 1');
  for (const key of ['lr', 'weightDecay', 'warmupEpochs', 'warmupLr', 'minLr', 'clipGrad', 'mixup', 'cutmix', 'eps'] as const) {
    if (!(typeof r[key] === 'number' && r[key] >= 0 && Number.isFinite(r[key]))) fail(key, r[key], 'a finite number ≥ 0');
  }
  for (const key of ['labelSmoothing', 'randomErasing', 'hflip', 'dropPath', 'emaDecay', 'momentum', 'beta2'] as const) {
    if (!(typeof r[key] === 'number' && r[key] >= 0 && r[key] < 1) && !(key === 'hflip' && r[key] === 1)) {
      fail(key, r[key], 'a number in [0, 1)');
    }
  }
  if (r.warmupEpochs > r.epochs) fail('warmupEpochs', r.warmupEpochs, `at most epochs (${r.epochs})`);
  if (r.schedule === 'step' && !(r.stepEpochs > 0)) fail('stepEpochs', r.stepEpochs, 'a number > 0 with schedule step');
  if (r.schedule === 'step' && r.warmupEpochs > 0) {
    fail('warmupEpochs', r.warmupEpochs, "0 with schedule 'step' (StepSchedule has no warm-up; use 'cosine' or 'constant')");
  }
  if (!(Number.isInteger(r.cropPadding) && r.cropPadding >= 0)) fail('cropPadding', r.cropPadding, 'an integer ≥ 0');
  if (typeof r.randAugment !== 'string') fail('randAugment', r.randAugment, "a timm RandAugment string or ''");
}
