/**
 * The supervised classification step and loops: one training step (forward, loss, backward,
 * optional gradient clipping, optimizer update), one epoch of such steps, and evaluation (loss,
 * top-1, top-5). Each step runs in its own scope, so memory stays flat however long training runs.
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

/** Trains for one pass over `batches` (disposing each); returns the mean training loss. */
export async function trainEpoch(
  model: Module,
  optimizer: StepOptimizer,
  batches: Batches<TrainBatch>,
  options: TrainStepOptions & { onStep?: (r: StepResult) => void } = {},
): Promise<number> {
  model.train();
  let total = 0;
  let seen = 0;
  let step = 0;
  for await (const batch of batches) {
    const n = batch.labels.shape[0];
    {
      using _ = scope();
      const value = trainStep(model, optimizer, batch, options);
      total += value * n;
      seen += n;
      options.onStep?.({ step: step++, loss: value, batchSize: n });
    }
    disposeBatch(batch);
    await flushFinalizers();
  }
  return seen ? total / seen : NaN;
}

/** Frees a batch's tensors. */
export function disposeBatch(batch: TrainBatch): void {
  batch.images.dispose();
  batch.labels.dispose();
  batch.targets?.dispose();
}

export interface EvalResult {
  loss: number;
  top1: number;
  top5: number;
  count: number;
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
  for await (const batch of batches) {
    {
      using _ = scope();
      noGrad(() => {
        const images = options.device ? batch.images.to({ device: options.device }) : batch.images;
        const labels = options.device ? batch.labels.to({ device: options.device }) : batch.labels;
        const logits = model.forward(images);
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
  return { loss: loss / count, top1: top1 / count, top5: top5 / count, count };
}
