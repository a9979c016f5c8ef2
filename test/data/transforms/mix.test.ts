import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRng } from '../../../src/data/rng.js';
import { decideMix, mixBatch, mixTargets } from '../../../src/data/transforms/mix.js';
import type { MixSpec } from '../../../src/data/transforms/spec.js';
import { scriptedRng } from './scripted-rng.js';

const f32 = Math.fround;
const SPEC: MixSpec = { mixupAlpha: 0.8, cutmixAlpha: 1.0, prob: 1, switchProb: 0.5, labelSmoothing: 0.1, numClasses: 5 };
const SHAPE: [number, number, number, number] = [4, 2, 3, 4];
const SIZE = 2 * 3 * 4;

/** Image b holds 100·b + k at position k. */
function batch(): Float32Array {
  return Float32Array.from({ length: 4 * SIZE }, (_, i) => 100 * Math.floor(i / SIZE) + (i % SIZE));
}

const row = (t: Float32Array, i: number, classes = 5): number[] => [...t.subarray(i * classes, (i + 1) * classes)];

test('mixup: x_i ← λ·x_i + (1 − λ)·x_{B−1−i} in float32, targets mix the smoothed one-hots', () => {
  const images = batch();
  const labels = Int32Array.from([0, 1, 2, 4]);
  // mix 0.3 < 1; switch 0.7 ≥ 0.5 → mixup; λ = 0.7.
  const rng = scriptedRng({ uniforms: [0.3, 0.7], betas: [0.7] });
  const targets = mixBatch(images, labels, SHAPE, SPEC, rng);
  assert.equal(rng.left(), 0);
  const lam = f32(0.7);
  const rest = f32(1 - 0.7);
  assert.equal(images[5], f32(f32(5 * lam) + f32(305 * rest)));            // sample 0 with sample 3
  assert.equal(images[3 * SIZE + 5], f32(f32(305 * lam) + f32(5 * rest)));  // and 3 with 0, from the old values
  assert.equal(images[SIZE + 7], f32(f32(107 * lam) + f32(207 * rest)));
  assert.ok(Math.abs(images[5] - (0.7 * 5 + 0.3 * 305)) < 1e-4);
  // off = 0.1/5 = 0.02, on = 0.92; row 0: label 0 weight λ, label 4 (of sample 3) weight 1 − λ.
  const expected0 = [0.92 * 0.7 + 0.02 * 0.3, 0.02, 0.02, 0.02, 0.02 * 0.7 + 0.92 * 0.3];
  row(targets, 0).forEach((v, k) => assert.ok(Math.abs(v - expected0[k]) < 1e-6, `class ${k}: ${v}`));
  for (let i = 0; i < 4; i++) {
    const sum = row(targets, i).reduce((a, b) => a + b, 0);
    assert.ok(Math.abs(sum - 1) < 1e-6, `row ${i} sums to ${sum}`);
  }
});

test('CutMix: the flipped batch\'s box is pasted and λ = 1 − box area / image area', () => {
  const images = batch();
  const labels = Int32Array.from([0, 1, 2, 3]);
  // switch 0.2 < 0.5 → CutMix; λ = 0.5 → cut = ⌊3·0.707⌋ × ⌊4·0.707⌋ = 2 × 2;
  // centre (⌊0.5·3⌋, ⌊0.5·4⌋) = (1, 2) → rows 0..1, columns 1..2; λ = 1 − 4/12.
  const rng = scriptedRng({ uniforms: [0, 0.2, 0.5, 0.5], betas: [0.5] });
  const targets = mixBatch(images, labels, SHAPE, SPEC, rng);
  assert.equal(rng.left(), 0);
  const at = (b: number, c: number, y: number, x: number): number => images[b * SIZE + c * 12 + y * 4 + x];
  assert.equal(at(0, 1, 0, 1), 300 + 12 + 1);   // from sample 3
  assert.equal(at(3, 0, 1, 2), 6);              // from sample 0
  assert.equal(at(0, 0, 2, 1), 9);              // outside the box: own
  assert.equal(at(0, 0, 0, 0), 0);
  assert.equal(at(1, 0, 0, 1), 201);            // samples 1 and 2 swap too
  const lam = 1 - 4 / 12;
  const changed = Array.from({ length: SIZE }, (_, k) => images[k] !== k).filter(Boolean).length;
  assert.ok(Math.abs(changed / SIZE - (1 - lam)) < 1e-12, 'the pasted fraction is 1 − λ');
  assert.ok(Math.abs(targets[0] - (0.92 * lam + 0.02 * (1 - lam))) < 1e-6);
  assert.ok(Math.abs(targets[3] - (0.02 * lam + 0.92 * (1 - lam))) < 1e-6);
});

