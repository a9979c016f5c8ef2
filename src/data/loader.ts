/**
 * DataLoader: the training input pipeline. Each batch arrives as ONE images tensor (B, C, H, W),
 * one labels tensor (B,) and, when mixing, one soft-targets tensor (B, numClasses), assembled
 * (decoded, augmented, mixed) in worker threads while the model trains on the previous batches.
 *
 * Determinism. Every random choice is drawn from a stream keyed by what it is for (rng.ts), never
 * from a generator shared across images, batches or threads:
 *   - epoch order:         permutation(count, seed, epoch, LOADER_RNG_TAGS.order) when `shuffle`,
 *                          else 0, 1, …, count − 1;
 *   - image augmentation:  createRng(seed, epoch, i, LOADER_RNG_TAGS.augment) for dataset index i
 *                          (not its position in the batch, nor the thread that decodes it);
 *   - batch mixing:        createRng(seed, epoch, batchIndex, LOADER_RNG_TAGS.mix).
 * So a batch depends only on (dataset, transform, mix, seed, epoch, batch index, batchSize): the
 * output is bit-identical for workers = 0, 1, 2, …, whatever order the workers finish in (batches
 * are yielded in index order), and epoch(e, startBatch) yields exactly batches startBatch… of an
 * uninterrupted epoch e, which is how a run resumes mid-epoch.
 *
 * Design. A worker owns whole batches: the main thread sends it a batch's dataset indices, and it
 * fills one Float32Array (B·C·H·W), labels and targets, whose buffers it transfers back (no copy);
 * the main thread then only copies each array once into a tensor (tensor(), a memcpy). In-memory
 * pixels are copied once into a SharedArrayBuffer that every worker maps through workerData, so
 * no batch ever copies the dataset; 'files' stores are read and decoded (decodeImage) in the
 * worker. Up to `prefetch` batches are in flight at once, spread over the least busy workers.
 * Workers are unref'd; the pool holds the event loop open (KeepAlive) only while a request or a
 * termination is outstanding, so an abandoned iteration cannot keep the process alive, and a
 * worker's death always settles what awaits it; close() terminates them.
 */
import { Worker } from 'node:worker_threads';
import { threadCountProblem } from '../native/thread-limit.js';
import { tensor } from '../tensor/creation.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ImageDataset } from './dataset.js';
import { DatasetError } from './errors.js';
import { loadImageDecoder } from './image-decode.js';
import {
  assembleBatch, LOADER_RNG_TAGS, WORKER_MARKER,
  type BatchArrays, type BatchJob, type BatchReply, type BatchRequest, type LoaderSetup, type WorkerErrorInfo,
} from './loader-worker.js';
import { permutation } from './rng.js';
import type { MixSpec, TransformSpec } from './transforms/spec.js';

export { LOADER_RNG_TAGS };

/** Compiled next to this file (dist/src/data/), so it resolves from any install location. */
const WORKER_URL = new URL('./loader-worker.js', import.meta.url);

/**
 * Which dataset indices an epoch visits, in order (torch's `sampler`), e.g. a rank's shard
 * (distributed/sampler.ts). It replaces `shuffle`.
 */
export interface Sampler {
  /** Indices per epoch. */
  readonly length: number;
  indices(epoch: number): Int32Array;
}

/** Options of a DataLoader. */
export interface DataLoaderOptions {
  dataset: ImageDataset;
  /** Per-image decode/augment/normalise steps; `size` and `channels` fix the batch shape. */
  transform: TransformSpec;
  batchSize: number;
  /** A fresh seeded order every epoch (training); false keeps dataset order (evaluation). */
  shuffle: boolean;
  /** Drop the last, smaller batch (default false). */
  dropLast?: boolean;
  /** Seed of every random stream (order, augmentation, mixing); a safe integer. */
  seed: number;
  /** Worker threads; 0 assembles batches on the main thread, when they are asked for. */
  workers: number;
  /** Batches in flight (assembling or ready) ahead of the consumer; default 2 × max(workers, 1). Ignored with 0 workers. */
  prefetch?: number;
  /** Batch-level mixup/CutMix; null or absent: none, and `targets` is null. */
  mix?: MixSpec | null;
  /** The indices of each epoch (overrides `shuffle`); default: every image. */
  sampler?: Sampler | null;
}

