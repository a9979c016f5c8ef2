/**
 * The one shape every image-classification dataset takes once loaded, whatever its file format:
 * labels in memory, images either in memory (IDX, CIFAR binary batches) or as files decoded on
 * demand (ImageFolder). It is plain data, so the loader's worker threads can rebuild it from a
 * structured clone (in-memory pixels live in a SharedArrayBuffer and are not copied per worker).
 */

/** Where a dataset's pixels are. */
export type ImageStore =
  /** `count × height × width × channels` uint8, row-major (HWC per image). */
  | { kind: 'memory'; pixels: Uint8Array; height: number; width: number; channels: 1 | 3 }
  /** One encoded JPEG/PNG file per image, decoded (to `channels`) when the loader needs it. */
  | { kind: 'files'; paths: string[]; channels: 1 | 3 };

/** A split of a single-label image classification dataset. */
export interface ImageDataset {
  /** Registry name: 'fashion-mnist', 'mnist', 'cifar10', 'cifar100', 'imagefolder'. */
  name: string;
  split: 'train' | 'test';
  /** Directory the files were read from. */
  root: string;
  /** Where 'fashion-mnist' came from: the full dataset or the bundled subset. */
  source?: 'full' | 'subset';
  /** Class names, indexed by label. */
  classes: string[];
  /** One label per image, each < classes.length. */
  labels: Int32Array;
  count: number;
  store: ImageStore;
}

/** One decoded image: `height × width × channels` uint8, row-major. */
export interface DecodedImage {
  data: Uint8Array;
  height: number;
  width: number;
  channels: 1 | 3;
}

/** Image i of an in-memory store, as a view (no copy). */
export function memoryImage(store: Extract<ImageStore, { kind: 'memory' }>, index: number): DecodedImage {
  const size = store.height * store.width * store.channels;
  return {
    data: store.pixels.subarray(index * size, (index + 1) * size),
    height: store.height, width: store.width, channels: store.channels,
  };
}
