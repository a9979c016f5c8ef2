/**
 * Batch assembly for the DataLoader (loader.ts), and the worker thread that runs it.
 *
 * One function, assembleBatch(), turns a list of dataset indices into the three flat arrays of a
 * batch: images (B·C·H·W float32, each image decoded and augmented by transforms/pipeline.ts),
 * labels (B int64) and, when mixing, soft targets (B·numClasses float32, transforms/mix.ts). The
 * main thread calls it directly when `workers` is 0; each worker thread calls it for the batches
 * it is sent. Running the very same code in both places, with random streams keyed by what they
 * are for (rng.ts), is what makes the output bit-identical for any worker count:
 *   - image i of epoch e draws its augmentation from createRng(seed, e, i, LOADER_RNG_TAGS.augment)
 *     (keyed by the dataset index, not the position in the batch or the thread);
 *   - batch b of epoch e draws its mixing from createRng(seed, e, b, LOADER_RNG_TAGS.mix).
 *
 * This module imports no tensor code: a worker never loads libtorch, it only fills typed arrays
 * whose buffers are then transferred (not copied) to the main thread.
 *
 * Protocol (structured-clone messages over the worker's port):
 *   workerData  { [WORKER_MARKER]: true, setup: LoaderSetup }   memory pixels in a SharedArrayBuffer
 *   main → worker   BatchRequest  { id, job: { epoch, batchIndex, indices } }
 *   worker → main   BatchReply    { id, ok: true, batch } (buffers in the transfer list)
 *                                 { id, ok: false, error: { name, message, file?, stack? } }
 */
import { readFile } from 'node:fs/promises';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { memoryImage, type DecodedImage, type ImageDataset, type ImageStore } from './dataset.js';
import { DatasetError } from './errors.js';
import { decodeImage } from './image-decode.js';
import { createRng } from './rng.js';
import { mixBatch } from './transforms/mix.js';
import { applyTransforms } from './transforms/pipeline.js';
import type { MixSpec, TransformSpec } from './transforms/spec.js';

/**
 * The last key part of each of the loader's random streams, so that the epoch order, an image's
 * augmentation and a batch's mixing never share a stream even where (seed, epoch, n) coincide.
 * (ASCII 'ORD', 'AUG', 'MIX'.)
 */
export const LOADER_RNG_TAGS = Object.freeze({ order: 0x4f5244, augment: 0x415547, mix: 0x4d4958 });

/** Everything a worker needs for every batch: sent once, in workerData. */
export interface LoaderSetup {
  dataset: ImageDataset;
  transform: TransformSpec;
  mix: MixSpec | null;
  seed: number;
}

/** One batch to assemble: which images, and the keys of its random streams. */
export interface BatchJob {
  epoch: number;
  batchIndex: number;
  /** Dataset indices of the batch's images, in batch order. */
  indices: Int32Array;
}

/** A batch as flat arrays, each with a buffer of its own (so it can be transferred). */
export interface BatchArrays {
  /** B·C·H·W, normalised. */
  images: Float32Array;
  /** B class indices. */
  labels: BigInt64Array;
  /** B·numClasses soft targets when mixing, else null. */
  targets: Float32Array | null;
}

export interface BatchRequest {
  id: number;
  job: BatchJob;
}

/** What crosses the thread boundary for an error: enough to rebuild a DatasetError. */
export interface WorkerErrorInfo {
  name: string;
  message: string;
  file?: string;
  stack?: string;
}

export type BatchReply =
  | { id: number; ok: true; batch: BatchArrays }
  | { id: number; ok: false; error: WorkerErrorInfo };

/** Marks workerData as ours, so importing this module in some other worker thread starts nothing. */
export const WORKER_MARKER = 'vicinityDataLoader';

/** How many files a worker reads and decodes ahead of the image it is transforming. */
const DECODE_AHEAD = 4;

