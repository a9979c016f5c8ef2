/**
 * The fused LESA binary-term kernel `vicinity::lesa_binary` (native/kernels/lesa_binary.cc), which
 * LesaBinaryAttention and Lesa run on CPU for pe_type 'classification': it equals the composite
 * path (gathered embeddings, einsums, bn_similarity, softmax; kernel mode 'composite') in float64 —
 * output, the input gradient, every parameter gradient, bn_similarity's running statistics and
 * num_batches_tracked after training steps — in training and eval mode, stride 1 and 2, odd and
 * non-square maps, one and two tiles of query rows; passes a float64 finite-difference gradcheck of
 * the op itself; is bit-identical across thread counts in float32; and rejects bad arguments with
 * messages naming the shapes. The fixtures and gradchecks of lesa.test.ts run through it too
 * (kernel mode 'auto').
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gradcheck } from '../../src/autograd/gradcheck.js';
import { Lesa, LesaBinaryAttention, type LesaOptions } from '../../src/attention/lesa.js';
import type { Module } from '../../src/nn/module.js';
import { observeOps } from '../../src/ops/call.js';
import { withKernelMode } from '../../src/ops/fused.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { manualSeed, ones, randn, zeros } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertSameBitsAtOneAndTwoThreads } from '../support/threads.js';

type Layer = Lesa | LesaBinaryAttention;

function build(kind: 'lesa' | 'binary', o: Partial<LesaOptions>, mode: 'train' | 'eval'): Layer {
  manualSeed(31);
  const options = { inPlanes: 8, outPlanes: 8, featureSize: 3, groups: 2, ...o };
  const m = (kind === 'lesa' ? new Lesa(options) : new LesaBinaryAttention(options)).to('float64');
  m.train(mode === 'train');
  // Non-trivial affine parameters and running statistics, so that every BatchNorm term counts.
  noGrad(() => {
    for (const [key, t] of [...m.namedParameters(), ...m.namedBuffers()]) {
      if (key.endsWith('running_var')) t.uniform_(0.5, 1.5);
      else if (key.endsWith('running_mean') || key.endsWith('bias')) t.uniform_(-0.5, 0.5);
      else if (key.endsWith('bn_similarity.weight') || key.endsWith('bn_output.weight')) t.uniform_(0.5, 1.5);
    }
  });
  return m;
}

/** Outputs, input gradient, parameter gradients and buffers after `steps` forward+backward steps. */
function run(m: Module, x: Tensor, mode: 'auto' | 'composite', steps: number): { values: Tensor[]; ops: Set<string> } {
  const ops = new Set<string>();
  let values: Tensor[] = [];
  for (let step = 0; step < steps; ++step) {
    const xg = x.detach().requiresGrad_();
    const y = observeOps((op) => ops.add(op), () => withKernelMode(mode, () => (m as Layer).forward(xg)));
    y.mul(randn(y.shape, { seed: 7 + step, dtype: y.dtype })).sum().backward();
    values = [y.detach(), xg.grad as Tensor, ...m.parameters().map((p) => (p.grad as Tensor).clone())];
    m.zeroGrad();
  }
  values.push(...m.buffers().map((b) => b.clone()));
  return { values, ops };
}

const cases: ['lesa' | 'binary', Partial<LesaOptions>, number[]][] = [
  ['binary', {}, [2, 8, 3, 3]],                                         // L = 9
  ['binary', { featureSize: 4, stride: 2 }, [2, 8, 2, 8]],               // non-square 2×8 map, L = 16
  ['lesa', { featureSize: 5 }, [2, 8, 5, 5]],                            // L = 25
  ['binary', { featureSize: 9 }, [2, 8, 9, 9]],                          // L = 81: two tiles of query rows (41 + 40)
  ['lesa', { featureSize: 3, stride: 2, groups: 1, outPlanes: 6 }, [3, 8, 3, 3]],  // qk 3, vp 6
];

