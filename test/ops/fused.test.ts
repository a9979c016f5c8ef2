/**
 * The fused-op table and the one kernel switch (src/ops/fused.ts): the modes, their errors, MACs
 * counted alike whatever the mode, and each layer with a fused path equal to its composite path
 * (float64) when run under 'auto' and under 'composite'.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countMacs } from '../../src/analysis/macs.js';
import { native } from '../../src/native/binding.js';
import { HaloAttention } from '../../src/attention/halo-attention.js';
import { LALayer } from '../../src/attention/la-layer.js';
import { LesaBinaryAttention } from '../../src/attention/lesa-binary.js';
import { MultiHeadSelfAttention2d } from '../../src/attention/mhsa2d.js';
import { LsagGlobalAttention, LsagLocalAttention } from '../../src/attention/lsag-attention.js';
import { NeighborhoodAttention2d } from '../../src/attention/neighborhood-attention.js';
import { SASA } from '../../src/attention/sasa.js';
import type { Module } from '../../src/nn/module.js';
import {
  FUSED_OPS, fusedOpAvailable, kernelMode, setKernelMode, useFused, withKernelMode, type FusedOpName,
} from '../../src/ops/fused.js';
import { observeOps } from '../../src/ops/call.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { noGrad } from '../../src/tensor/autograd.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';

const names = Object.keys(FUSED_OPS) as FusedOpName[];

test('every fused op of the table is in the addon (stock ops: in libtorch ≥ 2)', () => {
  const stockOps = !native.buildInfo().torchVersion.startsWith('1.');
  for (const name of names) {
    assert.equal(FUSED_OPS[name].name, name);
    const stock = FUSED_OPS[name].source === null;
    assert.equal(fusedOpAvailable(name), stock ? stockOps : true, `${name} availability`);
  }
});

test('modes: auto uses CPU kernels only; composite none; fused throws where a kernel cannot run', () => {
  assert.equal(kernelMode(), 'auto');
  assert.equal(useFused(['vicinity::window_qk', 'vicinity::la_attention'], 'cpu'), true);
  assert.equal(useFused(['vicinity::la_attention'], 'cuda:0'), false);
  assert.equal(withKernelMode('composite', () => useFused(['vicinity::window_qk'], 'cpu')), false);
  assert.equal(kernelMode(), 'auto', 'withKernelMode restores the mode');
  assert.throws(() => withKernelMode('fused', () => useFused(['vicinity::la_attention'], 'cuda:0')),
    /kernel mode 'fused': vicinity::la_attention runs on cpu, not on 'cuda:0'; use setKernelMode\('auto'\)/);
  assert.equal(kernelMode(), 'auto', 'restored after a throw');
  assert.throws(() => setKernelMode('gpu' as never),
    /TypeError: setKernelMode: mode must be one of 'auto', 'fused', 'composite', got "gpu"/);
  assert.equal(setKernelMode('composite'), 'auto');
  assert.equal(setKernelMode('auto'), 'composite');
});

test('withKernelMode restores the mode when an async fn settles', async () => {
  const seen = await withKernelMode('composite', async () => {
    await new Promise((r) => setImmediate(r));
    return kernelMode();
  });
  assert.equal(seen, 'composite');
  assert.equal(kernelMode(), 'auto');
});

/** y and ∂(Σ y ⊙ r)/∂(x, parameters) under `mode`, plus the ops that forward called. */
function run(m: Module, x: Tensor, mode: 'auto' | 'composite'): { outputs: Tensor[]; ops: Set<string> } {
  const ops = new Set<string>();
  const xg = x.detach().requiresGrad_();
  const y = observeOps((op) => ops.add(op), () => withKernelMode(mode, () => (m as unknown as { forward(x: Tensor): Tensor }).forward(xg)));
  y.mul(randn(y.shape, { seed: 5, dtype: 'float64' })).sum().backward();
  const outputs = [y.detach(), xg.grad as Tensor, ...m.parameters().map((p) => (p.grad as Tensor).clone())];
  m.zeroGrad();
  return { outputs, ops };
}

