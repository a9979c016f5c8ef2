import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import type { ImageDataset } from '../../src/data/dataset.js';
import {
  checkImageFiles, IMAGE_EXTENSIONS, isImageFileName, loadImageFolder, resolveImageFolderSplit,
} from '../../src/data/image-folder.js';
import { rejectsDatasetError } from '../support/dataset-errors.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-folder-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A tiny real PNG of the given size. */
function png(width: number, height: number): Uint8Array {
  const image = new pngjs.PNG({ width, height });
  image.data = Buffer.alloc(width * height * 4, 200);
  return pngjs.PNG.sync.write(image);
}

/** A tiny real JPEG of the given size. */
function jpg(width: number, height: number): Uint8Array {
  return jpeg.encode({ width, height, data: Buffer.alloc(width * height * 4, 90) }, 80).data;
}

/** Writes `files` (relative path → bytes or text) under a fresh root; returns the root. */
function tree(name: string, files: Record<string, Uint8Array | string>): string {
  const root = path.join(dir, name);
  for (const [file, bytes] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), bytes);
  }
  return root;
}

function paths(data: ImageDataset): string[] {
  assert.equal(data.store.kind, 'files');
  return data.store.kind === 'files' ? data.store.paths.map((p) => path.relative(data.root, p)) : [];
}

/** A split layout: train has Zebra, ant, cat (nested), dog; val has cat and dog only. */
const split = tree('split', {
  'train/cat/a.jpg': jpg(8, 6), 'train/cat/B.PNG': png(5, 4), 'train/cat/c.JPEG': jpg(8, 6),
  'train/cat/notes.txt': 'not an image', 'train/cat/.hidden.jpg': jpg(8, 6), 'train/cat/._a.jpg': 'AppleDouble',
  'train/cat/sub/d.png': png(3, 7), 'train/cat/sub-2/e.png': png(3, 3), 'train/cat/sub/deeper/f.png': png(2, 2),
  'train/dog/x.png': png(4, 4), 'train/ant/y.jpeg': jpg(16, 9), 'train/Zebra/z.png': png(6, 6),
  'train/.ipynb_checkpoints/cp.png': png(2, 2), 'train/README.md': 'a stray file',
  'val/dog/v1.png': png(4, 4), 'val/cat/v2.jpg': jpg(8, 6), 'val/dog/v0.png': png(4, 4),
});

test('image file names: .jpg, .jpeg, .png in any case; hidden ones are not images', () => {
  assert.deepEqual(IMAGE_EXTENSIONS, ['.jpg', '.jpeg', '.png']);
  for (const name of ['a.jpg', 'B.PNG', 'c.JpEg', 'x.y.png']) assert.equal(isImageFileName(name), true, name);
  for (const name of ['._a.jpg', '.png', 'a.webp', 'jpg', 'a.jpg.txt']) assert.equal(isImageFileName(name), false, name);
});

test('train split: classes sorted by code point, images in torchvision\'s walk order', async () => {
  const train = await loadImageFolder({ root: split, split: 'train' });
  assert.equal(train.name, 'imagefolder');
  assert.equal(train.split, 'train');
  assert.equal(train.root, path.join(split, 'train'));
  assert.deepEqual(train.classes, ['Zebra', 'ant', 'cat', 'dog']);
  // sorted(os.walk(...)): cat, cat/sub, cat/sub-2, cat/sub/deeper; files sorted within each
  assert.deepEqual(paths(train), [
    'Zebra/z.png', 'ant/y.jpeg',
    'cat/B.PNG', 'cat/a.jpg', 'cat/c.JPEG', 'cat/sub/d.png', 'cat/sub-2/e.png', 'cat/sub/deeper/f.png',
    'dog/x.png',
  ]);
  assert.deepEqual([...train.labels], [0, 1, 2, 2, 2, 2, 2, 2, 3]);
  assert.ok(train.labels instanceof Int32Array);
  assert.equal(train.count, 9);
  assert.deepEqual(train.store.kind === 'files' && train.store.channels, 3);
  assert.ok(train.store.kind === 'files' && train.store.paths.every((p) => path.isAbsolute(p)));
});

