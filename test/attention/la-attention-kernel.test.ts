/**
 * The fused LA-layer kernel `vicinity::la_attention` (native/kernels/la_attention.cc), which
 * LALayer.forward runs on CPU: it equals the composite path (la-sampling.ts → aggregate) in forward
 * and every gradient (float64, both aggregations, per-point and per-pixel offsets, stride 2, groups,
 * odd sizes, batch 1, zero offsets, windows pushed fully outside the map, d with and without a
 * remainder of 8), in float32 within rounding, under the float64 gradcheck through q, k, v and the
 * offsets, bit-for-bit across thread counts and between channel slices of a packed q/k/v map (read
 * in place) and contiguous copies; a NaN sampling position poisons only its own pixel and point;
 * it counts the composite's MACs, and rejects bad arguments with messages naming the shapes. The fixtures run through it in la-layer.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countMacs } from '../../src/analysis/macs.js';
import { LALayer, type LALayerOptions } from '../../src/attention/la-layer.js';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { Module } from '../../src/nn/module.js';
import { withKernelMode, type KernelMode } from '../../src/ops/fused.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { grad, noGrad } from '../../src/tensor/autograd.js';
import { full, manualSeed, rand, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertSameBitsAtOneAndTwoThreads } from '../support/threads.js';

const values = (t: Tensor): number[] => Array.from(t.contiguous().to('float64').dataSync() as Float64Array, Number);

function relError(a: Tensor, b: Tensor): number {
  const [x, y] = [values(a), values(b)];
  let num = 0;
  let den = 0;
  x.forEach((v, i) => { num += (v - y[i]) ** 2; den += y[i] ** 2; });
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-300);
}

/** A layer of `dtype` whose raw offsets are O(1) (offset.2.weight × 8), as the fixtures make them. */
function layer(o: LALayerOptions, dtype: 'float32' | 'float64' = 'float64', seed = 0): LALayer {
  manualSeed(seed);
  const la = new LALayer(o).to(dtype);
  noGrad(() => la.weights().offset2Weight.mul_(8));
  return la;
}

type RawOffsets = 'module' | 'zero' | 'outside' | 'scattered';

/** y and ∂(Σ y ⊙ r)/∂(x, raw offsets if given, every parameter that is used) by one implementation. */
function run(la: LALayer, x: Tensor, raw: Tensor | null, mode: KernelMode): Tensor[] {
  const xg = x.detach().requiresGrad_();
  const rg = raw?.detach().requiresGrad_() ?? null;
  const y = withKernelMode(mode, () => la.forward(xg, rg ? { rawOffsets: rg } : {}));
  const r = randn(y.shape, { seed: 99, dtype: y.dtype });
  const params = la.parameters().filter((p) => rg === null || !la.offset.parameters().includes(p));
  const inputs = [xg, ...(rg ? [rg] : []), ...params];
  const grads = grad(y.mul(r).sum(), inputs);
  return [y, ...grads.map((g) => g as Tensor)];
}

function rawOffsets(kind: RawOffsets, la: LALayer, x: Tensor): Tensor | null {
  const [B, , H, W] = x.shape;
  const shape = [B, la.offsetChannels, Math.ceil(H / la.stride), Math.ceil(W / la.stride)];
  if (kind === 'module') return null;
  if (kind === 'zero') return full(shape, 0, { dtype: x.dtype });
  // Same sign: D = max(r̂), so every Δp' = constraint (40 ≫ the map): every window fully outside.
  if (kind === 'outside') return rand(shape, { seed: 7, dtype: x.dtype }).add(3);
  return randn(shape, { seed: 8, dtype: x.dtype }).mul(3);   // scattered, partly outside
}

