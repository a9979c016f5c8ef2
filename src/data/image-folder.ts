/**
 * ImageFolder: one directory per class holding that class's JPEG/PNG files — torchvision's
 * `datasets.ImageFolder` layout, also read by timm and used by ImageNet, Imagenette and most
 * Kaggle image sets:
 *
 *   root/train/<class>/<image>.jpg     root/val/<class>/<image>.jpg   (or root/test/…)
 *
 * Splits. When `root` has a `train`, `val` or `test` subdirectory it is a split layout: split
 * 'train' reads root/train, split 'test' reads root/val, else root/test. Otherwise `root` is a
 * flat layout whose class directories sit directly in it, and both splits read root itself, so
 * that a directory of one split (say imagenette2/val) can be pointed at directly; evaluating on
 * a flat layout then measures fit, not generalisation, and `dataset.root` being equal for both
 * splits tells a caller so ({@link resolveImageFolderSplit} gives the layout).
 *
 * As in torchvision: classes are the sorted subdirectory names (sorted by code point, Python's
 * `sorted`), labels their indices; each class's images are found recursively, symlinks
 * followed, directories in sorted path order and files sorted within each, extensions matched
 * case-insensitively. The test split is labelled with the train split's classes, so that label
 * i means the same class in both; a test class unknown to train is an error.
 *
 * Deviations from torchvision:
 *   1. Only .jpg, .jpeg and .png are read (what both decoders of image-decode.ts handle); other
 *      files are ignored, and named when a class ends up with no images.
 *   2. Hidden entries (a leading '.') are skipped, directories included: macOS AppleDouble
 *      files (`._img.jpg`) and `.ipynb_checkpoints` would otherwise be an image and a class.
 *   3. A symlink cycle is followed once instead of forever.
 *
 * Images are only listed here, not decoded: the loader decodes them on demand (in workers).
 * {@link checkImageFiles} decodes a spread sample up front to catch corrupt files early.
 */