/** Assembles one batch: decode, transform and (optionally) mix, into freshly allocated arrays. */
export async function assembleBatch(setup: LoaderSetup, job: BatchJob): Promise<BatchArrays> {
  const { dataset, transform, mix, seed } = setup;
  const count = job.indices.length;
  const [height, width] = transform.size;
  const imageSize = transform.channels * height * width;
  const images = new Float32Array(count * imageSize);
  const transformOne = (image: DecodedImage, k: number): void => {
    const rng = createRng(seed, job.epoch, job.indices[k], LOADER_RNG_TAGS.augment);
    applyTransforms(image, transform, rng, images, k * imageSize);
  };
  if (dataset.store.kind === 'memory') {
    const store = dataset.store;
    for (let k = 0; k < count; k++) transformOne(memoryImage(store, job.indices[k]), k);
  } else {
    await transformFiles(dataset.store, job.indices, transformOne);
  }
  const labels32 = new Int32Array(count);
  const labels = new BigInt64Array(count);
  for (let k = 0; k < count; k++) {
    labels32[k] = dataset.labels[job.indices[k]];
    labels[k] = BigInt(labels32[k]);
  }
  const targets = mix
    ? mixBatch(images, labels32, [count, transform.channels, height, width], mix,
      createRng(seed, job.epoch, job.batchIndex, LOADER_RNG_TAGS.mix))
    : null;
  return { images, labels, targets };
}

/**
 * Reads and decodes a batch's files with up to DECODE_AHEAD in flight (file reads, and sharp if
 * present, run off this thread), transforming them strictly in batch order.
 */
async function transformFiles(
  store: Extract<ImageStore, { kind: 'files' }>,
  indices: Int32Array,
  transformOne: (image: DecodedImage, k: number) => void,
): Promise<void> {
  const started: Promise<DecodedImage>[] = [];
  const start = (k: number): void => {
    const decoding = readAndDecode(store.paths[indices[k]], store.channels);
    decoding.catch(() => undefined);  // awaited below in order; an early failure must not go unhandled
    started.push(decoding);
  };
  for (let k = 0; k < Math.min(DECODE_AHEAD, indices.length); k++) start(k);
  for (let k = 0; k < indices.length; k++) {
    const image = await started[k];
    if (k + DECODE_AHEAD < indices.length) start(k + DECODE_AHEAD);
    transformOne(image, k);
  }
}

async function readAndDecode(file: string, channels: 1 | 3): Promise<DecodedImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new DatasetError(file, `cannot read image file ${file}: ${(e as Error).message}; ` +
      'check that the dataset directory is complete and readable, or rebuild its file list', { cause: e });
  }
  return decodeImage(bytes, file, channels);
}

/** An error as plain data for postMessage (class identity does not survive structured clone). */
export function describeError(e: unknown): WorkerErrorInfo {
  if (e instanceof DatasetError) return { name: e.name, message: e.message, file: e.file, stack: e.stack };
  if (e instanceof Error) return { name: e.name, message: e.message, stack: e.stack };
  return { name: 'Error', message: String(e) };
}

/** The worker's message loop: batches are assembled one at a time, in the order requested. */
function serve(setup: LoaderSetup): void {
  const port = parentPort!;
  let queue: Promise<void> = Promise.resolve();
  port.on('message', (request: BatchRequest) => {
    queue = queue.then(async () => {
      let reply: BatchReply;
      try {
        reply = { id: request.id, ok: true, batch: await assembleBatch(setup, request.job) };
      } catch (e) {
        port.postMessage({ id: request.id, ok: false, error: describeError(e) } satisfies BatchReply);
        return;
      }
      const { images, labels, targets } = reply.batch;
      // A Set: transferring one buffer twice is a DataCloneError.
      const transfer = new Set([images.buffer, labels.buffer, ...(targets ? [targets.buffer] : [])]);
      port.postMessage(reply, [...transfer] as ArrayBuffer[]);
    });
  });
}

if (!isMainThread && parentPort && (workerData as Record<string, unknown> | null)?.[WORKER_MARKER] === true) {
  serve((workerData as { setup: LoaderSetup }).setup);
}
