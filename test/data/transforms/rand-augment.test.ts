import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createRng } from '../../../src/data/rng.js';
import { enhance, posterize, solarize, solarizeAdd } from '../../../src/data/transforms/color-ops.js';
import { affine, rotationMatrix } from '../../../src/data/transforms/geometry.js';
import {
  applyOp, parseRandAugment, RAND_INCREASING_TRANSFORMS, RAND_TRANSFORMS, randAugment,
} from '../../../src/data/transforms/rand-augment.js';
import { patternImage, scriptedRng } from './scripted-rng.js';

const OPTIONS = { fill: [124, 116, 104], interpolation: 'bilinear' as const };
const image = patternImage(12, 10, 3);
const bytes = (x: { data: Uint8Array }): number[] => [...x.data];

test('parseRandAugment reads every section and keeps timm defaults', () => {
  const defaults = parseRandAugment('rand');
  assert.deepEqual({ ...defaults, ops: defaults.ops.length },
    { magnitude: 10, numOps: 2, magnitudeStd: 0, magnitudeMax: 10, increasing: false, probability: 0.5, ops: 15 });
  const deit = parseRandAugment('rand-m9-mstd0.5-inc1');
  assert.equal(deit.magnitude, 9);
  assert.equal(deit.magnitudeStd, 0.5);
  assert.equal(deit.increasing, true);
  assert.equal(deit.ops, RAND_INCREASING_TRANSFORMS);
  const all = parseRandAugment('rand-n3-p0.8-mmax15-m12-inc0');
  assert.deepEqual([all.numOps, all.probability, all.magnitudeMax, all.magnitude, all.increasing], [3, 0.8, 15, 12, false]);
  assert.equal(all.ops, RAND_TRANSFORMS);
  assert.equal(parseRandAugment('rand-mstd101').magnitudeStd, Infinity);   // timm: > 100 = uniform
  assert.equal(parseRandAugment('rand-mmax0').magnitudeMax, 10);           // timm: `mmax or 10`
});

test('the op lists are timm\'s _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS, in order', () => {
  assert.deepEqual(RAND_INCREASING_TRANSFORMS.slice(3, 11), ['Rotate', 'PosterizeIncreasing', 'SolarizeIncreasing',
    'SolarizeAdd', 'ColorIncreasing', 'ContrastIncreasing', 'BrightnessIncreasing', 'SharpnessIncreasing']);
  assert.deepEqual(RAND_TRANSFORMS.slice(-4), ['ShearX', 'ShearY', 'TranslateXRel', 'TranslateYRel']);
});