const CASES: { B: number; H: number; W: number; o: Partial<LALayerOptions>; raw?: RawOffsets }[] = [
  { B: 2, H: 5, W: 6, o: {} },
  { B: 2, H: 5, W: 6, o: { aggregation: 'softmax' } },
  { B: 1, H: 7, W: 5, o: { offsets: 'per-pixel', rounding: 'none' } },
  { B: 3, H: 6, W: 5, o: { stride: 2, groups: 2, heads: 4, aggregation: 'softmax', offsets: 'per-pixel' } },
  { B: 2, H: 7, W: 5, o: { stride: 2, groups: 2, rounding: 'none' } },
  { B: 1, H: 1, W: 1, o: {} },
  { B: 1, H: 1, W: 4, o: { aggregation: 'softmax', rounding: 'none' } },
  { B: 2, H: 5, W: 7, o: { kernelSize: 5, constraint: 2.5, rounding: 'none' } },
  { B: 2, H: 4, W: 3, o: { outChannels: 24, heads: 2 } },                          // d = 12: 8 + 4
  { B: 2, H: 3, W: 4, o: { outChannels: 32, heads: 2, aggregation: 'softmax' } },   // d = 16
  { B: 2, H: 4, W: 5, o: { outChannels: 16, heads: 2 } },                          // d = 8: lane sums
  { B: 2, H: 5, W: 4, o: { outChannels: 16, heads: 2, aggregation: 'softmax', constraint: 4, rounding: 'none' }, raw: 'scattered' },
  { B: 2, H: 5, W: 5, o: {}, raw: 'zero' },
  { B: 2, H: 4, W: 4, o: { constraint: 40 }, raw: 'outside' },
  { B: 2, H: 4, W: 5, o: { aggregation: 'softmax', constraint: 40, offsets: 'per-pixel' }, raw: 'outside' },
  { B: 2, H: 5, W: 4, o: { constraint: 4, rounding: 'none' }, raw: 'scattered' },
  { B: 2, H: 5, W: 4, o: { aggregation: 'softmax', constraint: 4, rounding: 'none', offsets: 'per-pixel' }, raw: 'scattered' },
];

for (const [index, c] of CASES.entries()) {
  const label = `B=${c.B} ${c.H}×${c.W} ${JSON.stringify(c.o)} offsets ${c.raw ?? 'module'}`;
  test(`fused = composite, forward and every gradient (float64): ${label}`, () => tidy(() => {
    const la = layer({ inChannels: 8, outChannels: 8, heads: 2, ...c.o });
    const x = randn([c.B, 8, c.H, c.W], { seed: 200 + index, dtype: 'float64' });
    const raw = rawOffsets(c.raw ?? 'module', la, x);
    const fused = run(la, x, raw, 'fused');
    const composite = run(la, x, raw, 'composite');
    assert.deepEqual(fused[0].shape, composite[0].shape);
    const names = ['y', 'x', ...(raw ? ['raw offsets'] : []), ...[...la.namedParameters()]
      .filter(([name]) => raw === null || !name.startsWith('offset.')).map(([name]) => name)];
    assert.equal(fused.length, names.length);
    fused.forEach((t, i) => {
      const error = relError(t, composite[i]);
      assert.ok(error < 1e-12, `${label}: ${names[i]} rel. error ${error}`);
    });
    if (c.raw === 'outside') {
      // Every key is sampled outside, so the offsets get exactly zero gradient on both paths.
      assert.equal(fused[2].abs().max().item(), 0);
    }
    la.dispose();
  }));
}

test('fused = composite in float32 within rounding (d = 8, the vectorised channel loops)', () => tidy(() => {
  for (const aggregation of ['normalized', 'softmax'] as const) {
    const la = layer({ inChannels: 16, outChannels: 16, heads: 2, aggregation }, 'float32', 3);
    const x = randn([2, 16, 9, 7], { seed: 31 });
    const fused = run(la, x, null, 'fused');
    const composite = run(la, x, null, 'composite');
    fused.forEach((t, i) => {
      const error = relError(t, composite[i]);
      assert.ok(error < 2e-5, `${aggregation}: output ${i} rel. error ${error}`);
    });
    la.dispose();
  }
}));

// ---- the op itself -------------------------------------------------------------------------------

interface OpInputs { q: Tensor; k: Tensor; v: Tensor; off: Tensor }

