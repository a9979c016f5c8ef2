/**
 * The fused HaloAttention kernel `vicinity::halo_attention` (native/kernels/halo_attention.cc),
 * which HaloAttention runs on CPU: it equals the composite path (unfolded windows, relPosLogits2d,
 * softmax, ·v; kernel mode 'composite') in forward and every gradient in float64 — padding 'none'
 * and 'mask' (odd sizes), strided queries, the average-pool stride, scalePosEmbed, halo 0, head
 * widths that are not a multiple of 4, blocks of 196 and 256 queries (tiled by the kernel) — and
 * in float32 to float precision, is bit-identical across thread counts in float32, counts
 * the composite's MACs, and rejects bad arguments with messages naming the shapes. The fixtures
 * and float64 gradchecks of halo-attention.test.ts run through it too (kernel mode 'auto').
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countMacs } from '../../src/analysis/macs.js';
import { HaloAttention, type HaloAttentionOptions } from '../../src/attention/halo-attention.js';
import { observeOps } from '../../src/ops/call.js';
import { withKernelMode } from '../../src/ops/fused.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import { getNumThreads, setNumThreads } from '../../src/tensor/memory.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';

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
];

for (const [o, shape] of cases) {
  test(`fused = composite in float64, forward and every gradient: ${JSON.stringify(o)} on ${JSON.stringify(shape)}`, () => assertNoLeaks(() => {
    manualSeed(11);
    const m = new HaloAttention(o).to('float64');
    const x = randn(shape, { seed: 12, dtype: 'float64' });
    const fused = run(m, x, 'auto');
    const composite = run(m, x, 'composite');
    assert.ok(fused.ops.has('vicinity::halo_attention'), 'the kernel ran under auto');
    assert.ok(!composite.ops.has('vicinity::halo_attention'), 'the composite path ran under composite');
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
  // Geometries: [q shape, kv shape, table rows, heads, block, halo, mask h, mask w]: 8 halo heads with
  // a mask; MHSA's (one 16×16 block, halo 0: two 128-query tiles) over 2 heads and over 1, where
  // the single task runs outside any parallel region and the BLAS may use its own threads.
  const geometries: [number[], number[], number, number, number, number, number, number][] = [
    [[8, 4, 16, 8], [2, 4 * 16, 8, 8], 11, 4, 4, 1, 7, 6],
    [[2, 1, 256, 16], [1, 2 * 32, 16, 16], 31, 2, 16, 0, 0, 0],
    [[1, 1, 256, 16], [1, 32, 16, 16], 31, 1, 16, 0, 0, 0],
  ];
  const threads = getNumThreads();
  try {
    for (const [qs, kvs, rows, heads, block, halo, mh, mw] of geometries) {
      const make = (shape: number[], seed: number) => randn(shape, { seed }).requiresGrad_();
      const inputs = [make(qs, 14), make(kvs, 15), make([rows, qs[3]], 16), make([rows, qs[3]], 17)];
      const r = randn([...qs.slice(0, 3), kvs[1] / heads - qs[3]], { seed: 18 });
      const once = (): Tensor[] => {
        const y = aten.vicinity_halo_attention(inputs[0], inputs[1], inputs[2], inputs[3], heads, block, halo, mh, mw, 0.35, false);
        y.mul(r).sum().backward();
        const out = [y.detach(), ...inputs.map((t) => (t.grad as Tensor).clone())];
        inputs.forEach((t) => t.grad?.zero_());
        return out;
      };
      setNumThreads(1);
      const one = once();
      setNumThreads(2);
      const two = once();
      one.forEach((t, i) => assert.ok(t.equal(two[i]), `geometry ${JSON.stringify(qs)}: output ${i} differs between 1 and 2 threads`));
    }
  } finally {
    setNumThreads(threads);
  }
}));

test('countMacs counts the composite path\'s products whatever the kernel mode', () => tidy(() => {
  for (const [o, shape] of cases) {
    const m = new HaloAttention(o);
    const input = [1, ...shape.slice(1)];
    const fused = countMacs(m, input);
    const composite = withKernelMode('composite', () => countMacs(m, input));
    assert.equal(fused.byOp['vicinity::halo_attention'], undefined);
    assert.ok(fused.byOp['aten::matmul'] > 0);
    assert.deepEqual(fused.byOp, composite.byOp, JSON.stringify(o));
    m.dispose();
  }
}));

test('bad arguments throw errors naming the shapes', () => tidy(() => {
  const q = randn([4, 4, 16, 8]);           // B·nh = 4, 2×2 blocks of 4×4 queries, dqk 8
  const kv = randn([2, 2 * 16, 8, 8]);      // 2 heads, dqk 8 + dv 8
  const table = randn([9, 8]);              // win = 4 + 2·1 = 6 → 11 rows expected
  const call = (o: { q?: Tensor; kv?: Tensor; t?: Tensor; block?: number; valid?: number }) =>
    () => aten.vicinity_halo_attention(o.q ?? q, o.kv ?? kv, o.t ?? randn([11, 8]), o.t ?? randn([11, 8]), 2, o.block ?? 4, 1,
      o.valid ?? 0, o.valid ? 8 : 0, 0.35, false);
  assert.throws(call({ t: table }), /halo_attention: height_rel and width_rel must be \(2·win − 1, dqk\) = \[11, 8\], got \[9, 8\]/);
  assert.throws(call({ block: 3 }), /halo_attention: the kv map 8×8 is not a whole number of 3×3 blocks; pad it first/);
  assert.throws(call({ q: q.narrow(1, 0, 3) }), /halo_attention: q has shape \[4, 3, 16, 8\] but must be \(B·heads = 4, blocks = 4/);
  assert.throws(call({ kv: kv.narrow(1, 0, 17) }), /halo_attention: kv has 17 channels, which is not heads·\(dqk \+ dv\)/);
  assert.throws(call({ valid: 9 }), /halo_attention: the mask size 9×8 must lie within the 8×8 map \(or be 0×0: no mask\)/);
  assert.throws(call({ kv: kv.to('float64') }), /halo_attention: every input must have q's dtype Float, got Double/);
}));