for (const [kind, o, shape] of cases) {
  for (const mode of ['train', 'eval'] as const) {
    test(`fused = composite in float64 (${kind} ${JSON.stringify(o)} ${mode} on ${JSON.stringify(shape)}): output, every gradient, running statistics`, () => assertNoLeaks(() => {
      const x = randn(shape, { seed: 12, dtype: 'float64' });
      const a = build(kind, o, mode);
      const b = build(kind, o, mode);
      const fused = run(a, x, 'auto', 2);
      const composite = run(b, x, 'composite', 2);
      assert.ok(fused.ops.has('vicinity::lesa_binary'), 'the kernel ran under auto');
      assert.ok(!composite.ops.has('vicinity::lesa_binary'), 'the composite path ran under composite');
      const names = ['output', 'input gradient', ...[...a.namedParameters()].map(([k]) => `∂${k}`), ...[...a.namedBuffers()].map(([k]) => k)];
      assert.equal(fused.values.length, names.length);
      fused.values.forEach((t, i) => {
        const [worst, scale] = tidy(() => [t.sub(composite.values[i]).abs().max().item() as number,
          composite.values[i].abs().max().item() as number]);
        assert.ok(worst <= 1e-10 * Math.max(1, scale), `${names[i]}: max |fused − composite| ${worst} (scale ${scale})`);
      });
      const tracked = names.indexOf('bn_similarity.num_batches_tracked');
      assert.equal(fused.values[tracked].item(), mode === 'train' ? 2 : 0);
      a.dispose();
      b.dispose();
    }));
  }
}

test('detection_qr keeps the composite path under auto', () => assertNoLeaks(() => {
  const m = build('binary', { peType: 'detection_qr' }, 'train');
  const { ops } = run(m, randn([2, 8, 3, 3], { seed: 3, dtype: 'float64' }), 'auto', 1);
  assert.ok(!ops.has('vicinity::lesa_binary'));
  m.dispose();
}));

/** The op's inputs: qkv (N, g, 2qk + vp, L), relative (2qk + vp, 2L − 1), bn_similarity's (3g) tensors. */
function opInputs(n: number, g: number, qk: number, vp: number, length: number, dtype: 'float32' | 'float64'): Tensor[] {
  const c = 2 * qk + vp;
  return [
    randn([n, g, c, length], { seed: 41, dtype }),
    randn([c, 2 * length - 1], { seed: 42, dtype }).mul(0.5),
    randn([3 * g], { seed: 43, dtype }).mul(0.3).add(1),
    randn([3 * g], { seed: 44, dtype }).mul(0.3),
    randn([3 * g], { seed: 45, dtype }).mul(0.3),
    randn([3 * g], { seed: 46, dtype }).abs().add(0.5),
  ];
}

for (const batchStats of [true, false]) {
  test(`float64 gradcheck of the op (batch statistics ${batchStats}): qkv, relative, weight, bias`, (t) => assertNoLeaks(() => {
    const [qkv, rel, weight, bias, mean, variance] = opInputs(2, 2, 2, 3, 5, 'float64');
    const inputs = [qkv, rel, weight, bias].map((x) => x.requiresGrad_());
    const r = gradcheck((q, r2, w, b) => aten.vicinity_lesa_binary(q, r2, w, b, mean, variance, 2, batchStats, 1e-5)[0], inputs);
    assert.ok(r.ok, r.report);
    t.diagnostic(`max abs error ${r.maxAbsError.toExponential(2)}, max rel error ${r.maxRelError.toExponential(2)}`);
  }));
}

