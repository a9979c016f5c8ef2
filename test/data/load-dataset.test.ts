import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import pngjs from 'pngjs';
import { memoryImage, type ImageDataset } from '../../src/data/dataset.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_SUBSET_ROOT, loadFashionMnist } from '../../src/data/fashion-mnist.js';
import { encodeIdx } from '../../src/data/idx.js';
import {
  DATASET_NAMES, DATASET_ROOT_ENV, datasetStats, isDatasetName, loadDataset, nativeChannels,
} from '../../src/data/load-dataset.js';
import { rejectsDatasetError } from '../support/dataset-errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-load-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs fn with the env variables set (or deleted, for undefined), restoring them afterwards. */
async function withEnv<T>(env: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  const apply = (values: Record<string, string | undefined>) => {
    for (const [k, v] of Object.entries(values)) { if (v === undefined) delete process.env[k]; else process.env[k] = v; }
  };
  apply(env);
  try { return await fn(); } finally { apply(saved); }
}

function memory(data: ImageDataset) {
  assert.equal(data.store.kind, 'memory');
  if (data.store.kind !== 'memory') throw new Error('unreachable');
  assert.ok(data.store.pixels.buffer instanceof SharedArrayBuffer, 'pixels in a SharedArrayBuffer');
  return data.store;
}

/** A synthetic MNIST: 3 train and 2 test 28x28 images, pixel value = image index * 10 + row. */
function writeMnist(name: string, gzip: boolean, labels: { train: number[]; test: number[] }): string {
  const root = path.join(dir, name);
  mkdirSync(root);
  for (const [split, prefix] of [['train', 'train'], ['test', 't10k']] as const) {
    const n = labels[split].length;
    const images = Uint8Array.from({ length: n * 784 }, (_, i) => Math.floor(i / 784) * 10 + Math.floor((i % 784) / 28));
    const encode = (bytes: Uint8Array) => (gzip ? gzipSync(bytes) : bytes);
    const ext = gzip ? '.gz' : '';
    writeFileSync(path.join(root, `${prefix}-images-idx3-ubyte${ext}`), encode(encodeIdx([n, 28, 28], images)));
    writeFileSync(path.join(root, `${prefix}-labels-idx1-ubyte${ext}`), encode(encodeIdx([n], Uint8Array.from(labels[split]))));
  }
  return root;
}

/** A 2-record CIFAR-10 test batch: record r has every R byte = 10r+1, G = 10r+2, B = 10r+3. */
function writeCifar10(name: string): string {
  const data = path.join(dir, name, 'cifar-10-batches-bin');
  mkdirSync(data, { recursive: true });
  const batch = new Uint8Array(2 * 3073);
  for (let r = 0; r < 2; r++) {
    batch[r * 3073] = r + 4;
    for (let c = 0; c < 3; c++) batch.fill(10 * r + c + 1, r * 3073 + 1 + c * 1024, r * 3073 + 1 + (c + 1) * 1024);
  }
  writeFileSync(path.join(data, 'test_batch.bin'), batch);
  writeFileSync(path.join(data, 'batches.meta.txt'), Array.from({ length: 10 }, (_, i) => `c${i}`).join('\n'));
  return path.join(dir, name);
}

