/**
 * LALayer (src/attention/la-layer.ts, la-offsets.ts, la-sampling.ts) against la-layer.md:
 * the seven la-layer-* fixtures (forward and every gradient), a per-pixel loop oracle written from
 * the conventions for shapes the fixtures do not cover (1×1, 1×5, odd/even, stride 1 and 2,
 * batch 1 and 3), the zero-offset window identity, Eq. (7) and the rounding by hand, float64
 * gradchecks (x, every weight, and through the offsets with rounding 'none'), the straight-through
 * pass-through, and every error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import {
  LALayer, referenceBuilders, type LALayerOptions, type LALayerWeights,
} from '../../src/attention/la-layer.js';
import { constrainOffsets, roundOffsets } from '../../src/attention/la-offsets.js';
import * as F from '../../src/ops/functional.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { grad, noGrad } from '../../src/tensor/autograd.js';
import { manualSeed, randn, tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { ShapeError } from '../../src/tensor/shape-error.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertParity, withFixture } from './support.js';

const FIXTURES = [
  'la-layer-open', 'la-layer-softmax-open', 'la-layer-perpixel-open', 'la-layer-grouped-open',
  'la-layer-zerooffsets-open', 'la-layer-samesign-open', 'la-layer-literal-open',
];

const values = (t: Tensor): number[] => Array.from(t.contiguous().dataSync() as Float64Array, Number);

/**
 * A float64 layer whose raw offsets are O(1) (offset.2.weight × scale), as the fixtures make them;
 * the init draws from the global generator, seeded here so every run sees the same weights.
 */
function layer64(o: LALayerOptions, offsetScale = 8, seed = 0): LALayer {
  manualSeed(seed);
  const la = new LALayer(o).to('float64');
  noGrad(() => la.weights().offset2Weight.mul_(offsetScale));
  return la;
}

function relError(a: number[], b: number[]): number {
  let num = 0;
  let den = 0;
  a.forEach((v, i) => { num += (v - b[i]) ** 2; den += b[i] ** 2; });
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-300);
}

// ---- fixtures ----------------------------------------------------------------------------------

for (const name of FIXTURES) {
  test(`${name}: forward and every gradient match within the fixture's tolerance`, () =>
    withFixture(name, (fixture) => assertParity(fixture, referenceBuilders, { kind: 'vicinity.LALayer' })));
}

// ---- a per-pixel loop oracle written from la-layer.md and the fixtures' conventions ------------

function roundHalfEven(v: number): number {
  const r = Math.round(v);
  return Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** 1×1 grouped projection at stride s of x (B, C_in, H, W), as plain numbers (B, C_out, Ho, Wo). */
function projectLoop(la: LALayer, x: number[], shape: number[], weight: number[]): number[] {
  const [B, Cin, H, W] = shape;
  const s = la.stride;
  const [Ho, Wo, Cout, G] = [Math.ceil(H / s), Math.ceil(W / s), la.outChannels, la.groups];
  const [cin, cout] = [Cin / G, Cout / G];
  const out = new Array<number>(B * Cout * Ho * Wo).fill(0);
  for (let b = 0; b < B; b++) for (let o = 0; o < Cout; o++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
    let acc = 0;
    const g = Math.floor(o / cout);
    for (let c = 0; c < cin; c++) acc += weight[o * cin + c] * x[((b * Cin + g * cin + c) * H + s * i) * W + s * j];
    out[((b * Cout + o) * Ho + i) * Wo + j] = acc;
  }
  return out;
}

/** Eq. (7) per sample on the raw offsets (B, n_off, Ho, Wo). */
function constrainLoop(la: LALayer, raw: number[], B: number): number[] {
  const per = raw.length / B;
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    const r = raw.slice(b * per, (b + 1) * per).map((v) => (la.rounding === 'ste' ? roundHalfEven(v) : v));
    const D = Math.max(Math.max(Math.max(...r), 0) + Math.max(-Math.min(...r), 0), 1);
    out.push(...r.map((v) => (la.constraint * v) / D));
  }
  return out;
}

