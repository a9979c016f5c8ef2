import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import pngjs from 'pngjs';
import { memoryImage, type ImageDataset } from '../../src/data/dataset.js';
import { DatasetError } from '../../src/data/errors.js';
import { DataLoader, LOADER_RNG_TAGS, type DataLoaderOptions, type LoadedBatch } from '../../src/data/loader.js';
import { createRng, permutation } from '../../src/data/rng.js';
import { mixBatch } from '../../src/data/transforms/mix.js';
import { applyTransforms } from '../../src/data/transforms/pipeline.js';
import type { MixSpec, TransformSpec } from '../../src/data/transforms/spec.js';
import { memory } from '../../src/tensor/memory.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-loader-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const SIDE = 8;
const COUNT = 37;  // batches of 8: four full and one of 5

/**
 * COUNT random 8×8 RGB images whose label is their own index, so a batch's labels spell out which
 * images it holds and in which order.
 */
function syntheticDataset(count = COUNT): ImageDataset {
  const rng = createRng(12345);
  const pixels = new Uint8Array(count * SIDE * SIDE * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = rng.int(256);
  return {
    name: 'synthetic', split: 'train', root: dir,
    classes: Array.from({ length: count }, (_, i) => `class ${i}`),
    labels: Int32Array.from({ length: count }, (_, i) => i),
    count,
    store: { kind: 'memory', pixels, height: SIDE, width: SIDE, channels: 3 },
  };
}

const AUGMENT: TransformSpec = {
  size: [SIDE, SIDE], channels: 3, mean: [0.5, 0.4, 0.3], std: [0.25, 0.2, 0.3],
  train: true, randomCropPadding: 2, hflip: 0.5,
};
const EVAL: TransformSpec = { size: [SIDE, SIDE], channels: 3, mean: [0.5], std: [0.25], train: false };
const MIX: MixSpec = { mixupAlpha: 0.8, cutmixAlpha: 1, prob: 1, switchProb: 0.5, labelSmoothing: 0.1, numClasses: COUNT };

/** A batch as plain arrays; its tensors are disposed. */
interface PlainBatch { index: number; images: Float32Array; labels: number[]; shape: number[]; targets: Float32Array | null; targetShape: number[] | null }

function plain(batch: LoadedBatch): PlainBatch {
  const out: PlainBatch = {
    index: batch.index,
    images: batch.images.dataSync() as Float32Array,
    labels: Array.from(batch.labels.dataSync() as BigInt64Array, Number),
    shape: batch.images.shape,
    targets: batch.targets ? batch.targets.dataSync() as Float32Array : null,
    targetShape: batch.targets ? batch.targets.shape : null,
  };
  assert.equal(batch.images.dtype, 'float32');
  assert.equal(batch.labels.dtype, 'int64');
  batch.images.dispose();
  batch.labels.dispose();
  batch.targets?.dispose();
  return out;
}

function options(overrides: Partial<DataLoaderOptions> = {}): DataLoaderOptions {
  return { dataset: syntheticDataset(), transform: AUGMENT, batchSize: 8, shuffle: true, seed: 7, workers: 0, ...overrides };
}

/** Every batch of one epoch; closes the loader. */
async function collect(overrides: Partial<DataLoaderOptions>, epoch = 0, startBatch = 0): Promise<PlainBatch[]> {
  const loader = new DataLoader(options(overrides));
  try {
    const out: PlainBatch[] = [];
    for await (const batch of loader.epoch(epoch, startBatch)) out.push(plain(batch));
    return out;
  } finally {
    await loader.close();
  }
}

/** What batch b of an epoch must hold, computed directly from the documented random streams. */
function expectedBatch(o: DataLoaderOptions, epoch: number, b: number): { images: Float32Array; labels: number[]; targets: Float32Array | null } {
  const { dataset, transform, batchSize, seed } = o;
  const order = o.shuffle ? permutation(dataset.count, seed, epoch, LOADER_RNG_TAGS.order) : Int32Array.from({ length: dataset.count }, (_, i) => i);
  const indices = order.slice(b * batchSize, Math.min((b + 1) * batchSize, dataset.count));
  const size = transform.channels * transform.size[0] * transform.size[1];
  const images = new Float32Array(indices.length * size);
  indices.forEach((i, k) => applyTransforms(memoryImage(dataset.store as Extract<ImageDataset['store'], { kind: 'memory' }>, i),
    transform, createRng(seed, epoch, i, LOADER_RNG_TAGS.augment), images, k * size));
  const labels = Int32Array.from(indices, (i) => dataset.labels[i]);
  const targets = o.mix
    ? mixBatch(images, labels, [indices.length, transform.channels, ...transform.size], o.mix, createRng(seed, epoch, b, LOADER_RNG_TAGS.mix))
    : null;
  return { images, labels: Array.from(labels), targets };
}

test('eval batches hold the pixels in dataset order, CHW, normalised (workers 0 and 2)', async () => {
  const dataset = syntheticDataset();
  const store = dataset.store as Extract<ImageDataset['store'], { kind: 'memory' }>;
  for (const workers of [0, 2]) {
    const batches = await collect({ dataset, transform: EVAL, shuffle: false, workers });
    assert.deepEqual(batches.map((b) => b.index), [0, 1, 2, 3, 4]);
    const second = batches[1];
    assert.deepEqual(second.labels, [8, 9, 10, 11, 12, 13, 14, 15]);
    assert.deepEqual(second.shape, [8, 3, SIDE, SIDE]);
    for (const [k, i] of [[0, 8], [5, 13]]) {
      for (const [c, y, x] of [[0, 0, 0], [1, 3, 5], [2, 7, 6]]) {
        const pixel = store.pixels[((i * SIDE + y) * SIDE + x) * 3 + c];
        const got = second.images[((k * 3 + c) * SIDE + y) * SIDE + x];
        assert.ok(Math.abs(got - (pixel / 255 - 0.5) / 0.25) < 1e-5, `image ${i} (${c}, ${y}, ${x}): ${got} vs pixel ${pixel}`);
      }
    }
    assert.equal(batches[0].targets, null);
  }
});

test('augmented, shuffled batches equal the direct computation bit for bit, for workers 0, 1 and 2', async () => {
  const o = options();
  const byWorkers = await Promise.all([0, 1, 2].map((workers) => collect({ ...o, workers }, 3)));
  for (let b = 0; b < 5; b++) {
    const expected = expectedBatch(o, 3, b);
    for (const batches of byWorkers) {
      assert.deepEqual(batches[b].labels, expected.labels);
      assert.deepEqual(batches[b].images, expected.images);
    }
  }
  // The augmentation really is random (and differs from the plain eval pixels).
  const plainEval = expectedBatch({ ...o, transform: { ...AUGMENT, train: false } }, 3, 0);
  assert.notDeepEqual(byWorkers[0][0].images, plainEval.images);
});

test('shuffling is seeded: same seed same order, a new order every epoch, every image once', async () => {
  const order = (batches: PlainBatch[]) => batches.flatMap((b) => b.labels);
  const epoch0 = order(await collect({ transform: EVAL }, 0));
  const again = order(await collect({ transform: EVAL, workers: 2 }, 0));
  const epoch1 = order(await collect({ transform: EVAL }, 1));
  const otherSeed = order(await collect({ transform: EVAL, seed: 8 }, 0));
  assert.deepEqual(epoch0, Array.from(permutation(COUNT, 7, 0, LOADER_RNG_TAGS.order)));
  assert.deepEqual(again, epoch0);
  assert.notDeepEqual(epoch1, epoch0);
  assert.notDeepEqual(otherSeed, epoch0);
  for (const o of [epoch0, epoch1]) assert.deepEqual([...o].sort((a, b) => a - b), Array.from({ length: COUNT }, (_, i) => i));
  // The same images in the same order are augmented differently in the next epoch.
  const [first0, first1] = await Promise.all([0, 1].map(async (epoch) => (await collect({ shuffle: false }, epoch))[0]));
  assert.deepEqual(first0.labels, first1.labels);
  assert.notDeepEqual(first0.images, first1.images);
});

test('length and dropLast: 37 images in batches of 8', async () => {
  assert.equal(new DataLoader(options()).length, 5);
  assert.equal(new DataLoader(options({ dropLast: true })).length, 4);
  assert.equal(new DataLoader(options({ batchSize: 37 })).length, 1);
  assert.equal(new DataLoader(options({ batchSize: 64, dropLast: true })).length, 0);
  const kept = await collect({ workers: 2 });
  assert.deepEqual(kept.map((b) => b.shape[0]), [8, 8, 8, 8, 5]);
  const dropped = await collect({ workers: 2, dropLast: true });
  assert.deepEqual(dropped.map((b) => b.shape[0]), [8, 8, 8, 8]);
  assert.deepEqual(dropped.map((b) => b.labels), kept.slice(0, 4).map((b) => b.labels));
  assert.deepEqual(await collect({ batchSize: 64, dropLast: true }), []);
});

test('epoch(e, startBatch) yields exactly the later batches of an uninterrupted epoch (with mixing)', async () => {
  const whole = await collect({ mix: MIX, workers: 2 }, 2);
  for (const [workers, start] of [[2, 3], [0, 1], [1, 5]]) {
    const resumed = await collect({ mix: MIX, workers }, 2, start);
    assert.deepEqual(resumed.map((b) => b.index), whole.slice(start).map((b) => b.index));
    assert.deepEqual(resumed, whole.slice(start));
  }
  const loader = new DataLoader(options());
  assert.throws(() => loader.epoch(0, 6), /startBatch must be an integer in \[0, 5\].*got 6/);
  assert.throws(() => loader.epoch(-1), /epoch must be a non-negative integer/);
});

test('mixing: int64 labels (B,), float32 soft targets (B, numClasses) equal to mixBatch, rows summing to 1', async () => {
  const o = options({ mix: MIX });
  const batches = await collect({ ...o, workers: 2 }, 1);
  assert.deepEqual(batches[4].shape, [5, 3, SIDE, SIDE]);
  assert.deepEqual(batches[4].targetShape, [5, COUNT]);
  assert.deepEqual(batches[0].targetShape, [8, COUNT]);
  for (const b of [0, 4]) {
    const expected = expectedBatch(o, 1, b);
    assert.deepEqual(batches[b].images, expected.images);
    assert.deepEqual(batches[b].targets, expected.targets);
    assert.deepEqual(batches[b].labels, expected.labels);
  }
  const targets = batches[0].targets!;
  for (let row = 0; row < 8; row++) {
    const sum = targets.subarray(row * COUNT, (row + 1) * COUNT).reduce((a, v) => a + v, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `row ${row} sums to ${sum}`);
  }
  assert.throws(() => new DataLoader(options({ mix: { ...MIX, numClasses: 10 } })), /mix.numClasses is 10 .* 37 classes/);
});

/** Writes image i of `dataset` as an RGB PNG and returns its path. */
function writePng(dataset: ImageDataset, i: number): string {
  const image = memoryImage(dataset.store as Extract<ImageDataset['store'], { kind: 'memory' }>, i);
  const png = new pngjs.PNG({ width: SIDE, height: SIDE });
  for (let p = 0; p < SIDE * SIDE; p++) {
    png.data.set(image.data.subarray(p * 3, p * 3 + 3), p * 4);
    png.data[p * 4 + 3] = 255;
  }
  const file = path.join(dir, `image-${i}.png`);
  writeFileSync(file, pngjs.PNG.sync.write(png, { colorType: 2 }));
  return file;
}

function filesDataset(paths: string[]): ImageDataset {
  return {
    name: 'synthetic-files', split: 'train', root: dir,
    classes: Array.from({ length: COUNT }, (_, i) => `class ${i}`),
    labels: Int32Array.from(paths, (_, i) => i), count: paths.length,
    store: { kind: 'files', paths, channels: 3 },
  };
}

test("a 'files' store decodes in the workers to the same batches as the pixels in memory", async () => {
  const memoryData = syntheticDataset(12);
  const files = filesDataset(Array.from({ length: 12 }, (_, i) => writePng(memoryData, i)));
  const fromMemory = await collect({ dataset: memoryData, batchSize: 5, workers: 0 });
  const fromFiles = await collect({ dataset: files, batchSize: 5, workers: 2 });
  assert.deepEqual(fromFiles, fromMemory);
});

test('a corrupt image file rejects the iteration with a DatasetError naming the file (workers 0 and 2)', async () => {
  const memoryData = syntheticDataset(10);
  const paths = Array.from({ length: 10 }, (_, i) => writePng(memoryData, i));
  const bad = path.join(dir, 'bad.png');
  writeFileSync(bad, Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('cut short')]));
  paths[6] = bad;
  for (const workers of [0, 2]) {
    // The batch before the bad one arrives; the error comes with batch 1, which holds image 6.
    const seen: number[] = [];
    const loader = new DataLoader(options({ dataset: filesDataset(paths), batchSize: 4, shuffle: false, workers }));
    await assert.rejects(
      (async () => { for await (const b of loader.epoch(0)) seen.push(plain(b).index); })(),
      (e: unknown) => {
        assert.ok(e instanceof DatasetError, `expected a DatasetError, got ${String(e)}`);
        assert.equal(e.file, bad);
        assert.match(e.message, /bad\.png/);
        assert.match(e.message, /corrupt|truncated/);
        return true;
      });
    assert.deepEqual(seen, [0]);
    await loader.close();
  }
});

