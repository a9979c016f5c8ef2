import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import {
  CIFAR_PIXELS, cifarRecordSize, loadCifar10, loadCifar100, readCifarClassNames,
} from '../../src/data/cifar.js';
import { memoryImage, type ImageDataset } from '../../src/data/dataset.js';
import { rejectsDatasetError } from '../support/dataset-errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-cifar-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const CIFAR10_NAMES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

/** The synthetic value of pixel p (0-1023) of channel c in record r of batch b. */
function pixel(batch: number, record: number, channel: number, p: number): number {
  return (batch * 101 + record * 37 + channel * 53 + p * 7) % 256;
}

/** A batch of records: label bytes, then planar R, G, B planes made by pixel(). */
function batch(index: number, labels: number[][]): Uint8Array {
  const labelBytes = labels[0]!.length;
  const record = labelBytes + CIFAR_PIXELS;
  const out = new Uint8Array(labels.length * record);
  labels.forEach((bytes, r) => {
    out.set(bytes, r * record);
    for (let c = 0; c < 3; c++) {
      for (let p = 0; p < 1024; p++) out[r * record + labelBytes + c * 1024 + p] = pixel(index, r, c, p);
    }
  });
  return out;
}

/** Writes a CIFAR-10 tree under a fresh parent; returns the parent. `edit` may change files. */
function cifar10(name: string, edit?: (files: Map<string, Uint8Array | string>) => void): string {
  const parent = path.join(dir, name);
  const data = path.join(parent, 'cifar-10-batches-bin');
  mkdirSync(data, { recursive: true });
  const files = new Map<string, Uint8Array | string>();
  const sizes = [2, 1, 3, 1, 2];
  sizes.forEach((n, b) => files.set(`data_batch_${b + 1}.bin`,
    batch(b, Array.from({ length: n }, (_, r) => [(b * 3 + r) % 10]))));
  files.set('test_batch.bin', batch(9, [[7], [0], [9]]));
  files.set('batches.meta.txt', CIFAR10_NAMES.join('\n') + '\n\n');  // the release ends with blank lines
  edit?.(files);
  for (const [file, bytes] of files) writeFileSync(path.join(data, file), bytes);
  return parent;
}

/** Writes a CIFAR-100 tree; labels are [coarse, fine] pairs. Returns the extracted directory. */
function cifar100(name: string, edit?: (files: Map<string, Uint8Array | string>) => void): string {
  const data = path.join(dir, name, 'cifar-100-binary');
  mkdirSync(data, { recursive: true });
  const files = new Map<string, Uint8Array | string>([
    ['train.bin', batch(0, [[19, 99], [0, 5], [3, 42], [11, 0]])],
    ['test.bin', batch(1, [[4, 30], [19, 98]])],
    ['fine_label_names.txt', Array.from({ length: 100 }, (_, i) => `fine${i}`).join('\n') + '\n'],
    ['coarse_label_names.txt', Array.from({ length: 20 }, (_, i) => `coarse${i}`).join('\r\n') + '\r\n'],
  ]);
  edit?.(files);
  for (const [file, bytes] of files) writeFileSync(path.join(data, file), bytes);
  return data;
}

/** Asserts image i of the dataset is record r of batch b, transposed to HWC. */
function assertImage(data: ImageDataset, i: number, b: number, r: number): void {
  assert.equal(data.store.kind, 'memory');
  if (data.store.kind !== 'memory') return;
  const image = memoryImage(data.store, i);
  assert.equal(image.data.length, 32 * 32 * 3);
  for (const [y, x] of [[0, 0], [0, 31], [5, 17], [31, 0], [31, 31]] as const) {
    for (let c = 0; c < 3; c++) {
      assert.equal(image.data[(y * 32 + x) * 3 + c], pixel(b, r, c, y * 32 + x), `image ${i} (${y}, ${x}) channel ${c}`);
    }
  }
}

test('record sizes are 1 + 3072 (CIFAR-10) and 2 + 3072 (CIFAR-100) bytes', () => {
  assert.equal(cifarRecordSize('cifar10'), 3073);
  assert.equal(cifarRecordSize('cifar100'), 3074);
});