/**
 * One batch. The tensors belong to the caller and to no scope (the iterator runs in whatever async
 * context calls next(), so a scope would be the wrong owner): dispose() them after the step, as
 * train/classifier-loop.ts does; forgotten ones are freed by the garbage collector.
 */
export interface LoadedBatch {
  /** (B, C, H, W) float32, normalised. */
  images: Tensor;
  /** (B,) int64 class indices (the unmixed labels, also when mixing). */
  labels: Tensor;
  /** (B, numClasses) float32 soft targets when `mix` is set, else null. */
  targets: Tensor | null;
  /** Index of this batch in its epoch (0-based). */
  index: number;
}

/**
 * Seeded, prefetching, multi-threaded batches of an ImageDataset.
 *
 * Errors: a bad image file rejects the iteration with the worker's DatasetError (its message and
 * `file` name the file); a crashed worker rejects it, and every later batch, with an Error saying
 * so; options out of range throw RangeError at construction.
 *
 * @example
 * const loader = new DataLoader({ dataset, transform, batchSize: 128, shuffle: true, seed: 0, workers: 2 });
 * try {
 *   for (let epoch = 0; epoch < epochs; epoch++) {
 *     for await (const batch of loader.epoch(epoch)) {
 *       step(batch.images, batch.labels);
 *       batch.images.dispose(); batch.labels.dispose(); batch.targets?.dispose();
 *     }
 *   }
 * } finally { await loader.close(); }
 */
export class DataLoader {
  private readonly setup: LoaderSetup;
  private readonly batchSize: number;
  private readonly shuffle: boolean;
  private readonly sampler: Sampler | null;
  private readonly dropLast: boolean;
  private readonly workers: number;
  private readonly prefetch: number;
  /** Started by the first batch request; a promise because a 'files' store loads its decoder first. */
  private pool: Promise<WorkerPool> | null = null;
  private closed = false;

  constructor(options: DataLoaderOptions) {
    validateOptions(options);
    const { dataset, transform, seed, workers } = options;
    this.setup = { dataset, transform, mix: options.mix ?? null, seed };
    this.batchSize = options.batchSize;
    this.shuffle = options.shuffle;
    this.sampler = options.sampler ?? null;
    this.dropLast = options.dropLast ?? false;
    this.workers = workers;
    this.prefetch = workers === 0 ? 1 : options.prefetch ?? 2 * workers;
  }

  /** Batches per epoch. */
  get length(): number {
    const count = this.sampler ? this.sampler.length : this.setup.dataset.count;
    return this.dropLast ? Math.floor(count / this.batchSize) : Math.ceil(count / this.batchSize);
  }

  /**
   * The batches of epoch `epoch`, in index order, starting at batch `startBatch` (default 0: a
   * whole epoch; k: resume after k batches, yielding exactly what an uninterrupted epoch would).
   * Breaking out of the loop is safe: batches already in flight are finished and dropped.
   */
  epoch(epoch: number, startBatch = 0): AsyncIterable<LoadedBatch> {
    if (this.closed) throw new Error('DataLoader: epoch() called after close(); make a new DataLoader');
    if (!Number.isSafeInteger(epoch) || epoch < 0) {
      throw new RangeError(`DataLoader: epoch must be a non-negative integer, got ${epoch}`);
    }
    if (!Number.isInteger(startBatch) || startBatch < 0 || startBatch > this.length) {
      throw new RangeError(`DataLoader: startBatch must be an integer in [0, ${this.length}] ` +
        `(batches per epoch), got ${startBatch}`);
    }
    return this.batches(epoch, startBatch);
  }