/** y (B, C_out, Ho, Wo) by loops over pixels, heads and kernel points. */
function loopReference(la: LALayer, x: Tensor): number[] {
  const shape = x.shape;
  const [B, , H, W] = shape;
  const xs = values(x);
  const w = la.weights();
  const [q, k, v] = [w.q, w.k, w.v].map((t) => projectLoop(la, xs, shape, values(t)));
  if (la.aggregation === 'literal') return v.map((val, i) => val * q[i]);
  const [Ho, Wo, m, ks] = [Math.ceil(H / la.stride), Math.ceil(W / la.stride), la.heads, la.kernelSize];
  const [d, K, half, C] = [la.outChannels / m, ks * ks, (ks - 1) / 2, la.outChannels];
  const off = constrainLoop(la, values(tidy(() => la.rawOffsets(x))), B);
  const at = (map: number[], b: number, c: number, i: number, j: number) =>
    (i >= 0 && i < Ho && j >= 0 && j < Wo ? map[((b * C + c) * Ho + i) * Wo + j] : 0);
  const y = new Array<number>(B * C * Ho * Wo).fill(0);
  for (let b = 0; b < B; b++) for (let n = 0; n < m; n++) for (let i = 0; i < Ho; i++) for (let j = 0; j < Wo; j++) {
    const weights: number[] = [];
    for (let kk = 0; kk < K; kk++) {
      const channel = (t: number) => (la.offsets === 'per-point' ? (n * K + kk) * 2 + t : t);
      const offAt = (t: number) => off[((b * la.offsetChannels + channel(t)) * Ho + i) * Wo + j];
      const Y = i + Math.floor(kk / ks) - half + offAt(0);
      const X = j + (kk % ks) - half + offAt(1);
      const [y0, x0] = [Math.floor(Y), Math.floor(X)];
      const [fy, fx] = [Y - y0, X - x0];
      const key = (c: number) => (1 - fy) * (1 - fx) * at(k, b, c, y0, x0) + (1 - fy) * fx * at(k, b, c, y0, x0 + 1)
        + fy * (1 - fx) * at(k, b, c, y0 + 1, x0) + fy * fx * at(k, b, c, y0 + 1, x0 + 1);
      let [num, den, dot] = [0, 0, 0];
      for (let c = n * d; c < (n + 1) * d; c++) {
        const sp = Math.log1p(Math.exp(key(c)));
        num += sp * at(q, b, c, i, j);
        den += sp;
        dot += key(c) * at(q, b, c, i, j);
      }
      weights.push(la.aggregation === 'normalized' ? num / (den + 1e-6) : dot / Math.sqrt(d));
    }
    if (la.aggregation === 'softmax') {
      const top = Math.max(...weights);
      const e = weights.map((z) => Math.exp(z - top));
      const total = e.reduce((a, z) => a + z, 0);
      e.forEach((z, r) => { weights[r] = z / total; });
    }
    for (let c = n * d; c < (n + 1) * d; c++) {
      let acc = 0;
      for (let kk = 0; kk < K; kk++) acc += weights[kk] * at(v, b, c, i + Math.floor(kk / ks) - half, j + (kk % ks) - half);
      y[((b * C + c) * Ho + i) * Wo + j] = acc;
    }
  }
  return y;
}

const SHAPE_CASES: { B: number; H: number; W: number; o: Partial<LALayerOptions> }[] = [
  { B: 1, H: 1, W: 1, o: {} },
  { B: 3, H: 1, W: 5, o: { offsets: 'per-pixel', aggregation: 'softmax' } },
  { B: 1, H: 1, W: 5, o: { stride: 2, rounding: 'none' } },
  { B: 3, H: 4, W: 6, o: { stride: 2, groups: 2, aggregation: 'softmax' } },
  { B: 3, H: 5, W: 7, o: { kernelSize: 5, constraint: 2.5, rounding: 'none', offsets: 'per-pixel' } },
  { B: 1, H: 5, W: 7, o: { stride: 2, kernelSize: 5, heads: 4 } },
  { B: 3, H: 6, W: 3, o: { aggregation: 'literal', stride: 2 } },
  { B: 1, H: 2, W: 2, o: { stride: 2, offsets: 'per-pixel' } },
];

