// Makes data/fashion-mnist-subset: a class-balanced, deterministic subset of Fashion-MNIST
// small enough to ship in the package, so examples and tests run without the full dataset.
//
//   node scripts/make-fashion-subset.mjs [sourceDir]
//
// sourceDir defaults to env VICINITY_FASHION_MNIST, then /usr/share/datasets/fashion-mnist
// (Debian's dataset-fashion-mnist). From each split it keeps the first PER_CLASS images of
// every class in file order, and writes them in their original file order (not grouped by
// class), so image 0 of the subset is image 0 of the full file. No randomness: the same input
// gives the same IDX bytes; the gzip bytes also depend on the zlib build, hence the printed
// SHA-256 of the uncompressed data.
//
// Plain JS with no dependencies on purpose: it must run before (or without) a TypeScript build.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';

const PER_CLASS = { train: 1000, t10k: 200 };
const CLASSES = 10;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = path.join(ROOT, 'data', 'fashion-mnist-subset');
const SOURCE_DIR = process.argv[2] ?? process.env.VICINITY_FASHION_MNIST ?? '/usr/share/datasets/fashion-mnist';

function fail(message) {
  console.error(`make-fashion-subset: ${message}`);
  process.exit(1);
}

// A minimal IDX reader (src/data/idx.ts is the checked one; this only needs uint8 files).
function readIdx(file) {
  let bytes;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    fail(`cannot read ${file} (${e.code ?? e.message}); install Debian's dataset-fashion-mnist ` +
      'or pass the directory holding the full dataset as the first argument');
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = gunzipSync(bytes);
  if (bytes.readUInt16BE(0) !== 0 || bytes[2] !== 0x08) fail(`${file}: not a uint8 IDX file`);
  const rank = bytes[3];
  const shape = Array.from({ length: rank }, (_, i) => bytes.readUInt32BE(4 + 4 * i));
  const offset = 4 + 4 * rank;
  const count = shape.reduce((a, b) => a * b, 1);
  if (bytes.length !== offset + count) fail(`${file}: header promises ${count} items, file holds ${bytes.length - offset}`);
  return { shape, data: bytes.subarray(offset) };
}

function encodeIdx(shape, data) {
  const header = Buffer.alloc(4 + 4 * shape.length);
  header[2] = 0x08;
  header[3] = shape.length;
  shape.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

/** Indices of the first `perClass` items of each class, in file order. */
function balancedIndices(labels, perClass) {
  const taken = new Array(CLASSES).fill(0);
  const keep = [];
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i];
    if (label >= CLASSES) fail(`label ${label} at index ${i} is not a class 0-9`);
    if (taken[label] < perClass) {
      taken[label]++;
      keep.push(i);
    }
  }
  const short = taken.findIndex((n) => n < perClass);
  if (short >= 0) fail(`class ${short} has only ${taken[short]} items, ${perClass} are needed`);
  return keep;
}

function write(name, shape, data) {
  const raw = encodeIdx(shape, data);
  const file = path.join(OUT_DIR, `${name}.gz`);
  const gz = gzipSync(raw, { level: 9 });
  writeFileSync(file, gz);
  const sha = createHash('sha256').update(raw).digest('hex');
  console.log(`${path.relative(ROOT, file)}: [${shape.join(', ')}], ${gz.length} bytes, ` +
    `uncompressed sha256 ${sha}`);
}

function makeSplit(prefix) {
  const images = readIdx(path.join(SOURCE_DIR, `${prefix}-images-idx3-ubyte.gz`));
  const labels = readIdx(path.join(SOURCE_DIR, `${prefix}-labels-idx1-ubyte.gz`));
  const [n, rows, cols] = images.shape;
  if (labels.shape[0] !== n) fail(`${prefix}: ${n} images but ${labels.shape[0]} labels`);
  const pixels = rows * cols;
  const keep = balancedIndices(labels.data, PER_CLASS[prefix]);
  const outImages = Buffer.alloc(keep.length * pixels);
  const outLabels = Buffer.alloc(keep.length);
  keep.forEach((src, dst) => {
    outImages.set(images.data.subarray(src * pixels, (src + 1) * pixels), dst * pixels);
    outLabels[dst] = labels.data[src];
  });
  write(`${prefix}-images-idx3-ubyte`, [keep.length, rows, cols], outImages);
  write(`${prefix}-labels-idx1-ubyte`, [keep.length], outLabels);
}

mkdirSync(OUT_DIR, { recursive: true });
console.log(`make-fashion-subset: from ${SOURCE_DIR} into ${path.relative(ROOT, OUT_DIR)}`);
makeSplit('train');
makeSplit('t10k');
