/**
 * The supervised classification step and loops: one training step (forward, loss, backward,
 * optional gradient clipping, optimizer update), the one training loop over a pass of such steps
 * (trainEpoch: runTraining's and the benchmarks'), and evaluation (loss, top-1, top-5). Each step runs in its own scope, so memory stays flat however long training runs.
 * Batches may come from a plain iterable (ImageBatches) or an async one (the threaded DataLoader).
 *
 * Loss: cross-entropy on class indices (with optional label smoothing), or, for batches carrying
 * soft targets (mixup/CutMix), timm's SoftTargetCrossEntropy: mean over the batch of
 * Σ_c −target_c · log_softmax(logits)_c.
 */
import type { Module } from '../nn/module.js';
import * as F from '../ops/functional.js';
import { clipGradNorm } from '../optim/clip-grad.js';
import { noGrad } from '../tensor/autograd.js';
import { flushFinalizers } from '../tensor/memory.js';
import { scope, tidy } from '../tensor/scope.js';
import type { Device, Tensor } from '../tensor/tensor.js';

export interface StepOptimizer {
  step(): void;
  zeroGrad(): void;
}

export interface StepResult {
  step: number;
  loss: number;
  batchSize: number;
}

/** A batch to train or evaluate on: images, class indices, and optional soft targets. */
export interface TrainBatch {
  /** (B, C, H, W) float32, normalised. */
  images: Tensor;
  /** (B,) int64 class indices. */
  labels: Tensor;
  /** (B, numClasses) soft targets (mixup/CutMix), which then replace the labels in the loss. */
  targets?: Tensor | null;
}

/** Batches as the loops take them. */
export type Batches<B> = Iterable<B> | AsyncIterable<B>;

export interface TrainStepOptions {
  /** Label smoothing of the hard-label loss (ignored with soft targets, which carry their own). */
  labelSmoothing?: number;
  /** Max global gradient norm (clipGradNorm); 0 or undefined: no clipping. */
  clipGrad?: number;
  /** Runs after backward and clipping, before the optimizer step. */
  beforeStep?: () => void;
  /** Moves the batch here first (default: where it is). */
  device?: Device;
}

/** timm's SoftTargetCrossEntropy: mean over rows of Σ −targets · log_softmax(logits). */
export function softTargetCrossEntropy(logits: Tensor, targets: Tensor): Tensor {
  return tidy(() => targets.neg().mul(F.logSoftmax(logits, -1)).sum(-1).mean());
}

/**
 * One optimisation step on a batch, in the caller's scope; returns the loss (a number). The
 * batch's tensors are left to the caller.
 */
export function trainStep(model: Module, optimizer: StepOptimizer, batch: TrainBatch, options: TrainStepOptions = {}): number {
  const device = options.device;
  const images = device ? batch.images.to({ device }) : batch.images;
  // Forward in its own tidy: only what autograd saved outlives it, and backward frees that as
  // it goes, as in PyTorch. Holding every activation to the step's end costs ~25% more page
  // faults and system time (docs/benchmarks.md, "Memory retention").
  const loss = tidy(() => {
    const logits = model.forward(images);
    if (batch.targets) return softTargetCrossEntropy(logits, device ? batch.targets.to({ device }) : batch.targets);
    const labels = device ? batch.labels.to({ device }) : batch.labels;
    return F.crossEntropy(logits, labels, { labelSmoothing: options.labelSmoothing ?? 0 });
  });
  optimizer.zeroGrad();
  loss.backward();
  if (options.clipGrad) clipGradNorm(model.parameters(), options.clipGrad);
  options.beforeStep?.();
  optimizer.step();
  return loss.item() as number;
}

