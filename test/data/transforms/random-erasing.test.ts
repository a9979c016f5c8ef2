import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRng } from '../../../src/data/rng.js';
import { randomErasing } from '../../../src/data/transforms/random-erasing.js';
import { scriptedRng } from './scripted-rng.js';

const SHAPE = [3, 10, 10] as const;
const filled = (value = 7): Float32Array => new Float32Array(2 + 300).fill(value);

/** The erased (c, y, x) of the image at offset 2, as a set of "c,y,x" keys. */
function erased(image: Float32Array, original = 7): Set<string> {
  const keys = new Set<string>();
  for (let c = 0; c < 3; c++) for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) {
    if (image[2 + (c * 10 + y) * 10 + x] !== original) keys.add(`${c},${y},${x}`);
  }
  return keys;
}

/** Keys of a box on every channel. */
function boxKeys(top: number, left: number, height: number, width: number): Set<string> {
  const keys = new Set<string>();
  for (let c = 0; c < 3; c++) for (let y = top; y < top + height; y++) for (let x = left; x < left + width; x++) keys.add(`${c},${y},${x}`);
  return keys;
}

test('a scripted draw gives the box timm computes: area 0.1767·100, aspect 1 → 4×4 at (3, 0)', () => {
  // 0.4 ≤ p; area u = 0.5 → 0.02 + (1/3 − 0.02)/2; log-aspect u = 0.5 → aspect 1; h = w = round(4.20) = 4;
  // top = ⌊0.5·7⌋ = 3, left = ⌊0·7⌋ = 0.
  const image = filled();
  const rng = scriptedRng({ uniforms: [0.4, 0.5, 0.5, 0.5, 0] });
  randomErasing(image, 2, SHAPE, { probability: 0.5, mode: 'const', count: 1 }, rng);
  assert.equal(rng.left(), 0);
  assert.deepEqual(erased(image), boxKeys(3, 0, 4, 4));
  assert.ok([...erased(image)].every((k) => { const [c, y, x] = k.split(',').map(Number); return image[2 + (c * 10 + y) * 10 + x] === 0; }));
  assert.equal(image[0], 7);   // before the offset: untouched
});

test('the probability test skips the image after one draw', () => {
  const image = filled();
  const rng = scriptedRng({ uniforms: [0.6] });
  randomErasing(image, 2, SHAPE, { probability: 0.5, mode: 'pixel', count: 1 }, rng);
  assert.equal(rng.left(), 0);
  assert.equal(erased(image).size, 0);
});

test("a box too tall is retried; 'rand' fills one normal value per channel", () => {
  // Attempt 1: area 1/3·100, aspect 1/0.3 → h = round(10.54) = 11 ≥ 10, rejected.
  // Attempt 2: aspect 1 and area 0.17667·100 → 4×4 at top ⌊0.99·7⌋ = 6, left ⌊0.3·7⌋ = 2.
  const image = filled();
  const rng = scriptedRng({ uniforms: [0, 1, 1, 0.5, 0.5, 0.99, 0.3], normals: [1.5, -2, 0.25] });
  randomErasing(image, 2, SHAPE, { probability: 1, mode: 'rand', count: 1 }, rng);
  assert.equal(rng.left(), 0);
  assert.deepEqual(erased(image), boxKeys(6, 2, 4, 4));
  assert.deepEqual([image[2 + 6 * 10 + 2], image[2 + 100 + 9 * 10 + 5], image[2 + 200 + 7 * 10 + 3]], [1.5, -2, 0.25]);
});

test('count > 1 draws the number of boxes, each with 1/count of the area', () => {
  // count = 1 + ⌊0.9·2⌋ = 2; each box: area (0.02 + 0.5·0.3133)·100 / 2 = 8.83, aspect 1 → 3×3.
  const image = filled();
  const rng = scriptedRng({ uniforms: [0, 0.9, 0.5, 0.5, 0, 0, 0.5, 0.5, 0.99, 0.99] });
  randomErasing(image, 2, SHAPE, { probability: 1, mode: 'const', count: 2 }, rng);
  assert.equal(rng.left(), 0);
  assert.deepEqual(erased(image), new Set([...boxKeys(0, 0, 3, 3), ...boxKeys(7, 7, 3, 3)]));
});

test("'pixel' mode fills a rectangle with varied values, deterministically per key", () => {
  const run = (key: number): Float32Array => {
    const image = filled();
    randomErasing(image, 2, SHAPE, { probability: 1, mode: 'pixel', count: 1 }, createRng(3, key));
    return image;
  };
  const a = run(1);
  assert.deepEqual(a, run(1));
  assert.notDeepEqual(a, run(2));
  const keys = erased(a);
  const ys = [...keys].map((k) => Number(k.split(',')[1]));
  const xs = [...keys].map((k) => Number(k.split(',')[2]));
  const h = Math.max(...ys) - Math.min(...ys) + 1;
  const w = Math.max(...xs) - Math.min(...xs) + 1;
  assert.equal(keys.size, 3 * h * w, 'the erased set is a full box on every channel');
  assert.ok(h * w >= 1 && h * w <= 100 / 3 + 10, `area ${h * w}`);
  assert.ok(new Set([...keys].map((k) => { const [c, y, x] = k.split(',').map(Number); return a[2 + (c * 10 + y) * 10 + x]; })).size > 1);
});

test('count must be a positive integer', () => {
  assert.throws(() => randomErasing(filled(), 2, SHAPE, { probability: 1, mode: 'const', count: 0 }, createRng(1)), /count must be an integer ≥ 1, got 0/);
});
