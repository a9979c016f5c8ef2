/**
 * What the input pipeline does to each image and batch, as plain JSON-serialisable data: the
 * trainer builds it from a recipe and the dataset, the loader sends it to its worker threads, and
 * the workers apply it (transforms/pipeline.ts). Names and defaults follow timm's
 * `create_transform` / `Mixup` / `RandomErasing`, whose recipes the papers use.
 */

/** Per-image transforms, in the order they run. */
export interface TransformSpec {
  /** Output (height, width) of every image. */
  size: [number, number];
  /** Output channels (1 or 3); a decoded image with the other count is converted. */
  channels: 1 | 3;
  /** Per-channel mean and std of pixel values in [0, 1] (length 1 or `channels`). */
  mean: number[];
  std: number[];
  /** Training-time randomness on (false: only the deterministic eval path below runs). */
  train: boolean;
  /** Train: zero-pad by this many pixels on each side, then crop `size` at a random place (CIFAR style). */
  randomCropPadding?: number;
  /** Train: timm RandomResizedCropAndInterpolation (scale, log-uniform ratio), to `size`. */
  randomResizedCrop?: { scale: [number, number]; ratio: [number, number] };
  /** Eval: resize the shorter side to ⌊size / cropPct⌋, then centre-crop `size` (timm: 0.875). */
  centerCropPct?: number;
  /** Train: horizontal flip with this probability. */
  hflip?: number;
  /** Train: a timm RandAugment config string, e.g. 'rand-m9-mstd0.5-inc1'. */
  randAugment?: string;
  /** Train: colour jitter strength (brightness/contrast/saturation), timm's color_jitter; skipped with randAugment. */
  colorJitter?: number;
  /** Train: timm RandomErasing after normalisation. */
  randomErasing?: { probability: number; mode: 'pixel' | 'rand' | 'const'; count: number };
  /** Resampling of every resize. Default 'bilinear'. */
  interpolation?: 'bilinear' | 'bicubic' | 'nearest';
}

/** Batch-level mixing (timm Mixup, mode 'batch'), with label smoothing folded into the targets. */
export interface MixSpec {
  /** Beta(α, α) of mixup; 0 disables mixup. */
  mixupAlpha: number;
  /** Beta(α, α) of CutMix; 0 disables CutMix. */
  cutmixAlpha: number;
  /** Probability that a batch is mixed at all (timm mixup_prob). */
  prob: number;
  /** Probability of CutMix instead of mixup when both are on (timm switch_prob). */
  switchProb: number;
  /** Label smoothing of the soft targets (timm: smoothing / numClasses off, 1 − smoothing + that on). */
  labelSmoothing: number;
  numClasses: number;
}
