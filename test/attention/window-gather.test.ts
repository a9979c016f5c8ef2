/**
 * window-gather.ts: the window starts the fused kernel takes agree with the index tensors of the
 * composite path, and — where the addon and macs.ts have the fused kernel — the fused window
 * attention equals the gathered one (values and float64 gradients), chunked or not; the fused
 * window softmax attention (window_softmax.cc) equals the gathered softmax attention with a bias,
 * passes a gradcheck, gives the same bits at 1 and 2 threads and rejects bad arguments.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  fusedWindowAttention, fusedWindowsActive, gatherWindows, windowIndex, windowStarts, type WindowPlacement,
} from '../../src/attention/window-gather.js';
import { assertGradcheck } from '../../src/autograd/gradcheck.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { randn } from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { atOneAndTwoThreads } from '../support/threads.js';

const cases: { h: number; w: number; k: number; d: number; placement: WindowPlacement }[] = [
  { h: 5, w: 6, k: 3, d: 1, placement: 'centred' },
  { h: 7, w: 5, k: 5, d: 1, placement: 'centred' },
  { h: 6, w: 7, k: 3, d: 1, placement: 'clamped' },
  { h: 8, w: 7, k: 3, d: 2, placement: 'clamped' },
];

const values = (t: Tensor): number[] => Array.from(t.contiguous().dataSync() as ArrayLike<number | bigint>, Number);

for (const c of cases) {
  test(`windowStarts = first key of windowIndex, ${JSON.stringify(c)}`, () => assertNoLeaks(() => {
    const o = { kernelSize: c.k, dilation: c.d, placement: c.placement };
    const s = windowStarts(c.h, c.w, o);
    const keys = values(windowIndex(c.h, c.w, o).keys);
    const rows = values(s.rows);
    const cols = values(s.cols);
    assert.equal(rows.length, c.h);
    assert.equal(cols.length, c.w);
    for (let i = 0; i < c.h; i++) {
      for (let j = 0; j < c.w; j++) {
        for (let t = 0; t < c.k * c.k; t++) {
          const y = rows[i] + Math.floor(t / c.k) * c.d;
          const x = cols[j] + (t % c.k) * c.d;
          const inside = y >= 0 && y < c.h && x >= 0 && x < c.w;
          assert.equal(keys[(i * c.w + j) * c.k * c.k + t], inside ? y * c.w + x : 0);
        }
      }
    }
  }));
}

/** softmax(q·k_window) · v_window through the index gather (the composite path). */
function gathered(q: Tensor, key: Tensor, value: Tensor, h: number, w: number, o: (typeof cases)[number]): Tensor {
  const index = windowIndex(h, w, { kernelSize: o.k, dilation: o.d, placement: o.placement });
  const T = o.k * o.k;
  let logits = aten.einsum('bnpd,bnptd->bnpt', [q, gatherWindows(key, index.keys, T)]);
  if (index.valid) logits = logits.maskedFill(index.valid.logicalNot(), -Infinity);
  return aten.einsum('bnpt,bnptd->bnpd', [logits.softmax(-1), gatherWindows(value, index.keys, T)]);
}

function fused(q: Tensor, key: Tensor, value: Tensor, h: number, w: number, o: (typeof cases)[number], chunk?: number): Tensor {
  const opts = { kernelSize: o.k, dilation: o.d, placement: o.placement };
  const valid = windowIndex(h, w, opts).valid;
  const weights = (qk: Tensor) => (valid ? qk.maskedFill(valid.logicalNot(), -Infinity) : qk).softmax(-1);
  return fusedWindowAttention(q, key, value, h, w, windowStarts(h, w, opts), weights, chunk);
}

test('the fused window kernels are active on CPU by default', () => {
  assert.equal(fusedWindowsActive('cpu'), true);
});

for (const c of cases) {
  test(`fused window attention = gathered, chunked and not, ${JSON.stringify(c)}`, () => assertNoLeaks(() => {
    const [B, nh, dh] = [3, 2, 4];
    const make = (seed: number) => randn([B, nh, c.h * c.w, dh], { dtype: 'float64', seed });
    const [q, key, value] = [make(1), make(2), make(3)];
    const expected = values(gathered(q, key, value, c.h, c.w, c));
    for (const chunk of [undefined, nh * c.h * c.w * c.k * c.k]) {   // one chunk; one image per chunk
      const got = values(fused(q, key, value, c.h, c.w, c, chunk));
      const worst = got.reduce((acc, u, i) => Math.max(acc, Math.abs(u - expected[i])), 0);
      assert.ok(worst < 1e-12, `chunk ${chunk}: max |error| ${worst}`);
    }
  }));
}

