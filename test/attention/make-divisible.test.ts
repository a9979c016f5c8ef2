/**
 * makeDivisible against timm's make_divisible (values computed with timm/layers/helpers.py's
 * formula in Python: max(8, int(v + 4) // 8 * 8), + 8 when below 0.9 v), qkHeadWidth against
 * timm's `dim_head or make_divisible(dim_out * qk_ratio, 8) // num_heads`, and their errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { makeDivisible, qkHeadWidth } from '../../src/attention/make-divisible.js';

test('makeDivisible = timm make_divisible(v, 8)', () => {
  // v → timm's result; 19 rounds to 16 < 0.9·19 and is bumped to 24 (9 → 8 < 8.1 → 16); 12 rounds half up to 16.
  const cases: [number, number][] = [
    [0, 8], [3, 8], [4, 8], [8, 8], [11.9, 16], [9, 16], [8.5, 8], [12, 16], [16, 16], [19, 24], [20, 24], [36, 40], [64, 64],
    [256 * 0.25, 64], [100, 104], [12.5, 16],
  ];
  for (const [v, expected] of cases) assert.equal(makeDivisible(v), expected, `makeDivisible(${v})`);
});

test('makeDivisible: divisor, minValue (0 means the divisor, as Python `or`) and roundLimit', () => {
  assert.equal(makeDivisible(10, { divisor: 4 }), 12);
  assert.equal(makeDivisible(10, { divisor: 4, minValue: 16 }), 16);
  assert.equal(makeDivisible(3, { divisor: 4, minValue: 0 }), 4);
  assert.equal(makeDivisible(19, { roundLimit: 0 }), 16);
});

test('makeDivisible errors name the value', () => {
  assert.throws(() => makeDivisible(-1), /RangeError: makeDivisible: v must be a finite number ≥ 0, got -1/);
  assert.throws(() => makeDivisible(Number.NaN), /v must be a finite number ≥ 0, got NaN/);
  assert.throws(() => makeDivisible(8, { divisor: 0 }), /RangeError: makeDivisible: divisor must be an integer ≥ 1, got 0/);
});

test('qkHeadWidth rounds the total q/k width, then divides by the heads; dimHead wins', () => {
  assert.equal(qkHeadWidth('L', { dimOut: 12, numHeads: 3, qkRatio: 1 }), 5);      // 16 // 3
  assert.equal(qkHeadWidth('L', { dimOut: 16, numHeads: 2, qkRatio: 1 }), 8);
  assert.equal(qkHeadWidth('L', { dimOut: 256, numHeads: 8, qkRatio: 0.5 }), 16);
  assert.equal(qkHeadWidth('L', { dimOut: 16, numHeads: 2, qkRatio: 1, dimHead: 3 }), 3);
  assert.throws(() => qkHeadWidth('L', { dimOut: 16, numHeads: 2, qkRatio: 1, dimHead: 1.5 }),
    /TypeError: L: dimHead must be an integer, got 1.5/);
  assert.throws(() => qkHeadWidth('L', { dimOut: 8, numHeads: 16, qkRatio: 1 }),
    /RangeError: L: the q\/k width per head is makeDivisible\(8·1\) \/ 16 < 1; pass dimHead or use fewer heads/);
});
