/**
 * DistributedSampler with torch.utils.data.DistributedSampler's semantics, as a DataLoader
 * `sampler`: every epoch the dataset order (the loader's own seeded permutation of (seed, epoch)
 * when shuffling, else dataset order) is padded by repeating its start to a multiple of the world
 * size (or cut to one, with dropLast), and rank r takes positions r, r + W, r + 2W, …
 *
 * So the shards of an epoch are disjoint (up to the padding), equally long, and W ranks at batch
 * b together see exactly the images one process sees at batch W·b: global batch k is positions
 * [kWb, (k+1)Wb) of the epoch's order.
 */
import { LOADER_RNG_TAGS, type Sampler } from '../data/loader.js';
import { permutation } from '../data/rng.js';

export interface DistributedSamplerOptions {
  /** Images in the dataset. */
  count: number;
  rank: number;
  worldSize: number;
  /** Reshuffle every epoch from (seed, epoch); default true. */
  shuffle?: boolean;
  seed?: number;
  /** Cut the tail to a multiple of worldSize instead of padding; default false. */
  dropLast?: boolean;
}

export class DistributedSampler implements Sampler {
  readonly count: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;

  constructor(options: DistributedSamplerOptions) {
    const { count, rank, worldSize } = options;
    if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`DistributedSampler: worldSize must be a positive integer, got ${worldSize}`);
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
      throw new RangeError(`DistributedSampler: rank must be an integer in [0, ${worldSize}), got ${rank}`);
    }
    if (!Number.isInteger(count) || count < 0) throw new RangeError(`DistributedSampler: count must be a non-negative integer, got ${count}`);
    this.count = count;
    this.rank = rank;
    this.worldSize = worldSize;
    this.shuffle = options.shuffle ?? true;
    this.seed = options.seed ?? 0;
    this.dropLast = options.dropLast ?? false;
    if (this.dropLast && count < worldSize) {
      throw new RangeError(`DistributedSampler: ${count} images cannot give each of ${worldSize} ranks one with dropLast; ` +
        'use more data or fewer ranks');
    }
  }

  /** Indices per rank and epoch. */
  get length(): number {
    return this.dropLast ? Math.floor(this.count / this.worldSize) : Math.ceil(this.count / this.worldSize);
  }

  /** This rank's dataset indices for `epoch`, in order. */
  indices(epoch: number): Int32Array {
    const order = this.shuffle
      ? permutation(this.count, this.seed, epoch, LOADER_RNG_TAGS.order)
      : Int32Array.from({ length: this.count }, (_, i) => i);
    const out = new Int32Array(this.length);
    for (let k = 0; k < this.length; k++) {
      const position = this.rank + k * this.worldSize;
      out[k] = order[position % this.count];  // positions past the end repeat the start (padding)
    }
    return out;
  }
}
