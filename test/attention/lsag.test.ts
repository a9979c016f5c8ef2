/**
 * LSAG (src/attention/lsag-shifted-embedding.ts, lsag-attention.ts, lsag-stage.ts): parity with the
 * official code through the four fixtures; the shift semantics against index arithmetic; both
 * attentions against a literal einsum reading of Eq. (1)–(4); batch 1, 1 head, odd and even grids;
 * train/eval behaviour of dropout and drop-path; float64 gradchecks over the input and every
 * parameter; and every error path.
 */
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { assertGradcheck, type GradcheckResult } from '../../src/autograd/gradcheck.js';
import {
  LsagGlobalAttention, LsagLocalAttention, LsagMlp,
} from '../../src/attention/lsag-attention.js';
import {
  CIFAR_SHIFTS, IMAGENET_PADDINGS, LsagShiftedEmbedding, lsagNumVariants,
} from '../../src/attention/lsag-shifted-embedding.js';
import {
  LsagFirstStage, LsagGlobalStageParity, LsagLocalStageParity, LsagStage, ReduceImageSize, referenceBuilders,
  toImagePlane,
} from '../../src/attention/lsag-stage.js';
import type { Module } from '../../src/nn/module.js';
import * as F from '../../src/ops/functional.js';
import { arange, manualSeed, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { ShapeError } from '../../src/tensor/shape-error.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertParity, f64, randomized, withFixture } from './support.js';


function assertClose(actual: Tensor, expected: Tensor, tolerance = 1e-10): void {
  assert.deepEqual(actual.shape, expected.shape);
  const error = tidy(() => actual.sub(expected).abs().max().item() as number);
  assert.ok(error <= tolerance, `max |difference| ${error} > ${tolerance}`);
}

// ---- fixtures ------------------------------------------------------------------------------------

for (const name of ['lsag-cifar-local-open', 'lsag-imagenet-local-open', 'lsag-cifar-global-open', 'lsag-imagenet-global-open']) {
  test(`${name}: forward, input and every parameter gradient match the official code`, () => withFixture(name, (fixture) => {
    const report = assertParity(fixture, referenceBuilders, { maxRelError: 2e-6 });
    assert.equal(report.rows.length, 2 + fixture.gradParams.size);
  }));
}

test('referenceBuilders name both fixture kinds and reject a malformed ctor', () => {
  assert.deepEqual(Object.keys(referenceBuilders).sort(), ['parity.LSAGGlobalStage', 'parity.LSAGLocalStage']);
  assert.throws(() => referenceBuilders['parity.LSAGLocalStage']({ img_size: 8 }),
    /parity\.LSAGLocalStage: ctor\.kernel_size must be a number, got undefined/);
  const ctor = { num_patches: 16, dim_in: 8, dim_out: 8, depth: 1, num_heads: 2, variant: 'mnist' };
  assert.throws(() => referenceBuilders['parity.LSAGGlobalStage'](ctor), /variant must be one of 'cifar', 'imagenet', got "mnist"/);
});

// ---- shift-variant embedding ---------------------------------------------------------------------

test('CIFAR variants are the 17 official torch.roll shifts, in order; ImageNet ones prepend rows/columns', () => {
  tidy(() => {
    const [H, W] = [5, 4];
    const img = arange(0, H * W, 1, { dtype: 'float64' }).reshape([1, 1, H, W]);
    const cifar = new LsagShiftedEmbedding({ imgSize: 5, kernelSize: 3, embedDim: 2, variant: 'cifar', inChans: 1 });
    assert.equal(cifar.numVariants, 18);
    assert.deepEqual(cifar.shiftedImage(img, 0).toArray(), img.toArray());
    CIFAR_SHIFTS.forEach(([dy, dx], i) => {
      const expected = Array.from({ length: H }, (_, y) => Array.from({ length: W }, (_, x) =>
        (((y - dy) % H + H) % H) * W + (((x - dx) % W + W) % W)));
      assert.deepEqual(cifar.shiftedImage(img, i + 1).toArray(), [[expected]], `shift ${i + 1} (${dy}, ${dx})`);
    });
    const imagenet = new LsagShiftedEmbedding({ imgSize: 5, kernelSize: 1, strideSize: 4, paddingSize: 0, embedDim: 2, variant: 'imagenet', inChans: 1 });
    assert.equal(imagenet.numVariants, 10);
    IMAGENET_PADDINGS.forEach(([left, right, top, bottom], i) => {
      assert.equal(right + bottom, 0);
      const expected = Array.from({ length: H + top }, (_, y) => Array.from({ length: W + left }, (_, x) =>
        ((y - top + H) % H) * W + ((x - left + W) % W)));
      assert.deepEqual(imagenet.shiftedImage(img, i + 1).toArray(), [[expected]], `padding ${i + 1}`);
    });
  });
});

test('the embedding gives (T, B, N, D) with variant t = conv_t(shift_t(image)), keys projections.{t}, ViT init', () => {
  manualSeed(0);
  assertNoLeaks(() => {
    const embed = new LsagShiftedEmbedding({ imgSize: 5, kernelSize: 3, strideSize: 2, paddingSize: 1, embedDim: 8, variant: 'cifar' });
    assert.equal(embed.gridSize, 3);
    const keys = [...embed.stateDict().keys()];
    assert.equal(keys.length, 36);
    assert.equal(keys[0], 'projections.0.weight');
    assert.equal(keys[35], 'projections.17.bias');
    const weights = F.cat(embed.projections.at(0).parameters().filter((p) => p.ndim === 4).map((p) => p.reshape([-1])));
    assert.ok(Math.abs((weights.std().item() as number) - 0.02) < 0.006, 'conv weights ~ trunc_normal(std .02)');
    assert.equal(embed.projections.at(17).bias!.abs().sum().item(), 0);
    randomized(embed, 1);
    const img = f64([1, 3, 5, 5], 2);
    const out = embed.forward(img);
    assert.deepEqual(out.shape, [18, 1, 9, 8]);
    const t = 12;
    const direct = embed.projections.at(t).forward(img.roll([...CIFAR_SHIFTS[t - 1]], [2, 3])).flatten(2).transpose(1, 2);
    assertClose(out.select(0, t), direct);
    embed.dispose();
  });
});

test('numShifts keeps the first n shifts: T = n + 1 variants, keys projections.0..n, variant t still conv_t(shift_t(image))', () => {
  manualSeed(0);
  assertNoLeaks(() => {
    const embed = randomized(new LsagShiftedEmbedding({ imgSize: 5, kernelSize: 3, strideSize: 2, paddingSize: 1, embedDim: 8, variant: 'cifar', numShifts: 4 }), 3);
    assert.equal(embed.numShifts, 4);
    assert.equal(embed.numVariants, 5);
    assert.deepEqual([...embed.stateDict().keys()].slice(-2), ['projections.4.weight', 'projections.4.bias']);
    assert.equal(embed.stateDict().size, 10);
    const img = f64([2, 3, 5, 5], 4);
    const out = embed.forward(img);
    assert.deepEqual(out.shape, [5, 2, 9, 8]);
    for (const t of [0, 4]) {
      const shifted = t === 0 ? img : img.roll([...CIFAR_SHIFTS[t - 1]], [2, 3]);   // t = 4 is roll (0, -1)
      assertClose(out.select(0, t), embed.projections.at(t).forward(shifted).flatten(2).transpose(1, 2));
    }
    embed.dispose();
    // ImageNet with no shifts: no padding growth, so an image size the 9 paddings reject is fine.
    const only = randomized(new LsagShiftedEmbedding({ imgSize: 8, kernelSize: 3, embedDim: 4, variant: 'imagenet', numShifts: 0 }), 5);
    const x = f64([1, 3, 8, 8], 6);
    const y = only.forward(x);
    assert.deepEqual(y.shape, [1, 1, 64, 4]);
    assertClose(y.select(0, 0), only.projections.at(0).forward(x).flatten(2).transpose(1, 2));
    only.dispose();
  });
  assert.equal(lsagNumVariants('imagenet', 3), 4);
});

// ---- attention against a literal reading of Eq. (1)–(4) ------------------------------------------

/** Eq. (1)–(4) with einsum, per patch i over its T variants (mq: one K/V head for all heads). */
function localOracle(a: LsagLocalAttention, x: Tensor, variants: Tensor): Tensor {
  const [B, N, D] = x.shape;
  const [h, dh, T] = [a.numHeads, a.headDim, a.numVariants];
  const q = F.linear(x, a.Wq.weight, a.Wq.bias).reshape([B, N, h, dh]);
  const kv = F.linear(variants, a.Wkv.weight, a.Wkv.bias);
  const width = a.multiQuery ? dh : D;
  const shape = a.multiQuery ? [T, B, N, dh] : [T, B, N, h, dh];
  const [k, v] = [kv.narrow(-1, 0, width).reshape(shape), kv.narrow(-1, width, width).reshape(shape)];
  const kvIndex = a.multiQuery ? 'tbnd' : 'tbnhd';
  const w = F.einsum(`bnhd,${kvIndex}->bnht`, q, k).mul(dh ** -0.5).softmax(-1);
  return F.linear(F.einsum(`bnht,${kvIndex}->bnhd`, w, v).reshape([B, N, D]), a.proj.weight, a.proj.bias);
}

function globalOracle(a: LsagGlobalAttention, x: Tensor): Tensor {
  const [B, N, D] = x.shape;
  const [h, dh] = [a.numHeads, a.headDim];
  const q = F.linear(x, a.Wq.weight, a.Wq.bias).reshape([B, N, h, dh]);
  const kv = F.linear(x, a.Wkv.weight, a.Wkv.bias);
  const width = a.multiQuery ? dh : D;
  const shape = a.multiQuery ? [B, N, dh] : [B, N, h, dh];
  const [k, v] = [kv.narrow(-1, 0, width).reshape(shape), kv.narrow(-1, width, width).reshape(shape)];
  const kvIndex = a.multiQuery ? 'bjd' : 'bjhd';
  const w = F.einsum(`bihd,${kvIndex}->bhij`, q, k).mul(dh ** -0.5).softmax(-1);
  return F.linear(F.einsum(`bhij,${kvIndex}->bihd`, w, v).reshape([B, N, D]), a.proj.weight, a.proj.bias);
}

for (const multiQuery of [true, false]) {
  const layout = multiQuery ? 'multi-query (CIFAR)' : 'multi-head (ImageNet)';
  test(`local and global attention, ${layout}, equal Eq. (1)–(4) for batch 1 and 2, 1 and 2 heads, odd N`, () => {
    assertNoLeaks(() => {
      for (const [B, heads, N] of [[1, 2, 5], [2, 1, 4], [3, 4, 9]]) {
        const local = randomized(new LsagLocalAttention({ dim: 8, numHeads: heads, numVariants: 3, qkvBias: true, multiQuery }), 10 + B);
        const global = randomized(new LsagGlobalAttention({ dim: 8, numHeads: heads, qkvBias: true, multiQuery }), 20 + B);
        const [x, variants] = [f64([B, N, 8], B), f64([3, B, N, 8], 5 + B)];
        assertClose(local.forward(x, variants), localOracle(local, x, variants));
        assertClose(global.forward(x), globalOracle(global, x));
        assert.equal(local.Wkv.outFeatures, multiQuery ? 2 * (8 / heads) : 16);
        local.dispose();
        global.dispose();
      }
    });
  });
}

test('with one head the multi-query and multi-head layouts are the same computation', () => {
  assertNoLeaks(() => {
    const mq = randomized(new LsagLocalAttention({ dim: 6, numHeads: 1, numVariants: 4, qkvBias: true, multiQuery: true }), 3);
    const mh = new LsagLocalAttention({ dim: 6, numHeads: 1, numVariants: 4, qkvBias: true }).to('float64');
    mh.loadStateDict(mq.stateDict());
    const [x, variants] = [f64([2, 3, 6], 1), f64([4, 2, 3, 6], 2)];
    assertClose(mq.forward(x, variants), mh.forward(x, variants), 0);
    mq.dispose();
    mh.dispose();
  });
});

// ---- stages: batch 1, odd/even grids, train/eval -------------------------------------------------

for (const variant of ['cifar', 'imagenet'] as const) {
  test(`${variant} local stage: batch 1 equals its row of a batch of 3 (no squeeze bug), 1 head works`, () => {
    assertNoLeaks(() => {
      const [imgSize, kernelSize, strideSize, paddingSize] = variant === 'cifar' ? [5, 3, 1, 1] : [8, 4, 4, 0];
      for (const numHeads of [1, 2]) {
        const m = randomized(new LsagLocalStageParity({ imgSize, kernelSize, strideSize, paddingSize, embedDim: 8, depth: 2, numHeads, variant }), 4);
        m.eval();
        const img = f64([3, 3, imgSize, imgSize], 6);
        const all = m.forward(img);
        assert.deepEqual(all.shape, [3, variant === 'cifar' ? 25 : 4, 8]);
        assertClose(m.forward(img.narrow(0, 1, 1)), all.narrow(0, 1, 1));
        m.dispose();
      }
    });
  });
}

test('global stage + ReduceImageSize: odd grid 5 → 3, even 4 → 2, batch 1 = its row of a batch', () => {
  assertNoLeaks(() => {
    for (const [N, out] of [[25, 9], [16, 4], [1, 1]]) {
      const m = randomized(new LsagGlobalStageParity({ numPatches: N, dimIn: 8, dimOut: 6, depth: 2, numHeads: 2, variant: 'imagenet' }), N);
      m.eval();
      const x = f64([2, N, 8], N);
      const all = m.forward(x);
      assert.deepEqual(all.shape, [2, out, 6]);
      assertClose(m.forward(x.narrow(0, 1, 1)), all.narrow(0, 1, 1));
      m.dispose();
    }
  });
});

test('state-dict keys: stage-shared norms, layers.{d}.{0,1}, the full model\'s prefixes', () => {
  const local = new LsagLocalStageParity({ imgSize: 4, kernelSize: 3, strideSize: 1, paddingSize: 1, embedDim: 8, depth: 2, numHeads: 2, variant: 'cifar' });
  const keys = [...local.stateDict().keys()].filter((k) => !k.startsWith('to_patch_embedding'));
  assert.deepEqual(keys.slice(0, 4), ['layers.0.0.pos_emb', 'layers.0.0.norm1.weight', 'layers.0.0.norm1.bias', 'layers.0.0.layers.0.0.Wkv_even.weight']);
  assert.ok(keys.includes('layers.0.0.layers.1.0.Wq_odd.bias') && keys.includes('layers.0.0.layers.1.1.fc2.weight'));
  assert.equal(keys.filter((k) => k.includes('norm1')).length, 2, 'one norm1 per stage');
  assert.deepEqual(local.stage.posEmb.shape, [18, 16, 8]);
  const global = new LsagGlobalStageParity({ numPatches: 4, dimIn: 8, dimOut: 8, depth: 1, numHeads: 2, variant: 'cifar' });
  assert.deepEqual([...global.stateDict().keys()].slice(-4), ['layers.1.1.conv.weight', 'layers.1.1.conv.bias', 'layers.1.1.norm.weight', 'layers.1.1.norm.bias']);
  assert.deepEqual(global.stage.posEmb.shape, [4, 8]);
  local.dispose();
  global.dispose();
});

test('init (_init_vit_weights): Linear/Conv weights trunc_normal(std .02), biases 0, LayerNorms (1, 0), pos_emb std .02', () => {
  manualSeed(1);
  const stage = new LsagGlobalStageParity({ numPatches: 64, dimIn: 32, dimOut: 32, depth: 2, numHeads: 4, variant: 'imagenet' });
  for (const [name, p] of stage.namedParameters()) {
    const [mean, std, absMax] = tidy(() => [p.mean().item() as number, p.std().item() as number, p.abs().max().item() as number]);
    if (name.includes('norm') && name.endsWith('weight')) assert.equal(p.sub(1).abs().max().item(), 0, name);
    else if (name.endsWith('bias')) assert.equal(absMax, 0, name);
    else assert.ok(Math.abs(std - 0.02) < 0.003 && Math.abs(mean) < 0.003, `${name}: mean ${mean}, std ${std}`);
  }
  stage.dispose();
});

test('train mode: dropPath 1 drops every residual branch, eval keeps them; dropout is identity in eval', () => {
  manualSeed(0);
  assertNoLeaks(() => {
    const first = randomized(new LsagFirstStage({ numVariants: 3, numPatches: 4, depth: 2, dim: 8, numHeads: 2, dropPath: 1 }), 7);
    const patches = f64([3, 2, 4, 8], 8);
    const shortcut = patches.select(0, 0).add(first.posEmb.select(0, 0));
    assertClose(first.train().forward(patches), shortcut, 0);
    assert.ok((first.eval().forward(patches).sub(shortcut).abs().max().item() as number) > 0.1);
    const stage = randomized(new LsagStage({ numPatches: 4, depth: 2, dim: 8, numHeads: 2, dropPath: 1 }), 9);
    const x = f64([2, 4, 8], 10);
    assertClose(stage.train().forward(x), x.add(stage.posEmb), 0);
    const drop = { projDrop: 0.5, attnDrop: 0.5 };
    const noisy = randomized(new LsagFirstStage({ numVariants: 3, numPatches: 4, depth: 2, dim: 8, numHeads: 2, ...drop }), 7);
    const clean = randomized(new LsagFirstStage({ numVariants: 3, numPatches: 4, depth: 2, dim: 8, numHeads: 2 }), 7);
    assertClose(noisy.eval().forward(patches), clean.forward(patches), 0);
    assert.ok((noisy.train().forward(patches).sub(clean.forward(patches)).abs().max().item() as number) > 1e-3);
    const mlp = new LsagMlp({ inFeatures: 4, hiddenFeatures: 8, drop: 1 }).train();
    assert.equal(mlp.forward(f64([2, 4], 1).float()).abs().sum().item(), 0);
    for (const m of [first, stage, noisy, clean, mlp]) m.dispose();
  });
});

test('train mode with batch 1 (dropout, drop-path on): forward and backward reach every parameter', () => {
  manualSeed(2);
  assertNoLeaks(() => {
    const m = new LsagLocalStageParity({ imgSize: 6, kernelSize: 3, strideSize: 2, paddingSize: 1, embedDim: 8, depth: 2, numHeads: 2, variant: 'cifar', attnDrop: 0.1, projDrop: 0.1 });
    m.train();
    const y = m.forward(randn([1, 3, 6, 6], { seed: 3 }));
    assert.deepEqual(y.shape, [1, 9, 8]);
    y.pow(2).sum().backward();
    for (const [name, p] of m.namedParameters()) assert.ok(p.grad !== null && (p.grad.isfinite().all().item() as boolean), name);
    m.dispose();
  });
});

// ---- float64 gradchecks over the input and every parameter ---------------------------------------

/** Runs fn with the module's parameters replaced by `values` (by state-dict name). */
function withParameters<T>(module: Module, values: Map<string, Tensor>, fn: () => T): T {
  const owners = new Map(module.namedModules());
  const restore: (() => void)[] = [];
  try {
    for (const [name, value] of values) {
      const dot = name.lastIndexOf('.');
      const owner = owners.get(dot < 0 ? '' : name.slice(0, dot)) as unknown as Record<string, unknown>;
      const param = (owner as unknown as Module).getParameter(name.slice(dot + 1));
      const slots = Object.keys(owner).filter((key) => owner[key] === param);
      assert.ok(slots.length > 0, `no field holds ${name}`);
      for (const key of slots) {
        owner[key] = value;
        restore.push(() => { owner[key] = param; });
      }
    }
    return fn();
  } finally {
    for (const undo of restore) undo();
  }
}

/** Gradcheck of module.forward with respect to x and (unless parameters: false) every parameter. */
function gradcheckModule(module: Module, x: Tensor, o: { parameters?: boolean } = {}): GradcheckResult {
  module.eval();
  const names = o.parameters === false ? [] : [...module.namedParameters()].map(([name]) => name);
  const byName = new Map(module.namedParameters());
  const params = names.map((n) => byName.get(n)!.detach().clone().requiresGrad_());
  const result = tidy(() => assertGradcheck((input, ...ps) =>
    withParameters(module, new Map(names.map((n, i) => [n, ps[i]])), () => module.forward(input)),
  [x.requiresGrad_(), ...params], { atol: 1e-6, rtol: 1e-4 }));
  assert.equal(result.report.split('\n').filter((l) => l.includes(': ok,')).length, names.length + 1);
  module.dispose();
  return result;
}

/** Reports each gradcheck's worst entry in the test output (docs/layers/lsag.md quotes them). */
function diagnose(t: TestContext, label: string, r: GradcheckResult): void {
  t.diagnostic(`${label}: max abs error ${r.maxAbsError.toExponential(2)}, max rel error ${r.maxRelError.toExponential(2)}`);
}

test('gradcheck: shifted embeddings (CIFAR rolls, img 4; ImageNet paddings, img 4, stride 4, zero padding 1)', (t) => {
  diagnose(t, 'embedding cifar', gradcheckModule(randomized(new LsagShiftedEmbedding({ imgSize: 4, kernelSize: 1, strideSize: 1, paddingSize: 0, embedDim: 8, variant: 'cifar' }), 1), f64([1, 3, 4, 4], 1)));
  diagnose(t, 'embedding imagenet', gradcheckModule(randomized(new LsagShiftedEmbedding({ imgSize: 4, kernelSize: 2, strideSize: 4, paddingSize: 1, embedDim: 8, variant: 'imagenet' }), 2), f64([1, 3, 4, 4], 2)));
});

test('gradcheck: first stage — local + global block, multi-query (B 1) and multi-head (B 2)', (t) => {
  for (const [multiQuery, B] of [[true, 1], [false, 2]] as const) {
    const stage = new LsagFirstStage({ numVariants: 3, numPatches: 4, depth: 2, dim: 8, numHeads: 2, mlpRatio: 1, qkvBias: true, multiQuery });
    diagnose(t, `first stage multiQuery ${multiQuery}`, gradcheckModule(randomized(stage, 3), f64([3, B, 4, 8], 3)));
  }
});

test('gradcheck: local stage end to end (ImageNet paddings → local block), with respect to the image', (t) => {
  const local = new LsagLocalStageParity({ imgSize: 5, kernelSize: 1, strideSize: 4, paddingSize: 0, embedDim: 8, depth: 1, numHeads: 2, variant: 'imagenet' });
  diagnose(t, 'local stage input', gradcheckModule(randomized(local, 4), f64([2, 3, 5, 5], 4), { parameters: false }));
});

test('gradcheck: global stage + ReduceImageSize (multi-head, grid 3 → 2) and ReduceImageSize alone (grid 5 → 3)', (t) => {
  const stage = new LsagGlobalStageParity({ numPatches: 9, dimIn: 8, dimOut: 4, depth: 2, numHeads: 2, mlpRatio: 1, variant: 'imagenet' });
  diagnose(t, 'global stage + reduce', gradcheckModule(randomized(stage, 5), f64([2, 9, 8], 5)));
  diagnose(t, 'ReduceImageSize', gradcheckModule(randomized(new ReduceImageSize({ dim: 8, dimOut: 6 }), 6), f64([1, 25, 8], 6)));
});

// ---- errors --------------------------------------------------------------------------------------

test('invalid configurations throw RangeError/TypeError naming the constraint', () => {
  const embed = { imgSize: 8, kernelSize: 3, embedDim: 8 };
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, variant: 'svhn' as 'cifar' }), (e) => e instanceof RangeError && /variant must be one of 'cifar', 'imagenet'/.test(e.message));
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, kernelSize: 11, variant: 'cifar' }), /kernelSize 11 exceeds the padded image \(imgSize 8 \+ 2·paddingSize 1\)/);
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, variant: 'imagenet' }),
    (e) => e instanceof RangeError && /imgSize 8 \+ 1 gives a 9-token side instead of 8/.test(e.message));
  assert.throws(() => new LsagShiftedEmbedding({ imgSize: 2, kernelSize: 1, strideSize: 4, paddingSize: 0, embedDim: 8, variant: 'imagenet' }), /needs imgSize ≥ 3, got 2/);
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, strideSize: 0, variant: 'cifar' }), /strideSize must be ≥ 1, got 0/);
  assert.throws(() => new LsagLocalAttention({ dim: 10, numHeads: 4, numVariants: 3 }), (e) => e instanceof RangeError && /dim \(10\) must be divisible by numHeads \(4\)/.test(e.message));
  assert.throws(() => new LsagGlobalAttention({ dim: 8, numHeads: 2, qkScale: 0 }), /qkScale must be a positive finite number or null/);
  assert.throws(() => new LsagGlobalAttention({ dim: 8, numHeads: 2, attnDrop: 1.5 }), /attnDrop must be in \[0, 1\], got 1.5/);
  assert.throws(() => new LsagStage({ numPatches: 4, depth: 0, dim: 8, numHeads: 2 }), /LsagStage: depth must be ≥ 1, got 0/);
  assert.throws(() => new LsagStage({ numPatches: 4, depth: 1, dim: 8, numHeads: 2, mlpRatio: 0.1 }), /mlpRatio 0.1 gives an FFN width ⌊8·mlpRatio⌋ < 1/);
  assert.throws(() => new LsagFirstStage({ numVariants: 3, numPatches: 4, depth: 1, dim: 8, numHeads: 2, dropPath: -0.1 }), /dropPath must be in \[0, 1\]/);
  assert.throws(() => new ReduceImageSize({ dim: 8, dimOut: 0 }), /ReduceImageSize: dimOut must be ≥ 1, got 0/);
  assert.equal(lsagNumVariants('cifar') + lsagNumVariants('imagenet'), 28);
  const isRange = (re: RegExp) => (e: unknown) => e instanceof RangeError && re.test((e as Error).message);
  const isType = (re: RegExp) => (e: unknown) => e instanceof TypeError && re.test((e as Error).message);
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, variant: 'cifar', numShifts: 18 }), isRange(/numShifts \(variant 'cifar' has 17 shifts\) must be in \[0, 17\], got 18/));
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, strideSize: 8, paddingSize: 0, variant: 'imagenet', numShifts: 10 }),
    isRange(/numShifts \(variant 'imagenet' has 9 shifts\) must be in \[0, 9\], got 10/));
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, variant: 'cifar', numShifts: -1 }), isRange(/numShifts must be ≥ 0, got -1/));
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, variant: 'cifar', numShifts: 1.5 }), isType(/numShifts must be an integer, got 1.5/));
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, variant: 'cifar', numShifts: '4' as unknown as number }), isType(/numShifts must be an integer, got 4/));
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, variant: 'cifar', numShift: 4 } as never), isType(/unknown option 'numShift' \(did you mean 'numShifts'\?\)/));
  // One kept padding (1 column) still changes a stride-1 grid: the message names the growth.
  assert.throws(() => new LsagShiftedEmbedding({ ...embed, variant: 'imagenet', numShifts: 1 }), isRange(/grows by up to 1 pixels, and imgSize 8 \+ 1 gives a 9-token side/));
});