test('gradcheck (float64): fused window attention, q, key and value, two chunks', () => assertNoLeaks(() => {
  const c = cases[3];
  const make = (seed: number) => randn([2, 2, c.h * c.w, 3], { dtype: 'float64', seed }).requiresGrad_();
  const chunk = 2 * c.h * c.w * c.k * c.k;
  assertGradcheck((q, key, value) => fused(q, key, value, c.h, c.w, c, chunk), [make(4), make(5), make(6)],
    { atol: 1e-7, rtol: 1e-5 });
  assertGradcheck((q, key, value) => fused(q, key, value, 5, 6, cases[0]), [4, 5, 6].map((s) =>
    randn([2, 2, 30, 4], { dtype: 'float64', seed: s }).requiresGrad_()), { atol: 1e-7, rtol: 1e-5 });
}));

// ---- vicinity::window_softmax_attention: q·k + bias, softmax (in-map keys), ·v in one kernel ----

/** The same through the gather: bias (nb, H·W, T) broadcast over the n with n mod nb. */
function gatheredWithBias(q: Tensor, key: Tensor, value: Tensor, bias: Tensor | null, o: (typeof cases)[number]): Tensor {
  const index = windowIndex(o.h, o.w, { kernelSize: o.k, dilation: o.d, placement: o.placement });
  const T = o.k * o.k;
  const [B, nh, P] = q.shape;
  let logits = aten.einsum('bnpd,bnptd->bnpt', [q, gatherWindows(key, index.keys, T)]);   // (B, nh, P, T)
  if (bias) logits = logits.reshape([B * nh / bias.shape[0], bias.shape[0], P, T]).add(bias).reshape([B, nh, P, T]);
  if (index.valid) logits = logits.maskedFill(index.valid.logicalNot(), -Infinity);
  return aten.einsum('bnpt,bnptd->bnpd', [logits.softmax(-1), gatherWindows(value, index.keys, T)]);
}

function softmaxKernel(q: Tensor, key: Tensor, value: Tensor, bias: Tensor | null, o: (typeof cases)[number], embed: Tensor | null = null): Tensor {
  const [B, nh, P, dh] = q.shape;
  const s = windowStarts(o.h, o.w, { kernelSize: o.k, dilation: o.d, placement: o.placement });
  const grid = (t: Tensor) => t.reshape([B * nh, o.h, o.w, dh]);
  const b = bias ? bias.reshape([bias.shape[0], o.h, o.w, o.k * o.k]) : null;
  return aten.vicinity_window_softmax_attention(grid(q), grid(key), grid(value), s.rows, s.cols, b, embed, o.k, o.d)
    .reshape([B, nh, P, dh]);
}

for (const c of cases) {
  for (const [dh, nb] of [[4, 0], [5, 2], [8, 6]] as const) {
    test(`window_softmax_attention = gathered softmax attention (float64, values and gradients), dh ${dh}, bias groups ${nb}, ${JSON.stringify(c)}`, () => assertNoLeaks(() => {
      const [B, nh, P, T] = [3, 2, c.h * c.w, c.k * c.k];
      const make = (seed: number) => randn([B, nh, P, dh], { dtype: 'float64', seed }).requiresGrad_();
      const [q, key, value] = [make(1), make(2), make(3)];
      const bias = nb ? randn([nb, P, T], { dtype: 'float64', seed: 4 }).requiresGrad_() : null;
      const leaves = bias ? [q, key, value, bias] : [q, key, value];
      const r = randn([B, nh, P, dh], { dtype: 'float64', seed: 5 });
      const run = (f: typeof softmaxKernel) => {
        const y = f(q, key, value, bias, c);
        y.mul(r).sum().backward();
        const out = [y.detach(), ...leaves.map((t) => (t.grad as Tensor).clone())];
        for (const t of leaves) t.grad = null;
        return out;
      };
      const got = run(softmaxKernel);
      const expected = run(gatheredWithBias);
      got.forEach((t, i) => {
        const worst = t.sub(expected[i]).abs().max().item() as number;
        assert.ok(worst < 1e-12, `tensor ${i}: max |error| ${worst}`);
      });
    }));
  }
}