test('CIFAR-10 train from the parent dir: five batches in order, HWC pixels in shared memory', async () => {
  const parent = cifar10('good');
  const train = await loadCifar10({ root: parent, split: 'train' });
  assert.equal(train.name, 'cifar10');
  assert.equal(train.split, 'train');
  assert.equal(train.root, path.join(parent, 'cifar-10-batches-bin'));
  assert.equal(train.count, 9);
  assert.deepEqual(train.classes, CIFAR10_NAMES);
  assert.ok(train.labels instanceof Int32Array);
  assert.deepEqual([...train.labels], [0, 1, 3, 6, 7, 8, 9, 2, 3]);
  assert.equal(train.store.kind, 'memory');
  if (train.store.kind !== 'memory') return;
  assert.deepEqual([train.store.height, train.store.width, train.store.channels], [32, 32, 3]);
  assert.ok(train.store.pixels.buffer instanceof SharedArrayBuffer);
  assert.equal(train.store.pixels.length, 9 * 3072);
  assertImage(train, 0, 0, 0);
  assertImage(train, 1, 0, 1);
  assertImage(train, 2, 1, 0);
  assertImage(train, 5, 2, 2);
  assertImage(train, 8, 4, 1);
});

test('CIFAR-10 test from the extracted dir itself', async () => {
  const data = path.join(cifar10('direct'), 'cifar-10-batches-bin');
  const test10 = await loadCifar10({ root: data, split: 'test' });
  assert.equal(test10.root, data);
  assert.deepEqual([...test10.labels], [7, 0, 9]);
  assertImage(test10, 2, 9, 2);
});

test('missing CIFAR-10: lists the files, both places looked, and the download', async () => {
  const empty = path.join(dir, 'empty');
  mkdirSync(empty);
  await rejectsDatasetError(loadCifar10({ root: empty, split: 'test' }),
    /CIFAR-10 not found/, /test_batch\.bin, batches\.meta\.txt/,
    new RegExp(`in ${empty} and ${path.join(empty, 'cifar-10-batches-bin')}`),
    /cifar-10-binary\.tar\.gz/, /https:\/\/www\.cs\.toronto\.edu\/~kriz\/cifar\.html/);
});

test('the Python pickle version is recognised and refused', async () => {
  const root = path.join(dir, 'python');
  mkdirSync(path.join(root, 'cifar-10-batches-py'), { recursive: true });
  writeFileSync(path.join(root, 'cifar-10-batches-py', 'batches.meta'), 'pickle');
  await rejectsDatasetError(loadCifar10({ root, split: 'train' }), /holds cifar-10-batches-py\/, the Python pickle version/);
});

test('an incomplete directory names every missing file', async () => {
  const parent = cifar10('incomplete', (files) => { files.delete('data_batch_3.bin'); files.delete('data_batch_5.bin'); });
  const error = await rejectsDatasetError(loadCifar10({ root: parent, split: 'train' }),
    /incomplete CIFAR-10 directory: data_batch_3\.bin, data_batch_5\.bin missing/);
  assert.equal(error.file, path.join(parent, 'cifar-10-batches-bin', 'data_batch_3.bin'));
  const noMeta = cifar10('no-meta', (files) => files.delete('batches.meta.txt'));
  await rejectsDatasetError(loadCifar10({ root: noMeta, split: 'test' }), /batches\.meta\.txt missing/);
});

test('truncated batch: the size is not a whole number of records', async () => {
  const parent = cifar10('truncated');
  const file = path.join(parent, 'cifar-10-batches-bin', 'data_batch_4.bin');
  truncateSync(file, 3073 - 100);
  const error = await rejectsDatasetError(loadCifar10({ root: parent, split: 'train' }),
    new RegExp(`${file}: truncated: 2973 bytes is not a whole number of 3073-byte CIFAR-10 records`),
    /0 records and 2973 bytes left over/, /download and extract cifar-10-binary\.tar\.gz again/);
  assert.equal(error.file, file);
  truncateSync(file, 0);
  await rejectsDatasetError(loadCifar10({ root: parent, split: 'train' }), /empty CIFAR-10 batch \(0 bytes\)/);
});

test('a CIFAR-100 file among CIFAR-10 batches is called out', async () => {
  const parent = cifar10('swapped', (files) => files.set('test_batch.bin', batch(0, [[1, 2], [3, 4], [5, 6]])));
  await rejectsDatasetError(loadCifar10({ root: parent, split: 'test' }),
    /9222 bytes is not a whole number of 3073-byte/, /may be a CIFAR-100 file/);
});