for (const [index, c] of SHAPE_CASES.entries()) {
  const label = `B=${c.B} ${c.H}×${c.W} ${JSON.stringify(c.o)}`;
  test(`output shape and values = the per-pixel loop oracle: ${label}`, () => tidy(() => {
    const la = layer64({ inChannels: 8, outChannels: 8, heads: 2, ...c.o });
    const x = randn([c.B, 8, c.H, c.W], { seed: 100 + index, dtype: 'float64' });
    const s = la.stride;
    for (const training of [true, false]) {
      la.train(training);
      const y = la.forward(x);
      assert.deepEqual(y.shape, [c.B, 8, Math.ceil(c.H / s), Math.ceil(c.W / s)]);
      const error = relError(values(y), loopReference(la, x));
      assert.ok(error < 1e-12, `${label} (training ${training}): rel. error ${error} against the loop oracle`);
    }
    la.dispose();
  }));
}

test('train and eval mode compute the same thing (no dropout or statistics); float32 batch 1 and 3 backprop', () => tidy(() => {
  manualSeed(1);
  const la = new LALayer({ inChannels: 8, outChannels: 16, heads: 4, stride: 2 });
  for (const B of [1, 3]) {
    const x = randn([B, 8, 7, 6], { seed: B }).requiresGrad_();
    const yTrain = la.train().forward(x);
    const yEval = la.eval().forward(x);
    assert.ok(yTrain.equal(yEval));
    yEval.sum().backward();
    assert.deepEqual(x.grad?.shape, [B, 8, 7, 6]);
    for (const [name, p] of la.namedParameters()) assert.ok(p.grad !== null, `${name} received no gradient`);
    la.zeroGrad();
  }
  la.dispose();
}));

test('rawOffsets(x) equals the offset Sequential (conv3×3 → GELU → conv1×1) that names the keys', () => tidy(() => {
  manualSeed(2);
  const la = new LALayer({ inChannels: 8, outChannels: 8, heads: 2, stride: 2, groups: 2 });
  const x = randn([2, 8, 5, 6], { seed: 5 });
  assert.ok(la.rawOffsets(x).equal(la.offset.forward(x)));
  la.dispose();
}));

// ---- zero offsets, Eq. (7), rounding ------------------------------------------------------------

test('with every offset zero the deformed keys are exactly the plain k×k window (F.unfold of the k map)', () => tidy(() => {
  const configs: Partial<LALayerOptions>[] = [
    {}, { stride: 2, kernelSize: 5 }, { offsets: 'per-pixel', rounding: 'none' }, { groups: 2, heads: 4, stride: 2 },
  ];
  for (const o of configs) {
    const la = layer64({ inChannels: 8, outChannels: 8, heads: 2, ...o });
    noGrad(() => la.weights().offset2Weight.zero_());
    const x = randn([2, 8, 5, 7], { seed: 7, dtype: 'float64' });
    const s = la.sample(x);
    assert.equal(s.offsets.abs().max().item(), 0);
    const kMap = aten.conv2d(x, la.weights().k, null, la.stride, 0, 1, la.groups);
    const [B, C, Ho, Wo] = kMap.shape;
    const ks = la.kernelSize;
    const window = F.unfold(kMap, ks, { padding: (ks - 1) / 2 })     // (B, C·K, P)
      .reshape([B, la.heads, C / la.heads, ks * ks, Ho * Wo]);      // (B, m, d, K, P)
    assert.deepEqual(s.keys.shape, window.shape);
    assert.equal(s.keys.sub(window).abs().max().item(), 0, JSON.stringify(o));
    la.dispose();
  }
}));

test('Eq. (7): D = max(max(M,0) + max(−N,0), 1) per sample, with torch.amax tie gradients', () => tidy(() => {
  const r = tensor([[[[3, -1], [0, 2]]], [[[0.5, 2], [1, 0.25]]], [[[0, 0], [0, 0]]]], { dtype: 'float64' }).requiresGrad_();
  const off = constrainOffsets(r, 6);
  assert.deepEqual(off.toArray(), [[[[4.5, -1.5], [0, 3]]], [[[1.5, 6], [3, 0.75]]], [[[0, 0], [0, 0]]]]);
  // Tied maxima share M's gradient: r = [2, 2, −1, 1], D = 3, ∂(Σ c·off)/∂r_j = l·c_j/D − l·Σc·r/D²·∂D/∂r_j.
  const tied = tensor([[[[2, 2], [-1, 1]]]], { dtype: 'float64' }).requiresGrad_();
  const c = [1, 2, 3, 4];
  const [g] = grad(constrainOffsets(tied, 3).mul(tensor([[[[1, 2], [3, 4]]]], { dtype: 'float64' })).sum(), [tied]);
  const sumCr = 1 * 2 + 2 * 2 + 3 * -1 + 4 * 1;
  const dD = [0.5, 0.5, -1, 0];
  const expected = c.map((cj, j) => (3 * cj) / 3 - ((3 * sumCr) / 9) * dD[j]);
  assert.ok(relError(values(g as Tensor), expected) < 1e-15, `${values(g as Tensor)} vs ${expected}`);
  // An all-zero field has D at its floor 1: the gradient is l, bounded.
  const [gz] = grad(constrainOffsets(r, 6).sum(), [r]);
  assert.deepEqual(values((gz as Tensor).narrow(0, 2, 1)), [6, 6, 6, 6]);
}));

