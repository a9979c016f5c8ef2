/**
 * The plain supervised loop: one epoch of SGD-style training, and evaluation (loss, top-1,
 * top-5). Each step runs in its own scope, so memory stays flat however long training runs.
 */
import type { Batch } from '../data/image-batches.js';
import type { Module } from '../nn/module.js';
import * as F from '../ops/functional.js';
import { noGrad } from '../tensor/autograd.js';
import { flushFinalizers } from '../tensor/memory.js';
import { scope, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export interface StepOptimizer {
  step(): void;
  zeroGrad(): void;
}

export interface StepResult {
  step: number;
  loss: number;
  batchSize: number;
}

type Classifier = Module & { forward(x: Tensor): Tensor };

/** Trains for one pass over `batches`; returns the mean training loss. */
export async function trainEpoch(
  model: Classifier,
  optimizer: StepOptimizer,
  batches: Iterable<Batch>,
  options: { labelSmoothing?: number; onStep?: (r: StepResult) => void; beforeStep?: () => void } = {},
): Promise<number> {
  model.train();
  let total = 0;
  let seen = 0;
  let step = 0;
  for (const batch of batches) {
    using _ = scope();
    // Forward in its own tidy: only what autograd saved outlives it, and backward frees that as
    // it goes, as in PyTorch. Holding every activation to the step's end costs ~25% more page
    // faults and system time (docs/benchmarks.md, "Memory retention").
    const loss = tidy(() => F.crossEntropy(model.forward(batch.images), batch.labels, { labelSmoothing: options.labelSmoothing ?? 0 }));
    optimizer.zeroGrad();
    loss.backward();
    options.beforeStep?.();
    optimizer.step();
    const value = loss.item() as number;
    const n = batch.labels.shape[0];
    total += value * n;
    seen += n;
    options.onStep?.({ step: step++, loss: value, batchSize: n });
    batch.images.dispose();
    batch.labels.dispose();
    await flushFinalizers();
  }
  return seen ? total / seen : NaN;
}

export interface EvalResult {
  loss: number;
  top1: number;
  top5: number;
  count: number;
}

/** Mean cross-entropy and top-1/top-5 accuracy (fractions) in eval mode, without autograd. */
export async function evaluate(model: Classifier, batches: Iterable<Batch>): Promise<EvalResult> {
  model.eval();
  let loss = 0;
  let top1 = 0;
  let top5 = 0;
  let count = 0;
  for (const batch of batches) {
    using _ = scope();
    noGrad(() => {
      const logits = model.forward(batch.images);
      const n = batch.labels.shape[0];
      loss += (F.crossEntropy(logits, batch.labels, { reduction: 'sum' }).item() as number);
      const k = Math.min(5, logits.shape[1]);
      const { indices } = logits.topk(k, 1);
      const hits = indices.eq(batch.labels.unsqueeze(1));
      top1 += hits.narrow(1, 0, 1).sum().item() as number;
      top5 += hits.sum().item() as number;
      count += n;
    });
    batch.images.dispose();
    batch.labels.dispose();
    await flushFinalizers();
  }
  return { loss: loss / count, top1: top1 / count, top5: top5 / count, count };
}
