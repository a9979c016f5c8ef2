/**
 * One entry point from a dataset name to an {@link ImageDataset}, for the training CLI.
 *
 * Names and parsers:
 *   fashion-mnist  fashion-mnist.ts (IDX; full dataset or the bundled subset)
 *   mnist          fashion-mnist.ts (IDX)
 *   cifar10        cifar.ts (binary batches)
 *   cifar100       cifar.ts (binary batches; fine labels unless `cifar100Labels: 'coarse'`)
 *   imagefolder    image-folder.ts (class folders of JPEG/PNG, decoded later by the loader)
 *
 * The root is `spec.root`, else the dataset's env variable ({@link DATASET_ROOT_ENV});
 * Fashion-MNIST also has a default location and the bundled subset. In-memory datasets come back
 * in a SharedArrayBuffer so loader workers share them, converted to `spec.channels` when asked
 * (gray replicated to RGB, RGB to gray by PIL's luma, as image-decode.ts does for files).
 */
import type { ImageDataset } from './dataset.js';
import { DatasetError } from './errors.js';
import { loadCifar10, loadCifar100 } from './cifar.js';
import { loadFashionMnist, loadMnist, type LoadedSplit } from './fashion-mnist.js';
import { convertChannels } from './image-decode.js';
import { loadImageFolder } from './image-folder.js';

/** Every dataset name {@link loadDataset} knows. */
export const DATASET_NAMES = Object.freeze(['fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'imagefolder'] as const);
export type DatasetName = (typeof DATASET_NAMES)[number];

/** What to load. */
export interface DatasetSpec {
  /** One of {@link DATASET_NAMES}; any other string is a TypeError listing them (CLI input is a string). */
  name: DatasetName | (string & {});
  /** Dataset directory; default the env variable in {@link DATASET_ROOT_ENV}. */
  root?: string;
  split: 'train' | 'test';
  /** Fashion-MNIST only: 'auto' (default; full if found, else the bundled subset), 'full', 'subset'. */
  source?: 'auto' | 'full' | 'subset';
  /** Channels of the returned images; default the dataset's own (1 for the MNISTs, else 3). */
  channels?: 1 | 3;
  /** CIFAR-100 only: label by the 100 'fine' classes (default) or the 20 'coarse' superclasses. */
  cifar100Labels?: 'fine' | 'coarse';
}

/** Per-channel statistics of pixel values scaled to [0, 1]. */
export interface ChannelStats {
  /** One value per channel. */
  mean: number[];
  std: number[];
  /** How many channels the statistics are for (the length of `mean` and `std`). */
  channels: 1 | 3;
}

/** The env variable holding each dataset's root when `spec.root` is not given. */
export const DATASET_ROOT_ENV: Readonly<Record<DatasetName, string>> = Object.freeze({
  'fashion-mnist': 'VICINITY_FASHION_MNIST',
  mnist: 'VICINITY_MNIST',
  cifar10: 'VICINITY_CIFAR10',
  cifar100: 'VICINITY_CIFAR100',
  imagefolder: 'VICINITY_IMAGEFOLDER',
});

/** What each root must hold, for the missing-root error (Fashion-MNIST never needs one). */
const ROOT_HELP: Record<Exclude<DatasetName, 'fashion-mnist'>, string> = {
  mnist: 'a directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte, ' +
    't10k-images-idx3-ubyte and t10k-labels-idx1-ubyte (.gz or not), from http://yann.lecun.com/exdb/mnist/',
  cifar10: 'cifar-10-batches-bin/ (data_batch_1.bin … data_batch_5.bin, test_batch.bin, ' +
    'batches.meta.txt) or the directory holding it, from https://www.cs.toronto.edu/~kriz/cifar.html',
  cifar100: 'cifar-100-binary/ (train.bin, test.bin, fine_label_names.txt, ' +
    'coarse_label_names.txt) or the directory holding it, from https://www.cs.toronto.edu/~kriz/cifar.html',
  imagefolder: 'root/<class>/<image>.jpg|png, or root/train/<class>/… and root/val/<class>/…',
};

const GRAY_FROM_RGB = [0.299, 0.587, 0.114];  // ITU-R 601-2 luma, PIL's convert('L')

/**
 * Per-channel mean and std for normalisation, for the dataset's own channels: published values
 * (Fashion-MNIST and MNIST train sets; CIFAR-10/100 train sets; ImageNet's for imagefolder, the
 * usual choice for natural photos).
 */
const STATS: Record<DatasetName, Omit<ChannelStats, 'channels'>> = {
  'fashion-mnist': { mean: [0.2860], std: [0.3530] },
  mnist: { mean: [0.1307], std: [0.3081] },
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.2470, 0.2435, 0.2616] },
  cifar100: { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] },
  imagefolder: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
};

/** True when `name` is one of {@link DATASET_NAMES}. */
export function isDatasetName(name: unknown): name is DatasetName {
  return typeof name === 'string' && (DATASET_NAMES as readonly string[]).includes(name);
}

function checkName(caller: string, name: unknown): DatasetName {
  if (!isDatasetName(name)) {
    throw new TypeError(`${caller}: unknown dataset ${JSON.stringify(name)}; the datasets are ` +
      `${DATASET_NAMES.join(', ')} (imagefolder reads any root/<class>/<image>.jpg tree)`);
  }
  return name;
}

/** Channels a dataset's files hold: 1 for Fashion-MNIST and MNIST, 3 for the others. */
export function nativeChannels(name: DatasetName): 1 | 3 {
  return name === 'fashion-mnist' || name === 'mnist' ? 1 : 3;
}