/** Small float64 inputs; offsets an integer plus a fraction in [0.2, 0.8], so ±1e-6 never crosses floor(). */
function opInputs(B: number, m: number, d: number, H: number, W: number, ks = 3, seed = 40): OpInputs {
  const K = ks * ks;
  const P = H * W;
  const options = { dtype: 'float64' as const };
  const whole = randn([B, m, K, 2, P], { seed, ...options }).mul(2).floor();
  return {
    q: randn([B, m, d, P], { seed: seed + 1, ...options }),
    k: randn([B, m, d, H, W], { seed: seed + 2, ...options }),
    v: randn([B, m, d, H, W], { seed: seed + 3, ...options }),
    off: whole.add(rand([B, m, K, 2, P], { seed: seed + 4, ...options }).mul(0.6).add(0.2)),
  };
}

for (const mode of ['normalized', 'softmax'] as const) {
  test(`float64 gradcheck of vicinity::la_attention through q, k, v and the offsets (${mode})`, () => tidy(() => {
    const { q, k, v, off } = opInputs(2, 2, 3, 3, 4);
    const leaves = [q, k, v, off].map((t) => t.requiresGrad_());
    const fn = (a: Tensor, b: Tensor, c: Tensor, o: Tensor) => aten.vicinity_la_attention(a, b, c, o, 3, mode, 1e-6);
    const result = gradcheck(fn as (...t: Tensor[]) => Tensor, leaves, { eps: 1e-6, atol: 1e-6, rtol: 1e-4 });
    assert.ok(result.ok, result.report);
  }));
}

test('float64 gradcheck of the op with k = 5, a 1×5 map and d = 9 (a remainder after 8 channels)', () => tidy(() => {
  const { q, k, v, off } = opInputs(1, 1, 9, 1, 5, 5, 60);
  for (const mode of ['normalized', 'softmax']) {
    const fn = (...t: Tensor[]) => aten.vicinity_la_attention(t[0], t[1], t[2], t[3], 5, mode, 1e-3);
    const result = gradcheck(fn, [q, k, v, off].map((t) => t.detach().requiresGrad_()), { eps: 1e-6, atol: 1e-6, rtol: 1e-4 });
    assert.ok(result.ok, `${mode}\n${result.report}`);
  }
}));

test('the op gives the same bits at 1 and 2 threads (each (b, head) is one task)', () => tidy(() => {
  const { q, k, v, off } = opInputs(3, 4, 8, 6, 5, 3, 80);
  assertSameBitsAtOneAndTwoThreads(() => {
    const leaves = [q, k, v, off].map((t) => t.detach().to('float32').requiresGrad_());
    const y = aten.vicinity_la_attention(leaves[0], leaves[1], leaves[2], leaves[3], 3, 'normalized');
    return [y, ...grad(y.mul(y).sum(), leaves).map((g) => g as Tensor)];
  });
}));


test('q, k, v as channel slices of one packed projection (read in place) give the bits of contiguous copies', () => tidy(() => {
  const [B, m, d, H, W] = [3, 2, 8, 5, 4];
  const { off } = opInputs(B, m, d, H, W, 3, 90);
  const packed = randn([B, 3 * m * d, H, W], { seed: 91 });                 // LALayer's fused q/k/v conv output
  const offsets = off.to('float32');
  const run = (contiguous: boolean): Tensor[] => {
    const leaf = packed.detach().requiresGrad_();
    const [q, k, v] = leaf.split(m * d, 1).map((t) => (contiguous ? t.contiguous() : t));
    const y = aten.vicinity_la_attention(q.reshape([B, m, d, H * W]), k.reshape([B, m, d, H, W]),
      v.reshape([B, m, d, H, W]), offsets, 3, 'normalized', 1e-6);
    return [y, grad(y.mul(y).sum(), [leaf])[0] as Tensor];
  };
  const [views, copies] = [run(false), run(true)];
  views.forEach((t, i) => assert.deepEqual(values(t), values(copies[i]), i === 0 ? 'output' : 'gradient'));
}));
test('a NaN sampling position gives NaN at its pixel and head only, and NaN offset gradients at its point', () => tidy(() => {
  for (const [d, mode] of [[8, 'softmax'], [8, 'normalized'], [3, 'softmax']] as const) {
    const { q, k, v, off } = opInputs(1, 2, d, 4, 5, 3, 90);
    const P = 20;
    const poisoned = off.clone();
    poisoned.narrow(1, 1, 1).narrow(2, 4, 1).narrow(3, 1, 1).narrow(4, 7, 1).fill_(Number.NaN);  // head 1, point 4, dx, p 7
    const leaves = [q, k, v, poisoned].map((t) => t.detach().requiresGrad_());
    const y = aten.vicinity_la_attention(leaves[0], leaves[1], leaves[2], leaves[3], 3, mode, 1e-6);
    const [gOff] = grad(y.sum(), [leaves[3]]) as Tensor[];
    const isNaN = (t: Tensor) => values(t.isnan().to('float64'));
    const yNaN = isNaN(y);                                      // (1, 2, d, P)
    yNaN.forEach((flag, e) => {
      const [head, p] = [Math.floor(e / (d * P)), e % P];
      assert.equal(flag, head === 1 && p === 7 ? 1 : 0, `d ${d} ${mode}: y[head ${head}, pixel ${p}]`);
    });
    const gNaN = isNaN(gOff.narrow(1, 1, 1).narrow(2, 4, 1).narrow(4, 7, 1));  // both coordinates of the point
    assert.deepEqual(gNaN, [1, 1], `d ${d} ${mode}: ∂L/∂(dy, dx) at the poisoned point`);
    assert.equal(isNaN(gOff.narrow(1, 0, 1)).some((f) => f === 1), false, `d ${d} ${mode}: head 0 stays finite`);
  }
}));