/** Options of trainEpoch: a step's, plus the hooks and stops of a whole pass. */
export interface EpochOptions extends TrainStepOptions {
  /** Runs in each step's scope before its forward pass (the trainer re-seeds the generator here). */
  beforeForward?: () => void;
  /** Runs in each step's scope after the optimizer step (the trainer steps the schedule and the EMA here). */
  afterUpdate?: () => void;
  /** Runs after each step, outside its scope, with the step's loss; may throw to stop the pass (a non-finite loss). */
  onStep?: (r: StepResult) => void;
  /** Stops before the next batch once aborted (the batch is disposed untrained). */
  signal?: AbortSignal;
  /** Stops after this many steps (a step budget). */
  maxSteps?: number;
}

/**
 * THE training loop (runTraining's epochs, bench/results.ts and any caller's): one pass over
 * `batches`, each batch a step in its own scope (disposed after it, finalizers flushed between
 * steps), until the batches end, `signal` aborts or `maxSteps` are done. Returns the mean
 * training loss of the steps run (NaN when none ran) and their number.
 */
export async function trainEpoch(
  model: Module,
  optimizer: StepOptimizer,
  batches: Batches<TrainBatch>,
  options: EpochOptions = {},
): Promise<{ loss: number; steps: number }> {
  model.train();
  let total = 0;
  let seen = 0;
  let step = 0;
  for await (const batch of batches) {
    if (options.signal?.aborted || (options.maxSteps !== undefined && step >= options.maxSteps)) {
      disposeBatch(batch);
      break;
    }
    const n = batch.labels.shape[0];
    let value: number;
    try {
      using _ = scope();
      options.beforeForward?.();
      value = trainStep(model, optimizer, batch, options);
      options.afterUpdate?.();
    } finally {
      disposeBatch(batch);
    }
    options.onStep?.({ step: step++, loss: value, batchSize: n });
    total += value * n;
    seen += n;
    await flushFinalizers();
    if (options.maxSteps !== undefined && step >= options.maxSteps) break;
  }
  return { loss: seen ? total / seen : NaN, steps: step };
}

/** Frees a batch's tensors. */
export function disposeBatch(batch: TrainBatch): void {
  batch.images.dispose();
  batch.labels.dispose();
  batch.targets?.dispose();
}

export interface EvalResult {
  /** NaN, as top1 and top5, when any output is not finite (see nonFinite). */
  loss: number;
  top1: number;
  top5: number;
  count: number;
  /** Images whose outputs hold a NaN or ±Inf (a diverged or corrupt model); 0 normally. */
  nonFinite: number;
}

/**
 * Mean cross-entropy and top-1/top-5 accuracy (fractions) in eval mode, without autograd; each
 * batch is disposed after use.
 */
export async function evaluate(model: Module, batches: Batches<TrainBatch>, options: { device?: Device } = {}): Promise<EvalResult> {
  model.eval();
  let loss = 0;
  let top1 = 0;
  let top5 = 0;
  let count = 0;
  let nonFinite = 0;
  for await (const batch of batches) {
    {
      using _ = scope();
      noGrad(() => {
        const images = options.device ? batch.images.to({ device: options.device }) : batch.images;
        const labels = options.device ? batch.labels.to({ device: options.device }) : batch.labels;
        const logits = model.forward(images);
        // topk ranks NaN as the largest value, so NaN outputs would score as hits: count them instead.
        nonFinite += labels.shape[0] - (logits.isfinite().all(1).sum().item() as number);
        loss += (F.crossEntropy(logits, labels, { reduction: 'sum' }).item() as number);
        const k = Math.min(5, logits.shape[1]);
        const { indices } = logits.topk(k, 1);
        const hits = indices.eq(labels.unsqueeze(1));
        top1 += hits.narrow(1, 0, 1).sum().item() as number;
        top5 += hits.sum().item() as number;
        count += labels.shape[0];
      });
    }
    disposeBatch(batch);
    await flushFinalizers();
  }
  if (nonFinite > 0) return { loss: NaN, top1: NaN, top5: NaN, count, nonFinite };
  return { loss: loss / count, top1: top1 / count, top5: top5 / count, count, nonFinite };
}
