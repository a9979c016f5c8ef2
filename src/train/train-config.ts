/**
 * The settings of one training run, as `vicinity train` and `runTraining` take them: what to train
 * on what, and the recipe hyper-parameters a user may override. A recipe (recipes.ts) supplies
 * every hyper-parameter; a value given here (flag or config file) replaces the recipe's.
 * The settings table: settings.ts; validation: config-validation.ts; config files: config-file.ts.
 */

/** Every hyper-parameter of a training recipe (recipes.ts holds the named ones). */
export interface RecipeSettings {
  optimizer: 'sgd' | 'adamw';
  /** Peak learning rate (after warm-up), for `batchSize` images per step. */
  lr: number;
  /** SGD momentum, or AdamW β1. */
  momentum: number;
  nesterov: boolean;
  /** AdamW β2 and eps (ignored by SGD). */
  beta2: number;
  eps: number;
  weightDecay: number;
  epochs: number;
  batchSize: number;
  /** 'cosine' (timm CosineLRScheduler, per step) or 'step' (×stepGamma every stepEpochs). */
  schedule: 'cosine' | 'step' | 'constant';
  warmupEpochs: number;
  /** lr at the start of the warm-up. */
  warmupLr: number;
  /** Cosine floor. */
  minLr: number;
  stepEpochs: number;
  stepGamma: number;
  labelSmoothing: number;
  /** Max global gradient norm; 0 = no clipping. */
  clipGrad: number;
  /** Mixup / CutMix Beta α (0 = off), timm's defaults for the rest (MixSpec). */
  mixup: number;
  cutmix: number;
  /** timm RandAugment string ('' = off). */
  randAugment: string;
  /** Random-erasing probability (0 = off). */
  randomErasing: number;
  /** Horizontal-flip probability. */
  hflip: number;
  /** Random crop with this zero padding (0 = off); for small images. */
  cropPadding: number;
  /** Stochastic depth (timm drop_path_rate). */
  dropPath: number;
  /** EMA of the weights (timm ModelEmaV2); 0 = off, else the decay, e.g. 0.9998. */
  emaDecay: number;
}

/** One run: the model, the data, where results go, and recipe overrides. */
export interface TrainConfig extends Partial<RecipeSettings> {
  /** Registry name (`vicinity list-models`). */
  model: string;
  /** 'fashion-mnist' | 'mnist' | 'cifar10' | 'cifar100' | 'imagefolder'. */
  dataset: string;
  /** Dataset directory (required for mnist, cifar*, imagefolder; fashion-mnist finds its own). */
  dataRoot?: string;
  /** Fashion-MNIST: 'auto' (full if installed, else the bundled subset), 'full' or 'subset'. */
  dataSource: 'auto' | 'full' | 'subset';
  /** Recipe name (recipes.ts); default: the model entry's `recipe`. */
  recipe?: string;
  /** Use only the first n training images (smoke runs); 0 = all. */
  trainLimit: number;
  evalBatchSize: number;
  /** Worker threads decoding and augmenting; 0 = in the main thread. */
  workers: number;
  seed: number;
  /** Run directory: checkpoints, metrics.jsonl, summary.csv, config.json. */
  out: string;
  /** A run directory or state file to continue from exactly. */
  resume?: string;
  /** Replace the run already in `out` (its files are deleted first); without it such a run is refused. */
  overwrite?: boolean;
  /** Fine-tuning: weights to start from, loaded strictly before a new classifier (fine-tune.ts). */
  pretrained?: string;
  /** Take the EMA weights (state_dict_ema) of the pretrained checkpoint. */
  pretrainedEma?: boolean;
  /** Classifier outputs; default the dataset's class count (must not be fewer). */
  numClasses?: number;
  /** With pretrained: freeze the stem and this many stages. */
  freeze?: number;
  /** Image side for training and testing; default the model's (its native size for in-memory datasets). */
  inputSize?: number;
  device: 'cpu' | 'cuda';
  /** 'auto': a bar on a TTY, plain lines otherwise. */
  progress: 'auto' | 'bar' | 'plain' | 'none';
}
