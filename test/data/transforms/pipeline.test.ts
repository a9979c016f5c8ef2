import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DecodedImage } from '../../../src/data/dataset.js';
import { createRng } from '../../../src/data/rng.js';
import { luma, toGray } from '../../../src/data/transforms/color-ops.js';
import { crop, hflip, resize } from '../../../src/data/transforms/geometry.js';
import {
  applyTransforms, colorJitter, normalizationTable, randomResizedCropBox,
} from '../../../src/data/transforms/pipeline.js';
import type { TransformSpec } from '../../../src/data/transforms/spec.js';
import { patternImage, scriptedRng } from './scripted-rng.js';

const f32 = Math.fround;
const IMAGENET = { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] };

/** torchvision ToTensor + Normalize of one byte, in float32. */
const normalized = (v: number, mean: number, std: number): number => f32(f32(f32(v / 255) - f32(mean)) / f32(std));

function run(image: DecodedImage, spec: TransformSpec, rng = createRng(0)): Float32Array {
  const out = new Float32Array(spec.channels * spec.size[0] * spec.size[1]);
  applyTransforms(image, spec, rng, out, 0);
  return out;
}

/** The CHW floats an eval of `expected` (HWC bytes, already output-sized) must produce. */
function normalizedChw(expected: DecodedImage, mean: number[], std: number[]): Float32Array {
  const { height, width, channels } = expected;
  const out = new Float32Array(channels * height * width);
  for (let c = 0; c < channels; c++) for (let i = 0; i < height * width; i++) {
    out[c * height * width + i] = normalized(expected.data[i * channels + c], mean[c], std[c]);
  }
  return out;
}

test('normalisation is torchvision float32 (v/255 − mean)/std, written CHW at the offset', () => {
  const image: DecodedImage = { data: Uint8Array.from([0, 128, 255, 10, 20, 30]), height: 1, width: 2, channels: 3 };
  const spec: TransformSpec = { size: [1, 2], channels: 3, mean: [0.5], std: [0.5], train: false };
  const out = new Float32Array(9).fill(42);
  applyTransforms(image, spec, createRng(0), out, 3);
  assert.deepEqual([...out.subarray(0, 3)], [42, 42, 42]);
  assert.deepEqual([...out.subarray(3)], [-1, normalized(10, 0.5, 0.5), normalized(128, 0.5, 0.5), normalized(20, 0.5, 0.5), 1, normalized(30, 0.5, 0.5)]);
  assert.equal(out[5], f32(f32(f32(128 / 255) - 0.5) / 0.5));
  const table = normalizationTable(IMAGENET.mean, IMAGENET.std, 3);
  assert.equal(table[256 + 200], normalized(200, 0.456, 0.224));
  assert.ok(Math.abs(table[256 + 200] - (200 / 255 - 0.456) / 0.224) < 1e-6);
});

test('channel conversion: gray → RGB replicates, RGB → gray is Pillow luma', () => {
  const grayImage: DecodedImage = { data: Uint8Array.from([0, 255]), height: 1, width: 2, channels: 1 };
  assert.deepEqual([...run(grayImage, { size: [1, 2], channels: 3, mean: [0], std: [1], train: false })], [0, 1, 0, 1, 0, 1]);
  const rgb: DecodedImage = { data: Uint8Array.from([255, 0, 0, 10, 200, 30]), height: 1, width: 2, channels: 3 };
  const out = run(rgb, { size: [1, 2], channels: 1, mean: [0], std: [1], train: false });
  assert.deepEqual([...out], [f32(luma(255, 0, 0) / 255), f32(luma(10, 200, 30) / 255)]);
  assert.equal(luma(255, 0, 0), 76);
});

test('eval: resize the shorter side to ⌊size / pct⌋, then centre-crop (timm, torchvision offsets)', () => {
  const image = patternImage(12, 16, 3);
  const spec: TransformSpec = { size: [6, 6], channels: 3, ...IMAGENET, train: false, centerCropPct: 0.75 };
  // ⌊6 / 0.75⌋ = 8 → 8 × ⌊8·16/12⌋ = 8 × 10, crop offsets (1, 2).
  const expected = crop(resize(image, 8, 10), { top: 1, left: 2, height: 6, width: 6 });
  assert.deepEqual(run(image, spec), normalizedChw(expected, IMAGENET.mean, IMAGENET.std));
  // Without centerCropPct the image is resized to the size; with the size already right, copied.
  const plain: TransformSpec = { ...spec, centerCropPct: undefined, interpolation: 'bicubic' };
  assert.deepEqual(run(image, plain), normalizedChw(resize(image, 6, 6, { interpolation: 'bicubic' }), IMAGENET.mean, IMAGENET.std));
  const exact = patternImage(6, 6, 3);
  assert.deepEqual(run(exact, plain), normalizedChw(exact, IMAGENET.mean, IMAGENET.std));
});

