/**
 * The LSAG variant-attention kernel `vicinity::lsag_variant_attention`
 * (native/kernels/lsag_variant_attention.cc), which LsagLocalAttention runs on CPU: softmax over
 * the T variants of a·z_t + c and Σ_t w_t z_t, per token and head. Checked here against the same
 * computation in plain ops (float64 to 1e-12, every gradient; float32 to float precision), for
 * 1 and 2 threads (same bits), and for bad arguments; the layer-level parity with the reference
 * order is in test/ops/fused.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertSameBitsAtOneAndTwoThreads } from '../support/threads.js';

/** softmax_t(a·z_t + c) and Σ_t w_t z_t in plain ops: a (hk, M, g, D), z (T, M, D), c (hk, M, g). */
function composite(a: Tensor, z: Tensor, c: Tensor | null): Tensor {
  const zt = z.permute([1, 0, 2]).unsqueeze(0);                    // (1, M, T, D)
  let logits = a.matmul(zt.transpose(-1, -2));                     // (hk, M, g, T)
  if (c) logits = logits.add(c.unsqueeze(-1));
  return logits.softmax(-1).matmul(zt);                            // (hk, M, g, D)
}

/** Output and ∂(Σ y ⊙ r)/∂(a, z, c) of the kernel or the composite. */
function run(fused: boolean, shapes: { hk: number; M: number; g: number; D: number; T: number }, bias: boolean, dtype: DType): Tensor[] {
  const { hk, M, g, D, T } = shapes;
  const leaves = [randn([hk, M, g, D], { seed: 1, dtype }), randn([T, M, D], { seed: 2, dtype }), randn([hk, M, g], { seed: 3, dtype })]
    .map((t) => t.requiresGrad_());
  const [a, z, c] = [leaves[0], leaves[1], bias ? leaves[2] : null];
  const y = fused ? aten.vicinity_lsag_variant_attention(a, z, c) : composite(a, z, c);
  y.mul(randn(y.shape, { seed: 4, dtype })).sum().backward();
  return [y.detach(), a.grad as Tensor, z.grad as Tensor, ...(c ? [c.grad as Tensor] : [])];
}

const geometries = [
  { hk: 1, M: 37, g: 3, D: 24, T: 18 },   // CIFAR's multi-query: one K/V head, 3 query heads
  { hk: 3, M: 20, g: 1, D: 19, T: 5 },    // ImageNet's per-head K/V; D not a multiple of the vector width
  { hk: 2, M: 9, g: 2, D: 8, T: 1 },      // one variant: weight 1
];

for (const shapes of geometries) {
  for (const bias of [true, false]) {
    test(`float64: kernel = composite, output and every gradient, ${JSON.stringify(shapes)} bias ${bias}`, () => assertNoLeaks(() => tidy(() => {
      const fused = run(true, shapes, bias, 'float64');
      const reference = run(false, shapes, bias, 'float64');
      fused.forEach((t, i) => {
        assert.deepEqual(t.shape, reference[i].shape);
        const worst = t.sub(reference[i]).abs().max().item() as number;
        assert.ok(worst < 1e-12, `output ${i}: max |kernel − composite| ${worst}`);
      });
    })));
  }
}

test('float32: kernel = composite to float precision; bit-identical for 1 and 2 threads', () => assertNoLeaks(() => tidy(() => {
  const shapes = { hk: 1, M: 300, g: 3, D: 48, T: 18 };
  const fused = run(true, shapes, true, 'float32');
  run(false, shapes, true, 'float32').forEach((t, i) => {
    const worst = t.sub(fused[i]).abs().max().item() as number;
    const scale = t.abs().max().item() as number;
    assert.ok(worst <= 2e-5 * Math.max(1, scale), `output ${i}: max |kernel − composite| ${worst} (scale ${scale})`);
  });
  assertSameBitsAtOneAndTwoThreads(() => run(true, shapes, true, 'float32'));
})));

test('bad arguments throw errors naming the shapes', () => tidy(() => {
  const a = randn([1, 6, 3, 8]);
  const z = randn([4, 6, 8]);
  assert.throws(() => aten.vicinity_lsag_variant_attention(a.reshape([6, 3, 8]), z, null),
    /lsag_variant_attention: a must be \(K\/V heads, tokens, query heads per K\/V head, D\), got shape \[6, 3, 8\]/);
  assert.throws(() => aten.vicinity_lsag_variant_attention(a, z.reshape([24, 8]), null),
    /lsag_variant_attention: z must be the variants \(T, tokens, D\), got shape \[24, 8\]/);
  assert.throws(() => aten.vicinity_lsag_variant_attention(a, randn([4, 5, 8]), null),
    /lsag_variant_attention: z has shape \[4, 5, 8\] but a has 6 tokens of width 8; pass z as \(T, 6, 8\)/);
  assert.throws(() => aten.vicinity_lsag_variant_attention(a, randn([0, 6, 8]), null), /z has no variants \(T = 0\)/);
  assert.throws(() => aten.vicinity_lsag_variant_attention(a, z, randn([1, 6, 2])),
    /lsag_variant_attention: bias must be \[1, 6, 3\] \(a's shape without D\), got \[1, 6, 2\]/);
  assert.throws(() => aten.vicinity_lsag_variant_attention(a, z.to('float64'), null),
    /lsag_variant_attention: every input must have a's dtype Float, got Double/);
}));
