/**
 * Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, Zalando Research) and MNIST loaders.
 *
 * Both ship as four IDX files with the same names: {train,t10k}-{images-idx3,labels-idx1}-ubyte,
 * gzipped or not. Fashion-MNIST is found, in order, at `options.root`, at the directory in env
 * VICINITY_FASHION_MNIST, or at /usr/share/datasets/fashion-mnist (Debian's
 * `dataset-fashion-mnist` package). When none holds it, `source: 'auto'` falls back to the
 * class-balanced subset bundled in data/fashion-mnist-subset (1,000 train / 200 test images per
 * class; see its README), so examples and tests run on a fresh checkout.
 *
 * Every file pair is checked before it is returned: 28x28 images, as many labels as images, and
 * labels below 10. A failure is a DatasetError naming the file and the fix.
 */
import { access } from 'node:fs/promises';
import path from 'node:path';
import { DatasetError } from './errors.js';
import { readIdx } from './idx.js';
import { packageRoot } from '../package-root.js';

/** A split of a single-label image classification dataset, as raw uint8 pixels. */
export interface ImageClassificationSplit {
  /** Pixels, `count × height × width × channels`, row-major, 0 (background) to 255. */
  images: Uint8Array;
  /** One class index per image, each `< classes.length`. */
  labels: Uint8Array;
  count: number;
  height: number;
  width: number;
  channels: 1;
  /** Class names, indexed by label. */
  classes: string[];
}

/** Where a loaded split came from: the full dataset or the bundled subset, and its directory. */
export interface LoadedSplit extends ImageClassificationSplit {
  source: 'full' | 'subset';
  /** The directory the IDX files were read from. */
  root: string;
}

export type Split = 'train' | 'test';

export interface FashionMnistOptions {
  /** Directory of the full dataset; default env VICINITY_FASHION_MNIST, then DEFAULT_FASHION_MNIST_ROOT. */
  root?: string;
  split: Split;
  /**
   * 'full' requires the full dataset, 'subset' uses the bundled subset, and 'auto' (default)
   * uses the full dataset when its files for this split exist, else the subset.
   */
  source?: 'auto' | 'full' | 'subset';
}

export interface MnistOptions {
  /** Directory holding the MNIST IDX files (there is no default location or bundled copy). */
  root: string;
  split: Split;
}

/** Fashion-MNIST class names in label order (zalandoresearch/fashion-mnist README, "Labels"). */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
  'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
]);

/** MNIST class names: the digits. */
export const MNIST_CLASSES: readonly string[] = Object.freeze(
  Array.from({ length: 10 }, (_, i) => String(i)));

/** Where Debian's `dataset-fashion-mnist` package installs the full dataset. */
export const DEFAULT_FASHION_MNIST_ROOT = '/usr/share/datasets/fashion-mnist';

/** The bundled class-balanced subset, made by scripts/make-fashion-subset.mjs. */
export const FASHION_MNIST_SUBSET_ROOT = path.join(packageRoot, 'data', 'fashion-mnist-subset');

const SIDE = 28;
const FILE_PREFIX: Record<Split, string> = { train: 'train', test: 't10k' };
const GET_FULL =
  'install Debian\'s dataset-fashion-mnist package, set VICINITY_FASHION_MNIST to a directory ' +
  'holding the four IDX files, or pass { source: \'subset\' } to use the bundled subset';

