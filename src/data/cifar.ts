/**
 * CIFAR-10 and CIFAR-100 (Krizhevsky 2009), "binary version" batches
 * (https://www.cs.toronto.edu/~kriz/cifar.html, section "Binary version").
 *
 * CIFAR-10, cifar-10-binary.tar.gz → cifar-10-batches-bin/
 *   data_batch_1.bin … data_batch_5.bin (train, 10,000 records each), test_batch.bin (10,000),
 *   batches.meta.txt (the 10 class names, one a line);
 *   record = 1 label byte (0-9) + 3072 pixel bytes.
 * CIFAR-100, cifar-100-binary.tar.gz → cifar-100-binary/
 *   train.bin (50,000 records), test.bin (10,000), coarse_label_names.txt (20 names),
 *   fine_label_names.txt (100 names);
 *   record = coarse label byte (0-19) + fine label byte (0-99) + 3072 pixel bytes.
 * The 3072 pixel bytes are channel-planar: 1024 red, then 1024 green, then 1024 blue, each a
 * 32×32 image in row-major order. They are transposed here to HWC (32×32×3), the layout of every
 * in-memory ImageStore, into one SharedArrayBuffer so worker threads share them uncopied.
 *
 * `root` may be the extracted directory itself or its parent (the directory the tarball was
 * extracted in). Every file is checked before any pixel is used: a size that is not a whole
 * number of records (truncated download), a label out of range (with the record index), or a
 * class-name file with the wrong number of names is a DatasetError naming the file and the fix.
 *
 * Deviations: 1. A batch may hold any positive number of records (the releases have 10,000 or
 * 50,000), so cut-down copies for smoke runs and tests load too. 2. CIFAR-100 records are checked
 * for both labels even when only one is used: an out-of-range byte in either means corruption.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ImageDataset } from './dataset.js';
import { DatasetError } from './errors.js';

export type CifarVariant = 'cifar10' | 'cifar100';

/** Options of {@link loadCifar10}. */
export interface Cifar10Options {
  /** `cifar-10-batches-bin/` or the directory that holds it. */
  root: string;
  split: 'train' | 'test';
}

/** Options of {@link loadCifar100}. */
export interface Cifar100Options {
  /** `cifar-100-binary/` or the directory that holds it. */
  root: string;
  split: 'train' | 'test';
  /** 'fine' (default): the 100 classes; 'coarse': the 20 superclasses. */
  labels?: 'fine' | 'coarse';
}

/** Side of a CIFAR image. */
export const CIFAR_SIDE = 32;
/** Pixel bytes per record: 3 planes of 32×32. */
export const CIFAR_PIXELS = 3 * CIFAR_SIDE * CIFAR_SIDE;

interface VariantSpec {
  title: string;
  directory: string;
  tarball: string;
  files: Record<'train' | 'test', string[]>;
  labelBytes: number;
}

const SPECS: Record<CifarVariant, VariantSpec> = {
  cifar10: {
    title: 'CIFAR-10', directory: 'cifar-10-batches-bin', tarball: 'cifar-10-binary.tar.gz',
    files: { train: [1, 2, 3, 4, 5].map((i) => `data_batch_${i}.bin`), test: ['test_batch.bin'] },
    labelBytes: 1,
  },
  cifar100: {
    title: 'CIFAR-100', directory: 'cifar-100-binary', tarball: 'cifar-100-binary.tar.gz',
    files: { train: ['train.bin'], test: ['test.bin'] },
    labelBytes: 2,
  },
};

/** One label kind of a variant: its names file, class count and byte within the record. */
interface LabelKind { namesFile: string; classCount: number; labelByte: number; what: string }

const LABEL_KINDS: Record<'cifar10' | 'fine' | 'coarse', LabelKind> = {
  cifar10: { namesFile: 'batches.meta.txt', classCount: 10, labelByte: 0, what: 'label' },
  fine: { namesFile: 'fine_label_names.txt', classCount: 100, labelByte: 1, what: 'fine label' },
  coarse: { namesFile: 'coarse_label_names.txt', classCount: 20, labelByte: 0, what: 'coarse label' },
};

/** Bytes per record of a variant: its label bytes and the 3072 pixel bytes. */
export function cifarRecordSize(variant: CifarVariant): number {
  return SPECS[variant].labelBytes + CIFAR_PIXELS;
}

async function isFile(file: string): Promise<boolean> {
  try {
    return (await stat(file)).isFile();
  } catch {
    return false;
  }
}