test('mislabelled CIFAR-10: a label of 10 names the batch and record', async () => {
  const parent = cifar10('label10', (files) => files.set('data_batch_3.bin', batch(2, [[1], [4], [10]])));
  await rejectsDatasetError(loadCifar10({ root: parent, split: 'train' }),
    /mislabelled: .*data_batch_3\.bin, record 2 \(byte offset 6146\) has label 10/, /only 10 \(0-9\)/);
});

test('batches.meta.txt with 9 names is rejected', async () => {
  const parent = cifar10('nine', (files) => files.set('batches.meta.txt', CIFAR10_NAMES.slice(0, 9).join('\n')));
  await rejectsDatasetError(loadCifar10({ root: parent, split: 'test' }),
    /batches\.meta\.txt: expected 10 class names, one a line, but found 9 \(airplane, automobile, bird, …\)/);
});

test('CIFAR-100: fine labels by default, coarse on request', async () => {
  const data = cifar100('c100');
  const fine = await loadCifar100({ root: path.dirname(data), split: 'train' });
  assert.equal(fine.name, 'cifar100');
  assert.equal(fine.root, data);
  assert.equal(fine.classes.length, 100);
  assert.equal(fine.classes[42], 'fine42');
  assert.deepEqual([...fine.labels], [99, 5, 42, 0]);
  assertImage(fine, 3, 0, 3);
  const coarse = await loadCifar100({ root: data, split: 'test', labels: 'coarse' });
  assert.deepEqual(coarse.classes, Array.from({ length: 20 }, (_, i) => `coarse${i}`));
  assert.deepEqual([...coarse.labels], [4, 19]);
  assertImage(coarse, 1, 1, 1);
});

test('mislabelled CIFAR-100: fine label 100, or coarse label 20 even when using fine labels', async () => {
  const fine = cifar100('fine100', (files) => files.set('test.bin', batch(1, [[4, 30], [2, 100]])));
  await rejectsDatasetError(loadCifar100({ root: fine, split: 'test' }),
    /test\.bin, record 1 \(byte offset 3074\) has fine label 100, but CIFAR-100 has only 100 \(0-99\)/);
  const coarse = cifar100('coarse20', (files) => files.set('test.bin', batch(1, [[20, 30]])));
  await rejectsDatasetError(loadCifar100({ root: coarse, split: 'test' }), /record 0 .* has coarse label 20, .* only 20 \(0-19\)/);
});

test('CIFAR-100: truncated train.bin, wrong names count, missing files', async () => {
  const data = cifar100('c100-bad', (files) => {
    files.set('train.bin', files.get('train.bin')!.slice(0, 2 * 3074 + 5) as Uint8Array);
    files.set('fine_label_names.txt', 'apple\nbanana\n');
  });
  await rejectsDatasetError(loadCifar100({ root: data, split: 'train', labels: 'coarse' }),
    /train\.bin: truncated: 6153 bytes is not a whole number of 3074-byte CIFAR-100 records \(2 label bytes \+ 3072 pixel bytes\): 2 records and 5 bytes left over/);
  await rejectsDatasetError(loadCifar100({ root: data, split: 'test' }), /fine_label_names\.txt: expected 100 class names, one a line, but found 2 \(apple, banana\)/);
  await rejectsDatasetError(loadCifar100({ root: path.join(dir, 'nothing-here'), split: 'test' }),
    /CIFAR-100 not found: looked for test\.bin, fine_label_names\.txt/, /cifar-100-binary\.tar\.gz/);
});

test('bad options are TypeErrors', async () => {
  await assert.rejects(loadCifar10({ split: 'train' } as never), TypeError);
  await assert.rejects(loadCifar10({ root: dir, split: 'val' as 'test' }), /split "val" is not 'train' or 'test'/);
  await assert.rejects(loadCifar100({ root: dir, split: 'test', labels: 'medium' as 'fine' }), /labels "medium" is not 'fine' or 'coarse'/);
});

test('readCifarClassNames trims lines and skips blank ones', async () => {
  const file = path.join(dir, 'names.txt');
  writeFileSync(file, '  a \r\n\nb\n\n');
  assert.deepEqual(await readCifarClassNames(file, 2), ['a', 'b']);
  await rejectsDatasetError(readCifarClassNames(path.join(dir, 'absent.txt'), 2), /absent\.txt: cannot read class names/);
});
