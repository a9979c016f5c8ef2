/**
 * The fused HaloAttention kernels (native/kernels/halo_attention.cc): `vicinity::halo_attention`
 * (BoTNet's MHSA) and `vicinity::halo_attention_projected` (the same with the kv projection
 * inside, which HaloAttention runs on CPU). HaloAttention's kernel equals the composite path
 * (unfolded windows, relPosLogits2d, softmax, ·v; kernel mode 'composite') in forward and every
 * gradient in float64 — padding 'none' and 'mask' (odd sizes), strided queries, the average-pool
 * stride, scalePosEmbed, halo 0, head widths that are not a multiple of 4, blocks of 196 and 256
 * queries (tiled by the kernel), a map whose ∂kv the projected op forms in several chunks — and
 * in float32 to float precision, is bit-identical across thread counts in float32, reads BoTNet's
 * grouped kv and batch-strided channel slices as it reads per-head kv maps, takes an empty batch,
 * counts the composite's MACs, and rejects bad arguments with messages naming the shapes. The
 * fixtures and float64 gradchecks of halo-attention.test.ts run through it too (kernel mode 'auto').
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countMacs } from '../../src/analysis/macs.js';
import { HaloAttention, type HaloAttentionOptions } from '../../src/attention/halo-attention.js';
import { observeOps } from '../../src/ops/call.js';
import * as F from '../../src/ops/functional.js';
import { withKernelMode } from '../../src/ops/fused.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertSameBitsAtOneAndTwoThreads } from '../support/threads.js';

/** y and ∂(Σ y ⊙ r)/∂(x, every parameter) under a kernel mode. */
function run(m: HaloAttention, x: Tensor, mode: 'auto' | 'composite'): { outputs: Tensor[]; ops: Set<string> } {
  const ops = new Set<string>();
  const xg = x.detach().requiresGrad_();
  const y = observeOps((op) => ops.add(op), () => withKernelMode(mode, () => m.forward(xg)));
  y.mul(randn(y.shape, { seed: 7, dtype: y.dtype })).sum().backward();
  const outputs = [y.detach(), xg.grad as Tensor, ...m.parameters().map((p) => (p.grad as Tensor).clone())];
  m.zeroGrad();
  return { outputs, ops };
}

const cases: [HaloAttentionOptions, number[]][] = [
  [{ dim: 16, numHeads: 2, blockSize: 4, haloSize: 1 }, [2, 16, 8, 12]],
  [{ dim: 16, numHeads: 4, blockSize: 4, haloSize: 2, qkvBias: true, scalePosEmbed: true }, [1, 16, 8, 8]],
  [{ dim: 12, numHeads: 3, dimHead: 5, blockSize: 3, haloSize: 1, padding: 'mask' }, [2, 12, 7, 5]],
  [{ dim: 8, numHeads: 2, blockSize: 4, haloSize: 1, stride: 2, padding: 'mask' }, [1, 8, 9, 6]],
  [{ dim: 8, numHeads: 2, blockSize: 4, haloSize: 1, stride: 2, avgDown: true }, [2, 8, 8, 8]],
  [{ dim: 8, numHeads: 1, blockSize: 2, haloSize: 0 }, [1, 8, 4, 6]],
  // Large blocks: the kernel tiles a block's 256 queries in rows of 128 (MHSA's geometry: block = map, halo 0) …
  [{ dim: 8, numHeads: 2, blockSize: 16, haloSize: 0 }, [1, 8, 16, 16]],
  // … and 196 queries as 128 + 68, over a masked 16×16 window.
  [{ dim: 6, numHeads: 1, dimHead: 4, blockSize: 14, haloSize: 1, padding: 'mask' }, [1, 6, 13, 15]],
  // 64 kv channels × 32×32 = 512 KiB per image in float64: ∂kv in chunks of 2 images, then 1.
  [{ dim: 32, numHeads: 2, blockSize: 8, haloSize: 2, qkvBias: true }, [3, 32, 32, 32]],
];

for (const [o, shape] of cases) {
  test(`fused = composite in float64, forward and every gradient: ${JSON.stringify(o)} on ${JSON.stringify(shape)}`, () => assertNoLeaks(() => {
    manualSeed(11);
    const m = new HaloAttention(o).to('float64');
    const x = randn(shape, { seed: 12, dtype: 'float64' });
    const fused = run(m, x, 'auto');
    const composite = run(m, x, 'composite');
    assert.ok(fused.ops.has('vicinity::halo_attention_projected'), 'the kernel ran under auto');
    assert.ok(![...composite.ops].some((op) => op.startsWith('vicinity::')), 'the composite path ran under composite');
    fused.outputs.forEach((t, i) => {
      const [worst, scale] = tidy(() => [t.sub(composite.outputs[i]).abs().max().item() as number,
        composite.outputs[i].abs().max().item() as number]);
      assert.ok(worst <= 1e-12 * Math.max(1, scale), `output ${i}: max |fused − composite| ${worst} (scale ${scale})`);
    });
    m.dispose();
  }));
}

