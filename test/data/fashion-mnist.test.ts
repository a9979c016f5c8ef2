import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import {
  DEFAULT_FASHION_MNIST_ROOT, FASHION_MNIST_CLASSES, FASHION_MNIST_SUBSET_ROOT,
  loadFashionMnist, loadMnist, type ImageClassificationSplit,
} from '../../src/data/fashion-mnist.js';
import { encodeIdx, readIdx } from '../../src/data/idx.js';
import { packageRoot } from '../../src/package-root.js';
import { rejectsDatasetError } from '../support/dataset-errors.js';

const FULL = DEFAULT_FASHION_MNIST_ROOT;
const HAVE_FULL = existsSync(path.join(FULL, 't10k-images-idx3-ubyte.gz'));
const NO_FULL = `${FULL} is absent (apt-get install dataset-fashion-mnist)`;
const PIXELS = 28 * 28;
/** SHA-256 of image 0 of Fashion-MNIST train (an ankle boot), from the Debian file. */
const FIRST_TRAIN_IMAGE_SHA256 = '5bd44e331a6d6998daf675700cd0c13dcd7af8ab954b7585124124da61459e7b';
const FIRST_TEST_IMAGE_SHA256 = 'ffc7351ed0f8bae542820866086177fa4e0b366b97bf9d998dffdb8dbe138787';

const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-fashion-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

function classCounts(labels: Uint8Array): number[] {
  const counts = new Array<number>(10).fill(0);
  for (const label of labels) counts[label]!++;
  return counts;
}

/** Writes an MNIST-named file pair into a fresh directory and returns it. */
function writePair(name: string, images: Uint8Array, labels: Uint8Array, opts: { side?: number; gzip?: boolean } = {}): string {
  const side = opts.side ?? 28;
  const root = path.join(dir, name);
  mkdirSync(root);
  const count = images.length / (side * side);
  const encode = (b: Uint8Array) => (opts.gzip === false ? b : gzipSync(b));
  const ext = opts.gzip === false ? '' : '.gz';
  writeFileSync(path.join(root, `train-images-idx3-ubyte${ext}`), encode(encodeIdx([count, side, side], images)));
  writeFileSync(path.join(root, `train-labels-idx1-ubyte${ext}`), encode(encodeIdx([labels.length], labels)));
  return root;
}

/** Asserts the promise rejects with a DatasetError whose message matches every pattern. */
test('packageRoot is the directory of vicinity\'s package.json', () => {
  const pkg = JSON.parse(readFileSync(path.join(packageRoot, 'package.json'), 'utf8')) as { name: string };
  assert.equal(pkg.name, 'vicinity');
  assert.equal(FASHION_MNIST_SUBSET_ROOT, path.join(packageRoot, 'data', 'fashion-mnist-subset'));
});

test('bundled train subset: 10,000 28x28 images, 1,000 per class', async () => {
  const train = await loadFashionMnist({ split: 'train', source: 'subset' });
  assert.equal(train.source, 'subset');
  assert.equal(train.count, 10_000);
  assert.equal(train.images.length, 10_000 * PIXELS);
  assert.equal(train.labels.length, 10_000);
  assert.deepEqual([train.height, train.width, train.channels], [28, 28, 1]);
  assert.deepEqual(classCounts(train.labels), new Array(10).fill(1000));
  assert.deepEqual(train.classes, [...FASHION_MNIST_CLASSES]);
  assert.equal(train.classes[9], 'Ankle boot');
  assert.equal(train.labels[0], 9);
  assert.equal(sha256(train.images.subarray(0, PIXELS)), FIRST_TRAIN_IMAGE_SHA256);
});

test('bundled test subset: 2,000 images, 200 per class', async () => {
  const t10k = await loadFashionMnist({ split: 'test', source: 'subset' });
  assert.equal(t10k.count, 2000);
  assert.equal(t10k.images.length, 2000 * PIXELS);
  assert.deepEqual(classCounts(t10k.labels), new Array(10).fill(200));
  assert.equal(sha256(t10k.images.subarray(0, PIXELS)), FIRST_TEST_IMAGE_SHA256);
});

test('auto falls back to the subset when root has no dataset', async () => {
  const loaded = await loadFashionMnist({ split: 'test', root: path.join(dir, 'nowhere') });
  assert.equal(loaded.source, 'subset');
  assert.equal(loaded.root, FASHION_MNIST_SUBSET_ROOT);
});

test('source full with no dataset says where it looked and how to fix it', async () => {
  const root = path.join(dir, 'nowhere');
  await rejectsDatasetError(loadFashionMnist({ split: 'test', root, source: 'full' }),
    new RegExp(`not in ${root}`), /t10k-images-idx3-ubyte\[\.gz\]/, /VICINITY_FASHION_MNIST/, /source: 'subset'/);
});

test('env VICINITY_FASHION_MNIST is honoured, and raw (un-gzipped) files are read', async () => {
  const labels = Uint8Array.of(3, 1);
  const root = writePair('env', new Uint8Array(2 * PIXELS).fill(7), labels, { gzip: false });
  const saved = process.env['VICINITY_FASHION_MNIST'];
  process.env['VICINITY_FASHION_MNIST'] = root;
  try {
    const loaded = await loadFashionMnist({ split: 'train' });
    assert.equal(loaded.source, 'full');
    assert.equal(loaded.root, root);
    assert.equal(loaded.count, 2);
    assert.deepEqual([...loaded.labels], [3, 1]);
  } finally {
    if (saved === undefined) delete process.env['VICINITY_FASHION_MNIST'];
    else process.env['VICINITY_FASHION_MNIST'] = saved;
  }
});

