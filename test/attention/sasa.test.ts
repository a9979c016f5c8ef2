/**
 * SASA and AttentionConvCompat (src/attention/sasa.ts). SASA — the paper's layer, which no
 * reference implements — against a float64 per-pixel brute force of Eq. (3) with masked borders
 * and s×s average pooling, and a float64 gradcheck of the input and every parameter.
 * AttentionConvCompat — leaderj1001 AttentionConv bug-for-bug, NOT SASA — against the sasa-open
 * fixture, its own gradcheck, and the properties that set it apart from SASA. Then the contract
 * (batch 1, odd/even sizes, stride, train/eval, state-dict names shared by both) and every error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertGradcheck } from '../../src/autograd/gradcheck.js';
import {
  AttentionConvCompat, attentionConvCompat, referenceBuilders, SASA, standAloneSelfAttention2d,
  type AttentionConvWeights, type SASAOptions,
} from '../../src/attention/sasa.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import { ShapeError } from '../../src/tensor/shape-error.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertParity, randomized, withFixture } from './support.js';

const KIND = 'attention.AttentionConv';

test('AttentionConvCompat = leaderj1001 AttentionConv (sasa-open)', () =>
  withFixture('sasa-open', (fixture) => assertParity(fixture, referenceBuilders, {
    kind: KIND, maxRelError: 1e-6, check: (layer) => assert.ok(layer instanceof AttentionConvCompat),
  })));

const values = (t: Tensor | null): Float64Array => (t ? (t.contiguous().dataSync() as Float64Array) : new Float64Array(0));

/** 1×1 convolution of every pixel: (B, I, H, W) → [b][o][pixel]. */
function project(x: Float64Array, [B, I, H, W]: number[], w: Float64Array, bias: Float64Array): Float64Array[][] {
  const O = w.length / I;
  return Array.from({ length: B }, (_, b) => Array.from({ length: O }, (_, o) => {
    const plane = new Float64Array(H * W);
    for (let p = 0; p < H * W; p++) {
      let s = bias.length ? bias[o] : 0;
      for (let c = 0; c < I; c++) s += w[o * I + c] * x[(b * I + c) * H * W + p];
      plane[p] = s;
    }
    return plane;
  }));
}

/** Eq. (3) one query at a time: centred k×k window, keys outside the map skipped; then s×s pooling. */
function bruteForce(m: SASA, x: Tensor): Float64Array {
  const [B, , H, W] = x.shape;
  const { numHeads: nh, kernelSize: k, stride: s, scale, outChannels: O } = m;
  const dh = O / nh;
  const w = m.weights();
  const [q, key, v] = (['query', 'key', 'value'] as const).map((n) =>
    project(values(x), x.shape, values(w[`${n}Weight`]), values(w[`${n}Bias`])));
  const [relH, relW] = [values(w.relH), values(w.relW)];
  const full = new Float64Array(B * O * H * W);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nh; h++) {
      for (let i = 0; i < H; i++) {
        for (let j = 0; j < W; j++) {
          const logits: number[] = [];
          const keys: number[] = [];
          for (let a = 0; a < k; a++) {
            for (let c = 0; c < k; c++) {
              const [y, z] = [i + a - (k >> 1), j + c - (k >> 1)];
              if (y < 0 || y >= H || z < 0 || z >= W) continue;
              let l = 0;
              for (let e = 0; e < dh; e++) {
                const half = h * dh / 2;
                const r = e < dh / 2 ? relH[(half + e) * k + a] : relW[(half + e - dh / 2) * k + c];
                l += q[b][h * dh + e][i * W + j] * (key[b][h * dh + e][y * W + z] + r);
              }
              logits.push(scale * l);
              keys.push(y * W + z);
            }
          }
          const max = Math.max(...logits);
          const p = logits.map((l) => Math.exp(l - max));
          const total = p.reduce((acc, u) => acc + u, 0);
          for (let e = 0; e < dh; e++) {
            const o = h * dh + e;
            full[((b * O + o) * H + i) * W + j] = keys.reduce((acc, kk, t) => acc + (p[t] / total) * v[b][o][kk], 0);
          }
        }
      }
    }
  }
  const [Ho, Wo] = [Math.floor(H / s), Math.floor(W / s)];
  const pooled = new Float64Array(B * O * Ho * Wo);
  for (let bo = 0; bo < B * O; bo++) {
    for (let i = 0; i < Ho; i++) {
      for (let j = 0; j < Wo; j++) {
        let acc = 0;
        for (let u = 0; u < s; u++) for (let t = 0; t < s; t++) acc += full[(bo * H + i * s + u) * W + j * s + t];
        pooled[(bo * Ho + i) * Wo + j] = acc / (s * s);
      }
    }
  }
  return pooled;
}