test('float32: fused = composite to float precision (the kernel\'s vectorised exp and softmax), every case', () => assertNoLeaks(() => {
  for (const [o, shape] of cases) {
    manualSeed(21);
    const m = new HaloAttention(o);
    const x = randn(shape, { seed: 22 });
    const fused = run(m, x, 'auto');
    const composite = run(m, x, 'composite');
    fused.outputs.forEach((t, i) => {
      const [worst, scale] = tidy(() => [t.sub(composite.outputs[i]).abs().max().item() as number,
        composite.outputs[i].abs().max().item() as number]);
      assert.ok(worst <= 2e-5 * Math.max(1, scale), `${JSON.stringify(o)} output ${i}: max |fused − composite| ${worst} (scale ${scale})`);
    });
    m.dispose();
  }
}));

test('float32: bit-identical for 1 and 2 threads (forward and every input gradient of the op)', () => assertNoLeaks(() => {
  // The op itself: the layer's convolutions are libtorch's, whose own reductions may differ by thread count.
  // Geometries: [q map shape, kv map shape, table rows, heads, block, halo, mask h, mask w, grouped kv]:
  // 8 halo heads (2 × 4) with a mask; MHSA's (one 16×16 block, halo 0: 128-query tiles) over 2
  // heads with grouped kv and over 1, where the single task runs outside any parallel region and
  // the BLAS may use its own threads.
  const geometries: [number[], number[], number, number, number, number, number, number, boolean][] = [
    [[2, 4 * 8, 8, 8], [2, 4 * 16, 8, 8], 11, 4, 4, 1, 7, 6, false],
    [[1, 2 * 16, 16, 16], [1, 2 * 32, 16, 16], 31, 2, 16, 0, 0, 0, true],
    [[1, 16, 16, 16], [1, 32, 16, 16], 31, 1, 16, 0, 0, 0, false],
  ];
  for (const [qs, kvs, rows, heads, block, halo, mh, mw, grouped] of geometries) {
    const make = (shape: number[], seed: number) => randn(shape, { seed }).requiresGrad_();
    const dqk = qs[1] / heads;
    const inputs = [make(qs, 14), make(kvs, 15), make([rows, dqk], 16), make([rows, dqk], 17)];
    const r = randn([qs[0], heads * (kvs[1] / heads - dqk), qs[2], qs[3]], { seed: 18 });
    assertSameBitsAtOneAndTwoThreads(() => {
      const y = aten.vicinity_halo_attention(inputs[0], inputs[1], inputs[2], inputs[3], heads, block, halo, mh, mw, 0.35,
        false, grouped);
      y.mul(r).sum().backward();
      const out = [y.detach(), ...inputs.map((t) => (t.grad as Tensor).clone())];
      inputs.forEach((t) => t.grad?.zero_());
      return out;
    }, `geometry ${JSON.stringify(qs)}: `);
  }
  // The projected op over three chunks of one image (64 kv channels × 48×48 = 576 KiB each), with a bias.
  const [B, C, heads, dqk, H] = [3, 16, 4, 8, 48];
  const make = (shape: number[], seed: number) => randn(shape, { seed }).requiresGrad_();
  const inputs = [make([B, heads * dqk, H, H], 24), make([B, C, H, H], 25), make([2 * heads * dqk, C, 1, 1], 26),
    make([2 * heads * dqk], 27), make([15, dqk], 28), make([15, dqk], 29)];
  const r = randn([B, heads * dqk, H, H], { seed: 30 });
  assertSameBitsAtOneAndTwoThreads(() => {
    const y = aten.vicinity_halo_attention_projected(inputs[0], inputs[1], inputs[2], inputs[3], inputs[4], inputs[5], heads, 6,
      1, 0, 0, 0.35, false);
    y.mul(r).sum().backward();
    const out = [y.detach(), ...inputs.map((t) => (t.grad as Tensor).clone())];
    inputs.forEach((t) => t.grad?.zero_());
    return out;
  }, 'projected op: ');
}));

