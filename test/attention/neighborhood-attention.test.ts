/**
 * NeighborhoodAttention2d (src/attention/neighborhood-attention.ts): parity with NATTEN 0.14.6
 * fixtures (forward and every gradient), a float64 per-pixel brute force written from the
 * residue-class description of the window (not NATTEN's start formula), a float64 gradcheck of
 * the input and every parameter, the window-start and bias-index rules, the contract (batch 1,
 * odd/even sizes, train/eval, NCHW entry, state-dict keys) and every error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertGradcheck } from '../../src/autograd/gradcheck.js';
import {
  NeighborhoodAttention2d, neighborhoodAttention2d, referenceBuilders, type NeighborhoodAttention2dOptions,
} from '../../src/attention/neighborhood-attention.js';
import { nattenWindowStart } from '../../src/attention/window-gather.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import { ShapeError } from '../../src/tensor/shape-error.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertParity, randomized, withFixture } from './support.js';

const KIND = 'natten.natten2d.NeighborhoodAttention2D';

for (const name of ['natten-na2d-open', 'natten-na2d-smallinput-open']) {
  test(`NeighborhoodAttention2d = NATTEN 0.14.6 NeighborhoodAttention2D (${name})`, () =>
    withFixture(name, (fixture) => assertParity(fixture, referenceBuilders, { kind: KIND, maxRelError: 1e-6 })));
}

/** A float64 layer with every parameter random and O(1), so the rpb and biases matter. */
const layer64 = (o: NeighborhoodAttention2dOptions, seed: number) => randomized(new NeighborhoodAttention2d(o), seed);

const values = (t: Tensor | null): Float64Array => (t ? (t.contiguous().dataSync() as Float64Array) : new Float64Array(0));

/** Window start per the residue-class reading: clamp the k-window on i's class mod d. */
function residueStart(i: number, length: number, k: number, d: number): number {
  const r = i % d;
  const classLength = Math.floor((length - r - 1) / d) + 1;
  const p = Math.floor(i / d);
  return r + Math.min(Math.max(p - (k >> 1), 0), classLength - k) * d;
}

/** y = x Wᵀ + b for one token. */
function affine(x: ArrayLike<number>, w: Float64Array, b: Float64Array | null, out: number, inp: number): Float64Array {
  const y = new Float64Array(out);
  for (let o = 0; o < out; o++) {
    let s = b && b.length ? b[o] : 0;
    for (let c = 0; c < inp; c++) s += w[o * inp + c] * x[c];
    y[o] = s;
  }
  return y;
}

/** NATTEN's computation one query at a time, from the description in reference-layers.md §6. */
function bruteForce(m: NeighborhoodAttention2d, x: Tensor): Float64Array {
  const [B, H0, W0, C] = x.shape;
  const { numHeads: nh, headDim: dh, kernelSize: k, dilation: d, scale } = m;
  const [H, W] = [Math.max(H0, k * d), Math.max(W0, k * d)];
  const xs = values(x);
  const [qw, qb, rpb, pw, pb] = [values(m.qkv.weight), values(m.qkv.bias), values(m.rpb), values(m.proj.weight), values(m.proj.bias)];
  const out = new Float64Array(B * H0 * W0 * C);
  const span = 2 * k - 1;
  for (let b = 0; b < B; b++) {
    const qkv: Float64Array[] = [];
    for (let y = 0; y < H; y++) {
      for (let z = 0; z < W; z++) {
        const token = y < H0 && z < W0 ? xs.subarray(((b * H0 + y) * W0 + z) * C, ((b * H0 + y) * W0 + z + 1) * C) : new Float64Array(C);
        qkv.push(affine(token, qw, qb, 3 * C, C));
      }
    }
    for (let i = 0; i < H0; i++) {
      for (let j = 0; j < W0; j++) {
        const [ri, rj] = [residueStart(i, H, k, d), residueStart(j, W, k, d)];
        const mixed = new Float64Array(C);
        for (let h = 0; h < nh; h++) {
          const logits: number[] = [];
          const keys: number[] = [];
          for (let a = 0; a < k; a++) {
            for (let c = 0; c < k; c++) {
              const [ky, kx] = [ri + a * d, rj + c * d];
              let s = 0;
              for (let e = 0; e < dh; e++) s += scale * qkv[i * W + j][h * dh + e] * qkv[ky * W + kx][C + h * dh + e];
              logits.push(s + rpb[(h * span + (ky - i) / d + k - 1) * span + (kx - j) / d + k - 1]);
              keys.push(ky * W + kx);
            }
          }
          const max = Math.max(...logits);
          const p = logits.map((l) => Math.exp(l - max));
          const total = p.reduce((s, v) => s + v, 0);
          for (let e = 0; e < dh; e++) {
            mixed[h * dh + e] = keys.reduce((s, key, t) => s + (p[t] / total) * qkv[key][2 * C + h * dh + e], 0);
          }
        }
        out.set(affine(mixed, pw, pb, C, C), ((b * H0 + i) * W0 + j) * C);
      }
    }
  }
  return out;
}