test('breaking out early leaves the loader usable; close() ends it; nothing leaks', async () => {
  const before = memory().liveTensors;
  const loader = new DataLoader(options({ workers: 2, prefetch: 4, mix: MIX }));
  for await (const batch of loader.epoch(0)) {
    plain(batch);
    break;
  }
  const again: PlainBatch[] = [];
  for await (const batch of loader.epoch(0)) again.push(plain(batch));
  assert.deepEqual(again.map((b) => b.index), [0, 1, 2, 3, 4]);
  assert.deepEqual(again[0].images, expectedBatch(options({ mix: MIX }), 0, 0).images);
  await loader.close();
  await loader.close();  // idempotent
  assert.throws(() => loader.epoch(0), /after close\(\)/);
  assert.equal(memory().liveTensors, before);
});

/** Consumes the rest of an iteration (whatever had arrived may still come before an error). */
async function drain(iterator: AsyncIterator<LoadedBatch>): Promise<number> {
  let count = 0;
  for (let r = await iterator.next(); !r.done; r = await iterator.next()) { plain(r.value); count++; }
  return count;
}

test('close() during an epoch rejects the batches still loading', async () => {
  // Batches of one: 37 of them, far more than the 3 in flight when close() comes.
  const loader = new DataLoader(options({ workers: 1, prefetch: 3, batchSize: 1 }));
  const iterator = loader.epoch(0)[Symbol.asyncIterator]();
  plain((await iterator.next()).value as LoadedBatch);
  await loader.close();
  await assert.rejects(drain(iterator), /DataLoader: closed/);
});