test('countMacs counts the composite\'s two einsums (2·B·C·K·P) whatever the kernel mode', () => tidy(() => {
  const la = layer({ inChannels: 8, outChannels: 16, heads: 4, stride: 2 }, 'float32');
  class Composite extends Module {
    readonly inner = this.register('inner', la);
    forward(x: Tensor): Tensor { return withKernelMode('composite', () => this.inner.forward(x)); }
  }
  const fused = countMacs(la, [2, 8, 9, 6]);
  const composite = countMacs(new Composite(), [2, 8, 9, 6]);
  const twoProducts = 2 * 2 * 16 * 9 * (5 * 3);
  assert.equal(fused.byOp['aten::einsum'], twoProducts);
  assert.equal(composite.byOp['aten::einsum'], twoProducts);
  assert.equal(fused.total, composite.total);
  assert.equal(fused.other, composite.other);
  la.dispose();
}));

test('bad arguments throw errors naming the shapes and the fix', () => tidy(() => {
  const { q, k, v, off } = opInputs(2, 2, 3, 3, 4);
  const call = (o: Partial<OpInputs>, kernelSize = 3, mode = 'normalized', eps = 1e-6) =>
    () => aten.vicinity_la_attention(o.q ?? q, o.k ?? k, o.v ?? v, o.off ?? off, kernelSize, mode, eps);
  const cases: [() => unknown, RegExp][] = [
    [call({ q: q.narrow(3, 0, 11) }), /la_attention: q has shape \[2, 2, 3, 11\] but must be \(B, m, d, H·W\) = \[2, 2, 3, 12\] for a key map of shape \[2, 2, 3, 3, 4\]/],
    [call({ k: k.reshape([2, 2, 3, 12]) }), /la_attention: key must be a map \(B, m, d, H, W\), got shape \[2, 2, 3, 12\]/],
    [call({ v: v.narrow(4, 0, 3) }), /la_attention: value has shape \[2, 2, 3, 3, 3\] but key has shape \[2, 2, 3, 3, 4\]/],
    [call({ off: off.narrow(2, 0, 1) }), /la_attention: offsets have shape \[2, 2, 1, 2, 12\] but must be \(B, m, K = k², 2, P\) = \[2, 2, 9, 2, 12\] .*expand per-pixel offsets/],
    [call({}, 5), /offsets have shape \[2, 2, 9, 2, 12\] but must be .* = \[2, 2, 25, 2, 12\]/],
    [call({}, 2), /la_attention: kernel_size must be odd and ≥ 1, got 2/],
    [call({}, 3, 'mean'), /la_attention: mode must be 'normalized' or 'softmax', got 'mean'/],
    [call({}, 3, 'normalized', 0), /la_attention: eps must be > 0 for 'normalized', got 0/],
    [call({ v: v.to('float32') }), /la_attention: every input must have q's dtype Double, got Float; convert them with \.to\(\)/],
  ];
  for (const [fn, pattern] of cases) assert.throws(fn, pattern);
}));