for (const [H, W, k, d] of [[5, 7, 3, 1], [5, 7, 5, 1], [5, 7, 3, 2], [5, 7, 5, 2], [7, 8, 3, 2], [9, 6, 3, 3]]) {
  test(`NeighborhoodAttention2d = per-pixel brute force, ${H}×${W}, kernel ${k}, dilation ${d}`, () => assertNoLeaks(() => {
    const m = layer64({ dim: 6, numHeads: 2, kernelSize: k, dilation: d }, 10 * k + d);
    const x = randn([2, H, W, 6], { dtype: 'float64', seed: H * W + k });
    const y = noGrad(() => m.forward(x));
    assert.deepEqual(y.shape, [2, H, W, 6]);
    const expected = bruteForce(m, x);
    const got = values(y);
    const worst = got.reduce((w, v, i) => Math.max(w, Math.abs(v - expected[i])), 0);
    assert.ok(worst < 1e-12, `max |error| ${worst}`);
    m.dispose();
  }));
}

test('nattenWindowStart = the residue-class clamp; the rpb row = NATTEN get_pb_start', () => {
  const pbStart = (i: number, L: number, k: number, d: number): number => { // csrc/cpu, v0.14.6
    const ns = k >> 1;
    if (d <= 1) return ns + (i < ns ? ns - i : 0) + (i + ns >= L ? L - i - 1 - ns : 0);
    if (i - ns * d < 0) return k - 1 - Math.floor(i / d);
    if (i + ns * d >= L) return Math.floor((L - i - 1) / d);
    return ns;
  };
  for (const k of [3, 5, 7]) {
    for (const d of [1, 2, 3, 4]) {
      for (let L = k * d; L <= k * d + 2 * d + 3; L++) {
        for (let i = 0; i < L; i++) {
          const start = nattenWindowStart(i, L, k, d);
          assert.equal(start, residueStart(i, L, k, d), `start i=${i} L=${L} k=${k} d=${d}`);
          assert.ok(start >= 0 && start + (k - 1) * d < L && (start - i) % d === 0);
          assert.equal((start - i) / d + k - 1, pbStart(i, L, k, d), `bias row i=${i} L=${L} k=${k} d=${d}`);
        }
      }
    }
  }
});