test('a worker that dies rejects the iteration with a clear error', async () => {
  const loader = new DataLoader(options({ workers: 2, batchSize: 1 }));
  const iterator = loader.epoch(0)[Symbol.asyncIterator]();
  plain((await iterator.next()).value as LoadedBatch);
  // Kill a worker behind the loader's back, as the OOM killer or a native crash would.
  const pool = await (loader as unknown as { pool: Promise<{ slots: { worker: { terminate(): Promise<number> } }[] }> }).pool;
  // Not awaited: the 'exit' of an idle (unref'd) worker does not keep the event loop alive, so a
  // test awaiting terminate() itself could be left pending (loader-stress.test.ts covers the timing).
  void pool.slots[1].worker.terminate();
  await assert.rejects(drain(iterator),
    /DataLoader: worker 2 of 2 exited unexpectedly \(exit code 1\).*make a new DataLoader/);
  await loader.close();
});

test('an abandoned iteration (break, no close) does not keep the process alive', () => {
  const loaderUrl = new URL('../../src/data/loader.js', import.meta.url).href;
  const script = `
    import { DataLoader } from ${JSON.stringify(loaderUrl)};
    const pixels = new Uint8Array(64 * 8 * 8 * 3);
    const dataset = { name: 'x', split: 'train', root: '.', classes: ['a'], labels: new Int32Array(64), count: 64,
      store: { kind: 'memory', pixels, height: 8, width: 8, channels: 3 } };
    const loader = new DataLoader({ dataset, batchSize: 4, shuffle: true, seed: 1, workers: 2, prefetch: 8,
      transform: { size: [8, 8], channels: 3, mean: [0], std: [1], train: true, hflip: 0.5 } });
    for await (const batch of loader.epoch(0)) { batch.images.dispose(); batch.labels.dispose(); break; }
    console.log('done');`;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000, encoding: 'utf8' });
  assert.equal(child.signal, null, `the process did not exit by itself (killed by ${child.signal})`);
  assert.equal(child.status, 0, child.stderr);
  assert.equal(child.stdout.trim(), 'done');
});

test('options out of range are RangeErrors that name the value', () => {
  assert.throws(() => new DataLoader(options({ batchSize: 0 })), /batchSize must be a positive integer, got 0/);
  assert.throws(() => new DataLoader(options({ workers: -1 })), /workers must be a non-negative integer/);
  const max = 4 * availableParallelism();
  assert.throws(() => new DataLoader(options({ workers: 1000 })),
    new RegExp(`DataLoader: workers must be an integer from 0 to ${max} \\(4 per core; .*\\), got 1000`));
  assert.throws(() => new DataLoader(options({ prefetch: 0 })), /prefetch must be a positive integer/);
  assert.throws(() => new DataLoader(options({ seed: 0.5 })), /seed must be a safe integer, got 0.5/);
  const dataset = { ...syntheticDataset(), count: 40 };
  assert.throws(() => new DataLoader(options({ dataset })), /count 40 but has 37 labels and 37 images/);
});
