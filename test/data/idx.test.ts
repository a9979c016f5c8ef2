import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { gzipSync } from 'node:zlib';
import { DatasetError } from '../../src/data/errors.js';
import { FASHION_MNIST_SUBSET_ROOT } from '../../src/data/fashion-mnist.js';
import { encodeIdx, isGzip, parseIdx, readIdx } from '../../src/data/idx.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-idx-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A 3x2x2 uint8 images file whose pixels are 0..11. */
const SHAPE = [3, 2, 2];
const PIXELS = Uint8Array.from({ length: 12 }, (_, i) => i);
const IMAGES = encodeIdx(SHAPE, PIXELS);

/** Asserts `fn` throws a DatasetError about `file` whose message matches every pattern. */
function throwsDatasetError(fn: () => unknown, file: string, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DatasetError, `expected a DatasetError, got ${String(e)}`);
    assert.equal(e.name, 'DatasetError');
    assert.equal(e.file, file);
    assert.ok(e.message.includes(file), `message does not name ${file}: ${e.message}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

test('encodeIdx writes the magic 0x00000803, big-endian dims, then the pixels', () => {
  assert.deepEqual([...IMAGES.subarray(0, 8)], [0, 0, 8, 3, 0, 0, 0, 3]);
  assert.equal(IMAGES.length, 4 + 3 * 4 + 12);
  assert.deepEqual([...encodeIdx([2], Uint8Array.of(7, 9))], [0, 0, 8, 1, 0, 0, 0, 2, 7, 9]);
});

test('encodeIdx rejects data that does not fill the shape', () => {
  assert.throws(() => encodeIdx([2, 2], new Uint8Array(3)), /holds 4 items but data has 3/);
  assert.throws(() => encodeIdx([], new Uint8Array(0)), /1 to 255/);
});

test('parseIdx reads raw and gzipped bytes alike', () => {
  for (const bytes of [IMAGES, gzipSync(IMAGES)]) {
    const { shape, data } = parseIdx(bytes, 'mem');
    assert.deepEqual(shape, SHAPE);
    assert.deepEqual([...data], [...PIXELS]);
  }
  assert.equal(isGzip(gzipSync(IMAGES)), true);
  assert.equal(isGzip(IMAGES), false);
});

test('parseIdx of raw bytes copies, so the result does not alias the input', () => {
  const input = IMAGES.slice();
  const { data } = parseIdx(input, 'mem');
  data[0] = 200;
  assert.equal(input[16], 0);
});

test('parseIdx accepts an empty labels file', () => {
  assert.deepEqual(parseIdx(encodeIdx([0], new Uint8Array(0)), 'mem').shape, [0]);
});

test('readIdx reads the bundled subset: 2000 test images and labels', async () => {
  const images = await readIdx(path.join(FASHION_MNIST_SUBSET_ROOT, 't10k-images-idx3-ubyte.gz'));
  const labels = await readIdx(path.join(FASHION_MNIST_SUBSET_ROOT, 't10k-labels-idx1-ubyte.gz'));
  assert.deepEqual(images.shape, [2000, 28, 28]);
  assert.equal(images.data.length, 2000 * 28 * 28);
  assert.deepEqual(labels.shape, [2000]);
  assert.equal(labels.data[0], 9);  // the first t10k item is an ankle boot
});

test('readIdx reads gzipped and raw files from disk', async () => {
  const raw = path.join(dir, 'raw-idx3-ubyte');
  const gz = path.join(dir, 'gz-idx3-ubyte.gz');
  writeFileSync(raw, IMAGES);
  writeFileSync(gz, gzipSync(IMAGES, { level: 9 }));
  for (const file of [raw, gz]) {
    const { shape, data } = await readIdx(file);
    assert.deepEqual(shape, SHAPE);
    assert.deepEqual([...data], [...PIXELS]);
  }
});

test('readIdx of a missing file is a DatasetError naming it', async () => {
  const file = path.join(dir, 'absent-idx1-ubyte.gz');
  await assert.rejects(readIdx(file), (e: unknown) =>
    e instanceof DatasetError && e.file === file && /cannot read IDX file: no such file/.test(e.message));
});

test('bad magic is a DatasetError quoting the magic number', () => {
  const bytes = IMAGES.slice();
  bytes.set([0x12, 0x34], 0);
  throwsDatasetError(() => parseIdx(bytes, 'bad.idx'), 'bad.idx', /bad magic number 0x12340803/, /not an IDX file/);
  const text = new TextEncoder().encode('<html>404 Not Found</html>');
  throwsDatasetError(() => parseIdx(text, 'page.gz'), 'page.gz', /bad magic number 0x3c68746d/);
});

test('element types other than uint8 are rejected by name', () => {
  const float = IMAGES.slice();
  float[2] = 0x0d;
  throwsDatasetError(() => parseIdx(float, 'f.idx'), 'f.idx', /unsupported IDX element type 0x0d \(float32\)/, /only 0x08/);
  const unknown = IMAGES.slice();
  unknown[2] = 0x42;
  throwsDatasetError(() => parseIdx(unknown, 'u.idx'), 'u.idx', /unknown IDX element type 0x42/);
});

test('a header with 0 dimensions is rejected', () => {
  throwsDatasetError(() => parseIdx(Uint8Array.of(0, 0, 8, 0), 'z.idx'), 'z.idx', /0 dimensions/);
});

test('truncation anywhere is a DatasetError that says how much is missing', () => {
  const cases: Array<[number, RegExp]> = [
    [0, /has 0 bytes but the magic number alone needs 4/],
    [3, /has 3 bytes but the magic number alone needs 4/],
    [6, /3 dimensions need 16 header bytes but the file has only 6/],
    [15, /need 16 header bytes but the file has only 15/],
    [16, /header says shape \[3, 2, 2\] = 12 items but only 0 bytes of data follow in the file/],
    [21, /= 12 items but only 5 bytes of data follow/],
    [27, /= 12 items but only 11 bytes of data follow/],
  ];
  for (const [length, pattern] of cases) {
    const bytes = IMAGES.subarray(0, length);
    throwsDatasetError(() => parseIdx(bytes, 'cut.idx'), 'cut.idx', /truncated/, pattern);
  }
});

test('a truncated IDX inside a valid gzip says the decompressed data is short', () => {
  const bytes = gzipSync(IMAGES.subarray(0, 20));
  throwsDatasetError(() => parseIdx(bytes, 'cut.gz'), 'cut.gz', /truncated/, /only 4 bytes of data follow in the decompressed data/);
});

test('trailing bytes are rejected, not ignored', () => {
  const bytes = new Uint8Array(IMAGES.length + 5);
  bytes.set(IMAGES);
  throwsDatasetError(() => parseIdx(bytes, 'long.idx'), 'long.idx', /5 trailing bytes/, /12 items but 17 bytes/);
});

test('a cut-short or damaged gzip is a corrupt-gzip DatasetError', () => {
  const gz = gzipSync(IMAGES);
  // Cut inside the deflate stream, and just before the CRC/size trailer.
  for (const length of [2, 12, gz.length - 4]) {
    throwsDatasetError(() => parseIdx(gz.subarray(0, length), 'cut.gz'), 'cut.gz', /corrupt gzip data/, /download or extract it again/);
  }
  const flipped = Uint8Array.from(gz);
  flipped[gz.length - 6] = flipped[gz.length - 6]! ^ 0xff;  // inside the CRC-32 trailer
  throwsDatasetError(() => parseIdx(flipped, 'crc.gz'), 'crc.gz', /corrupt gzip data/);
});

test('readIdx reports corrupt files on disk by path', async () => {
  const file = path.join(dir, 'corrupt-images-idx3-ubyte.gz');
  const gz = gzipSync(IMAGES);
  writeFileSync(file, gz.subarray(0, gz.length - 4));
  await assert.rejects(readIdx(file), (e: unknown) =>
    e instanceof DatasetError && e.file === file && e.message.startsWith(`${file}: corrupt gzip`));
});