test('gradcheck (float64): input, qkv, rpb and proj, plain and padded-dilated', () => assertNoLeaks(() => {
  for (const [o, shape] of [
    [{ dim: 4, numHeads: 2, kernelSize: 3 }, [2, 4, 5, 4]],
    [{ dim: 4, numHeads: 2, kernelSize: 3, dilation: 2, qkScale: 0.7 }, [1, 5, 4, 4]], // padded to 6×6
  ] as [NeighborhoodAttention2dOptions, number[]][]) {
    const m = layer64(o, 3);
    const x = randn(shape, { dtype: 'float64', seed: 4 });
    const w = m.weights();
    const inputs = [x, w.qkvWeight, w.qkvBias!, w.rpb!, w.projWeight, w.projBias!].map((t) => t.detach().requiresGrad_());
    const fn = (xi: Tensor, qkvWeight: Tensor, qkvBias: Tensor, rpb: Tensor, projWeight: Tensor, projBias: Tensor) =>
      neighborhoodAttention2d(xi, { qkvWeight, qkvBias, rpb, projWeight, projBias }, m.config());
    assertGradcheck(fn, inputs, { atol: 1e-7, rtol: 1e-5 });
    m.dispose();
  }
}));

test('batch 1 = a row of batch 2; odd and even sizes keep their shape', () => assertNoLeaks(() => {
  const m = layer64({ dim: 8, numHeads: 4, kernelSize: 3 }, 5);
  for (const [H, W] of [[3, 3], [4, 6], [7, 5], [2, 9]]) {
    const x = randn([2, H, W, 8], { dtype: 'float64', seed: H + W });
    const both = noGrad(() => m.forward(x));
    const one = noGrad(() => m.forward(x.narrow(0, 1, 1)));
    assert.deepEqual(both.shape, [2, H, W, 8]);
    assert.ok(one.allclose(both.narrow(0, 1, 1), { rtol: 0, atol: 1e-12 }), `${H}×${W}`);
  }
  m.dispose();
}));

test('train and eval: identical without dropout; attnDrop/projDrop act only in train mode', () => assertNoLeaks(() => {
  const x = randn([2, 5, 5, 8], { dtype: 'float64', seed: 6 });
  const plain = layer64({ dim: 8, numHeads: 2, kernelSize: 3 }, 7);
  const evalOut = noGrad(() => plain.eval().forward(x));
  assert.ok(noGrad(() => plain.train().forward(x)).equal(evalOut));
  const dropped = layer64({ dim: 8, numHeads: 2, kernelSize: 3, attnDrop: 0.5, projDrop: 0.5 }, 7);
  assert.ok(noGrad(() => dropped.eval().forward(x)).equal(evalOut));
  assert.ok(!noGrad(() => dropped.train().forward(x)).allclose(evalOut));
  plain.dispose();
  dropped.dispose();
}));

test('forwardNchw = forward between permutes; backward reaches every parameter', () => assertNoLeaks(() => {
  const m = layer64({ dim: 4, numHeads: 1, kernelSize: 5 }, 8);
  const x = randn([2, 4, 6, 5], { dtype: 'float64', seed: 9 });
  const nchw = m.forwardNchw(x);
  assert.deepEqual(nchw.shape, [2, 4, 6, 5]);
  assert.ok(nchw.allclose(m.forward(x.permute([0, 2, 3, 1])).permute([0, 3, 1, 2]), { rtol: 0, atol: 1e-14 }));
  nchw.sum().backward();
  for (const [name, p] of m.namedParameters()) assert.ok(p.grad && (p.grad.abs().sum().item() as number) > 0, name);
  m.dispose();
}));

test('state dict keys and shapes are NATTEN\'s; bias: false and qkvBias: false drop rpb and qkv.bias', () => {
  manualSeed(0); // the init statistics below are then fixed numbers, not a flaky draw
  const m = new NeighborhoodAttention2d({ dim: 16, numHeads: 2, kernelSize: 7 });
  const shapes = Object.fromEntries([...m.stateDict()].map(([k, t]) => [k, t.shape]));
  assert.deepEqual(shapes, {
    'qkv.weight': [48, 16], 'qkv.bias': [48], rpb: [2, 13, 13], 'proj.weight': [16, 16], 'proj.bias': [16],
  });
  assert.ok((m.rpb!.abs().max().item() as number) <= 2 && (m.rpb!.std().item() as number) < 0.05); // trunc_normal(.02)
  const bare = new NeighborhoodAttention2d({ dim: 16, numHeads: 2, kernelSize: 3, bias: false, qkvBias: false });
  assert.deepEqual([...bare.stateDict().keys()], ['qkv.weight', 'proj.weight', 'proj.bias']);
  const y = noGrad(() => bare.forward(randn([1, 4, 4, 16], { seed: 1 })));
  assert.deepEqual(y.shape, [1, 4, 4, 16]);
  m.dispose();
  bare.dispose();
});