test('the op returns the statistics it normalised with: batch mean and biased variance, or the running ones', () => assertNoLeaks(() => {
  const [qkv, rel, weight, bias, mean, variance] = opInputs(2, 2, 2, 3, 4, 'float64');
  const [, batchMean, batchVar] = aten.vicinity_lesa_binary(qkv, rel, weight, bias, mean, variance, 2, true, 1e-5);
  // The three logit terms of each head, built directly: (N, 3g, L, L) in channels [qk | qr | kr].
  const L = 4;
  const [q, k] = [qkv.narrow(2, 0, 2), qkv.narrow(2, 2, 2)];          // (N, g, qk, L)
  const index = tidy(() => aten.arange_start_step(0, L, 1, 'int64').unsqueeze(1).sub(aten.arange_start_step(0, L, 1, 'int64').unsqueeze(0)).add(L - 1).reshape([-1]));
  const table = (lo: number) => rel.narrow(0, lo, 2).indexSelect(1, index).view([2, L, L]);  // (qk, L, L): r[c, i − j + L − 1]
  const zqk = aten.einsum('bgci,bgcj->bgij', [q, k]);
  const zqr = aten.einsum('bgci,cij->bgij', [q, table(0)]);
  const zkr = aten.einsum('bgci,cij->bgij', [k, table(2)]).transpose(2, 3);
  const stacked = aten.cat([zqk, zqr, zkr], 1);                       // (N, 3g, L, L)
  const expectedMean = stacked.mean([0, 2, 3]);
  const expectedVar = stacked.sub(expectedMean.view([1, -1, 1, 1])).pow(2).mean([0, 2, 3]);
  assert.ok((batchMean.sub(expectedMean).abs().max().item() as number) < 1e-12);
  assert.ok((batchVar.sub(expectedVar).abs().max().item() as number) < 1e-12);
  const [, runMean, runVar] = aten.vicinity_lesa_binary(qkv, rel, weight, bias, mean, variance, 2, false, 1e-5);
  assert.ok(runMean.equal(mean) && runVar.equal(variance));
}));

test('float32: bit-identical for 1 and 2 threads (output, statistics and every gradient of the op)', () => assertNoLeaks(() => {
  for (const batchStats of [true, false]) {
    const inputs = opInputs(3, 2, 4, 6, 81, 'float32');   // L = 81: two tiles of query rows
    const leaves = inputs.slice(0, 4).map((x) => x.requiresGrad_());
    const r = randn([3, 2, 6, 162], { seed: 47 });
    const once = (): Tensor[] => {
      const [y, m, v] = aten.vicinity_lesa_binary(leaves[0], leaves[1], leaves[2], leaves[3], inputs[4], inputs[5], 4, batchStats, 1e-5);
      y.mul(r).sum().backward();
      const out = [y.detach(), m, v, ...leaves.map((t) => (t.grad as Tensor).clone())];
      leaves.forEach((t) => t.grad?.zero_());
      return out;
    };
    assertSameBitsAtOneAndTwoThreads(once, `batch statistics ${batchStats}: `);
  }
}));

test('bad arguments throw errors naming the shapes', () => tidy(() => {
  const [qkv, rel, weight, bias, mean, variance] = opInputs(2, 2, 2, 3, 5, 'float32');
  const call = (o: { qkv?: Tensor; rel?: Tensor; weight?: Tensor; mean?: Tensor; qk?: number; batch?: boolean }) => () =>
    aten.vicinity_lesa_binary(o.qkv ?? qkv, o.rel ?? rel, o.weight ?? weight, bias, o.mean ?? mean, variance, o.qk ?? 2, o.batch ?? true, 1e-5);
  assert.throws(call({ qkv: qkv.view([4, 7, 5]) }), /lesa_binary: qkv must be \(N, heads, 2·qk \+ vp, L\), got shape \[4, 7, 5\]/);
  assert.throws(call({ qk: 4 }), /lesa_binary: qkv has 7 channels per head, which is not 2·qk \+ vp with qk = 4 and vp ≥ 1/);
  assert.throws(call({ rel: rel.narrow(1, 0, 8) }), /lesa_binary: relative must be \(2·qk \+ vp, 2L − 1\) = \(7, 9\) for L = 5 positions, got shape \[7, 8\]/);
  assert.throws(call({ weight: ones([4]) }), /lesa_binary: bn_similarity's weight must have 3·heads = 6 channels, got shape \[4\]/);
  assert.throws(call({ mean: zeros([6], { dtype: 'float64' }) }), /lesa_binary: every input must have qkv's dtype Float, got Double/);
  assert.throws(call({ qkv: randn([1, 2, 7, 1]), rel: randn([7, 1]) }),
    /lesa_binary: batch statistics need more than 1 value per channel, got N = 1 and L = 1; use a batch larger than 1 or eval mode/);
  call({ qkv: randn([1, 2, 7, 1]), rel: randn([7, 1]), batch: false })();   // eval mode: one value is fine
}));