test('CIFAR crop: pad by 4, crop at the drawn offset (zeros outside), then flip in the final loop', () => {
  const image = patternImage(8, 8, 3);
  const spec: TransformSpec = { size: [8, 8], channels: 3, mean: [0], std: [1], train: true, randomCropPadding: 4, hflip: 0.5 };
  // top = ⌊0.1·9⌋ − 4 = −4, left = ⌊0.9·9⌋ − 4 = 4; flip draw 0.2 < 0.5.
  const rng = scriptedRng({ uniforms: [0.1, 0.9, 0.2] });
  const out = run(image, spec, rng);
  assert.equal(rng.left(), 0);
  const expected = hflip(crop(image, { top: -4, left: 4, height: 8, width: 8 }));
  assert.deepEqual(out, normalizedChw(expected, [0, 0, 0], [1, 1, 1]));
  assert.equal(out[0], 0);                                  // padding row
  assert.equal(out[4 * 8 + 7], f32(image.data[(0 * 8 + 4) * 3] / 255));   // (4, 7) ← flipped (4, 0) ← image (0, 4)
});

test('randomResizedCropBox: timm draws, and the centre fallback when no try fits', () => {
  // area 0.5·(12·16) = 96, aspect exp(0) = 1 → 10×10 (round 9.80); top ⌊0.5·3⌋ = 1, left ⌊0.25·7⌋ = 1.
  const box = randomResizedCropBox(12, 16, [0.25, 0.75], [0.5, 2], scriptedRng({ uniforms: [0.5, 0.5, 0.5, 0.25] }));
  assert.deepEqual(box, { top: 1, left: 1, height: 10, width: 10 });
  // Ten tries of area 1 and aspect 2 (20 × 14) never fit a 12×16 image; fallback: 16/12 is within [0.5, 2] → whole image,
  // or below a ratio range of [2, 2] → 16 × round(16/2), centred.
  const tries = Array(20).fill(1);
  assert.deepEqual(randomResizedCropBox(12, 16, [1, 1], [0.5, 2], scriptedRng({ uniforms: tries })), { top: 0, left: 0, height: 12, width: 16 });
  assert.deepEqual(randomResizedCropBox(12, 16, [1, 1], [2, 2], scriptedRng({ uniforms: tries })), { top: 2, left: 0, height: 8, width: 16 });
  // A 4:1 image with ratio ≤ 2 falls back to a centred 2:1 box.
  assert.deepEqual(randomResizedCropBox(10, 40, [1, 1], [0.5, 2], scriptedRng({ uniforms: tries })), { top: 0, left: 10, height: 10, width: 20 });
});

test('train: same (image, spec, key) → identical bytes; different keys differ; the input is untouched', () => {
  const image = patternImage(40, 50, 3);
  const before = image.data.slice();
  const spec: TransformSpec = {
    size: [24, 24], channels: 3, ...IMAGENET, train: true, randomResizedCrop: { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] },
    hflip: 0.5, randAugment: 'rand-m9-mstd0.5-inc1', randomErasing: { probability: 0.25, mode: 'pixel', count: 1 }, interpolation: 'bicubic',
  };
  assert.deepEqual(run(image, spec, createRng(1, 2, 3)), run(image, spec, createRng(1, 2, 3)));
  const distinct = new Set(Array.from({ length: 8 }, (_, k) => Buffer.from(run(image, spec, createRng(1, 2, k)).buffer).toString('hex')));
  assert.equal(distinct.size, 8);
  assert.deepEqual(image.data, before);
  const jitter: TransformSpec = { ...spec, randAugment: undefined, colorJitter: 0.4 };
  assert.deepEqual(run(image, jitter, createRng(9)), run(image, jitter, createRng(9)));
});