  /** Terminates the workers; batches still loading reject. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const starting = this.pool;
    this.pool = null;
    const pool = await starting?.catch(() => null);
    await pool?.close();
  }

  private async *batches(epoch: number, startBatch: number): AsyncGenerator<LoadedBatch> {
    const count = this.sampler ? this.sampler.length : this.setup.dataset.count;
    const order = this.sampler ? this.sampler.indices(epoch)
      : this.shuffle ? permutation(count, this.setup.seed, epoch, LOADER_RNG_TAGS.order) : null;
    const job = (batchIndex: number): BatchJob => {
      const start = batchIndex * this.batchSize;
      const end = Math.min(start + this.batchSize, count);
      const indices = order ? order.slice(start, end) : Int32Array.from({ length: end - start }, (_, k) => start + k);
      return { epoch, batchIndex, indices };
    };
    const inFlight: Promise<BatchArrays>[] = [];
    let next = startBatch;
    const refill = (): void => {
      while (next < this.length && inFlight.length < this.prefetch) {
        const loading = this.load(job(next++));
        loading.catch(() => undefined);  // awaited in order below; one failing early must not go unhandled
        inFlight.push(loading);
      }
    };
    try {
      for (let index = startBatch; index < this.length; index++) {
        refill();
        const arrays = await inFlight.shift()!;
        if (this.workers > 0) refill();  // keep `prefetch` batches in flight while the caller trains
        yield this.toBatch(arrays, index);
      }
    } finally {
      inFlight.length = 0;  // an abandoned epoch: the workers finish these and the results are dropped
    }
  }

  private load(job: BatchJob): Promise<BatchArrays> {
    if (this.closed) return Promise.reject(new Error('DataLoader: closed while iterating; make a new DataLoader'));
    if (this.workers === 0) return assembleBatch(this.setup, job);
    this.pool ??= WorkerPool.start(this.setup, this.workers);
    return this.pool.then((pool) => pool.request(job));
  }

  /** The main thread's whole per-batch work: one copy of each array into a tensor. */
  private toBatch(arrays: BatchArrays, index: number): LoadedBatch {
    const size = arrays.labels.length;
    const [height, width] = this.setup.transform.size;
    const images = tensor(arrays.images, { shape: [size, this.setup.transform.channels, height, width] }).keep();
    const labels = tensor(arrays.labels, { shape: [size] }).keep();
    const targets = arrays.targets
      ? tensor(arrays.targets, { shape: [size, arrays.targets.length / size] }).keep()
      : null;
    return { images, labels, targets, index };
  }
}

function validateOptions(options: DataLoaderOptions): void {
  const { dataset, transform, batchSize, workers, prefetch, seed, mix } = options;
  const positiveInteger = (value: number | undefined): boolean => Number.isInteger(value) && value! > 0;
  if (!positiveInteger(batchSize)) throw new RangeError(`DataLoader: batchSize must be a positive integer, got ${batchSize}`);
  if (!Number.isInteger(workers) || workers < 0) {
    throw new RangeError(`DataLoader: workers must be a non-negative integer (0 = main thread), got ${workers}`);
  }
  const tooMany = threadCountProblem(workers, 0);
  if (tooMany) throw new RangeError(`DataLoader: workers ${tooMany}`);
  if (prefetch !== undefined && !positiveInteger(prefetch)) {
    throw new RangeError(`DataLoader: prefetch must be a positive integer (batches in flight), got ${prefetch}`);
  }
  if (!Number.isSafeInteger(seed)) throw new RangeError(`DataLoader: seed must be a safe integer, got ${seed}`);
  if (!transform.size.every(positiveInteger) || transform.size.length !== 2) {
    throw new RangeError(`DataLoader: transform.size must be [height, width] of positive integers, got [${transform.size}]`);
  }
  if (transform.channels !== 1 && transform.channels !== 3) {
    throw new RangeError(`DataLoader: transform.channels must be 1 or 3, got ${transform.channels}`);
  }
  validateDataset(dataset);
  if (mix && mix.numClasses < dataset.classes.length) {
    throw new RangeError(`DataLoader: mix.numClasses is ${mix.numClasses} but dataset ${dataset.name} has ` +
      `${dataset.classes.length} classes; set numClasses to ${dataset.classes.length}`);
  }
}