test('map layouts: grouped kv and channel slices of one qkv map (batch-strided, read in place) = per-head kv; expanded ∂out; float64', () => assertNoLeaks(() => tidy(() => {
  // BoTNet's qkv map [q all heads | k all heads | v all heads] against the same values handed over
  // contiguous with per-head [k | v] channels (HaloAttn's layout): output and every gradient.
  const [B, nh, dqk, dv, H, W, block, halo] = [3, 2, 3, 4, 6, 6, 3, 1];
  const rows = 2 * (block + 2 * halo) - 1;
  const qkv = randn([B, nh * (2 * dqk + dv), H, W], { seed: 31, dtype: 'float64' }).requiresGrad_();
  const tables = [randn([rows, dqk], { seed: 32, dtype: 'float64' }), randn([rows, dqk], { seed: 33, dtype: 'float64' })];
  const r = randn([B, nh * dv, H, W], { seed: 34, dtype: 'float64' });
  const [q, kv] = qkv.split([nh * dqk, nh * (dqk + dv)], 1);
  assert.ok(!q.isContiguous && !kv.isContiguous, 'the slices are batch-strided views');
  const grouped = aten.vicinity_halo_attention(q, kv, tables[0], tables[1], nh, block, halo, 0, 0, 0.4, false, true);
  grouped.mul(r).sum().backward();
  // The same channels as separate leaves: q contiguous, kv per head [k_h | v_h].
  const q2 = q.detach().contiguous().requiresGrad_();
  const [k, v] = kv.detach().split([nh * dqk, nh * dv], 1);
  const kv2 = F.cat([k.reshape([B, nh, dqk, H, W]), v.reshape([B, nh, dv, H, W])], 2).reshape([B, nh * (dqk + dv), H, W])
    .requiresGrad_();
  const interleaved = aten.vicinity_halo_attention(q2, kv2, tables[0], tables[1], nh, block, halo, 0, 0, 0.4, false);
  interleaved.mul(r).sum().backward();
  assert.deepEqual(grouped.shape, [B, nh * dv, H, W]);
  const close = (a: Tensor, b: Tensor, what: string) => {
    const worst = a.sub(b).abs().max().item() as number;
    assert.ok(worst <= 1e-13, `${what}: max difference ${worst}`);
  };
  close(grouped, interleaved, 'output');
  const [gq, gk, gv] = (qkv.grad as Tensor).split([nh * dqk, nh * dqk, nh * dv], 1);
  close(gq, q2.grad as Tensor, '∂q');
  const [gk2, gv2] = (kv2.grad as Tensor).reshape([B, nh, dqk + dv, H, W]).split([dqk, dv], 2);
  close(gk, gk2.reshape([B, nh * dqk, H, W]), '∂k');
  close(gv, gv2.reshape([B, nh * dv, H, W]), '∂v');
  // ∂out broadcast from a sum (stride 0 everywhere, read in place) = the same ones dense.
  const gradsOf = (dense: boolean) => {
    const leaf = q.detach().contiguous().requiresGrad_();
    const y = aten.vicinity_halo_attention(leaf, kv2.detach(), tables[0], tables[1], nh, block, halo, 0, 0, 0.4, false);
    (dense ? y.mul(randn(y.shape, { seed: 35, dtype: 'float64' }).mul(0).add(1)) : y).sum().backward();
    return leaf.grad as Tensor;
  };
  close(gradsOf(false), gradsOf(true), '∂q from an expanded ∂out');
})));

test('countMacs counts the composite path\'s products whatever the kernel mode', () => tidy(() => {
  for (const [o, shape] of cases) {
    const m = new HaloAttention(o);
    const input = [1, ...shape.slice(1)];
    const fused = countMacs(m, input);
    const composite = withKernelMode('composite', () => countMacs(m, input));
    assert.equal(fused.byOp['vicinity::halo_attention_projected'], undefined);
    assert.ok(fused.byOp['aten::matmul'] > 0);
    assert.deepEqual(fused.byOp, composite.byOp, JSON.stringify(o));
    m.dispose();
  }
}));