test("rounding 'ste' rounds half to even with an identity gradient; 'none' passes through", () => tidy(() => {
  const raw = tensor([0.5, 1.5, 2.5, -0.5, -1.5, 0.49, -2.7], { dtype: 'float64' }).requiresGrad_();
  const rounded = roundOffsets(raw, 'ste');
  // −0.5 + (round(−0.5) + 0.5) is +0, as in PyTorch's raw + (raw.round() − raw).detach().
  assert.deepEqual(values(rounded), [0, 2, 2, 0, -2, 0, -3]);
  const [g] = grad(rounded.mul(tensor([1, 2, 3, 4, 5, 6, 7], { dtype: 'float64' })).sum(), [raw]);
  assert.deepEqual(values(g as Tensor), [1, 2, 3, 4, 5, 6, 7]);
  assert.equal(roundOffsets(raw, 'none'), raw);
}));

// ---- gradients ----------------------------------------------------------------------------------

type WeightName = keyof LALayerWeights;
const ALL_WEIGHTS: WeightName[] = ['q', 'k', 'v', 'offset0Weight', 'offset0Bias', 'offset2Weight'];

/** gradcheck of forward with respect to x (if withX) and the named weights, as float64 leaves. */
function checkLayerGradients(la: LALayer, x: Tensor, names: WeightName[], withX: boolean): void {
  const own = la.weights();
  const leaves = names.map((n) => own[n].detach().clone().requiresGrad_());
  const fn = (...inputs: Tensor[]): Tensor => {
    const weights = { ...own };
    names.forEach((n, i) => { weights[n] = inputs[i + 1]; });
    return la.forward(inputs[0], { weights });
  };
  const result = gradcheck(fn, [withX ? x.requiresGrad_() : x, ...leaves], { eps: 1e-6, atol: 1e-5, rtol: 1e-3 });
  assert.ok(result.ok, `inputs: ${withX ? 'x, ' : ''}${names.join(', ')}\n${result.report}`);
}

test("float64 gradcheck through the offsets ('none'): x and every weight, per-point, normalized, 3×5", () => tidy(() => {
  const la = layer64({ inChannels: 4, outChannels: 4, heads: 2, constraint: 3, rounding: 'none' });
  checkLayerGradients(la, randn([2, 4, 3, 5], { seed: 11, dtype: 'float64' }), ALL_WEIGHTS, true);
  la.dispose();
}));

test("float64 gradcheck ('none'): x and every weight, per-pixel, softmax, stride 2, groups 2, 5×4", () => tidy(() => {
  const la = layer64({
    inChannels: 8, outChannels: 4, heads: 2, stride: 2, groups: 2, offsets: 'per-pixel', aggregation: 'softmax', rounding: 'none',
  }, 4);
  checkLayerGradients(la, randn([1, 8, 5, 4], { seed: 12, dtype: 'float64' }), ALL_WEIGHTS, true);
  la.dispose();
}));

test("float64 gradcheck ('ste'): q, k, v weights (they do not feed the offsets); literal: x, q, v", () => tidy(() => {
  const ste = layer64({ inChannels: 4, outChannels: 4, heads: 2, kernelSize: 3, constraint: 5 });
  checkLayerGradients(ste, randn([2, 4, 4, 3], { seed: 13, dtype: 'float64' }), ['q', 'k', 'v'], false);
  const literal = layer64({ inChannels: 4, outChannels: 4, heads: 2, aggregation: 'literal', stride: 2 });
  checkLayerGradients(literal, randn([2, 4, 3, 4], { seed: 14, dtype: 'float64' }), ['q', 'v'], true);
  ste.dispose();
  literal.dispose();
}));

