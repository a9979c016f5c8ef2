/**
 * DistributedDataParallel: PyTorch's DDP for a vicinity Module, on c10d's own Reducer.
 *
 *   start     rank 0's parameters and buffers are broadcast to every rank, so all start equal;
 *   forward   (training, gradients on) buffers such as BatchNorm statistics are broadcast from
 *             rank 0 first (torch's broadcast_buffers=True), then the wrapped module runs, then
 *             the Reducer is told a backward is coming;
 *   backward  the Reducer averages gradients across ranks in buckets (a 1 MiB first bucket, then
 *             `bucketCapMb`, in reverse parameter order, rebuilt once in the order the first
 *             backward produced them): each bucket's allreduce starts as soon as its last gradient
 *             is ready, overlapping with the rest of the backward, and backward returns with the
 *             averages in every parameter's .grad;
 *   syncBN    with `syncBatchNorm: true`, BatchNorm layers use the global batch's statistics;
 *   noSync    inside `ddp.noSync(fn)` gradients only accumulate locally (gradient accumulation); the
 *             first backward outside it averages the accumulated sums.
 *
 * The wrapper registers the module as its child 'module' (as torch does); save `ddp.module`'s
 * state to get names without that prefix.
 */
import { knownOptions, optionNames, positiveNumber } from '../nn/layers/validation.js';
import { native } from '../native/binding.js';
import { Module } from '../nn/module.js';
import { isGradEnabled, noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ProcessGroup } from './process-group.js';
import { convertSyncBatchNorm } from './sync-batch-norm.js';


const DDP_OPTION_NAMES = optionNames<DdpOptions>({ bucketCapMb: 1, findUnusedParameters: 1, broadcastBuffers: 1, syncBatchNorm: 1 });

export interface DdpOptions {
  /** Bucket size in MiB (torch's bucket_cap_mb); default 25. */
  bucketCapMb?: number;
  /** Let the Reducer find parameters a forward did not use (costs a graph walk per step); default false. */
  findUnusedParameters?: boolean;
  /** Broadcast rank 0's buffers before every training forward; default true. */
  broadcastBuffers?: boolean;
  /** Convert the module's BatchNorm layers to SyncBatchNorm first (sync-batch-norm.ts); default false. */
  syncBatchNorm?: boolean;
}

export class DistributedDataParallel<M extends Module = Module> extends Module {
  readonly module: M;
  readonly group: ProcessGroup;
  private readonly reducer;
  private readonly broadcastBuffers: boolean;
  private noSyncDepth = 0;

  constructor(module: M, group: ProcessGroup, options: DdpOptions = {}) {
    super();
    knownOptions('DistributedDataParallel', options, DDP_OPTION_NAMES);
    const capMb = positiveNumber('DistributedDataParallel', 'bucketCapMb', options.bucketCapMb ?? 25);
    this.module = this.register('module', module);
    this.group = group;
    this.broadcastBuffers = options.broadcastBuffers ?? true;
    if (options.syncBatchNorm) convertSyncBatchNorm(module, group);
    const named = Array.from(module.namedParameters()).filter(([, p]) => p.requiresGrad);
    const state = [...named.map(([, p]) => p as Tensor), ...module.buffers()];
    noGrad(() => group.broadcastSync(state, { root: 0 }));
    this.reducer = new native.Reducer(group.nativeHandle, named.map(([, p]) => p), named.map(([n]) => n),
      Math.round(capMb * 1024 * 1024), options.findUnusedParameters ?? false);
  }

  /** Gradient buckets the Reducer holds (before its one rebuild: the initial assignment). */
  get bucketCount(): number {
    return this.reducer.bucketCount();
  }

  forward(x: Tensor): Tensor {
    const sync = this.training && isGradEnabled() && this.noSyncDepth === 0;
    if (sync) this.reducer.prepareForForward();
    if (this.training && this.broadcastBuffers) {
      const buffers = this.module.buffers();
      if (buffers.length) noGrad(() => this.group.broadcastSync(buffers, { root: 0 }));
    }
    const out = this.module.forward(x);
    if (sync) {
      try {
        this.reducer.prepareForBackward([out]);
      } catch (e) {
        throw this.group.explain('prepareForBackward', e);
      }
    }
    return out;
  }

  /**
   * Runs fn without gradient averaging (torch's `with ddp.no_sync():`); gradients accumulate in
   * .grad and are averaged by the next backward outside noSync.
   */
  noSync<T>(fn: () => T): T {
    this.noSyncDepth++;
    try {
      return fn();
    } finally {
      this.noSyncDepth--;
    }
  }
}