test('a gray image through a 3-channel spec equals the same image converted to RGB first', () => {
  const grayImage = patternImage(20, 20, 1);
  const rgb: DecodedImage = { data: new Uint8Array(20 * 20 * 3), height: 20, width: 20, channels: 3 };
  for (let i = 0; i < 400; i++) rgb.data.fill(grayImage.data[i], 3 * i, 3 * i + 3);
  const spec: TransformSpec = {
    size: [16, 16], channels: 3, ...IMAGENET, train: true, randomResizedCrop: { scale: [0.5, 1], ratio: [0.75, 1.33] },
    hflip: 0.5, randAugment: 'rand-m9-n3-p1',
  };
  for (let k = 0; k < 4; k++) assert.deepEqual(run(grayImage, spec, createRng(k)), run(rgb, spec, createRng(k)));
  // Without RandAugment the gray image is replicated only in the final loop: same values.
  const jitter: TransformSpec = { ...spec, randAugment: undefined, colorJitter: 0.4 };
  for (let k = 0; k < 4; k++) assert.deepEqual(run(grayImage, jitter, createRng(k)), run(rgb, jitter, createRng(k)));
});

test('an RGB image through a 1-channel spec equals its Pillow luma image through the same spec', () => {
  const rgb = patternImage(20, 24, 3);
  const gray = toGray(rgb);
  const specs: TransformSpec[] = [
    { size: [20, 24], channels: 1, mean: [0.5], std: [0.25], train: false },
    { size: [8, 8], channels: 1, mean: [0.5], std: [0.25], train: false, centerCropPct: 0.875 },
    { size: [16, 16], channels: 1, mean: [0.5], std: [0.25], train: true, randomResizedCrop: { scale: [0.3, 1], ratio: [0.75, 1.33] }, hflip: 0.5, randAugment: 'rand-m9-n3-p1' },
    { size: [20, 24], channels: 1, mean: [0.5], std: [0.25], train: true, randomCropPadding: 2, hflip: 0.5, colorJitter: 0.4 },
  ];
  for (const spec of specs) {
    for (let k = 0; k < 3; k++) assert.deepEqual(run(rgb, spec, createRng(k)), run(gray, spec, createRng(k)));
  }
});

test('colorJitter: a random order of brightness/contrast/saturation with factors in [0.6, 1.4]', () => {
  const image = patternImage(4, 4, 3);
  // Fisher–Yates with ⌊u·(i+1)⌋ = 0 each time → order [1, 2, 3, 0]; factors 1 (u = 0.5).
  const identity = colorJitter(image, 0.4, scriptedRng({ uniforms: [0, 0, 0, 0.5, 0.5, 0.5] }));
  assert.deepEqual([...identity.data], [...image.data]);
  const dark = colorJitter(image, 0.4, scriptedRng({ uniforms: [0.99, 0.99, 0.99, 0, 0.5, 0.5] }));
  assert.deepEqual([...dark.data], [...image.data].map((v) => Math.trunc(f32(f32(0.6) * v))));
});

test('spec errors name the field and what it must be', () => {
  const image = patternImage(4, 4, 3);
  const base: TransformSpec = { size: [4, 4], channels: 3, mean: [0], std: [1], train: false };
  const cases: [Partial<TransformSpec>, RegExp][] = [
    [{ size: [0, 4] }, /TransformSpec.size must be \[height, width\] of positive integers, got \[0,4\]/],
    [{ mean: [0, 0] }, /TransformSpec.mean must hold 1 or 3 \(channels\) finite numbers/],
    [{ std: [0] }, /TransformSpec.std must not contain 0/],
    [{ centerCropPct: 1.5 }, /TransformSpec.centerCropPct must be in \(0, 1\]/],
    [{ randomResizedCrop: { scale: [0.5, 0.1], ratio: [1, 1] } }, /TransformSpec.randomResizedCrop needs 0 < scale\[0\] ≤ scale\[1\]/],
    [{ train: true, randAugment: 'rand-q3' }, /RandAugment config 'rand-q3': unknown section 'q3'/],
  ];
  for (const [change, message] of cases) {
    assert.throws(() => run(image, { ...base, ...change }), message);
  }
  assert.throws(() => applyTransforms(image, base, createRng(0), new Float32Array(47), 0), /out \(length 47\) has no room for 3×4×4 values at offset 0/);
  assert.throws(() => run(patternImage(1, 2, 3), { ...base, train: true, randomCropPadding: 1 }), /a 1×2 image padded by 1 is smaller than the 4×4 crop/);
});