import { readdir, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import type { ImageDataset } from './dataset.js';
import { DatasetError } from './errors.js';
import { decodeImageFile, type ImageDecoderName } from './image-decode.js';

/** Options of {@link loadImageFolder}. */
export interface ImageFolderOptions {
  /** The dataset directory: with train/ and val/ (or test/) subdirectories, or class directories. */
  root: string;
  split: 'train' | 'test';
  /** Channels the loader decodes to: 3 (RGB, default) or 1 (gray). */
  channels?: 1 | 3;
}

/** 'split': root/train and root/val|test; 'flat': class directories directly in root. */
export type ImageFolderLayout = 'split' | 'flat';

/** Where a split's class directories are. */
export interface ImageFolderSplit {
  layout: ImageFolderLayout;
  /** The directory holding the split's class directories. */
  directory: string;
  /** The directory whose classes define the labels: the train split's, when there is one. */
  classDirectory: string;
}

/** File name extensions read as images, lower case. */
export const IMAGE_EXTENSIONS: readonly string[] = Object.freeze(['.jpg', '.jpeg', '.png']);

const SPLIT_NAMES = ['train', 'val', 'test'];
const LAYOUT_HELP = 'expected root/<class>/<image>.jpg, or root/train/<class>/… with root/val/<class>/…';

/** True for a visible file name ending in .jpg/.jpeg/.png (any case). */
export function isImageFileName(name: string): boolean {
  return !name.startsWith('.') && IMAGE_EXTENSIONS.includes(path.extname(name).toLowerCase());
}

/** Sorts like Python's `sorted` on str (code point order), which UTF-16 `<` matches unless surrogates occur. */
function sortByCodePoint(names: string[]): string[] {
  if (!names.some((name) => /[\uD800-\uDFFF]/.test(name))) return names.sort();
  return names.sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
}

async function readDirectory(dir: string, what: string) {
  try {
    return await readdir(dir, { withFileTypes: true });
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'it does not exist'
      : code === 'ENOTDIR' ? 'it is a file, not a directory'
        : code === 'EACCES' ? 'permission denied' : (cause as Error).message;
    throw new DatasetError(dir, `cannot read ${what} ${dir}: ${reason}; ${LAYOUT_HELP}`, { cause });
  }
}

/** Whether a directory entry is (or links to) a directory. */
async function isDirectory(dir: string, entry: { name: string; isDirectory(): boolean; isSymbolicLink(): boolean }): Promise<boolean> {
  if (entry.isDirectory()) return true;
  if (!entry.isSymbolicLink()) return false;
  try {
    return (await stat(path.join(dir, entry.name))).isDirectory();
  } catch {
    return false;  // a dangling link is no class
  }
}

/** Visible subdirectory names of `dir`, sorted. */
async function subdirectories(dir: string, what: string): Promise<string[]> {
  const names: string[] = [];
  for (const entry of await readDirectory(dir, what)) {
    if (!entry.name.startsWith('.') && await isDirectory(dir, entry)) names.push(entry.name);
  }
  return sortByCodePoint(names);
}

/**
 * Tells the layout of `root` and which directory a split reads.
 *
 * @throws DatasetError when root cannot be read, or is a split layout without the split asked for
 */
export async function resolveImageFolderSplit(root: string, split: 'train' | 'test'): Promise<ImageFolderSplit> {
  const directories = await subdirectories(root, 'ImageFolder root');
  const present = SPLIT_NAMES.filter((name) => directories.includes(name));
  if (present.length === 0) return { layout: 'flat', directory: root, classDirectory: root };
  const train = present.includes('train') ? path.join(root, 'train') : undefined;
  if (split === 'train') {
    if (train === undefined) {
      throw new DatasetError(root,
        `${root} has ${present.map((p) => `${p}/`).join(' and ')} but no train/ directory; ` +
        `put the training images in ${path.join(root, 'train')}/<class>/`);
    }
    return { layout: 'split', directory: train, classDirectory: train };
  }
  const test = present.includes('val') ? 'val' : present.includes('test') ? 'test' : undefined;
  if (test === undefined) {
    throw new DatasetError(root,
      `${root} has train/ but neither val/ nor test/ for the test split; put the held-out ` +
      `images in ${path.join(root, 'val')}/<class>/`);
  }
  return { layout: 'split', directory: path.join(root, test), classDirectory: train ?? path.join(root, test) };
}

/** Image files under one class directory, in torchvision's order; also tallies ignored files. */
async function listImages(classDir: string, ignored: Map<string, number>): Promise<string[]> {
  const walked: { dir: string; files: string[] }[] = [];
  const visit = async (dir: string, ancestors: Set<string>): Promise<void> => {
    const real = await realpath(dir);
    if (ancestors.has(real)) return;  // symlink cycle
    const inner = new Set(ancestors).add(real);
    const files: string[] = [];
    const children: string[] = [];
    for (const entry of await readDirectory(dir, 'class directory')) {
      if (entry.name.startsWith('.')) continue;
      if (await isDirectory(dir, entry)) children.push(entry.name);
      else if (isImageFileName(entry.name)) files.push(entry.name);
      else {
        const kind = path.extname(entry.name).toLowerCase() || entry.name;
        ignored.set(kind, (ignored.get(kind) ?? 0) + 1);
      }
    }
    walked.push({ dir, files: sortByCodePoint(files) });
    for (const child of children) await visit(path.join(dir, child), inner);
  };
  await visit(classDir, new Set());
  // torchvision: sorted(os.walk(...)) orders directories by their full path string.
  const order = sortByCodePoint(walked.map((w) => w.dir));
  const byDir = new Map(walked.map((w) => [w.dir, w.files]));
  return order.flatMap((dir) => byDir.get(dir)!.map((file) => path.join(dir, file)));
}

function describeIgnored(ignored: Map<string, number>): string {
  if (ignored.size === 0) return 'it holds no visible files';
  const parts = [...ignored].slice(0, 4).map(([ext, n]) => `${n} ${ext} file${n > 1 ? 's' : ''}`);
  return `it holds only ${parts.join(', ')}${ignored.size > 4 ? ', …' : ''}`;
}

/** The class names of a split directory; a DatasetError when there are none. */
async function classNames(dir: string): Promise<string[]> {
  const classes = await subdirectories(dir, 'ImageFolder directory');
  if (classes.length > 0) return classes;
  const images = (await readDirectory(dir, 'ImageFolder directory')).filter((e) => isImageFileName(e.name)).length;
  throw new DatasetError(dir,
    `no class folders in ${dir}` +
    `${images > 0 ? ` (it holds ${images} images directly; ImageFolder takes each image's class from its folder)` : ''}; ` +
    `${LAYOUT_HELP}`);
}

/** Every image of the split's class folders, labelled by `classes`; a DatasetError naming empty folders. */
async function listSplit(directory: string, own: string[], classes: string[]): Promise<{ paths: string[]; labels: number[] }> {
  const paths: string[] = [];
  const labels: number[] = [];
  const empty: { folder: string; holds: string }[] = [];
  for (const name of own) {
    const ignored = new Map<string, number>();
    const images = await listImages(path.join(directory, name), ignored);
    if (images.length === 0) empty.push({ folder: path.join(directory, name), holds: describeIgnored(ignored) });
    const label = classes.indexOf(name);
    for (const image of images) { paths.push(image); labels.push(label); }
  }
  if (empty.length > 0) {
    throw new DatasetError(empty[0]!.folder,
      `class folder${empty.length > 1 ? 's' : ''} with no images: ` +
      `${empty.slice(0, 5).map((e) => `${e.folder} (${e.holds})`).join('; ')}` +
      `${empty.length > 5 ? `; and ${empty.length - 5} more` : ''}; vicinity reads ` +
      `${IMAGE_EXTENSIONS.join(', ')} files (any case), so add images or remove the folder`);
  }
  return { paths, labels };
}

/**
 * Lists an ImageFolder split: its classes, every image path and its label. Nothing is decoded.
 *
 * @returns a dataset with `store: { kind: 'files', paths, channels }`; `root` is the absolute
 *   directory the split was read from (root/train, root/val, root/test or root itself)
 * @throws DatasetError when a directory cannot be read, a split has no class folders, a class
 *   folder holds no images, or a test class is not a train class; TypeError on bad options
 *
 * @example
 * const val = await loadImageFolder({ root: '/data/imagenette2-160', split: 'test' });
 * console.log(val.classes.length, val.count);  // 10 3925
 */
export async function loadImageFolder(options: ImageFolderOptions): Promise<ImageDataset> {
  const { split, channels = 3 } = options ?? {};
  if (typeof options?.root !== 'string' || options.root === '') {
    throw new TypeError('loadImageFolder: options.root is required: the dataset directory');
  }
  if (split !== 'train' && split !== 'test') throw new TypeError(`loadImageFolder: split ${JSON.stringify(split)} is not 'train' or 'test'`);
  if (channels !== 1 && channels !== 3) throw new TypeError(`loadImageFolder: channels must be 1 or 3, got ${JSON.stringify(channels)}`);
  const root = path.resolve(options.root);
  const { directory, classDirectory } = await resolveImageFolderSplit(root, split);
  const own = await classNames(directory);
  const classes = classDirectory === directory ? own : await classNames(classDirectory);
  const unknown = own.filter((name) => !classes.includes(name));
  if (unknown.length > 0) {
    throw new DatasetError(path.join(directory, unknown[0]!),
      `mislabelled: ${directory} has class folder${unknown.length > 1 ? 's' : ''} ` +
      `${unknown.slice(0, 5).join(', ')}${unknown.length > 5 ? ', …' : ''} that ${classDirectory} ` +
      `does not have, so ${unknown.length > 1 ? 'they have' : 'it has'} no label; rename ` +
      `${unknown.length > 1 ? 'them' : 'it'} to the training class names or remove ${unknown.length > 1 ? 'them' : 'it'}`);
  }
  const { paths, labels } = await listSplit(directory, own, classes);
  return {
    name: 'imagefolder', split, root: directory, classes, labels: Int32Array.from(labels),
    count: paths.length, store: { kind: 'files', paths, channels },
  };
}

/** What {@link checkImageFiles} saw. */
export interface ImageCheckReport {
  /** Images decoded. */
  checked: number;
  /** Smallest and largest height and width among them. */
  minHeight: number; maxHeight: number; minWidth: number; maxWidth: number;
}

/** Options of {@link checkImageFiles}. */
export interface CheckImageFilesOptions {
  /** Decode at most this many images, spread evenly over the dataset (default 64; Infinity = all). */
  limit?: number;
  /** Decoder to use instead of the thread's active one. */
  decoder?: ImageDecoderName;
}

/**
 * Decodes a spread sample of a files-backed dataset, so that corrupt or mis-named files fail at
 * load time rather than mid-epoch in a worker. Every sampled file is tried before failing.
 *
 * @returns the sample's size range; `checked: 0` for an in-memory dataset (nothing to decode)
 * @throws DatasetError listing the files that failed (each message names the file and the fix)
 *
 * @example
 * const report = await checkImageFiles(train, { limit: 100 });  // e.g. { checked: 100, minHeight: 160, … }
 */
export async function checkImageFiles(dataset: ImageDataset, options: CheckImageFilesOptions = {}): Promise<ImageCheckReport> {
  const report: ImageCheckReport = { checked: 0, minHeight: 0, maxHeight: 0, minWidth: 0, maxWidth: 0 };
  if (dataset.store.kind !== 'files') return report;
  const { paths, channels } = dataset.store;
  const limit = Math.min(options.limit ?? 64, paths.length);
  const failures: DatasetError[] = [];
  for (let i = 0; i < limit; i++) {
    const file = paths[Math.floor((i * paths.length) / limit)]!;
    try {
      const image = await decodeImageFile(file, channels, { decoder: options.decoder });
      const first = report.checked++ === 0;
      report.minHeight = first ? image.height : Math.min(report.minHeight, image.height);
      report.maxHeight = Math.max(report.maxHeight, image.height);
      report.minWidth = first ? image.width : Math.min(report.minWidth, image.width);
      report.maxWidth = Math.max(report.maxWidth, image.width);
    } catch (error) {
      if (!(error instanceof DatasetError)) throw error;
      failures.push(error);
    }
  }
  if (failures.length > 0) {
    throw new DatasetError(failures[0]!.file,
      `${failures.length} of ${limit} images checked in ${dataset.root} failed to decode:\n` +
      failures.slice(0, 10).map((f) => `  ${f.message}`).join('\n') +
      (failures.length > 10 ? `\n  … and ${failures.length - 10} more` : ''), { cause: failures[0] });
  }
  return report;
}