/** The dataset's parts agree on its size (a mismatch would read out of bounds in a worker). */
function validateDataset(dataset: ImageDataset): void {
  const { count, labels, store } = dataset;
  const stored = store.kind === 'memory'
    ? store.pixels.length / (store.height * store.width * store.channels)
    : store.paths.length;
  if (!Number.isInteger(count) || count < 0 || labels.length !== count || stored !== count) {
    throw new RangeError(`DataLoader: dataset ${dataset.name} (${dataset.split}) says count ${count} but has ` +
      `${labels.length} labels and ${stored} images in its '${store.kind}' store; load it again with loadDataset()`);
  }
}

/** A pending request: how to settle the promise its caller awaits. */
interface Pending {
  resolve(batch: BatchArrays): void;
  reject(error: Error): void;
}

interface WorkerSlot {
  worker: Worker;
  pending: Map<number, Pending>;
  /** terminate() on a worker that has already exited returns a promise that never settles. */
  exited: boolean;
}

/** The worker threads of one DataLoader, and the requests each is working on. */
class WorkerPool {
  private readonly slots: WorkerSlot[];
  private nextId = 0;
  private failure: Error | null = null;
  private closing = false;
  private readonly keepAlive = new KeepAlive();

  /**
   * Workers for `setup`. For a 'files' store the main thread loads the image decoder first: sharp's
   * native library must be loaded by the main thread before any worker loads it (image-decode.ts).
   */
  static async start(setup: LoaderSetup, count: number): Promise<WorkerPool> {
    if (setup.dataset.store.kind === 'files') await loadImageDecoder();
    return new WorkerPool(setup, count);
  }

  private constructor(setup: LoaderSetup, count: number) {
    const shared: LoaderSetup = { ...setup, dataset: shareDataset(setup.dataset) };
    this.slots = Array.from({ length: count }, (_, k) => this.spawn(shared, k, count));
  }

  request(job: BatchJob): Promise<BatchArrays> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.closing) return Promise.reject(new Error('DataLoader: closed while iterating; make a new DataLoader'));
    // The least busy worker (the first on ties): batches cost about the same, so this is round robin
    // that steps around a worker held up by a slow batch.
    const slot = this.slots.reduce((best, s) => (s.pending.size < best.pending.size ? s : best));
    const id = this.nextId++;
    return new Promise<BatchArrays>((resolve, reject) => {
      this.keepAlive.hold();  // released when the request settles, however it settles
      slot.pending.set(id, {
        resolve: (batch) => { this.keepAlive.release(); resolve(batch); },
        reject: (error) => { this.keepAlive.release(); reject(error); },
      });
      slot.worker.postMessage({ id, job } satisfies BatchRequest, [job.indices.buffer as ArrayBuffer]);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    this.rejectAll(new Error('DataLoader: closed while batches were loading'));
    // terminate() settles on the worker's 'exit' event, which an unref'd worker's death does not
    // keep the event loop alive for: hold the loop until every worker has gone.
    const live = this.slots.filter((s) => !s.exited);
    this.keepAlive.hold();
    try {
      await Promise.all(live.map((s) => {
        s.worker.ref();
        return s.worker.terminate();
      }));
    } finally {
      this.keepAlive.release();
    }
  }

  private spawn(setup: LoaderSetup, k: number, count: number): WorkerSlot {
    const worker = new Worker(WORKER_URL, { workerData: { [WORKER_MARKER]: true, setup }, execArgv: workerExecArgv(), name: `vicinity-loader-${k}` });
    const slot: WorkerSlot = { worker, pending: new Map(), exited: false };
    const which = `worker ${k + 1} of ${count}`;
    worker.on('message', (reply: BatchReply) => this.settle(slot, reply));
    worker.on('error', (e: Error) => this.fail(new Error(`DataLoader: ${which} crashed: ${e.message}`, { cause: e })));
    worker.on('messageerror', (e: Error) => this.fail(new Error(`DataLoader: ${which} sent an unreadable batch: ${e.message}`, { cause: e })));
    worker.on('exit', (code: number) => {
      slot.exited = true;
      if (!this.closing) {
        this.fail(new Error(`DataLoader: ${which} exited unexpectedly (exit code ${code}); the loader cannot ` +
          'continue: make a new DataLoader (if it ran out of memory, lower workers, prefetch or batchSize)'));
      }
    });
    // After the listeners: adding a 'message' listener refs the worker's port again. The pool's
    // KeepAlive, not the workers, holds the process open while an answer is owed.
    worker.unref();
    return slot;
  }

  private settle(slot: WorkerSlot, reply: BatchReply): void {
    const pending = slot.pending.get(reply.id);
    if (!pending) return;
    slot.pending.delete(reply.id);
    if (reply.ok) pending.resolve(reply.batch);
    else pending.reject(rebuildError(reply.error));
  }

  /** A worker died: this and every later request fails with the reason. */
  private fail(error: Error): void {
    this.failure ??= error;
    this.rejectAll(this.failure);
  }

  private rejectAll(error: Error): void {
    for (const slot of this.slots) {
      const pending = [...slot.pending.values()];
      slot.pending.clear();
      for (const p of pending) p.reject(error);
    }
  }
}

