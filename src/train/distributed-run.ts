/**
 * The trainer's side of data-parallel training (issue 13). runTraining takes a
 * DistributedTraining in its options and asks it, at a few call sites, for:
 *
 *   model     a DistributedDataParallel wrapper for the training step (gradients averaged in
 *             buckets during backward; rank 0's weights broadcast at start; SyncBatchNorm as an option)
 *   data      the training loader's DistributedSampler (each rank a disjoint, padded shard,
 *             reshuffled by seed + epoch) and an evaluation shard (rank r: images r, r+W, …, no
 *             padding, so every test image counts once)
 *   metrics   evaluation sums and the epoch's training-loss sums and image rates, all-reduced
 *             across ranks before the row is made; only rank 0 writes files
 *   recipe    the learning rate, linearly scaled to the global batch (W × batchSize, batchSize
 *             being per process as with torchrun) unless the run set lr itself
 *   stop      a stop requested on any rank (Ctrl-C) becomes, after the same step everywhere, a stop
 *             on every rank (a 1-element all-reduce per step), so rank 0 checkpoints once and no
 *             rank waits in a collective for one that left
 *
 * runDistributedTraining joins the group from the env:// variables and runs the trainer with it.
 */
import type { Sampler } from '../data/loader.js';
import { DistributedDataParallel } from '../distributed/ddp.js';
import { isDistributedEnv, readDistributedEnv } from '../distributed/env.js';
import { ProcessGroup } from '../distributed/process-group.js';
import { DistributedSampler } from '../distributed/sampler.js';
import type { Classifier } from '../models/registry.js';
import { tensor } from '../tensor/creation.js';
import { scope } from '../tensor/scope.js';
import type { EvalResult } from './classifier-loop.js';
import type { ResolvedRecipe } from './recipes.js';
import type { TrainConfig } from './train-config.js';
import type { TrainOptions, TrainResult } from './trainer.js';

export { isDistributedEnv };

export class DistributedTraining {
  readonly rank: number;
  readonly worldSize: number;
  private readonly stopController = new AbortController();

  constructor(readonly group: ProcessGroup, private readonly localStop?: AbortSignal, private readonly syncBatchNorm = false) {
    this.rank = group.rank;
    this.worldSize = group.worldSize;
  }

  /** Only rank 0 writes checkpoints, metrics, config.json and progress. */
  get writes(): boolean {
    return this.rank === 0;
  }

  /** The signal the trainer watches: aborted on every rank after the same step. */
  get signal(): AbortSignal {
    return this.stopController.signal;
  }

  wrap(model: Classifier): Classifier {
    return new DistributedDataParallel(model, this.group, { syncBatchNorm: this.syncBatchNorm }) as unknown as Classifier;
  }

  trainSampler(count: number, seed: number): Sampler {
    return new DistributedSampler({ count, rank: this.rank, worldSize: this.worldSize, seed });
  }

  evalSampler(count: number): Sampler {
    const { rank, worldSize } = this;
    const length = Math.max(0, Math.ceil((count - rank) / worldSize));
    const indices = Int32Array.from({ length }, (_, k) => rank + k * worldSize);
    return { length, indices: () => indices };
  }

  /** The recipe with its lr scaled to the global batch (file header). */
  scaleRecipe(config: Omit<TrainConfig, 'resume'>, recipe: ResolvedRecipe): ResolvedRecipe {
    if (config.lr !== undefined || this.worldSize === 1) return recipe;
    const base = recipe.lrScaledFrom ?? { lr: recipe.lr, batchSize: recipe.batchSize };
    const globalBatch = this.worldSize * recipe.batchSize;
    const scaled = { ...recipe, lr: base.lr * globalBatch / base.batchSize };
    if (globalBatch === base.batchSize) delete scaled.lrScaledFrom;
    else scaled.lrScaledFrom = base;
    return scaled;
  }

  /** One evaluation over all ranks' shards: sums reduced, then means. */
  reduceEval(r: EvalResult): EvalResult {
    // A rank whose shard is empty (fewer test images than ranks) reports NaN means over 0 images.
    const total = (mean: number) => (r.count > 0 ? mean * r.count : 0);
    const [loss, top1, top5, count, nonFinite] = this.sum([total(r.loss), total(r.top1), total(r.top5), r.count, r.nonFinite]);
    return { loss: loss / count, top1: top1 / count, top5: top5 / count, count, nonFinite };
  }

  /** Sums numbers across ranks (float64). */
  sum(values: number[]): number[] {
    using _ = scope();
    const t = tensor(values, { dtype: 'float64' });
    this.group.allReduceSync(t);
    return Array.from(t.dataSync() as Float64Array);
  }

  /** After every step: agree on stopping (any rank's request stops all). */
  afterStep(): void {
    if (this.stopController.signal.aborted) return;
    const [requests] = this.sum([this.localStop?.aborted ? 1 : 0]);
    if (requests > 0) this.stopController.abort();
  }

  /** A failed collective (e.g. inside backward) as an error naming the rank at fault. */
  explain(what: string, error: unknown): Error {
    return this.group.explain(what, error);
  }
}

export interface DistributedRunOptions extends TrainOptions {
  /** Bound on every collective, seconds (default VICINITY_DIST_TIMEOUT or 300). */
  timeoutSeconds?: number;
  /** BatchNorm layers use the global batch's statistics (SyncBatchNorm); default false. */
  syncBatchNorm?: boolean;
  /** Runs the trainer (default: trainer.ts's runTraining; injected to keep imports one-way). */
  runTraining: (config: TrainConfig, options: TrainOptions) => Promise<TrainResult>;
}

/**
 * Joins the group from RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT (torchrun's, or those
 * `vicinity train --nproc-per-node` sets) and trains this rank's part of the run. Ranks other
 * than 0 print nothing. An error on this rank is reported to the others before it is rethrown, so
 * their next collective names it.
 */
export async function runDistributedTraining(config: TrainConfig, options: DistributedRunOptions): Promise<TrainResult> {
  const env = readDistributedEnv();
  const group = await ProcessGroup.init({ env, timeoutSeconds: options.timeoutSeconds });
  const distributed = new DistributedTraining(group, options.signal, options.syncBatchNorm ?? false);
  const quiet = group.rank !== 0;
  const say = options.log ?? (config.progress === 'none' ? () => undefined : (line: string) => process.stderr.write(`${line}\n`));
  const log = quiet ? () => undefined : say;
  log(`distributed: rank ${group.rank} of ${group.worldSize} (gloo at ${env.masterAddr}:${env.masterPort}, ` +
    `timeout ${group.timeoutSeconds} s${options.syncBatchNorm ? ', SyncBatchNorm' : ''})`);
  try {
    return await options.runTraining(quiet ? { ...config, progress: 'none' } : config, {
      ...options, log, signal: distributed.signal, distributed,
      onStep: (info) => {
        distributed.afterStep();
        options.onStep?.(info);
      },
    });
  } catch (e) {
    group.reportFailure(e instanceof Error ? e.message : String(e));
    throw e;
  } finally {
    group.destroy();
  }
}