test('parseRandAugment names the bad part and the grammar', () => {
  const cases: [string, RegExp][] = [
    ['rnd-m9', /must start with 'rand', got 'rnd'/],
    ['rand-m9.5', /'m' needs an integer, got '9.5' in 'm9.5'/],
    ['rand-x3', /unknown section 'x3' \(key 'x'\)/],
    ['rand-inc', /section 'inc' is not a key followed by a number/],
    ['rand-M9', /section 'M9' is not a key followed by a number/],
    ['rand-w0', /'w0' \(timm's op weights \/ op list\) is not supported/],
    ['rand-p1.5', /'p' is a probability in \[0, 1\], got 1.5/],
    ['rand-mstd0.5.1', /'mstd' needs a number, got '0.5.1'/],
    ['rand--m9', /section '' is not a key/],
  ];
  for (const [config, message] of cases) {
    assert.throws(() => parseRandAugment(config), (e: unknown) => {
      assert.ok(e instanceof RangeError);
      assert.match(e.message, message);
      assert.match(e.message, new RegExp(`RandAugment config '${config.replace(/[.]/g, '\\.')}'`));
      assert.match(e.message, /the grammar is 'rand' followed by/);
      return true;
    }, config);
  }
});

test('level → argument mappings follow timm at magnitude 9', () => {
  const never = scriptedRng({});   // ops without a random sign draw nothing
  assert.deepEqual(bytes(applyOp(image, 'PosterizeIncreasing', 9, never, OPTIONS)), bytes(posterize(image, 1)));  // 4 − ⌊3.6⌋
  assert.deepEqual(bytes(applyOp(image, 'Posterize', 9, never, OPTIONS)), bytes(posterize(image, 3)));            // ⌊3.6⌋
  assert.deepEqual(bytes(applyOp(image, 'SolarizeIncreasing', 9, never, OPTIONS)), bytes(solarize(image, 26)));   // 256 − ⌊230.4⌋
  assert.deepEqual(bytes(applyOp(image, 'Solarize', 9, never, OPTIONS)), bytes(solarize(image, 230)));
  assert.deepEqual(bytes(applyOp(image, 'SolarizeAdd', 9, never, OPTIONS)), bytes(solarizeAdd(image, 99)));       // ⌊99⌋
  assert.deepEqual(bytes(applyOp(image, 'Contrast', 9, never, OPTIONS)), bytes(enhance(image, 'contrast', 0.9 * 1.8 + 0.1)));
  assert.equal(never.left(), 0);
});

test('signed ops negate when the draw exceeds ½ (timm _randomly_negate)', () => {
  const warp = (m: number[]) => bytes(affine(image, m, OPTIONS));
  assert.deepEqual(bytes(applyOp(image, 'Rotate', 9, scriptedRng({ uniforms: [0.7] }), OPTIONS)), warp(rotationMatrix(-27, 12, 10)));
  assert.deepEqual(bytes(applyOp(image, 'Rotate', 9, scriptedRng({ uniforms: [0.3] }), OPTIONS)), warp(rotationMatrix(27, 12, 10)));
  assert.deepEqual(bytes(applyOp(image, 'ShearX', 5, scriptedRng({ uniforms: [0.2] }), OPTIONS)), warp([1, 0.5 * 0.3, 0, 0, 1, 0]));
  assert.deepEqual(bytes(applyOp(image, 'ShearY', 10, scriptedRng({ uniforms: [0.9] }), OPTIONS)), warp([1, 0, 0, -0.3, 1, 0]));
  assert.deepEqual(bytes(applyOp(image, 'TranslateXRel', 10, scriptedRng({ uniforms: [0.1] }), OPTIONS)), warp([1, 0, 0.45 * 10, 0, 1, 0]));
  assert.deepEqual(bytes(applyOp(image, 'TranslateYRel', 10, scriptedRng({ uniforms: [0.6] }), OPTIONS)), warp([1, 0, 0, 0, 1, -0.45 * 12]));
  // Increasing enhancements: 1 ± 0.81 at m9, floored at 0.1.
  assert.deepEqual(bytes(applyOp(image, 'ColorIncreasing', 9, scriptedRng({ uniforms: [0.9] }), OPTIONS)), bytes(enhance(image, 'color', 1 - 0.9 * 0.9)));
  assert.deepEqual(bytes(applyOp(image, 'SharpnessIncreasing', 9, scriptedRng({ uniforms: [0.1] }), OPTIONS)), bytes(enhance(image, 'sharpness', 1 + 0.9 * 0.9)));
});

test('randAugment draws the op indices first, then per op: probability, magnitude noise, sign', () => {
  const config = parseRandAugment('rand-m9-mstd0.5-inc1');
  // ops: ⌊0.3·15⌋ = 4 PosterizeIncreasing, ⌊0.95·15⌋ = 14 TranslateYRel.
  // op 1: 0.2 ≤ 0.5 applies, m = 9 + 0.5·4 = 11 → clipped to 10 → 0 bits (all black).
  // op 2: 0.7 > 0.5 skips (no magnitude or sign drawn).
  const rng = scriptedRng({ uniforms: [0.3, 0.95, 0.2, 0.7], normals: [4] });
  const out = randAugment(image, config, rng, OPTIONS);
  assert.equal(rng.left(), 0);
  assert.ok(out.data.every((v) => v === 0));
  // p1: every op applies and the probability is not drawn; mstd0: no noise drawn.
  const sure = parseRandAugment('rand-m10-n1-p1');
  const rng2 = scriptedRng({ uniforms: [0.34, 0.4] });   // ⌊5.1⌋ = Solarize (plain list) at m10: threshold 256
  assert.deepEqual(bytes(randAugment(image, sure, rng2, OPTIONS)), bytes(image));
  assert.equal(rng2.left(), 1);
});

test('uniform magnitude noise (mstd > 100) draws M in [0, m]', () => {
  const config = parseRandAugment('rand-m10-n1-p1-mstd200-inc1');
  const rng = scriptedRng({ uniforms: [0.3, 0.25] });   // PosterizeIncreasing at m = 2.5 → 4 − 1 = 3 bits
  assert.deepEqual(bytes(randAugment(image, config, rng, OPTIONS)), bytes(posterize(image, 3)));
});

test('same Rng key → identical bytes; different keys → different images', () => {
  const config = parseRandAugment('rand-m9-mstd0.5-inc1');
  const a = randAugment(image, config, createRng(7, 1, 42), OPTIONS);
  const b = randAugment(image, config, createRng(7, 1, 42), OPTIONS);
  assert.deepEqual(bytes(a), bytes(b));
  const outputs = new Set<string>();
  for (let k = 0; k < 12; k++) outputs.add(Buffer.from(randAugment(image, config, createRng(7, 1, k), OPTIONS).data).toString('hex'));
  assert.ok(outputs.size >= 8, `only ${outputs.size} distinct outputs of 12`);
  assert.deepEqual([...image.data.subarray(0, 4)], [...patternImage(12, 10, 3).data.subarray(0, 4)]);   // input untouched
});