/**
 * Keeps the event loop alive while the pool owes someone an answer. Workers stay unref'd (an idle
 * pool never holds the process open), so the loop's liveness cannot come from them: a worker that
 * dies while unref'd, or is ref'd only after its thread has stopped (Worker.ref() is then a no-op),
 * has its 'exit' event queued on a handle that does not keep the loop running. Were the loop to
 * empty before that event ran, a promise awaiting the worker would stay pending forever and the
 * process would exit silently (exit code 13 under a top-level await). One ref'd timer, held while
 * any request or termination is outstanding, keeps the loop polling until the reply or the 'exit'
 * event settles it.
 */
class KeepAlive {
  private holds = 0;
  private timer: NodeJS.Timeout | null = null;

  hold(): void {
    if (this.holds++ === 0) this.timer = setInterval(() => undefined, 1 << 30);
  }

  release(): void {
    if (--this.holds === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }
}

/**
 * The parent's Node flags minus --input-type, which a worker started from a file rejects
 * (ERR_INPUT_TYPE_NOT_ALLOWED) when the parent ran `node --input-type=module -e …`.
 */
function workerExecArgv(): string[] {
  const flags = [...process.execArgv];
  for (let k = flags.length - 1; k >= 0; k--) {
    if (flags[k].startsWith('--input-type=')) flags.splice(k, 1);
    else if (flags[k] === '--input-type') flags.splice(k, 2);
  }
  return flags;
}

/** The dataset with its in-memory pixels in a SharedArrayBuffer (copied once, if not already). */
function shareDataset(dataset: ImageDataset): ImageDataset {
  const { store } = dataset;
  if (store.kind !== 'memory' || store.pixels.buffer instanceof SharedArrayBuffer) return dataset;
  const pixels = new Uint8Array(new SharedArrayBuffer(store.pixels.byteLength));
  pixels.set(store.pixels);
  return { ...dataset, store: { ...store, pixels } };
}

/** The worker's error as thrown there: a DatasetError stays one (message and file intact). */
function rebuildError(info: WorkerErrorInfo): Error {
  const error = info.name === 'DatasetError' && info.file !== undefined
    ? new DatasetError(info.file, info.message)
    : new Error(info.message);
  error.name = info.name;
  if (info.stack) error.stack = `${info.stack}\n    (in a DataLoader worker thread)`;
  return error;
}