for (const o of [
  { inChannels: 3, outChannels: 8, kernelSize: 3, numHeads: 2 },
  { inChannels: 3, outChannels: 8, kernelSize: 5, numHeads: 1, bias: true, qkScale: 0.5 },
  { inChannels: 4, outChannels: 12, kernelSize: 3, numHeads: 3, bias: true, stride: 2 },
  { inChannels: 2, outChannels: 4, kernelSize: 7, numHeads: 2, stride: 3 },
] as SASAOptions[]) {
  test(`SASA = per-pixel brute force of Eq. (3), 5×7, ${JSON.stringify(o)}`, () => assertNoLeaks(() => {
    const m = randomized(new SASA(o), o.kernelSize + o.outChannels);
    const x = randn([2, o.inChannels, 5, 7], { dtype: 'float64', seed: o.kernelSize });
    const y = noGrad(() => m.forward(x));
    const s = o.stride ?? 1;
    assert.deepEqual(y.shape, [2, o.outChannels, Math.floor(5 / s), Math.floor(7 / s)]);
    const expected = bruteForce(m, x);
    const worst = values(y).reduce((acc, u, i) => Math.max(acc, Math.abs(u - expected[i])), 0);
    assert.ok(worst < 1e-12, `max |error| ${worst}`);
    m.dispose();
  }));
}

const weightList = (w: AttentionConvWeights): Tensor[] =>
  [w.queryWeight, w.queryBias!, w.keyWeight, w.keyBias!, w.valueWeight, w.valueBias!, w.relH, w.relW];
const weightsFrom = ([queryWeight, queryBias, keyWeight, keyBias, valueWeight, valueBias, relH, relW]: Tensor[]): AttentionConvWeights =>
  ({ queryWeight, queryBias, keyWeight, keyBias, valueWeight, valueBias, relH, relW });

test('gradcheck (float64): SASA input and every parameter, stride 1 and 2', () => assertNoLeaks(() => {
  for (const stride of [1, 2]) {
    const m = randomized(new SASA({ inChannels: 2, outChannels: 4, kernelSize: 3, numHeads: 2, bias: true, stride }), 11);
    const x = randn([2, 2, 4, 5], { dtype: 'float64', seed: 12 }).requiresGrad_();
    const inputs = [x, ...weightList(m.weights()).map((t) => t.detach().requiresGrad_())];
    assertGradcheck((xi, ...w) => standAloneSelfAttention2d(xi, weightsFrom(w), m.config()), inputs, { atol: 1e-7, rtol: 1e-5 });
    m.dispose();
  }
}));

test('gradcheck (float64): AttentionConvCompat input and every parameter', () => assertNoLeaks(() => {
  const m = randomized(new AttentionConvCompat({ inChannels: 2, outChannels: 4, kernelSize: 3, padding: 1, bias: true }), 13);
  const x = randn([2, 2, 4, 3], { dtype: 'float64', seed: 14 }).requiresGrad_();
  const inputs = [x, ...weightList(m.weights()).map((t) => t.detach().requiresGrad_())];
  assertGradcheck((xi, ...w) => attentionConvCompat(xi, weightsFrom(w), 3), inputs, { atol: 1e-7, rtol: 1e-5 });
  m.dispose();
}));

