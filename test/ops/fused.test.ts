/**
 * The fused-op table and the one kernel switch (src/ops/fused.ts): the modes, their errors, the
 * table's MAC rules as analysis/macs.ts uses them, and each layer with a fused kernel equal to its
 * composite path (float64) when run under 'auto' and under 'composite'.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countMacs, MAC_RULES } from '../../src/analysis/macs.js';
import { HaloAttention } from '../../src/attention/halo-attention.js';
import { LALayer } from '../../src/attention/la-layer.js';
import { NeighborhoodAttention2d } from '../../src/attention/neighborhood-attention.js';
import { SASA } from '../../src/attention/sasa.js';
import type { Module } from '../../src/nn/module.js';
import {
  FUSED_OPS, fusedOpAvailable, kernelMode, setKernelMode, useFused, withKernelMode, type FusedOpName,
} from '../../src/ops/fused.js';
import { observeOps } from '../../src/ops/call.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';

const names = Object.keys(FUSED_OPS) as FusedOpName[];

test('every fused op of the table is in the addon and has its MAC rule in analysis/macs.ts', () => {
  for (const name of names) {
    assert.equal(FUSED_OPS[name].name, name);
    assert.ok(fusedOpAvailable(name), `${name} missing from the addon`);
    assert.ok(name in MAC_RULES, `${name} has no MAC rule`);
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
  ['SASA k5 stride 2', () => new SASA({ inChannels: 8, outChannels: 8, kernelSize: 5, numHeads: 2, stride: 2 }), [2, 8, 7, 6], 'vicinity::window_qk'],
  ['NeighborhoodAttention2d k3 dilation 2', () => new NeighborhoodAttention2d({ dim: 8, numHeads: 2, kernelSize: 3, dilation: 2 }), [2, 7, 8, 8], 'vicinity::window_av'],
  ['HaloAttention b4 h1 mask', () => new HaloAttention({ dim: 8, numHeads: 2, blockSize: 4, haloSize: 1, padding: 'mask' }), [2, 8, 7, 9], 'vicinity::halo_attention'],
  ['LALayer softmax', () => new LALayer({ inChannels: 8, outChannels: 8, heads: 2, aggregation: 'softmax' }), [2, 8, 5, 6], 'vicinity::la_attention'],
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