test("'ste' gives the offset module the gradient of 'none' evaluated at the rounded offsets (identity pass-through)", () => tidy(() => {
  const options: LALayerOptions = { inChannels: 8, outChannels: 8, heads: 2, stride: 2, constraint: 5 };
  const ste = layer64({ ...options, rounding: 'ste' });
  const none = new LALayer({ ...options, rounding: 'none' }).to('float64');
  none.loadStateDict(ste.stateDict(), { strict: true });
  const x = randn([2, 8, 6, 5], { seed: 21, dtype: 'float64' });
  const r = randn([2, 8, 3, 3], { seed: 22, dtype: 'float64' });
  const ySte = ste.forward(x);
  ySte.mul(r).sum().backward();
  const raw = none.rawOffsets(x);
  const rounded = raw.detach().round().requiresGrad_();
  const yNone = none.forward(x, { rawOffsets: rounded });
  assert.ok(yNone.equal(ySte), "'none' at round(raw) must compute exactly what 'ste' computes");
  const [upstream] = grad(yNone.mul(r).sum(), [rounded]);
  raw.backward(upstream as Tensor);  // chain the offset module's Jacobian at raw, as the identity STE does
  const [steParams, noneParams] = [new Map(ste.namedParameters()), new Map(none.namedParameters())];
  for (const name of ['offset.0.weight', 'offset.0.bias', 'offset.2.weight']) {
    const a = values(steParams.get(name)?.grad as Tensor);
    const b = values(noneParams.get(name)?.grad as Tensor);
    assert.ok(Math.sqrt(a.reduce((s, v) => s + v * v, 0)) > 1e-3, `${name}: no gradient reaches the offset module`);
    assert.ok(relError(a, b) < 1e-12, `${name}: 'ste' ${a.slice(0, 3)} vs 'none' at round(raw) ${b.slice(0, 3)}`);
  }
  ste.dispose();
  none.dispose();
}));

test('forward, backward and sample free every temporary', () => {
  manualSeed(3);
  const la = new LALayer({ inChannels: 8, outChannels: 8, heads: 2 });
  const x = randn([2, 8, 5, 4], { seed: 3 }).keep();
  assertNoLeaks(() => {
    const xg = x.clone().requiresGrad_();
    grad(la.forward(xg).sum(), [xg]);
    la.sample(x);
  });
  x.dispose();
  la.dispose();
});

// ---- construction, state dict, errors ----------------------------------------------------------

test('defaults, state-dict keys and shapes, PyTorch Conv2d default init bounds', () => tidy(() => {
  manualSeed(0);
  const la = new LALayer({ inChannels: 16, outChannels: 32, groups: 2 });
  assert.deepEqual(
    [la.kernelSize, la.heads, la.constraint, la.stride, la.offsets, la.rounding, la.aggregation],
    [3, 8, 7, 1, 'per-point', 'ste', 'normalized'],
  );
  const shapes = Object.fromEntries([...la.stateDict()].map(([key, t]) => [key, t.shape]));
  assert.deepEqual(shapes, {
    'q.weight': [32, 8, 1, 1], 'k.weight': [32, 8, 1, 1], 'v.weight': [32, 8, 1, 1],
    'offset.0.weight': [4, 8, 3, 3], 'offset.0.bias': [4], 'offset.2.weight': [144, 4, 1, 1],
  });
  assert.equal(la.numParameters(), 3 * 32 * 8 + 4 * 8 * 9 + 4 + 144 * 4);
  // U(±1/√fanIn): every value inside the bound, and (≥ 144 draws) the largest near it.
  const bound = (key: string, fanIn: number) => {
    const t = la.stateDict().get(key) as Tensor;
    const maxAbs = t.abs().max().item() as number;
    assert.ok(maxAbs <= 1 / Math.sqrt(fanIn), `${key}: max |w| ${maxAbs} > 1/√${fanIn}`);
    if (t.numel >= 144) assert.ok(maxAbs > 0.9 / Math.sqrt(fanIn), `${key}: max |w| ${maxAbs} ≪ 1/√${fanIn}`);
  };
  bound('q.weight', 8);
  bound('offset.0.weight', 72);
  bound('offset.0.bias', 72);
  bound('offset.2.weight', 4);
  const perPixel = new LALayer({ inChannels: 8, outChannels: 8, heads: 2, offsets: 'per-pixel' });
  assert.equal(perPixel.offsetChannels, 2);
  assert.deepEqual(perPixel.stateDict().get('offset.2.weight')?.shape, [2, 2, 1, 1]);
  perPixel.dispose();
  la.dispose();
}));