function checkSplit(caller: string, split: unknown): Split {
  if (split !== 'train' && split !== 'test') {
    throw new TypeError(`${caller}: split ${JSON.stringify(split)} is not 'train' or 'test'`);
  }
  return split;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** The split's image and label files in `root`, preferring `.gz`; undefined when either is missing. */
async function findFiles(root: string, split: Split): Promise<{ images: string; labels: string } | undefined> {
  const found: string[] = [];
  for (const kind of ['images-idx3', 'labels-idx1']) {
    const base = path.join(root, `${FILE_PREFIX[split]}-${kind}-ubyte`);
    if (await exists(`${base}.gz`)) found.push(`${base}.gz`);
    else if (await exists(base)) found.push(base);
    else return undefined;
  }
  return { images: found[0]!, labels: found[1]! };
}

/**
 * Reads an image/label IDX pair and checks they describe the same 28x28 10-class split.
 *
 * @throws DatasetError when a file is malformed, the images are not [n, 28, 28], the labels
 *   are not [n], the counts differ, or a label is 10 or more
 */
export async function readImageLabelPair(
  imagesFile: string, labelsFile: string, classes: readonly string[],
): Promise<ImageClassificationSplit> {
  const [images, labels] = await Promise.all([readIdx(imagesFile), readIdx(labelsFile)]);
  const [count, height, width] = images.shape;
  if (images.shape.length !== 3 || height !== SIDE || width !== SIDE) {
    throw new DatasetError(imagesFile,
      `${imagesFile}: expected images of shape [n, ${SIDE}, ${SIDE}] (magic 0x00000803) but the ` +
      `header says [${images.shape.join(', ')}]; is this the labels file, or another dataset?`);
  }
  if (labels.shape.length !== 1) {
    throw new DatasetError(labelsFile,
      `${labelsFile}: expected labels of shape [n] (magic 0x00000801) but the header says ` +
      `[${labels.shape.join(', ')}]; is this the images file?`);
  }
  if (labels.shape[0] !== count) {
    throw new DatasetError(labelsFile,
      `mislabelled: ${imagesFile} has ${count} images but ${labelsFile} has ` +
      `${labels.shape[0]} labels; the two files come from different splits or releases, ` +
      `take both from the same one`);
  }
  const bad = labels.data.findIndex((label) => label >= classes.length);
  if (bad >= 0) {
    throw new DatasetError(labelsFile,
      `mislabelled: ${labelsFile} gives image ${bad} the label ${labels.data[bad]}, but there ` +
      `are only ${classes.length} classes (0-${classes.length - 1}); the labels file is ` +
      `corrupt or belongs to another dataset`);
  }
  return {
    images: images.data, labels: labels.data, count: count!, height: SIDE, width: SIDE,
    channels: 1, classes: [...classes],
  };
}

/**
 * Loads a Fashion-MNIST split: the full dataset when available, else the bundled subset.
 *
 * @param options defaults to `{ split: 'train' }`
 * @returns the split, with `source` ('full' or 'subset') and the `root` it was read from
 * @throws DatasetError when `source: 'full'` and the files are missing, or any file read is
 *   malformed; TypeError on an unknown split or source
 *
 * @example
 * const test = await loadFashionMnist({ split: 'test' });
 * console.log(test.count, test.source);  // 10000 'full', or 2000 'subset'
 */
export async function loadFashionMnist(options: FashionMnistOptions = { split: 'train' }): Promise<LoadedSplit> {
  const split = checkSplit('loadFashionMnist', options.split);
  const source = options.source ?? 'auto';
  if (source !== 'auto' && source !== 'full' && source !== 'subset') {
    throw new TypeError(
      `loadFashionMnist: source ${JSON.stringify(source)} is not 'auto', 'full' or 'subset'`);
  }
  if (source !== 'subset') {
    const root = options.root ?? process.env['VICINITY_FASHION_MNIST'] ?? DEFAULT_FASHION_MNIST_ROOT;
    const files = await findFiles(root, split);
    if (files !== undefined) {
      const data = await readImageLabelPair(files.images, files.labels, FASHION_MNIST_CLASSES);
      return { ...data, source: 'full', root };
    }
    if (source === 'full') {
      const prefix = FILE_PREFIX[split];
      throw new DatasetError(root,
        `loadFashionMnist: the full dataset is not in ${root} (looked for ` +
        `${prefix}-images-idx3-ubyte[.gz] and ${prefix}-labels-idx1-ubyte[.gz]); ${GET_FULL}`);
    }
  }
  const root = FASHION_MNIST_SUBSET_ROOT;
  const files = await findFiles(root, split);
  if (files === undefined) {
    throw new DatasetError(root,
      `loadFashionMnist: the bundled subset is missing from ${root}; reinstall vicinity or ` +
      `regenerate it with \`node scripts/make-fashion-subset.mjs\``);
  }
  const data = await readImageLabelPair(files.images, files.labels, FASHION_MNIST_CLASSES);
  return { ...data, source: 'subset', root };
}

/**
 * Loads an MNIST split from `root`, which holds the four IDX files under their usual names.
 *
 * @throws DatasetError when the files are missing or malformed; TypeError on an unknown split
 */
export async function loadMnist(options: MnistOptions): Promise<LoadedSplit> {
  const split = checkSplit('loadMnist', options?.split);
  const root = options.root;
  if (typeof root !== 'string' || root === '') {
    throw new TypeError('loadMnist: options.root is required: the directory holding the MNIST IDX files');
  }
  const files = await findFiles(root, split);
  if (files === undefined) {
    const prefix = FILE_PREFIX[split];
    throw new DatasetError(root,
      `loadMnist: MNIST is not in ${root} (looked for ${prefix}-images-idx3-ubyte[.gz] and ` +
      `${prefix}-labels-idx1-ubyte[.gz]); download the four files from ` +
      `http://yann.lecun.com/exdb/mnist/ into that directory`);
  }
  const data = await readImageLabelPair(files.images, files.labels, MNIST_CLASSES);
  return { ...data, source: 'full', root };
}