const layers: [string, () => Module, number[], FusedOpName][] = [
  ['SASA k5 stride 2', () => new SASA({ inChannels: 8, outChannels: 8, kernelSize: 5, numHeads: 2, stride: 2 }), [2, 8, 7, 6], 'vicinity::window_softmax_attention'],
  ['NeighborhoodAttention2d k3 dilation 2', () => new NeighborhoodAttention2d({ dim: 8, numHeads: 2, kernelSize: 3, dilation: 2 }), [2, 7, 8, 8], 'vicinity::window_softmax_attention_qkv'],
  ['HaloAttention b4 h1 mask', () => new HaloAttention({ dim: 8, numHeads: 2, blockSize: 4, haloSize: 1, padding: 'mask' }), [2, 8, 7, 9], 'vicinity::halo_attention_projected'],
  ['MultiHeadSelfAttention2d 6×6 stride 2 (one halo block)', () => new MultiHeadSelfAttention2d({ dim: 8, numHeads: 2, featSize: 6, stride: 2, dimHead: 3 }), [2, 8, 6, 6], 'vicinity::halo_attention'],
  ['MultiHeadSelfAttention2d scalePosEmbed', () => new MultiHeadSelfAttention2d({ dim: 8, numHeads: 2, featSize: 5, scalePosEmbed: true }), [2, 8, 5, 5], 'vicinity::halo_attention'],
  ['LesaBinaryAttention classification, odd L', () => new LesaBinaryAttention({ inPlanes: 8, outPlanes: 8, featureSize: 3, groups: 2 }), [2, 8, 3, 3], 'vicinity::lesa_binary'],
  ['LALayer softmax', () => new LALayer({ inChannels: 8, outChannels: 8, heads: 2, aggregation: 'softmax' }), [2, 8, 5, 6], 'vicinity::la_attention'],
  ['LALayer softmax, Eq. (7)', () => new LALayer({ inChannels: 8, outChannels: 8, heads: 2, aggregation: 'softmax' }), [2, 8, 5, 6], 'vicinity::la_offsets'],
];

for (const [label, make, shape, kernel] of layers) {
  test(`${label}: the fused path equals the composite path (float64), and MACs agree`, () => assertNoLeaks(() => {
    manualSeed(3);
    const m = make().to('float64');
    const x = randn(shape, { seed: 4, dtype: 'float64' });
    const fused = run(m, x, 'auto');
    const composite = run(m, x, 'composite');
    assert.ok(fused.ops.has(kernel), `${kernel} ran under 'auto'`);
    assert.ok(![...composite.ops].some((op) => op.startsWith('vicinity::')), 'no kernel under composite');
    fused.outputs.forEach((t, i) => {
      const worst = tidy(() => t.sub(composite.outputs[i]).abs().max().item() as number);
      assert.ok(worst < 1e-12, `output ${i}: max |fused − composite| ${worst}`);
    });
    const macs = countMacs(m, [1, ...shape.slice(1)]);
    const composite1 = withKernelMode('composite', () => countMacs(m, [1, ...shape.slice(1)]));
    assert.equal(macs.total, composite1.total);
    assert.ok(macs.total > 0);
    m.dispose();
  }));
}