test('the dataset names, their channels and root env variables', () => {
  assert.deepEqual(DATASET_NAMES, ['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'imagefolder']);
  assert.deepEqual(DATASET_NAMES.map(nativeChannels), [1, 1, 3, 3, 3]);
  assert.deepEqual(DATASET_NAMES.map((n) => DATASET_ROOT_ENV[n]),
    ['VICINITY_FASHION_MNIST', 'VICINITY_MNIST', 'VICINITY_CIFAR10', 'VICINITY_CIFAR100', 'VICINITY_IMAGEFOLDER']);
  assert.equal(isDatasetName('cifar10'), true);
  assert.equal(isDatasetName('CIFAR10'), false);
});

test('fashion-mnist subset: Int32 labels and the same pixels, in shared memory', async () => {
  const data = await loadDataset({ name: 'fashion-mnist', split: 'test', source: 'subset' });
  const direct = await loadFashionMnist({ split: 'test', source: 'subset' });
  assert.equal(data.name, 'fashion-mnist');
  assert.equal(data.source, 'subset');
  assert.equal(data.root, FASHION_MNIST_SUBSET_ROOT);
  assert.equal(data.count, 2000);
  assert.deepEqual(data.classes, [...FASHION_MNIST_CLASSES]);
  assert.ok(data.labels instanceof Int32Array);
  assert.deepEqual(data.labels, Int32Array.from(direct.labels));
  const store = memory(data);
  assert.deepEqual([store.height, store.width, store.channels], [28, 28, 1]);
  assert.deepEqual(store.pixels, direct.images);
});

test('fashion-mnist as 3 channels replicates each gray pixel', async () => {
  const rgb = memory(await loadDataset({ name: 'fashion-mnist', split: 'test', source: 'subset', channels: 3 }));
  const gray = memory(await loadDataset({ name: 'fashion-mnist', split: 'test', source: 'subset' }));
  assert.equal(rgb.channels, 3);
  assert.equal(rgb.pixels.length, 3 * gray.pixels.length);
  const image = memoryImage(rgb, 1999).data;
  const want = memoryImage(gray, 1999).data;
  for (let p = 0; p < 784; p += 37) assert.deepEqual([...image.subarray(3 * p, 3 * p + 3)], [want[p], want[p], want[p]], `pixel ${p}`);
});

test('mnist from a root, gzipped or not, and from VICINITY_MNIST', async () => {
  for (const gzip of [true, false]) {
    const root = writeMnist(`mnist-${gzip}`, gzip, { train: [5, 0, 9], test: [1, 7] });
    const train = await loadDataset({ name: 'mnist', root, split: 'train' });
    assert.equal(train.name, 'mnist');
    assert.equal(train.source, undefined);
    assert.deepEqual([...train.labels], [5, 0, 9]);
    assert.deepEqual(train.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
    const image = memoryImage(memory(train), 2).data;
    assert.equal(image[28 * 13 + 4], 2 * 10 + 13);  // image 2, row 13
    const held = await withEnv({ VICINITY_MNIST: root }, () => loadDataset({ name: 'mnist', split: 'test' }));
    assert.equal(held.root, root);
    assert.deepEqual([...held.labels], [1, 7]);
  }
});

test('a corrupt MNIST surfaces the parser\'s DatasetError', async () => {
  const root = writeMnist('mnist-bad', true, { train: [5, 12, 9], test: [1, 7] });
  await rejectsDatasetError(loadDataset({ name: 'mnist', root, split: 'train' }), /mislabelled: .*gives image 1 the label 12/);
});

test('cifar10 through loadDataset, as RGB and as gray (PIL luma)', async () => {
  const root = writeCifar10('c10');
  const rgb = await loadDataset({ name: 'cifar10', root, split: 'test' });
  assert.deepEqual([...rgb.labels], [4, 5]);
  assert.deepEqual([...memoryImage(memory(rgb), 1).data.subarray(0, 6)], [11, 12, 13, 11, 12, 13]);
  const gray = await withEnv({ VICINITY_CIFAR10: root }, () => loadDataset({ name: 'cifar10', split: 'test', channels: 1 }));
  const store = memory(gray);
  assert.equal(store.channels, 1);
  assert.equal(store.pixels.length, 2 * 1024);
  // (19595·11 + 38470·12 + 7471·13 + 32768) >> 16 = 12 ; image 0: (1, 2, 3) → 2
  assert.deepEqual([store.pixels[0], store.pixels[1024], store.pixels[2047]], [2, 12, 12]);
});

test('cifar100 coarse labels through loadDataset', async () => {
  const data = path.join(dir, 'c100', 'cifar-100-binary');
  mkdirSync(data, { recursive: true });
  const batch = new Uint8Array(2 * 3074);
  batch.set([3, 77], 0);
  batch.set([19, 2], 3074);
  writeFileSync(path.join(data, 'train.bin'), batch);
  writeFileSync(path.join(data, 'coarse_label_names.txt'), Array.from({ length: 20 }, (_, i) => `s${i}`).join('\n'));
  const coarse = await loadDataset({ name: 'cifar100', root: path.dirname(data), split: 'train', cifar100Labels: 'coarse' });
  assert.deepEqual([...coarse.labels], [3, 19]);
  assert.equal(coarse.classes.length, 20);
  await rejectsDatasetError(loadDataset({ name: 'cifar100', root: data, split: 'train' }), /fine_label_names\.txt missing/);
});

test('imagefolder through loadDataset, root from VICINITY_IMAGEFOLDER', async () => {
  const root = path.join(dir, 'folder');
  const image = new pngjs.PNG({ width: 2, height: 2 });
  image.data = Buffer.alloc(16, 255);
  for (const cls of ['b', 'a']) {
    mkdirSync(path.join(root, cls), { recursive: true });
    writeFileSync(path.join(root, cls, 'x.png'), pngjs.PNG.sync.write(image));
  }
  const data = await withEnv({ VICINITY_IMAGEFOLDER: root }, () => loadDataset({ name: 'imagefolder', split: 'train', channels: 1 }));
  assert.deepEqual(data.classes, ['a', 'b']);
  assert.deepEqual(data.store, { kind: 'files', paths: [path.join(root, 'a', 'x.png'), path.join(root, 'b', 'x.png')], channels: 1 });
});

test('a missing root names the env variable and what the root must hold', async () => {
  const env = Object.fromEntries(Object.values(DATASET_ROOT_ENV).map((k) => [k, undefined]));
  await withEnv(env, async () => {
    await rejectsDatasetError(loadDataset({ name: 'cifar10', split: 'train' }),
      /cifar10 needs a root directory/, /cifar-10-batches-bin\//, /data_batch_1\.bin/, /VICINITY_CIFAR10/);
    await rejectsDatasetError(loadDataset({ name: 'cifar100', split: 'train' }), /cifar-100-binary\//, /VICINITY_CIFAR100/);
    await rejectsDatasetError(loadDataset({ name: 'mnist', split: 'test' }), /t10k-images-idx3-ubyte/, /VICINITY_MNIST/);
    await rejectsDatasetError(loadDataset({ name: 'imagefolder', split: 'test' }), /root\/<class>\/<image>/, /VICINITY_IMAGEFOLDER/);
  });
});

test('bad specs are TypeErrors that list the choices', async () => {
  await assert.rejects(loadDataset({ name: 'cifar', split: 'train' }),
    (e: unknown) => e instanceof TypeError && /unknown dataset "cifar"; the datasets are fashion-mnist, mnist, cifar10, cifar100, imagefolder/.test(e.message));
  await assert.rejects(loadDataset({ name: 'mnist', root: dir, split: 'val' as 'test' }), /split "val" is not 'train' or 'test'/);
  await assert.rejects(loadDataset({ name: 'cifar10', root: dir, split: 'test', source: 'subset' }), /source 'subset' is for fashion-mnist only/);
  await assert.rejects(loadDataset({ name: 'cifar10', root: dir, split: 'test', cifar100Labels: 'coarse' }), /cifar100Labels is for cifar100 only/);
  await assert.rejects(loadDataset({ name: 'mnist', root: dir, split: 'test', channels: 2 as 1 }), /channels must be 1 or 3, got 2/);
});

test('datasetStats: the published per-channel mean and std', () => {
  assert.deepEqual(datasetStats('fashion-mnist'), { mean: [0.2860], std: [0.3530], channels: 1 });
  assert.deepEqual(datasetStats('mnist'), { mean: [0.1307], std: [0.3081], channels: 1 });
  assert.deepEqual(datasetStats('cifar10'), { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616], channels: 3 });
  assert.deepEqual(datasetStats('cifar100'), { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762], channels: 3 });
  assert.deepEqual(datasetStats('imagefolder'), { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225], channels: 3 });
});

test('datasetStats for other channel counts: repeated, or luma-weighted', () => {
  assert.deepEqual(datasetStats('mnist', 3), { mean: [0.1307, 0.1307, 0.1307], std: [0.3081, 0.3081, 0.3081], channels: 3 });
  const gray = datasetStats('cifar10', 1);
  assert.equal(gray.channels, 1);
  assert.ok(Math.abs(gray.mean[0]! - (0.299 * 0.4914 + 0.587 * 0.4822 + 0.114 * 0.4465)) < 1e-12);
  assert.ok(Math.abs(gray.std[0]! - (0.299 * 0.2470 + 0.587 * 0.2435 + 0.114 * 0.2616)) < 1e-12);
  const copy = datasetStats('cifar10');
  copy.mean[0] = 9;
  assert.equal(datasetStats('cifar10').mean[0], 0.4914, 'callers get copies');
  assert.throws(() => datasetStats('svhn'), /unknown dataset "svhn"/);
});
