/**
 * Parity with PyTorch for src/ops/functional.ts, part 2: dropout (exact masks after manualSeed,
 * statistics, train = false identity, gradients), dropPath, gridSample (bilinear with zero
 * padding and both alignCorners — forward and gradients with respect to input and grid — plus
 * nearest, bicubic, border and reflection) and interpolate (nearest, bilinear, bicubic; size or
 * scaleFactor; alignCorners) with its option errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as F from '../../src/ops/functional.js';
import { manualSeed, ones, rand, randn } from '../../src/tensor/creation.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertClose, opSuite, type OpCase } from '../support/parity.js';

const rn = (shape: number[], seed: number, dtype: DType = 'float32') => randn(shape, { seed, dtype });
/** Sampling points in [-1.2, 1.2]: some fall outside the image, exercising the padding. */
const gridOf = (shape: number[], seed: number, dtype: DType = 'float32') => rand(shape, { seed, dtype }).mul(2.4).sub(1.2);

const IMG = rn([2, 3, 5, 6], 1);
const IMG64 = rn([1, 2, 4, 5], 2, 'float64');
const GRID = gridOf([2, 4, 3, 2], 3);
const GRID64 = gridOf([1, 3, 3, 2], 4, 'float64');
const X = rn([4, 5], 5);

const dropouts: OpCase[] = [
  { name: 'dropout mask after manualSeed equals PyTorch, with gradients', inputs: { x: X },
    ts: ({ x }) => { manualSeed(17); return F.dropout(x, 0.3); },
    py: 'torch.manual_seed(17)\nout = F.dropout(x, 0.3)', grad: true },
  { name: 'dropout p 0.5 default, float64', inputs: { x: X.double() }, ts: ({ x }) => { manualSeed(3); return F.dropout(x); },
    py: 'torch.manual_seed(3)\nout = F.dropout(x)', grad: true },
];

const GRID_MODES: [string, F.GridSampleOptions, string][] = [
  ['bilinear zeros alignCorners false', { alignCorners: false }, "mode='bilinear', padding_mode='zeros', align_corners=False"],
  ['bilinear zeros alignCorners true', { alignCorners: true }, "mode='bilinear', padding_mode='zeros', align_corners=True"],
  ['bilinear border', { paddingMode: 'border' }, "padding_mode='border', align_corners=False"],
  ['bilinear reflection alignCorners true', { paddingMode: 'reflection', alignCorners: true }, "padding_mode='reflection', align_corners=True"],
  ['nearest zeros', { mode: 'nearest' }, "mode='nearest', align_corners=False"],
  ['bicubic border', { mode: 'bicubic', paddingMode: 'border' }, "mode='bicubic', padding_mode='border', align_corners=False"],
];

const gridSamples: OpCase[] = [
  ...GRID_MODES.map(([label, options, py]): OpCase => ({
    name: `gridSample ${label}`, inputs: { x: IMG, g: GRID }, ts: ({ x, g }) => F.gridSample(x, g, options),
    py: `F.grid_sample(x, g, ${py})`, grad: label.startsWith('nearest') ? ['x'] : true,
  })),
  ...GRID_MODES.slice(0, 2).map(([label, options, py]): OpCase => ({
    name: `gridSample ${label}, float64`, inputs: { x: IMG64, g: GRID64 }, ts: ({ x, g }) => F.gridSample(x, g, options),
    py: `F.grid_sample(x, g, ${py})`, grad: true,
  })),
  { name: 'gridSample defaults are bilinear, zeros, alignCorners false', inputs: { x: IMG, g: GRID }, ts: ({ x, g }) => F.gridSample(x, g),
    py: 'F.grid_sample(x, g, align_corners=False)', grad: true },
];

const interpolations: OpCase[] = [
  { name: 'interpolate nearest size', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { size: [7, 9] }), py: 'F.interpolate(x, size=(7, 9))', grad: true },
  { name: 'interpolate nearest scale 2', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { scaleFactor: 2 }), py: 'F.interpolate(x, scale_factor=2)', grad: true },
  { name: 'interpolate nearest fractional scale 1.7', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { scaleFactor: 1.7 }),
    py: 'F.interpolate(x, scale_factor=1.7)', grad: true },
  { name: 'interpolate bilinear scale 0.6', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { scaleFactor: 0.6, mode: 'bilinear' }),
    py: "F.interpolate(x, scale_factor=0.6, mode='bilinear', align_corners=False)", grad: true },
  { name: 'interpolate nearest downscale size', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { size: [3, 4] }), py: 'F.interpolate(x, size=(3, 4))', grad: true },
  { name: 'interpolate bilinear size', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { size: [8, 7], mode: 'bilinear' }),
    py: "F.interpolate(x, size=(8, 7), mode='bilinear', align_corners=False)", grad: true },
  { name: 'interpolate bilinear alignCorners', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { size: [8, 7], mode: 'bilinear', alignCorners: true }),
    py: "F.interpolate(x, size=(8, 7), mode='bilinear', align_corners=True)", grad: true },
  { name: 'interpolate bilinear scale [1.5, 2]', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { scaleFactor: [1.5, 2], mode: 'bilinear' }),
    py: "F.interpolate(x, scale_factor=(1.5, 2), mode='bilinear', align_corners=False)", grad: true },
  { name: 'interpolate bilinear float64 downscale', inputs: { x: IMG64 }, ts: ({ x }) => F.interpolate(x, { size: [3, 3], mode: 'bilinear' }),
    py: "F.interpolate(x, size=(3, 3), mode='bilinear', align_corners=False)", grad: true },
  { name: 'interpolate bicubic alignCorners', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { size: [9, 10], mode: 'bicubic', alignCorners: true }),
    py: "F.interpolate(x, size=(9, 10), mode='bicubic', align_corners=True)", grad: true },
  { name: 'interpolate bicubic scale 2', inputs: { x: IMG }, ts: ({ x }) => F.interpolate(x, { scaleFactor: 2, mode: 'bicubic' }),
    py: "F.interpolate(x, scale_factor=2, mode='bicubic', align_corners=False)", grad: true },
];