test('decideMix corrects λ for a box clipped at the border', () => {
  // λ = 0.19 → ratio 0.9: cut 2×3; centre (0, 0) → rows 0..1 clipped to 0..0, columns 0..1 → area 1·1.
  const decision = decideMix(SHAPE, { ...SPEC, mixupAlpha: 0 }, scriptedRng({ uniforms: [0, 0, 0], betas: [0.19] }));
  assert.deepEqual(decision.box, { yl: 0, yh: 1, xl: 0, xh: 1 });
  assert.equal(decision.lambda, 1 - 1 / 12);
});

test('an unmixed batch (prob) keeps the images and gets smoothed one-hots; alphas 0 draw nothing', () => {
  const images = batch();
  const labels = Int32Array.from([4, 0, 0, 2]);
  const rng = scriptedRng({ uniforms: [0.95] });
  const targets = mixBatch(images, labels, SHAPE, { ...SPEC, prob: 0.9 }, rng);
  assert.equal(rng.left(), 0);
  assert.deepEqual(images, batch());
  assert.deepEqual(row(targets, 0), [0.02, 0.02, 0.02, 0.02, 0.92].map(f32));
  assert.deepEqual(row(targets, 3), [0.02, 0.02, 0.92, 0.02, 0.02].map(f32));
  const none = scriptedRng({});
  mixBatch(images, labels, SHAPE, { ...SPEC, mixupAlpha: 0, cutmixAlpha: 0 }, none);
  assert.deepEqual(row(mixTargets(Int32Array.from([1]), 3, 1, 0), 0, 3), [0, 1, 0]);
});

test('an odd batch leaves its middle sample unmixed', () => {
  const images = Float32Array.from({ length: 3 * SIZE }, (_, i) => i);
  const targets = mixBatch(images, Int32Array.from([0, 1, 2]), [3, 2, 3, 4], SPEC, scriptedRng({ uniforms: [0, 0.9], betas: [0.6] }));
  for (let k = 0; k < SIZE; k++) assert.equal(images[SIZE + k], SIZE + k);
  // Its target is λ·y + (1 − λ)·y, as timm computes it: the smoothed one-hot up to float32 rounding.
  row(targets, 1).forEach((v, k) => assert.ok(Math.abs(v - [0.02, 0.92, 0.02, 0.02, 0.02][k]) < 1e-6, `class ${k}: ${v}`));
});

test('same key → identical batch and targets; different keys differ', () => {
  const run = (key: number) => {
    const images = batch();
    const targets = mixBatch(images, Int32Array.from([0, 1, 2, 3]), SHAPE, SPEC, createRng(5, key));
    return { images, targets };
  };
  assert.deepEqual(run(1), run(1));
  const distinct = new Set([1, 2, 3, 4, 5, 6].map((k) => Buffer.from(run(k).targets.buffer).toString('hex')));
  assert.ok(distinct.size >= 5, `${distinct.size} distinct target sets of 6`);
});

test('mixBatch rejects inconsistent shapes and labels outside numClasses', () => {
  assert.throws(() => mixBatch(new Float32Array(10), Int32Array.from([0, 1, 2, 3]), SHAPE, SPEC, createRng(1)),
    /images hold 10 values but shape \[4, 2, 3, 4\] needs 96/);
  assert.throws(() => mixBatch(batch(), Int32Array.from([0, 1]), SHAPE, SPEC, createRng(1)), /2 labels for a batch of 4/);
  assert.throws(() => mixBatch(batch(), Int32Array.from([0, 1, 5, 3]), SHAPE, SPEC, createRng(1)),
    /label 5 of sample 2 is outside 0..4/);
});