/**
 * Per-channel { mean, std } of a dataset's pixels in [0, 1], for `channels` (default its own).
 * Gray statistics used as RGB are repeated; RGB statistics used as gray are combined with the
 * luma weights — exact for the mean, an upper bound for the std (which would need the channels'
 * covariance).
 *
 * @throws TypeError on an unknown name or channels not 1 or 3
 *
 * @example
 * datasetStats('cifar10');  // { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616], channels: 3 }
 */
export function datasetStats(name: DatasetName | (string & {}), channels?: 1 | 3): ChannelStats {
  const dataset = checkName('datasetStats', name);
  const known = STATS[dataset];
  const want = channels ?? nativeChannels(dataset);
  if (want !== 1 && want !== 3) throw new TypeError(`datasetStats: channels must be 1 or 3, got ${JSON.stringify(channels)}`);
  if (known.mean.length === want) return { mean: [...known.mean], std: [...known.std], channels: want };
  if (want === 3) {
    return { mean: known.mean.concat(known.mean, known.mean), std: known.std.concat(known.std, known.std), channels: 3 };
  }
  const luma = (values: number[]) => values.reduce((sum, v, i) => sum + GRAY_FROM_RGB[i]! * v, 0);
  return { mean: [luma(known.mean)], std: [luma(known.std)], channels: 1 };
}

/** An IDX split as an ImageDataset: Int32 labels, pixels copied into shared memory. */
function fromIdxSplit(name: 'fashion-mnist' | 'mnist', split: 'train' | 'test', loaded: LoadedSplit, channels: 1 | 3): ImageDataset {
  const { count, height, width } = loaded;
  const pixels = new Uint8Array(new SharedArrayBuffer(count * height * width * channels));
  convertChannels(loaded.images, count * height * width, 1, channels, pixels);
  return {
    name, split, root: loaded.root, ...(name === 'fashion-mnist' ? { source: loaded.source } : {}),
    classes: [...loaded.classes], labels: Int32Array.from(loaded.labels), count,
    store: { kind: 'memory', pixels, height, width, channels },
  };
}

/** An in-memory dataset converted to `channels`, in new shared memory; itself when it has them. */
function withChannels(dataset: ImageDataset, channels: 1 | 3): ImageDataset {
  const store = dataset.store;
  if (store.kind !== 'memory' || store.channels === channels) return dataset;
  const pixelCount = dataset.count * store.height * store.width;
  const pixels = new Uint8Array(new SharedArrayBuffer(pixelCount * channels));
  convertChannels(store.pixels, pixelCount, store.channels, channels, pixels);
  return { ...dataset, store: { ...store, pixels, channels } };
}

/** spec.root, else the env variable; a DatasetError saying what the root must hold when neither is set. */
function requireRoot(name: Exclude<DatasetName, 'fashion-mnist'>, root: string | undefined): string {
  const env = DATASET_ROOT_ENV[name];
  const found = root ?? process.env[env];
  if (found !== undefined && found !== '') return found;
  throw new DatasetError(`<${name} root>`,
    `loadDataset: ${name} needs a root directory and none was given; the root is ` +
    `${ROOT_HELP[name]}; pass it as root (the CLI's data root) or set ${env}`);
}

/**
 * Loads one split of a named dataset.
 *
 * @returns the split as an {@link ImageDataset}: in memory (shared) for the IDX and CIFAR
 *   datasets, a file list for imagefolder
 * @throws TypeError on an unknown name, split, source or channels; DatasetError when the root
 *   is missing or its files are (see the parsers for each check)
 *
 * @example
 * const train = await loadDataset({ name: 'cifar10', root: '/data', split: 'train' });
 * const { mean, std } = datasetStats(train.name as DatasetName);
 */
export async function loadDataset(spec: DatasetSpec): Promise<ImageDataset> {
  const name = checkName('loadDataset', spec?.name);
  const { split, source = 'auto', cifar100Labels } = spec;
  if (split !== 'train' && split !== 'test') throw new TypeError(`loadDataset: split ${JSON.stringify(split)} is not 'train' or 'test'`);
  const channels = spec.channels ?? nativeChannels(name);
  if (channels !== 1 && channels !== 3) throw new TypeError(`loadDataset: channels must be 1 or 3, got ${JSON.stringify(spec.channels)}`);
  if (source !== 'auto' && name !== 'fashion-mnist') {
    if (source === 'subset') throw new TypeError(`loadDataset: source 'subset' is for fashion-mnist only; ${name} has no bundled subset`);
    if (source !== 'full') throw new TypeError(`loadDataset: source ${JSON.stringify(source)} is not 'auto', 'full' or 'subset'`);
  }
  if (cifar100Labels !== undefined && name !== 'cifar100') throw new TypeError(`loadDataset: cifar100Labels is for cifar100 only, not ${name}`);
  switch (name) {
    case 'fashion-mnist':
      return fromIdxSplit(name, split, await loadFashionMnist({ root: spec.root, split, source }), channels);
    case 'mnist':
      return fromIdxSplit(name, split, await loadMnist({ root: requireRoot(name, spec.root), split }), channels);
    case 'cifar10':
      return withChannels(await loadCifar10({ root: requireRoot(name, spec.root), split }), channels);
    case 'cifar100':
      return withChannels(await loadCifar100({ root: requireRoot(name, spec.root), split, labels: cifar100Labels }), channels);
    case 'imagefolder':
      return loadImageFolder({ root: requireRoot(name, spec.root), split, channels });
  }
}