/** The extracted directory: `root` when it holds the split's first batch, else `root/<directory>`. */
async function findDirectory(root: string, variant: CifarVariant, needed: string[]): Promise<string> {
  const spec = SPECS[variant];
  const candidates = [root, path.join(root, spec.directory)];
  for (const dir of candidates) {
    if (await isFile(path.join(dir, needed[0]!))) return dir;
  }
  const python = variant === 'cifar10' ? 'cifar-10-batches-py' : 'cifar-100-python';
  const hint = (await isFile(path.join(root, python, variant === 'cifar10' ? 'batches.meta' : 'meta')))
    ? ` (${root} holds ${python}/, the Python pickle version, which vicinity does not read)` : '';
  throw new DatasetError(root,
    `${spec.title} not found: looked for ${needed.join(', ')} in ${candidates.join(' and ')}` +
    `${hint}; download the binary version, ${spec.tarball}, from ` +
    `https://www.cs.toronto.edu/~kriz/cifar.html and extract it there ` +
    `(\`tar xzf ${spec.tarball} -C ${root}\`)`);
}

/** Checks that every needed file exists; the error lists all missing ones at once. */
async function requireFiles(dir: string, variant: CifarVariant, needed: string[]): Promise<void> {
  const missing: string[] = [];
  for (const name of needed) if (!(await isFile(path.join(dir, name)))) missing.push(name);
  if (missing.length > 0) {
    const spec = SPECS[variant];
    throw new DatasetError(path.join(dir, missing[0]!),
      `${dir} is an incomplete ${spec.title} directory: ${missing.join(', ')} missing ` +
      `(it needs ${needed.join(', ')}); extract ${spec.tarball} from ` +
      `https://www.cs.toronto.edu/~kriz/cifar.html again`);
  }
}

/** Reads a class-names file: one name a line, blank lines ignored, `expected` names exactly. */
export async function readCifarClassNames(file: string, expected: number): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (cause) {
    throw new DatasetError(file, `${file}: cannot read class names: ${(cause as Error).message}`, { cause });
  }
  const names = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line !== '');
  if (names.length !== expected) {
    throw new DatasetError(file,
      `${file}: expected ${expected} class names, one a line, but found ${names.length}` +
      `${names.length > 0 ? ` (${names.slice(0, 3).join(', ')}${names.length > 3 ? ', …' : ''})` : ''}; ` +
      `the file is damaged or from another dataset, extract it again from the same tarball as the batches`);
  }
  return names;
}

/** Checks a batch's size: a positive whole number of records; returns the record count. */
function recordCount(file: string, size: number, variant: CifarVariant): number {
  const record = cifarRecordSize(variant);
  if (size > 0 && size % record === 0) return size / record;
  const other: CifarVariant = variant === 'cifar10' ? 'cifar100' : 'cifar10';
  const hint = size > 0 && size % cifarRecordSize(other) === 0
    ? `; its size is a whole number of ${SPECS[other].title} records, so it may be a ${SPECS[other].title} file` : '';
  const spec = SPECS[variant];
  throw new DatasetError(file, size === 0
    ? `${file}: empty ${spec.title} batch (0 bytes); download and extract ${spec.tarball} again`
    : `${file}: truncated: ${size} bytes is not a whole number of ${record}-byte ${spec.title} ` +
      `records (${spec.labelBytes} label byte${spec.labelBytes > 1 ? 's' : ''} + ${CIFAR_PIXELS} ` +
      `pixel bytes): ${Math.floor(size / record)} records and ${size % record} bytes left over` +
      `${hint}; download and extract ${spec.tarball} again`);
}

/**
 * Checks the labels of one batch and copies its records into `labels` and `pixels` (HWC) from
 * record `first` on.
 */