test('an unknown split or source is a TypeError', async () => {
  await assert.rejects(loadFashionMnist({ split: 'val' as 'test' }), /split "val" is not 'train' or 'test'/);
  await assert.rejects(loadFashionMnist({ split: 'test', source: 'big' as 'full' }), /source "big"/);
  await assert.rejects(loadMnist({ split: 'train' } as { root: string; split: 'train' }), /root is required/);
});

test('loadMnist reads a file pair and names classes by digit', async () => {
  const root = writePair('mnist', new Uint8Array(3 * PIXELS).fill(1), Uint8Array.of(0, 9, 4));
  const mnist = await loadMnist({ root, split: 'train' });
  assert.equal(mnist.count, 3);
  assert.deepEqual(mnist.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  await rejectsDatasetError(loadMnist({ root, split: 'test' }), /MNIST is not in/, /t10k-images-idx3-ubyte/);
});

test('mislabelled: fewer labels than images', async () => {
  const root = writePair('count', new Uint8Array(3 * PIXELS), Uint8Array.of(0, 1));
  await rejectsDatasetError(loadMnist({ root, split: 'train' }),
    /mislabelled/, /has 3 images but .*train-labels-idx1-ubyte\.gz has 2 labels/);
});

test('mislabelled: a label of 12', async () => {
  const root = writePair('label12', new Uint8Array(3 * PIXELS), Uint8Array.of(0, 12, 1));
  await rejectsDatasetError(loadMnist({ root, split: 'train' }),
    /mislabelled/, /gives image 1 the label 12, but there are only 10 classes \(0-9\)/);
});

test('images that are not 28x28, or swapped files, are rejected', async () => {
  const big = writePair('32px', new Uint8Array(2 * 32 * 32), Uint8Array.of(0, 1), { side: 32 });
  await rejectsDatasetError(loadMnist({ root: big, split: 'train' }), /expected images of shape \[n, 28, 28\]/, /\[2, 32, 32\]/);
  const swapped = path.join(dir, 'swapped');
  mkdirSync(swapped);
  writeFileSync(path.join(swapped, 'train-images-idx3-ubyte'), encodeIdx([2], Uint8Array.of(0, 1)));
  writeFileSync(path.join(swapped, 'train-labels-idx1-ubyte'), encodeIdx([2, 28, 28], new Uint8Array(2 * PIXELS)));
  await rejectsDatasetError(loadMnist({ root: swapped, split: 'train' }), /is this the labels file/);
});

test('a corrupt gzip in the pair surfaces with the file name', async () => {
  const root = writePair('corrupt', new Uint8Array(2 * PIXELS), Uint8Array.of(0, 1));
  const file = path.join(root, 'train-images-idx3-ubyte.gz');
  const gz = readFileSync(file);
  writeFileSync(file, gz.subarray(0, gz.length >> 1));
  await rejectsDatasetError(loadMnist({ root, split: 'train' }), new RegExp(`${file}: corrupt gzip data`));
});

test('full dataset: auto finds Debian\'s files, 60,000 / 10,000 images', async (t) => {
  if (!HAVE_FULL) { t.skip(NO_FULL); return; }
  const t10k = await loadFashionMnist({ split: 'test', root: FULL });
  assert.equal(t10k.source, 'full');
  assert.equal(t10k.count, 10_000);
  const labels = await readIdx(path.join(FULL, 'train-labels-idx1-ubyte.gz'));
  assert.deepEqual(classCounts(labels.data), new Array(10).fill(6000));
});

test('full dataset: image 0 of the subset is image 0 of the Debian train file', async (t) => {
  if (!HAVE_FULL) { t.skip(NO_FULL); return; }
  const full = await readIdx(path.join(FULL, 'train-images-idx3-ubyte.gz'));
  assert.equal(sha256(full.data.subarray(0, PIXELS)), FIRST_TRAIN_IMAGE_SHA256);
});

test('full dataset: the test subset is the first 200 of each class, in file order', async (t) => {
  if (!HAVE_FULL) { t.skip(NO_FULL); return; }
  const full: ImageClassificationSplit = await loadFashionMnist({ split: 'test', root: FULL, source: 'full' });
  const subset = await loadFashionMnist({ split: 'test', source: 'subset' });
  const taken = new Array<number>(10).fill(0);
  let next = 0;
  for (let i = 0; i < full.count && next < subset.count; i++) {
    const label = full.labels[i]!;
    if (taken[label]! >= 200) continue;
    taken[label]!++;
    assert.equal(subset.labels[next], label, `label of subset item ${next}`);
    const want = full.images.subarray(i * PIXELS, (i + 1) * PIXELS);
    assert.deepEqual(subset.images.subarray(next * PIXELS, (next + 1) * PIXELS), want, `subset image ${next} = full image ${i}`);
    next++;
  }
  assert.equal(next, 2000);
});