test('gradcheck (float64): window_softmax_attention, q, key, value and bias', () => assertNoLeaks(() => {
  for (const c of [cases[1], cases[3]]) {
    const P = c.h * c.w;
    const make = (seed: number) => randn([2, 2, P, 3], { dtype: 'float64', seed }).requiresGrad_();
    const bias = randn([2, P, c.k * c.k], { dtype: 'float64', seed: 9 }).requiresGrad_();
    assertGradcheck((q, key, value, b) => softmaxKernel(q, key, value, b, c), [make(6), make(7), make(8), bias],
      { atol: 1e-7, rtol: 1e-5 });
  }
}));

test('window_softmax_attention with a key embedding (SASA\'s q·r) = gathered q·(k + r) attention; gradcheck', () => assertNoLeaks(() => {
  const c = cases[1];
  const [B, nh, P, T, dh] = [2, 2, c.h * c.w, c.k * c.k, 3];
  const make = (seed: number) => randn([B, nh, P, dh], { dtype: 'float64', seed }).requiresGrad_();
  const [q, key, value] = [make(1), make(2), make(3)];
  const embed = randn([nh, T, dh], { dtype: 'float64', seed: 4 }).requiresGrad_();
  const viaBias = (qq: Tensor, kk: Tensor, vv: Tensor, e: Tensor) =>   // q·r as a per-query bias
    gatheredWithBias(qq, kk, vv, aten.einsum('bnpd,ntd->bnpt', [qq, e]).reshape([B * nh, P, T]), c);
  const got = softmaxKernel(q, key, value, null, c, embed);
  const worst = got.sub(viaBias(q, key, value, embed)).abs().max().item() as number;
  assert.ok(worst < 1e-12, `max |error| ${worst}`);
  assertGradcheck((qq, kk, vv, e) => softmaxKernel(qq, kk, vv, null, c, e), [q, key, value, embed], { atol: 1e-7, rtol: 1e-5 });
}));

test('window_softmax_attention: the same bits at 1 and 2 threads (values and gradients)', () => assertNoLeaks(() => {
  const c = { h: 12, w: 11, k: 5, d: 1, placement: 'clamped' as const };
  const [B, nh, P] = [4, 4, c.h * c.w];
  const make = (seed: number) => randn([B, nh, P, 8], { seed }).requiresGrad_();
  const [q, key, value] = [make(1), make(2), make(3)];
  const bias = randn([nh, P, 25], { seed: 4 }).requiresGrad_();
  const embed = randn([nh, 25, 8], { seed: 5 }).requiresGrad_();
  const leaves = [q, key, value, bias, embed];
  const [one, two] = atOneAndTwoThreads(() => {
    const y = softmaxKernel(q, key, value, bias, c, embed);
    y.sum().backward();
    const out = [y.detach(), ...leaves.map((t) => (t.grad as Tensor).clone())].map(values);
    for (const t of leaves) t.grad = null;
    return out;
  });
  assert.deepEqual(one, two);
}));