function copyBatch(
  bytes: Uint8Array, file: string, variant: CifarVariant, kind: LabelKind,
  target: { labels: Int32Array; pixels: Uint8Array; first: number },
): void {
  const spec = SPECS[variant];
  const record = cifarRecordSize(variant);
  const checks = variant === 'cifar10' ? [LABEL_KINDS.cifar10] : [LABEL_KINDS.coarse, LABEL_KINDS.fine];
  const count = bytes.length / record;
  const plane = CIFAR_SIDE * CIFAR_SIDE;
  for (let r = 0; r < count; r++) {
    const at = r * record;
    for (const check of checks) {
      const label = bytes[at + check.labelByte]!;
      if (label >= check.classCount) {
        throw new DatasetError(file,
          `mislabelled: ${file}, record ${r} (byte offset ${at}) has ${check.what} ${label}, but ` +
          `${spec.title} has only ${check.classCount} (0-${check.classCount - 1}); the batch is ` +
          `corrupt or from another dataset, download and extract ${spec.tarball} again`);
      }
    }
    target.labels[target.first + r] = bytes[at + kind.labelByte]!;
    const src = at + spec.labelBytes;
    const dst = (target.first + r) * CIFAR_PIXELS;
    for (let p = 0; p < plane; p++) {
      // planar R…G…B… (1024 each) → interleaved RGB per pixel
      target.pixels[dst + 3 * p] = bytes[src + p]!;
      target.pixels[dst + 3 * p + 1] = bytes[src + plane + p]!;
      target.pixels[dst + 3 * p + 2] = bytes[src + 2 * plane + p]!;
    }
  }
}

/** Reads a split of either variant with the given label kind. */
async function loadCifar(
  variant: CifarVariant, root: string, split: 'train' | 'test', kind: LabelKind,
): Promise<ImageDataset> {
  if (typeof root !== 'string' || root === '') {
    throw new TypeError(`load ${SPECS[variant].title}: options.root is required: ` +
      `${SPECS[variant].directory}/ or the directory that holds it`);
  }
  if (split !== 'train' && split !== 'test') {
    throw new TypeError(`load ${SPECS[variant].title}: split ${JSON.stringify(split)} is not 'train' or 'test'`);
  }
  const batches = SPECS[variant].files[split];
  const needed = [...batches, kind.namesFile];
  const dir = await findDirectory(root, variant, needed);
  await requireFiles(dir, variant, needed);
  const classes = await readCifarClassNames(path.join(dir, kind.namesFile), kind.classCount);
  // Sizes first, so that a truncated batch fails before anything large is read or allocated.
  const files = batches.map((name) => path.join(dir, name));
  const counts: number[] = [];
  for (const file of files) counts.push(recordCount(file, (await stat(file)).size, variant));
  const count = counts.reduce((a, b) => a + b, 0);
  const labels = new Int32Array(count);
  const pixels = new Uint8Array(new SharedArrayBuffer(count * CIFAR_PIXELS));
  let first = 0;
  for (const [i, file] of files.entries()) {
    const bytes = await readFile(file);
    if (bytes.length !== counts[i]! * cifarRecordSize(variant)) recordCount(file, bytes.length, variant);
    copyBatch(bytes, file, variant, kind, { labels, pixels, first });
    first += counts[i]!;
  }
  return {
    name: variant, split, root: dir, classes, labels, count,
    store: { kind: 'memory', pixels, height: CIFAR_SIDE, width: CIFAR_SIDE, channels: 3 },
  };
}

/**
 * Loads a CIFAR-10 split from the binary batches.
 *
 * @returns 50,000 (train) or 10,000 (test) 32×32×3 images in a SharedArrayBuffer, labels 0-9,
 *   classes from batches.meta.txt; `root` is the directory the batches were read from
 * @throws DatasetError when files are missing, a batch is truncated, a label is ≥ 10, or
 *   batches.meta.txt does not hold 10 names; TypeError on a missing root or unknown split
 *
 * @example
 * const train = await loadCifar10({ root: '/data', split: 'train' });  // reads /data/cifar-10-batches-bin
 */
export async function loadCifar10(options: Cifar10Options): Promise<ImageDataset> {
  return loadCifar('cifar10', options?.root, options?.split, LABEL_KINDS.cifar10);
}

/**
 * Loads a CIFAR-100 split from the binary batches, labelled by the 100 fine classes (default)
 * or the 20 coarse superclasses.
 *
 * @throws DatasetError when files are missing, a batch is truncated, a coarse label is ≥ 20 or
 *   a fine label ≥ 100, or the names file has the wrong count; TypeError on bad options
 *
 * @example
 * const test = await loadCifar100({ root: '/data', split: 'test', labels: 'coarse' });
 */
export async function loadCifar100(options: Cifar100Options): Promise<ImageDataset> {
  const labels = options?.labels ?? 'fine';
  if (labels !== 'fine' && labels !== 'coarse') {
    throw new TypeError(`loadCifar100: labels ${JSON.stringify(labels)} is not 'fine' or 'coarse'`);
  }
  return loadCifar('cifar100', options?.root, options?.split, LABEL_KINDS[labels]);
}