test('invalid options throw RangeError/TypeError naming the constraint', () => {
  const base = { dim: 8, numHeads: 2, kernelSize: 3 };
  assert.throws(() => new NeighborhoodAttention2d({ ...base, kernelSize: 4 }), /RangeError: NeighborhoodAttention2d: kernelSize must be odd and > 1 \(NATTEN 0\.14\), got 4; use 5/);
  assert.throws(() => new NeighborhoodAttention2d({ ...base, kernelSize: 1 }), /kernelSize must be odd and > 1.*got 1; use 3/);
  assert.throws(() => new NeighborhoodAttention2d({ ...base, numHeads: 3 }), /RangeError: .*dim \(8\) must be divisible by numHeads \(3\)/);
  assert.throws(() => new NeighborhoodAttention2d({ ...base, dilation: 0 }), /RangeError: .*dilation must be ≥ 1, got 0/);
  assert.throws(() => new NeighborhoodAttention2d({ ...base, dilation: 1.5 }), /TypeError: .*dilation must be an integer/);
  assert.throws(() => new NeighborhoodAttention2d({ ...base, qkScale: 0 }), /RangeError: .*qkScale must be a positive finite number, got 0/);
  assert.throws(() => new NeighborhoodAttention2d({ ...base, attnDrop: 1.5 }), /RangeError: .*attnDrop must be in \[0, 1\], got 1\.5/);
  assert.throws(() => new NeighborhoodAttention2d({ ...base, projDrop: -0.1 }), /projDrop must be in \[0, 1\]/);
  assert.throws(() => new NeighborhoodAttention2d({ ...base, bias: 1 as unknown as boolean }), /TypeError: .*bias must be true or false/);
  assert.throws(() => new NeighborhoodAttention2d({ ...base, dim: 0 }), /dim must be ≥ 1, got 0/);
});

test('invalid inputs throw ShapeError naming the layout', () => assertNoLeaks(() => {
  const m = new NeighborhoodAttention2d({ dim: 8, numHeads: 2, kernelSize: 3 });
  assert.throws(() => m.forward(randn([2, 8, 5, 5])), (e: Error) => e instanceof ShapeError &&
    /expected input \(B, H, W, dim=8\) \(channels last\), got shape \[2, 8, 5, 5\]; for \(B, C, H, W\) call forwardNchw\(\)/.test(e.message));
  assert.throws(() => m.forward(randn([5, 5, 8])), /ShapeError: .*got shape \[5, 5, 8\]/);
  assert.throws(() => m.forwardNchw(randn([2, 5, 5, 8])), /ShapeError: .*forwardNchw: expected input \(B, dim=8, H, W\), got shape \[2, 5, 5, 8\]/);
  m.dispose();
}));

test('referenceBuilders maps NATTEN\'s snake_case ctor, None meaning the default', () => {
  const m = referenceBuilders[KIND]({
    dim: 12, num_heads: 3, kernel_size: 5, dilation: null, bias: false, qkv_bias: true, qk_scale: null, attn_drop: 0, proj_drop: 0.1,
  }) as NeighborhoodAttention2d;
  assert.deepEqual([m.dim, m.numHeads, m.kernelSize, m.dilation, m.rpb, m.projDrop], [12, 3, 5, 1, null, 0.1]);
  assert.equal(m.scale, 0.5);
  m.dispose();
});