test('invalid options throw RangeError/TypeError naming the constraint, the values and the fix', () => {
  const base: LALayerOptions = { inChannels: 8, outChannels: 8, heads: 2 };
  const cases: [Record<string, unknown>, ErrorConstructor, RegExp][] = [
    [{ kernelSize: 4 }, RangeError, /kernelSize must be odd .* got 4; use 3 or 5/],
    [{ kernelSize: 0 }, RangeError, /kernelSize must be ≥ 1, got 0/],
    [{ outChannels: 10, heads: 4 }, RangeError, /outChannels \(10\) must be divisible by heads \(4\)/],
    [{ inChannels: 6, groups: 4, outChannels: 8 }, RangeError, /inChannels \(6\) must be divisible by groups \(4\)/],
    [{ outChannels: 6, heads: 3, groups: 4 }, RangeError, /outChannels \(6\) must be divisible by groups \(4\)/],
    [{ inChannels: 3 }, RangeError, /⌊inChannels\/4⌋ = ⌊3\/4⌋ = 0 must be ≥ 1; pass inChannels ≥ 4/],
    [{ groups: 4 }, RangeError, /hidden width ⌊inChannels\/4⌋ \(2\) must be divisible by groups \(4\)/],
    [{ constraint: 0 }, RangeError, /constraint \(Eq\. 7's l\) must be a positive finite number, got 0/],
    [{ constraint: -2 }, RangeError, /constraint .* got -2/],
    [{ constraint: Number.NaN }, RangeError, /constraint .* got NaN/],
    [{ constraint: Infinity }, RangeError, /constraint .* got Infinity/],
    [{ heads: 1.5 }, TypeError, /heads must be an integer, got 1\.5/],
    [{ stride: 0 }, RangeError, /stride must be ≥ 1, got 0/],
    [{ offsets: 'per-head' }, RangeError, /offsets must be one of 'per-point', 'per-pixel', got "per-head"/],
    [{ rounding: 'ceil' }, RangeError, /rounding must be one of 'ste', 'none', got "ceil"/],
    [{ aggregation: 'mean' }, RangeError, /aggregation must be one of 'normalized', 'softmax', 'literal', got "mean"/],
  ];
  for (const [o, type, pattern] of cases) {
    assert.throws(() => new LALayer({ ...base, ...o } as unknown as LALayerOptions), (e: unknown) => {
      assert.ok(e instanceof type, `${JSON.stringify(o)}: ${String(e)}`);
      assert.match((e as Error).message, pattern);
      return true;
    });
  }
  assert.throws(() => referenceBuilders['vicinity.LALayer']({ ...base, in_channels: 8 }),
    /TypeError: LALayer: unknown vicinity.LALayer argument 'in_channels' \(did you mean 'inChannels'\?\); known: inChannels/);
});

test('bad inputs throw ShapeError with the expected layout', () => tidy(() => {
  const la = new LALayer({ inChannels: 8, outChannels: 8, heads: 2, stride: 2 });
  assert.throws(() => la.forward(randn([8, 5, 5])), (e: unknown) => e instanceof ShapeError
    && /expected input \(B, C_in=8, H, W\), got shape \[8, 5, 5\]; add a batch dim/.test((e as Error).message));
  assert.throws(() => la.forward(randn([1, 4, 5, 5])), ShapeError);
  assert.throws(() => la.sample(randn([1, 4, 5, 5])), /C_in=8/);
  assert.throws(() => la.forward(randn([1, 8, 5, 5]), { rawOffsets: randn([1, 36, 5, 5]) }), (e: unknown) => e instanceof ShapeError
    && /rawOffsets must be \(B, n_off, Ho, Wo\) = \[1, 36, 3, 3\] \(n_off = 36 for offsets 'per-point'\), got \[1, 36, 5, 5\]/.test((e as Error).message));
  la.dispose();
}));