opSuite('dropout parity', dropouts);
opSuite('gridSample', gridSamples);
opSuite('interpolate', interpolations);

test('dropout statistics: about p zeroed, survivors scaled by 1/(1-p), mean kept', () => {
  assertNoLeaks(() => {
    manualSeed(0);
    const n = 200_000;
    const p = 0.3;
    const y = F.dropout(ones([n]), p);
    const zeros = y.eq(0).sum().item() as number;
    assert.ok(Math.abs(zeros / n - p) < 0.005, `zeroed fraction ${zeros / n}, expected ${p} ± 0.005`);
    const survivors = y.index([y.ne(0)]);
    assertClose(survivors.amin(), 1 / (1 - p), { label: 'smallest survivor' });
    assertClose(survivors.amax(), 1 / (1 - p), { label: 'largest survivor' });
    assert.ok(Math.abs((y.mean().item() as number) - 1) < 0.01, 'mean stays about 1');
  });
});

test('dropout with training false or p 0 is the identity (the same tensor); p 1 zeroes; bad p throws', () => {
  assertNoLeaks(() => {
    assert.equal(F.dropout(X, 0.5, false), X);
    assert.equal(F.dropout(X, 0), X);
    const all = F.dropout(X, 1);
    assert.equal(all.abs().sum().item(), 0);
    assert.throws(() => F.dropout(X, 1.5), /dropout: p must be in \[0, 1\], got 1.5/);
    assert.throws(() => F.dropout(X, -0.1), /got -0.1/);
  });
});

test('dropout gradient is the mask scaled by 1/(1-p)', () => {
  assertNoLeaks(() => {
    manualSeed(5);
    const x = X.clone().requiresGrad_();
    const y = F.dropout(x, 0.25);
    y.sum().backward();
    const mask = y.ne(0).float();
    assertClose(x.grad!, mask.div(0.75), { label: 'dx' });
  });
});

test('dropPath drops whole samples with probability p and scales the rest', () => {
  assertNoLeaks(() => {
    manualSeed(1);
    const x = rand([2000, 3, 2], { seed: 6 }).add(1);
    const y = F.dropPath(x, 0.25, true);
    const rowSums = y.flatten(1).ne(0).sum(1); // 0 (dropped) or 6 (kept) per sample
    const kept = rowSums.eq(6);
    assert.equal(rowSums.eq(0).logicalOr(kept).all().item(), true, 'each sample is dropped whole or kept whole');
    const fraction = 1 - (kept.sum().item() as number) / 2000;
    assert.ok(Math.abs(fraction - 0.25) < 0.05, `dropped fraction ${fraction}, expected 0.25 ± 0.05`);
    const k = kept.reshape([2000, 1, 1]).expandAs(x);
    assertClose(y.index([k]), x.index([k]).div(0.75), { label: 'kept samples are scaled' });
    assert.equal(F.dropPath(x, 0.25, false), x);
    assert.equal(F.dropPath(x, 0, true), x);
  });
});

test('interpolate refuses ambiguous options', () => {
  assertNoLeaks(() => {
    assert.throws(() => F.interpolate(IMG, {}), /give exactly one of size and scaleFactor/);
    assert.throws(() => F.interpolate(IMG, { size: [2, 2], scaleFactor: 2 }), /give exactly one of size and scaleFactor/);
    assert.throws(() => F.interpolate(IMG, { size: [2, 2], alignCorners: true }), /alignCorners only applies to 'bilinear' and 'bicubic'/);
  });
});

test('gridSample with a grid of the wrong shape throws libtorch\'s message', () => {
  assertNoLeaks(() => {
    const bad: Tensor = GRID.narrow(3, 0, 1);
    assert.throws(() => F.gridSample(IMG, bad), /grid_sampler\(\): expected grid to have size 2 in last dimension/);
    assert.throws(() => F.gridSample(IMG, GRID.narrow(0, 0, 1)), /expected grid and input to have same batch size/);
  });
});