test('bad arguments throw errors naming the shapes', () => tidy(() => {
  const q = randn([2, 2 * 8, 8, 8]);        // B 2, 2 heads · dqk 8, 2×2 blocks of 4×4 queries
  const kv = randn([2, 2 * 16, 8, 8]);      // 2 heads, dqk 8 + dv 8
  const table = randn([9, 8]);              // win = 4 + 2·1 = 6 → 11 rows expected
  const call = (o: { q?: Tensor; kv?: Tensor; t?: Tensor; block?: number; valid?: number }) =>
    () => aten.vicinity_halo_attention(o.q ?? q, o.kv ?? kv, o.t ?? randn([11, 8]), o.t ?? randn([11, 8]), 2, o.block ?? 4, 1,
      o.valid ?? 0, o.valid ? 8 : 0, 0.35, false);
  assert.throws(call({ t: table }), /halo_attention: height_rel and width_rel must be \(2·win − 1, dqk\) = \[11, 8\], got \[9, 8\]/);
  assert.throws(call({ block: 3 }), /halo_attention: the kv map 8×8 is not a whole number of 3×3 blocks; pad it first/);
  assert.throws(call({ kv: randn([2, 32, 0, 8]) }), /halo_attention: the kv map 0×8 is not a whole number of 4×4 blocks/);
  assert.throws(call({ q: q.narrow(2, 0, 6) }), /halo_attention: q has shape \[2, 16, 6, 8\] but must be the query map \(B = 2, heads·dqk, Hq, Wq\) of 2×2 blocks/);
  assert.throws(call({ q: q.narrow(2, 0, 0) }), /halo_attention: q has shape \[2, 16, 0, 8\] but must be the query map/);
  assert.throws(call({ q: randn([2, 16, 6, 6]) }), /bds dividing the block 4/);
  assert.throws(call({ q: q.narrow(0, 0, 1) }), /halo_attention: q has shape \[1, 16, 8, 8\] but must be the query map \(B = 2,/);
  assert.throws(call({ q: q.narrow(1, 0, 15) }), /halo_attention: q has 15 channels, which is not heads·dqk for 2 heads/);
  assert.throws(call({ q: q.reshape([2, 16, 64]) }), /halo_attention: q must be the query map \(B, heads·dqk, Hq, Wq\), got shape \[2, 16, 64\]/);
  assert.throws(call({ kv: kv.narrow(1, 0, 17) }), /halo_attention: kv has 17 channels, which is not heads·\(dqk \+ dv\)/);
  assert.throws(call({ valid: 9 }), /halo_attention: the mask size 9×8 must lie within the 8×8 map \(or be 0×0: no mask\)/);
  assert.throws(call({ kv: kv.to('float64') }), /halo_attention: every input must have q's dtype Float, got Double/);

  // The projected op: x (2, 4, 8, 8) projected to kv by a (32, 4, 1, 1) weight; then the same geometry checks.
  const x = randn([2, 4, 8, 8]);
  const projected = (o: { x?: Tensor; w?: Tensor; bias?: Tensor; block?: number }) =>
    () => aten.vicinity_halo_attention_projected(q, o.x ?? x, o.w ?? randn([32, 4, 1, 1]), o.bias ?? null, randn([11, 8]),
      randn([11, 8]), 2, o.block ?? 4, 1, 0, 0, 0.35, false);
  assert.equal(projected({})().shape.join(), '2,16,8,8');
  assert.throws(projected({ x: x.reshape([2, 4, 64]) }), /halo_attention_projected: x must be the input map \(B, C, H, W\), got shape \[2, 4, 64\]/);
  assert.throws(projected({ w: randn([32, 4, 3, 3]) }), /halo_attention_projected: kv_weight must be a 1×1 conv weight \(heads·\(dqk \+ dv\), C = 4, 1, 1\), got shape \[32, 4, 3, 3\]/);
  assert.throws(projected({ w: randn([32, 5, 1, 1]) }), /kv_weight must be a 1×1 conv weight/);
  assert.throws(projected({ bias: randn([31]) }), /halo_attention_projected: kv_bias must be \(32\), got shape \[31\]/);
  assert.throws(projected({ x: x.to('float64') }), /halo_attention_projected: x, kv_weight and kv_bias must be CPU tensors of q's dtype Float, got Double on cpu/);
  assert.throws(projected({ block: 3 }), /halo_attention: the kv map 8×8 is not a whole number of 3×3 blocks; pad it first/);
}));

test('an empty batch: empty output, zero gradients for the projection', () => assertNoLeaks(() => tidy(() => {
  const m = new HaloAttention({ dim: 8, numHeads: 2, blockSize: 4, haloSize: 1, qkvBias: true });
  const x = randn([0, 8, 8, 8]).requiresGrad_();
  const ops = new Set<string>();
  const y = observeOps((op) => ops.add(op), () => m.forward(x));
  assert.ok(ops.has('vicinity::halo_attention_projected'));
  assert.deepEqual(y.shape, [0, 8, 8, 8]);
  y.sum().backward();
  for (const p of [m.kv.weight, m.kv.bias as Tensor]) assert.equal((p.grad as Tensor).abs().sum().item(), 0);
  m.dispose();
})));
