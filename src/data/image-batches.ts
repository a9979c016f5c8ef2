/**
 * In-memory image classification batches: the whole split becomes one normalised float tensor
 * once, and each batch is an indexSelect of it — one tensor op per batch, no per-image JS work.
 * (The threaded, augmenting loader of the CLI trainer builds on the same batch shape.)
 */
import { randperm, tensor } from '../tensor/creation.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ImageClassificationSplit } from './fashion-mnist.js';

export interface Batch {
  /** (B, C, H, W) float32, normalised. */
  images: Tensor;
  /** (B,) int64 class indices. */
  labels: Tensor;
}

export interface BatchOptions {
  batchSize: number;
  shuffle?: boolean;
  /** Seed of the shuffle order; epoch e uses seed + e. */
  seed?: number;
  /** Per-channel mean and std of pixel values in [0, 1]. */
  mean?: number[];
  std?: number[];
  /** Keep the last, smaller batch (default true). */
  keepLast?: boolean;
}

/** A split held as tensors, batched on demand. Call dispose() when done. */
export class ImageBatches {
  readonly count: number;
  private readonly images: Tensor;
  private readonly labels: Tensor;

  constructor(split: ImageClassificationSplit, readonly options: BatchOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new RangeError(`ImageBatches: batchSize must be a positive integer, got ${options.batchSize}`);
    }
    const { count, channels, height, width } = split;
    const mean = options.mean ?? [0];
    const std = options.std ?? [1];
    if (mean.length !== channels && mean.length !== 1) throw new RangeError(`ImageBatches: mean has ${mean.length} values for ${channels} channel(s)`);
    this.count = count;
    const raw = tensor(split.images, { shape: [count, channels, height, width] });
    const m = tensor(mean, { shape: [1, mean.length, 1, 1] });
    const s = tensor(std, { shape: [1, std.length, 1, 1] });
    this.images = keep(raw.float().div(255).sub(m).div(s));
    this.labels = keep(tensor(split.labels).long());
    for (const t of [raw, m, s]) t.dispose();
  }

  /** Number of batches per epoch. */
  get length(): number {
    const full = Math.floor(this.count / this.options.batchSize);
    return this.options.keepLast === false || this.count % this.options.batchSize === 0 ? full : full + 1;
  }

  /** The batches of one epoch; the caller disposes each (or runs it inside a scope). */
  *epoch(epoch = 0): Generator<Batch> {
    const { batchSize, shuffle = false, seed = 0 } = this.options;
    const order = shuffle ? randperm(this.count, { seed: seed + epoch }) : null;
    try {
      for (let b = 0; b < this.length; b++) {
        const start = b * batchSize;
        const size = Math.min(batchSize, this.count - start);
        if (order) {
          const index = order.narrow(0, start, size);
          yield { images: this.images.indexSelect(0, index), labels: this.labels.indexSelect(0, index) };
          index.dispose();
        } else {
          yield { images: this.images.narrow(0, start, size), labels: this.labels.narrow(0, start, size) };
        }
      }
    } finally {
      order?.dispose();
    }
  }

  dispose(): void {
    this.images.dispose();
    this.labels.dispose();
  }
}