test('window_softmax_attention: bad arguments throw errors naming the shapes', () => assertNoLeaks(() => {
  const c = cases[0];
  const s = windowStarts(c.h, c.w, { kernelSize: 3, placement: 'centred' });
  const q = randn([4, c.h, c.w, 4]);
  const call = (o: { value?: Tensor; bias?: Tensor }) => () =>
    aten.vicinity_window_softmax_attention(q, q, o.value ?? q, s.rows, s.cols, o.bias ?? null, null, 3, 1);
  assert.throws(call({ value: randn([4, c.h, c.w, 5]) }), /window_softmax_attention: value must have key's shape \[4, 5, 6, 4\], got \[4, 5, 6, 5\]/);
  assert.throws(call({ bias: randn([3, c.h, c.w, 9]) }), /window_softmax_attention: bias must be \(nb, H, W, k²\) = \(nb, 5, 6, 9\) with nb dividing N = 4, got \[3, 5, 6, 9\]/);
  assert.throws(call({ bias: randn([2, c.h, c.w, 8]) }), /bias must be \(nb, H, W, k²\)/);
}));

test('window_softmax_attention reads (B, heads, H, W, C) views in place: the same values and gradients as (N, H, W, C) copies; output laid out as value', () => assertNoLeaks(() => {
  const c = { h: 5, w: 6, k: 3, d: 1, placement: 'clamped' as const };
  const [B, nh, dh, T] = [2, 3, 4, 9];
  const s = windowStarts(c.h, c.w, { kernelSize: c.k, dilation: c.d, placement: c.placement });
  // q, k, v as NeighborhoodAttention2d takes them: (B, nh, H, W, dh) views of one (B, H, W, 3·nh·dh) projection.
  const qkv = randn([B, c.h, c.w, 3 * nh * dh], { dtype: 'float64', seed: 1 }).requiresGrad_();
  const bias = randn([nh, c.h, c.w, T], { dtype: 'float64', seed: 2 });
  const r = randn([B, nh, c.h, c.w, dh], { dtype: 'float64', seed: 3 });
  const run = (views: boolean) => {
    const parts = qkv.reshape([B, c.h, c.w, 3, nh, dh]).permute([3, 0, 4, 1, 2, 5]); // (3, B, nh, H, W, dh)
    const [q, key, value] = [0, 1, 2].map((i) => parts.select(0, i));
    const flat = (t: Tensor) => (views ? t : t.contiguous().reshape([B * nh, c.h, c.w, dh]));
    const y = aten.vicinity_window_softmax_attention(flat(q), flat(key), flat(value), s.rows, s.cols, bias, null, c.k, c.d)
      .reshape([B, nh, c.h, c.w, dh]);
    if (views) assert.ok(y.permute([0, 2, 3, 1, 4]).isContiguous, 'the output is laid out (B, H, W, nh, dh), as value');
    y.mul(r).sum().backward();
    const out = [y.detach(), (qkv.grad as Tensor).clone()];
    qkv.grad = null;
    return out;
  };
  const [got, expected] = [run(true), run(false)];
  got.forEach((t, i) => assert.deepEqual(values(t), values(expected[i]), `tensor ${i}`));
}));

test('window_softmax_attention_qkv (packed qkv) = window_softmax_attention of its views: same bits, gradient packed; bias gradient too', () => assertNoLeaks(() => {
  const c = { h: 5, w: 7, k: 3, d: 1, placement: 'clamped' as const };
  const [B, nh, dh, T] = [2, 3, 4, 9];
  const s = windowStarts(c.h, c.w, { kernelSize: c.k, dilation: c.d, placement: c.placement });
  const qkv = randn([B, c.h, c.w, 3 * nh * dh], { seed: 4 }).requiresGrad_();
  const bias = randn([nh, c.h, c.w, T], { seed: 5 }).requiresGrad_();
  const r = randn([B, nh, c.h, c.w, dh], { seed: 6 });
  const run = (packed: boolean) => {
    const parts = qkv.reshape([B, c.h, c.w, 3, nh, dh]).permute([3, 0, 4, 1, 2, 5]); // (3, B, nh, H, W, dh)
    const y = packed
      ? aten.vicinity_window_softmax_attention_qkv(qkv, nh, s.rows, s.cols, bias, c.k, c.d, 0.5)
      : aten.vicinity_window_softmax_attention(parts.select(0, 0), parts.select(0, 1), parts.select(0, 2), s.rows, s.cols, bias, null, c.k, c.d, 0.5);
    y.mul(r).sum().backward();
    const out = [y.detach(), (qkv.grad as Tensor).clone(), (bias.grad as Tensor).clone()];
    qkv.grad = null;
    bias.grad = null;
    return out;
  };
  const [packed, views] = [run(true), run(false)];
  packed.forEach((t, i) => assert.ok(t.equal(views[i]), `tensor ${i} differs`));
  assert.throws(() => aten.vicinity_window_softmax_attention_qkv(qkv.detach().narrow(3, 0, 35), nh, s.rows, s.cols, null, c.k),
    /window_softmax_attention_qkv: qkv's 35 channels must split into \[q, k, v\] × 3 heads; pass a last dimension divisible by 3·heads/);
  assert.throws(() => aten.vicinity_window_softmax_attention_qkv(qkv.detach().select(0, 0), nh, s.rows, s.cols, null, c.k),
    /window_softmax_attention_qkv: qkv must be \(B, H, W, 3·C\), got shape \[5, 7, 36\]/);
}));