test('AttentionConvCompat is not SASA: groups change nothing, and SASA on its weights differs', () => assertNoLeaks(() => {
  const one = randomized(new AttentionConvCompat({ inChannels: 3, outChannels: 8, kernelSize: 3, padding: 1, bias: true }), 15);
  const four = new AttentionConvCompat({ inChannels: 3, outChannels: 8, kernelSize: 3, padding: 1, groups: 4, bias: true }).to('float64');
  four.loadStateDict(one.stateDict());
  const x = randn([1, 3, 4, 4], { dtype: 'float64', seed: 16 });
  const y1 = noGrad(() => one.forward(x));
  assert.ok(noGrad(() => four.forward(x)).equal(y1));
  // SASA on the same weights: per-head softmax over a masked window, a different function.
  const sasa = new SASA({ inChannels: 3, outChannels: 8, kernelSize: 3, numHeads: 4, bias: true }).to('float64');
  sasa.loadStateDict(one.stateDict());
  const ys = noGrad(() => sasa.forward(x));
  assert.ok(!ys.allclose(y1));
  one.dispose();
  four.dispose();
  sasa.dispose();
}));

test('batch 1 = a row of batch 2; odd and even sizes; train = eval (no dropout)', () => assertNoLeaks(() => {
  const m = randomized(new SASA({ inChannels: 4, outChannels: 8, kernelSize: 3, numHeads: 2, stride: 2 }), 17);
  for (const [H, W] of [[2, 2], [4, 6], [7, 5], [3, 8]]) {
    const x = randn([2, 4, H, W], { dtype: 'float64', seed: H * W });
    const both = noGrad(() => m.eval().forward(x));
    assert.deepEqual(both.shape, [2, 8, Math.floor(H / 2), Math.floor(W / 2)]);
    assert.ok(noGrad(() => m.forward(x.narrow(0, 0, 1))).allclose(both.narrow(0, 0, 1), { rtol: 0, atol: 1e-12 }));
    assert.ok(noGrad(() => m.train().forward(x)).equal(both));
  }
  const compat = randomized(new AttentionConvCompat({ inChannels: 4, outChannels: 8, kernelSize: 5, padding: 2 }), 18);
  const x = randn([2, 4, 3, 6], { dtype: 'float64', seed: 19 });
  const both = noGrad(() => compat.forward(x));
  assert.deepEqual(both.shape, [2, 8, 3, 6]);
  assert.ok(noGrad(() => compat.forward(x.narrow(0, 1, 1))).allclose(both.narrow(0, 1, 1), { rtol: 0, atol: 1e-12 }));
  m.dispose();
  compat.dispose();
}));

test('SASA and AttentionConvCompat share leaderj1001\'s state-dict names, shapes and init', () => {
  const expected = {
    'query_conv.weight': [16, 8, 1, 1], 'key_conv.weight': [16, 8, 1, 1], 'value_conv.weight': [16, 8, 1, 1],
    rel_h: [8, 1, 1, 3, 1], rel_w: [8, 1, 1, 1, 3],
  };
  manualSeed(0); // the init statistics below are then fixed numbers, not a flaky draw
  const sasa = new SASA({ inChannels: 8, outChannels: 16, kernelSize: 3, numHeads: 4 });
  const compat = new AttentionConvCompat({ inChannels: 8, outChannels: 16, kernelSize: 3, padding: 1, groups: 4 });
  for (const m of [sasa, compat]) {
    const shapes = Object.fromEntries([...m.stateDict()].map(([k, t]) => [k, t.shape]));
    assert.deepEqual(Object.keys(shapes).sort(), Object.keys(expected).sort());
    assert.deepEqual(shapes, expected);
  }
  // kaiming_normal(fan_out = 16, relu): std √(2/16) = 0.354; rel_* N(0, 1).
  assert.ok(Math.abs((sasa.queryConv.weight.std().item() as number) - 0.354) < 0.1);
  assert.ok(Math.abs((sasa.relH.std().item() as number) - 1) < 0.5);
  const biased = new SASA({ inChannels: 8, outChannels: 16, kernelSize: 3, bias: true });
  assert.deepEqual(biased.stateDict().get('key_conv.bias')?.shape, [16]);
  sasa.dispose();
  compat.dispose();
  biased.dispose();
});

