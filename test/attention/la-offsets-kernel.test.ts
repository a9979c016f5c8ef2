/**
 * The fused Eq. (7) kernel `vicinity::la_offsets` (native/kernels/la_offsets.cc), which
 * LALayer.forward runs on CPU: its output is bit-identical to the composite path it replaces
 * (la-offsets.ts roundOffsets + constrainOffsets) and its gradient equals autograd's through that
 * path — tied maxima and minima (which rounding makes common), the floored denominator, same-sign
 * and all-zero fields, no rounding, a non-integer constraint, float32 and float64 — it passes the
 * float64 gradcheck without rounding, gives the same bits at 1 and 2 threads, and rejects bad
 * arguments by name. The LA fixtures run through it in la-layer.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { constrainOffsets, roundOffsets, type LARounding } from '../../src/attention/la-offsets.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { grad } from '../../src/tensor/autograd.js';
import { full, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertSameBitsAtOneAndTwoThreads } from '../support/threads.js';

type Dtype = 'float32' | 'float64';

/** Δp' and ∂(Σ Δp' ⊙ r)/∂raw by the kernel or by the composite path. */
function run(raw: Tensor, constraint: number, rounding: LARounding, fused: boolean): [Tensor, Tensor] {
  const leaf = raw.detach().requiresGrad_();
  const out = fused
    ? aten.vicinity_la_offsets(leaf, constraint, rounding === 'ste')
    : constrainOffsets(roundOffsets(leaf, rounding), constraint);
  const r = randn(out.shape, { seed: 7, dtype: out.dtype });
  return [out, grad(out.mul(r).sum(), [leaf])[0] as Tensor];
}

function maxAbsDiff(a: Tensor, b: Tensor): number {
  return a.sub(b).abs().max().item() as number;
}

/** Values in ±2.4: after rounding, the extremes ±2 are each shared by many elements. */
const tiedField = (dtype: Dtype): Tensor => randn([3, 18, 5, 6], { seed: 1, dtype }).mul(1.5).clamp(-2.4, 2.4);

const cases: { name: string; raw: (dtype: Dtype) => Tensor; constraint?: number; rounding?: LARounding }[] = [
  { name: 'O(1) offsets, rounded (many tied extremes)', raw: (dtype) => tiedField(dtype) },
  { name: 'large offsets, constraint 2.5', raw: (dtype) => randn([2, 8, 4, 4], { seed: 2, dtype }).mul(40), constraint: 2.5 },
  { name: 'no rounding', raw: (dtype) => randn([2, 8, 3, 5], { seed: 3, dtype }).mul(3), rounding: 'none' },
  { name: 'small offsets (denominator floored at 1)', raw: (dtype) => randn([2, 6, 3, 3], { seed: 4, dtype }).mul(0.3) },
  { name: 'same-sign field', raw: (dtype) => randn([2, 6, 3, 3], { seed: 5, dtype }).abs().mul(4).add(1) },
  { name: 'negative field, no rounding', raw: (dtype) => randn([2, 6, 3, 3], { seed: 6, dtype }).abs().mul(-4).sub(1), rounding: 'none' },
  { name: 'all-zero field', raw: (dtype) => full([2, 4, 3, 3], 0, { dtype }) },
  { name: 'batch 1, one row', raw: (dtype) => randn([1, 1, 1, 37], { seed: 8, dtype }).mul(3) },
];

for (const c of cases) {
  for (const dtype of ['float64', 'float32'] as const) {
    test(`la_offsets = composite Eq. (7), forward bit for bit, gradient within rounding: ${c.name}, ${dtype}`, () => tidy(() => {
      const raw = c.raw(dtype);
      const [yf, gf] = run(raw, c.constraint ?? 3, c.rounding ?? 'ste', true);
      const [yc, gc] = run(raw, c.constraint ?? 3, c.rounding ?? 'ste', false);
      assert.ok(yf.equal(yc), `forward differs by ${maxAbsDiff(yf, yc)}`);
      const tolerance = dtype === 'float64' ? 1e-13 : 2e-6;
      const scale = Math.max(1, gc.abs().max().item() as number);
      assert.ok(maxAbsDiff(gf, gc) <= tolerance * scale, `gradient differs by ${maxAbsDiff(gf, gc)} (scale ${scale})`);
    }));
  }
}

test('the tied case really has several maxima and minima per sample', () => tidy(() => {
  const rounded = tiedField('float64').round();
  const maxTies = rounded.eq(rounded.amax([1, 2, 3], { keepdim: true })).sum([1, 2, 3]);
  const minTies = rounded.eq(rounded.amin([1, 2, 3], { keepdim: true })).sum([1, 2, 3]);
  assert.ok((maxTies.min().item() as number) >= 2 && (minTies.min().item() as number) >= 2, 'the case is meant to have ties');
}));

test('a NaN makes its own sample NaN (as the composite\'s amax does) and leaves the others alone', () => tidy(() => {
  for (const dtype of ['float32', 'float64'] as const) {
    const raw = randn([3, 4, 5, 5], { seed: 9, dtype }).mul(3);
    raw.select(0, 1).view([-1]).select(0, 57).fill_(Number.NaN);
    const fused = aten.vicinity_la_offsets(raw, 3);
    const composite = constrainOffsets(roundOffsets(raw, 'ste'), 3);
    assert.equal(fused.select(0, 1).isnan().all().item(), true, dtype);
    assert.equal(composite.select(0, 1).isnan().all().item(), true, dtype);
    for (const b of [0, 2]) assert.ok(fused.select(0, b).equal(composite.select(0, b)), `${dtype} sample ${b}`);
  }
}));

test('float64 gradcheck of vicinity::la_offsets without rounding (distinct values: no kinks)', () => tidy(() => {
  const raw = randn([2, 5, 3], { seed: 11, dtype: 'float64' }).mul(3).requiresGrad_();
  const result = gradcheck((x: Tensor) => aten.vicinity_la_offsets(x, 3, false), [raw], { eps: 1e-6, atol: 1e-6, rtol: 1e-4 });
  assert.ok(result.ok, result.report);
}));

test('the op gives the same bits at 1 and 2 threads (each sample is one task)', () => tidy(() => {
  const raw = randn([5, 72, 7, 7], { seed: 12 }).mul(2);
  assertSameBitsAtOneAndTwoThreads(() => run(raw, 3, 'ste', true));
}));

test('bad arguments throw errors naming the problem and the fix', () => tidy(() => {
  const raw = randn([2, 4, 3, 3]);
  const cases: [() => unknown, RegExp][] = [
    [() => aten.vicinity_la_offsets(randn([6]), 3), /la_offsets: raw offsets must be \(B, …\) with at least one element per sample, got shape \[6\]/],
    [() => aten.vicinity_la_offsets(randn([2, 0, 3]), 3), /la_offsets: raw offsets must be \(B, …\) .*got shape \[2, 0, 3\]/],
    [() => aten.vicinity_la_offsets(raw.to('int64'), 3), /la_offsets: raw offsets must be float32 or float64, got Long/],
    [() => aten.vicinity_la_offsets(raw, 0), /la_offsets: constraint \(Eq. 7's l\) must be a positive finite number, got 0/],
    [() => aten.vicinity_la_offsets(raw, Number.NaN), /la_offsets: constraint .* got nan/],
  ];
  for (const [fn, message] of cases) assert.throws(fn, message);
}));