test('test split reads val/ and labels it with the train classes', async () => {
  const val = await loadImageFolder({ root: split, split: 'test', channels: 1 });
  assert.equal(val.root, path.join(split, 'val'));
  assert.deepEqual(val.classes, ['Zebra', 'ant', 'cat', 'dog']);
  assert.deepEqual(paths(val), ['cat/v2.jpg', 'dog/v0.png', 'dog/v1.png']);
  assert.deepEqual([...val.labels], [2, 3, 3]);
  assert.equal(val.store.kind === 'files' && val.store.channels, 1);
});

test('test split falls back to test/ when there is no val/', async () => {
  const root = tree('train-test', { 'train/a/1.png': png(2, 2), 'train/b/2.png': png(2, 2), 'test/b/3.png': png(2, 2) });
  const held = await loadImageFolder({ root, split: 'test' });
  assert.equal(held.root, path.join(root, 'test'));
  assert.deepEqual([...held.labels], [1]);
  assert.deepEqual(await resolveImageFolderSplit(root, 'test'),
    { layout: 'split', directory: path.join(root, 'test'), classDirectory: path.join(root, 'train') });
});

test('flat layout: class folders directly in root serve both splits', async () => {
  const root = tree('flat', { 'b/1.png': png(2, 2), 'a/2.png': png(2, 2), 'a/3.png': png(2, 2) });
  const train = await loadImageFolder({ root, split: 'train' });
  const held = await loadImageFolder({ root, split: 'test' });
  assert.equal(train.root, root);
  assert.equal(held.root, root);
  assert.deepEqual(train.classes, ['a', 'b']);
  assert.deepEqual([...held.labels], [0, 0, 1]);
  assert.equal((await resolveImageFolderSplit(root, 'test')).layout, 'flat');
});

test('symlinked class folders are followed, and a symlink cycle ends', async () => {
  const root = tree('links', { 'real/cat/1.png': png(2, 2), 'data/dog/2.png': png(2, 2) });
  symlinkSync(path.join(root, 'real', 'cat'), path.join(root, 'data', 'cat'));
  symlinkSync(path.join(root, 'data', 'dog'), path.join(root, 'data', 'dog', 'loop'));
  const data = await loadImageFolder({ root: path.join(root, 'data'), split: 'train' });
  assert.deepEqual(data.classes, ['cat', 'dog']);
  assert.deepEqual(paths(data), ['cat/1.png', 'dog/2.png']);
});

test('a missing root, or a file as root, says so', async () => {
  const missing = path.join(dir, 'no-such-dir');
  await rejectsDatasetError(loadImageFolder({ root: missing, split: 'train' }),
    new RegExp(`cannot read ImageFolder root ${missing}: it does not exist`), /root\/<class>\/<image>\.jpg/);
  const file = path.join(tree('file-root', { 'x.png': png(2, 2) }), 'x.png');
  await rejectsDatasetError(loadImageFolder({ root: file, split: 'train' }), /it is a file, not a directory/);
});

test('no class folders: images lying directly in root are pointed out', async () => {
  const root = tree('loose', { '1.png': png(2, 2), '2.jpg': jpg(8, 8), 'notes.txt': 'x' });
  await rejectsDatasetError(loadImageFolder({ root, split: 'train' }),
    new RegExp(`no class folders in ${root} \\(it holds 2 images directly; ImageFolder takes each image's class from its folder\\)`));
});

test('a class folder with no images is named, with what it holds instead', async () => {
  const root = tree('empty-class', { 'train/cat/1.png': png(2, 2), 'train/dog/1.webp': 'w', 'train/dog/2.webp': 'w', 'train/eel/.keep': '', 'val/cat/2.png': png(2, 2) });
  const error = await rejectsDatasetError(loadImageFolder({ root, split: 'train' }),
    /class folders with no images: .*train\/dog \(it holds only 2 \.webp files\); .*train\/eel \(it holds no visible files\)/,
    /reads \.jpg, \.jpeg, \.png files \(any case\)/);
  assert.equal(error.file, path.join(root, 'train', 'dog'));
});