test('invalid options throw RangeError/TypeError naming the constraint', () => {
  const base = { inChannels: 4, outChannels: 8, kernelSize: 3 };
  assert.throws(() => new SASA({ ...base, kernelSize: 4 }), /RangeError: SASA: kernelSize must be odd .*got 4; use 5/);
  assert.throws(() => new SASA({ ...base, numHeads: 3 }), /RangeError: SASA: outChannels\/numHeads must be an even integer .*got 8\/3/);
  assert.throws(() => new SASA({ ...base, numHeads: 8 }), /outChannels\/numHeads must be an even integer .*got 8\/8/);
  assert.throws(() => new SASA({ ...base, stride: 0 }), /RangeError: SASA: stride must be ≥ 1, got 0/);
  assert.throws(() => new SASA({ ...base, qkScale: -1 }), /RangeError: SASA: qkScale must be a positive finite number/);
  assert.throws(() => new SASA({ ...base, bias: 'no' as unknown as boolean }), /TypeError: SASA: bias must be true or false/);
  assert.throws(() => new SASA({ ...base, inChannels: 2.5 }), /TypeError: SASA: inChannels must be an integer/);
  const compat = { ...base, padding: 1 };
  assert.throws(() => new AttentionConvCompat({ ...compat, stride: 2 }), /RangeError: AttentionConvCompat: stride 2 is not supported .*average-pool after/);
  assert.throws(() => new AttentionConvCompat({ ...compat, padding: 0 }), /RangeError: .*padding must be \(kernelSize − 1\)\/2 .*got kernelSize 3, padding 0.*pass padding 1/);
  assert.throws(() => new AttentionConvCompat({ ...compat, kernelSize: 4, padding: 2 }), /padding must be \(kernelSize − 1\)\/2 with an odd kernelSize/);
  assert.throws(() => new AttentionConvCompat({ ...compat, outChannels: 7 }), /RangeError: .*outChannels 7 must be even and divisible by groups 1/);
  assert.throws(() => new AttentionConvCompat({ ...compat, groups: 3 }), /outChannels 8 must be even and divisible by groups 3/);
});

test('invalid inputs throw ShapeError naming the layout', () => assertNoLeaks(() => {
  const sasa = new SASA({ inChannels: 4, outChannels: 8, kernelSize: 3, stride: 2 });
  assert.throws(() => sasa.forward(randn([2, 5, 5, 4])), (e: Error) => e instanceof ShapeError &&
    /SASA: expected input \(B, inChannels=4, H, W\), got shape \[2, 5, 5, 4\]/.test(e.message));
  assert.throws(() => sasa.forward(randn([4, 5, 5])), /ShapeError: SASA: .*got shape \[4, 5, 5\]/);
  assert.throws(() => sasa.forward(randn([1, 4, 1, 5])), /ShapeError: SASA: H and W must be ≥ stride 2 to average-pool, got 1×5/);
  const compat = new AttentionConvCompat({ inChannels: 4, outChannels: 8, kernelSize: 3, padding: 1 });
  assert.throws(() => compat.forward(randn([2, 3, 5, 5])), /ShapeError: AttentionConvCompat: expected input \(B, inChannels=4, H, W\)/);
  sasa.dispose();
  compat.dispose();
}));
