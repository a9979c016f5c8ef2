/**
 * window-gather.ts: the window starts the fused kernel takes agree with the index tensors of the
 * composite path, and — where the addon and macs.ts have the fused kernel — the fused window
 * attention equals the gathered one (values and float64 gradients), chunked or not.
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