test('mislabelled: a val class that train does not have', async () => {
  const root = tree('unknown-class', { 'train/cat/1.png': png(2, 2), 'val/cat/2.png': png(2, 2), 'val/cta/3.png': png(2, 2) });
  await rejectsDatasetError(loadImageFolder({ root, split: 'test' }),
    /mislabelled: .*val has class folder cta that .*train does not have, so it has no label/);
});

test('a split layout without the split asked for', async () => {
  const onlyTrain = tree('only-train', { 'train/cat/1.png': png(2, 2) });
  await rejectsDatasetError(loadImageFolder({ root: onlyTrain, split: 'test' }), /has train\/ but neither val\/ nor test\//);
  const onlyVal = tree('only-val', { 'val/cat/1.png': png(2, 2) });
  await rejectsDatasetError(loadImageFolder({ root: onlyVal, split: 'train' }), /has val\/ but no train\/ directory/);
  const val = await loadImageFolder({ root: onlyVal, split: 'test' });  // evaluation alone is fine
  assert.deepEqual(val.classes, ['cat']);
});

test('an unreadable class folder is a DatasetError', async (t) => {
  if (process.getuid?.() === 0) { t.skip('root ignores directory permissions'); return; }
  const root = tree('unreadable', { 'cat/1.png': png(2, 2) });
  const { chmodSync } = await import('node:fs');
  chmodSync(path.join(root, 'cat'), 0o000);
  try {
    await rejectsDatasetError(loadImageFolder({ root, split: 'train' }), /cannot read class directory .*cat: permission denied/);
  } finally {
    chmodSync(path.join(root, 'cat'), 0o755);
  }
});

test('bad options are TypeErrors', async () => {
  await assert.rejects(loadImageFolder({ split: 'train' } as never), /options\.root is required/);
  await assert.rejects(loadImageFolder({ root: split, split: 'val' as 'test' }), /split "val"/);
  await assert.rejects(loadImageFolder({ root: split, split: 'train', channels: 4 as 3 }), /channels must be 1 or 3, got 4/);
});

test('checkImageFiles decodes a spread sample and reports sizes', async () => {
  const train = await loadImageFolder({ root: split, split: 'train' });
  const all = await checkImageFiles(train, { limit: Infinity, decoder: 'js' });
  assert.deepEqual(all, { checked: 9, minHeight: 2, maxHeight: 9, minWidth: 2, maxWidth: 16 });
  // 3 of 9, spread: images 0, 3 and 6 (Zebra/z.png 6x6, cat/a.jpg 8x6, cat/sub-2/e.png 3x3)
  assert.deepEqual(await checkImageFiles(train, { limit: 3 }), { checked: 3, minHeight: 3, maxHeight: 6, minWidth: 3, maxWidth: 8 });
  const memory: ImageDataset = { ...train, store: { kind: 'memory', pixels: new Uint8Array(0), height: 1, width: 1, channels: 1 } };
  assert.equal((await checkImageFiles(memory)).checked, 0);
});

test('checkImageFiles lists every corrupt file it finds', async () => {
  const good = jpg(8, 8);
  const root = tree('corrupt', {
    'a/ok.jpg': good, 'a/text.jpg': 'this is a text file named .jpg\n', 'b/cut.jpg': good.subarray(0, good.length >> 1),
    'b/ok.png': png(3, 3),
  });
  const data = await loadImageFolder({ root, split: 'train' });
  assert.equal(data.count, 4);  // listing does not decode
  for (const decoder of ['js', undefined] as const) {
    const error = await rejectsDatasetError(checkImageFiles(data, { decoder }),
      new RegExp(`2 of 4 images checked in ${root} failed to decode`),
      /a\/text\.jpg: not a JPEG or PNG image: it looks like text/, /b\/cut\.jpg: corrupt or truncated JPEG/);
    assert.equal(error.file, path.join(root, 'a', 'text.jpg'));
  }
});