// LSAG: local attention's reordered products (fastPathsEnabled) and global attention's
// scaled_dot_product_attention (libtorch ≥ 2; 1.13 takes the composite path under 'auto').
const sdpaInTorch = !native.buildInfo().torchVersion.startsWith('1.');
for (const multiQuery of [true, false]) {
  for (const qkvBias of [true, false]) {
    test(`LSAG attentions (multiQuery ${multiQuery}, qkvBias ${qkvBias}): fast paths equal the reference order (float64), MACs agree`, () => assertNoLeaks(() => {
      manualSeed(6);
      const [B, N, D, T] = [2, 5, 12, 4];
      const local = new LsagLocalAttention({ dim: D, numHeads: 3, numVariants: T, multiQuery, qkvBias }).to('float64');
      const global = new LsagGlobalAttention({ dim: D, numHeads: 3, multiQuery, qkvBias }).to('float64');
      for (const m of [local, global]) {
        for (const p of m.parameters()) noGrad(() => tidy(() => p.copy_(randn(p.shape, { seed: p.numel, dtype: 'float64' }).mul(0.3))));
      }
      const x = randn([B, N, D], { seed: 7, dtype: 'float64' });
      const variants = randn([T, B, N, D], { seed: 8, dtype: 'float64' });
      const outputs = (m: Module, mode: 'auto' | 'composite', inputs: Tensor[]) => {
        const ops = new Map<string, number>();
        const leaves = inputs.map((t) => t.detach().requiresGrad_());
        const y = observeOps((op) => ops.set(op, (ops.get(op) ?? 0) + 1), () => withKernelMode(mode, () =>
          (m as unknown as { forward(...a: Tensor[]): Tensor }).forward(...leaves)));
        y.mul(randn(y.shape, { seed: 9, dtype: 'float64' })).sum().backward();
        const grads = [y.detach(), ...leaves.map((t) => t.grad as Tensor), ...m.parameters().map((p) => (p.grad as Tensor).clone())];
        m.zeroGrad();
        return { grads, ops };
      };
      for (const [m, inputs] of [[local, [x, variants]], [global, [x]]] as [Module, Tensor[]][]) {
        const fast = outputs(m, 'auto', inputs);
        const reference = outputs(m, 'composite', inputs);
        if (m === global) {
          assert.equal(fast.ops.has('aten::scaled_dot_product_attention'), sdpaInTorch);
          assert.ok(!reference.ops.has('aten::scaled_dot_product_attention'));
        } else {
          // Wq, Wkv (over every variant) and proj in the reference order; the fast path skips Wkv
          // and attends over the variants in the kernel.
          assert.deepEqual([fast.ops.get('aten::linear'), reference.ops.get('aten::linear')], [2, 3]);
          assert.equal(fast.ops.get('vicinity::lsag_variant_attention'), 1);
        }
        fast.grads.forEach((t, i) => {
          const worst = tidy(() => t.sub(reference.grads[i]).abs().max().item() as number);
          assert.ok(worst < 1e-12, `${m.constructor.name} output ${i}: max |fast − reference| ${worst}`);
        });
        m.eval();
        const shape = [B, N, D];
        const count = (mode: 'auto' | 'composite') => withKernelMode(mode, () =>
          m === global ? countMacs(m, shape).total : 0);
        assert.equal(count('auto'), count('composite'));
        m.train();
      }
      local.dispose();
      global.dispose();
    }));
  }
}

test('LSAG local attention with attention dropout: the fast path scales the value bias by the kept weights', () => assertNoLeaks(() => {
  manualSeed(11);
  const m = new LsagLocalAttention({ dim: 8, numHeads: 2, numVariants: 3, qkvBias: true, attnDrop: 0.5 }).to('float64');
  for (const p of m.parameters()) noGrad(() => tidy(() => p.copy_(randn(p.shape, { seed: p.numel + 1, dtype: 'float64' }))));
  const x = randn([2, 4, 8], { seed: 12, dtype: 'float64' });
  const variants = randn([3, 2, 4, 8], { seed: 13, dtype: 'float64' });
  const ops = new Set<string>();
  const y = (mode: 'auto' | 'composite') => { manualSeed(14); return withKernelMode(mode, () => m.forward(x, variants)); };
  const worst = tidy(() => observeOps((op) => ops.add(op), () => y('auto')).sub(y('composite')).abs().max().item() as number);
  assert.ok(!ops.has('vicinity::lsag_variant_attention'), 'the kernel has no attention dropout: the matmul path runs');
  assert.ok(worst < 1e-12, `max |fast − reference| ${worst}`);
  m.dispose();
}));