test('invalid inputs throw ShapeError naming the expected shape and the fix', () => {
  assertNoLeaks(() => {
    const isShape = (re: RegExp) => (e: unknown) => e instanceof ShapeError && re.test((e as Error).message);
    const embed = new LsagShiftedEmbedding({ imgSize: 6, kernelSize: 3, embedDim: 8, variant: 'cifar' });
    assert.throws(() => embed.forward(f64([2, 3, 6, 7], 1).float()), isShape(/expected an image \(B, 3, 6, 6\), got shape \[2, 3, 6, 7\]; resize the input or build the embedding with imgSize 6/));
    assert.throws(() => embed.forward(f64([2, 1, 6, 6], 1).float()), isShape(/got shape \[2, 1, 6, 6\]/));
    assert.throws(() => embed.forward(f64([3, 6, 6], 1).float()), isShape(/got shape \[3, 6, 6\]/));
    const first = new LsagFirstStage({ numVariants: 18, numPatches: 36, depth: 1, dim: 8, numHeads: 2 });
    assert.throws(() => first.forward(f64([10, 2, 36, 8], 1).float()), isShape(/expected patches \(T=18, B, N=36, D=8\), got shape \[10, 2, 36, 8\]; build the stage with the embedding's numVariants/));
    const local = new LsagLocalAttention({ dim: 8, numHeads: 2, numVariants: 3 });
    assert.throws(() => local.forward(f64([2, 4, 8], 1).float(), f64([3, 2, 5, 8], 1).float()), isShape(/expected variants \(T=3, B=2, N=4, D=8\) to match x, got shape \[3, 2, 5, 8\]/));
    const global = new LsagGlobalAttention({ dim: 8, numHeads: 2 });
    assert.throws(() => global.forward(f64([4, 8], 1).float()), isShape(/expected x as tokens \(B, N, 8\), got shape \[4, 8\]/));
    const stage = new LsagStage({ numPatches: 16, depth: 1, dim: 8, numHeads: 2 });
    assert.throws(() => stage.forward(f64([2, 12, 8], 1).float()), isShape(/LsagStage: expected tokens \(B, N=16, D=8\), got shape \[2, 12, 8\]/));
    const reduce = new ReduceImageSize({ dim: 8, dimOut: 8 });
    assert.throws(() => reduce.forward(f64([2, 12, 8], 1).float()), isShape(/N = 12 is not a square \(nearest 3² = 9\)/));
    assert.throws(() => reduce.forward(f64([2, 16, 4], 1).float()), isShape(/expected tokens \(B, N=g², C=8\), got shape \[2, 16, 4\]/));
    const reduce16 = new ReduceImageSize({ dim: 8, dimOut: 8, seqLen: 16 });
    assert.throws(() => reduce16.forward(f64([2, 9, 8], 1).float()), isShape(/N=16/));
    assert.throws(() => toImagePlane(f64([2, 8], 1)), isShape(/expected tokens \(B, N, C\) on a square grid/));
    for (const m of [embed, first, local, global, stage, reduce, reduce16]) m.dispose();
  });
});
