/**
 * LESA (src/attention/lesa.ts, lesa-binary.ts, lesa-position.ts): parity with the official
 * module's fixtures (forward, every gradient, running statistics), float64 gradchecks of the input
 * and every parameter, parameter counts against model-specs.md §3.1, and the contract (shapes,
 * batch 1, odd/even sizes, stride, train/eval, static and binary-only variants, every error).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { gradcheck, type GradcheckResult } from '../../src/autograd/gradcheck.js';
import { Lesa, LesaBinaryAttention, lesaFromReference, referenceBuilders, type LesaOptions } from '../../src/attention/lesa.js';
import { flattenIndex } from '../../src/attention/lesa-position.js';
import type { Module } from '../../src/nn/module.js';
import { Parameter } from '../../src/nn/parameter.js';
import * as F from '../../src/ops/functional.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertParity, withFixture } from './support.js';

const KIND = 'LESA_classification.lib.models.LESA.LESA';

/** A small layer: 8 → 8 channels, 2 heads (qk 2, vp 4), 3×3 maps unless overridden. */
function small(o: Partial<LesaOptions> = {}, seed = 0): Lesa {
  manualSeed(seed);
  return new Lesa({ inPlanes: 8, outPlanes: 8, featureSize: 3, groups: 2, ...o });
}

const maxAbsDiff = (a: Tensor, b: Tensor): number => tidy(() => a.sub(b).abs().max().item() as number);
/** State-dict keys, without keeping the detached views stateDict() makes. */
const stateKeys = (m: Module): string[] => tidy(() => [...m.stateDict().keys()]);

// ---- parity with the official module --------------------------------------------------------------

for (const name of ['lesa-open', 'lesa-train-open', 'lesa-detqr-open']) {
  test(`Lesa = official LESA on fixture ${name} (output, every gradient, running statistics)`, (t) => withFixture(name, (fixture) => {
    // bn_similarity.bias adds a per-channel constant to whole softmax rows: its gradient is exactly
    // zero, compared absolutely (readFixture takes the list from suggested_tolerance).
    assert.deepEqual([...fixture.structurallyZeroGrads], ['bn_similarity.bias']);
    const report = assertParity(fixture, referenceBuilders, {
      kind: KIND,
      check: (module) => assert.deepEqual(stateKeys(module), [...fixture.params.keys()], 'state-dict keys in the reference order'),
    });
    const output = report.rows.find((r) => r.name === 'output')?.error ?? NaN;
    t.diagnostic(`${name}: output ${output.toExponential(2)}, max rel L2 error ${report.maxRelError.toExponential(2)} over ${report.rows.length} tensors`);
  }));
}

test('referenceBuilders: the classification and detection repositories\' kinds, reference defaults', () => {
  assert.deepEqual(Object.keys(referenceBuilders).sort(),
    ['LESA_classification.lib.models.LESA.LESA', 'LESA_detection.mmdet.models.backbones.LESA.LESA']);
  const lesa = { type: 'LESA', with_cp_UB_terms_only: true, pe_type: 'classification', groups: 8, df_channel_shrink: [2], df_kernel_size: [1, 1], df_group: [1, 1] };
  const m = lesaFromReference({ lesa, in_planes: 16, out_planes: 16, bias: false, dcn: null });
  assert.equal(m.featureSize, 56);   // the reference's kernel_size default
  assert.equal(m.stride, 1);
  m.dispose();
  const bad = (ctor: Record<string, unknown>) => () => lesaFromReference({ lesa, in_planes: 16, out_planes: 16, kernel_size: 4, ...ctor });
  assert.throws(bad({ dcn: { type: 'DCN', deform_groups: 1 } }), /deformable unary conv, which vicinity does not implement; pass dcn: null/);
  assert.throws(bad({ lesa: { ...lesa, type: 'SA' } }), /lesa\.type must be 'LESA', got "SA"/);
  assert.throws(bad({ lesa: { ...lesa, groups: undefined } }), /lesa\.groups is required/);
  assert.throws(bad({ lesa: { ...lesa, pe_typ: 'classification' } }), /unknown option 'pe_typ' \(did you mean 'pe_type'\?\)/);
  assert.throws(bad({ lesa: [1] }), /lesa must be an object \(the reference's ConfigDict\)/);
  assert.throws(bad({ padding: 1 }), /LESA reference: unknown option 'padding'; the options are lesa, in_planes/);
});

// ---- parameters ----------------------------------------------------------------------------------

test('parameter counts = model-specs.md §3.1 per-layer table (HW = 196, 8 heads)', () => {
  const rows: [number, number, number, number][] = [[256, 158_192, 495_600, 748_528], [512, 578_480, 1_925_040, 2_938_800]];
  for (const [c, sa, lesa, staticLesa] of rows) {
    const o = { inPlanes: c, outPlanes: c, featureSize: 14, groups: 8 };
    const layers = [new LesaBinaryAttention(o), new Lesa(o), new Lesa({ ...o, static: true })];
    assert.deepEqual(layers.map((m) => m.numParameters()), [sa, lesa, staticLesa], `C = ${c}`);
    // The spec's formulas: SA 2C² + 8C + 48 + (C/4)(2HW − 1); LESA SA + (9/8 + 1 + 2 + 1)C² + 6C; static SA + 9C² + 2C.
    assert.equal(sa, 2 * c * c + 8 * c + 48 + (c / 4) * 391);
    assert.equal(lesa, sa + (9 / 8 + 4) * c * c + 6 * c);
    assert.equal(staticLesa, sa + 9 * c * c + 2 * c);
    for (const m of layers) m.dispose();
  }
});

test('parameter names and shapes: dynamic, static, binary-only and detection_qr', () => {
  const shapes = (m: Module) => Object.fromEntries([...m.namedParameters()].map(([k, p]) => [k, p.shape.join('x')]));
  const lesa = small();
  assert.deepEqual(shapes(lesa), {
    relative: '8x17', 'qkv_transform.weight': '16x8x1', 'bn_qkv.weight': '16', 'bn_qkv.bias': '16',
    'bn_similarity.weight': '6', 'bn_similarity.bias': '6', 'bn_output.weight': '16', 'bn_output.bias': '16',
    'x_transform.0.weight': '8x4x3x3', 'x_transform.1.weight': '8x8x1x1', 'bn_x.weight': '8', 'bn_x.bias': '8',
    'reasoning.1.weight': '8x16x1x1', 'reasoning.2.weight': '8', 'reasoning.2.bias': '8',
    'projection.0.weight': '8x8x1x1', 'projection.1.weight': '8', 'projection.1.bias': '8',
  });
  const staticLesa = small({ static: true });
  assert.deepEqual(Object.keys(shapes(staticLesa)).filter((k) => /^(x_transform|bn_x|reasoning|projection)/.test(k)),
    ['x_transform.0.weight', 'bn_x.weight', 'bn_x.bias']);
  assert.equal(shapes(staticLesa)['x_transform.0.weight'], '8x8x3x3');   // groups 1
  const binary = new LesaBinaryAttention({ inPlanes: 8, outPlanes: 8, featureSize: 3, groups: 2 });
  assert.deepEqual(stateKeys(binary).filter((k) => !k.startsWith('bn_')), ['relative', 'flatten_index', 'qkv_transform.weight']);
  const det = small({ peType: 'detection_qr' });
  assert.equal(shapes(det).rel_height, '5x2');
  assert.equal(shapes(det)['bn_similarity.weight'], '4');
  assert.equal(shapes(det)['bn_output.weight'], '8');
  assert.equal(det.getBuffer('flatten_index'), null);
  const deeper = small({ dfChannelShrink: [2, 2], dfKernelSize: [3, 1, 1], dfGroup: [2, 1, 1] });
  assert.equal(shapes(deeper)['reasoning.1.weight'], '8x8x3x3');
  assert.equal(shapes(deeper)['reasoning.4.weight'], '4x8x1x1');
  assert.equal(shapes(deeper)['projection.0.weight'], '8x4x1x1');
  for (const m of [lesa, staticLesa, binary, det, deeper]) m.dispose();
});

test('inits as the reference: qkv N(0, 1/I), relative N(0, 1/vp), rel tables N(0, 1/qk); flatten_index', () => {
  manualSeed(7);
  const lesa = new Lesa({ inPlanes: 256, outPlanes: 256, featureSize: 14, groups: 8 });
  const det = new LesaBinaryAttention({ inPlanes: 64, outPlanes: 256, featureSize: 64, groups: 4, peType: 'detection_qr' });
  const std = (t: Tensor) => tidy(() => t.std().item() as number);
  const close = (actual: number, expected: number, what: string) =>
    assert.ok(Math.abs(actual / expected - 1) < 0.03, `${what}: std ${actual}, expected ${expected}`);
  close(std(lesa.qkvTransform.weight), Math.sqrt(1 / 256), 'qkv_transform.weight');
  close(std(lesa.relative as Tensor), Math.sqrt(1 / 32), 'relative');
  close(std(det.relHeight as Tensor), 32 ** -0.5, 'rel_height');
  close(std(det.relWidth as Tensor), 32 ** -0.5, 'rel_width');
  tidy(() => {
    assert.deepEqual(flattenIndex(3).toArray(), [2, 1, 0, 3, 2, 1, 4, 3, 2]);   // a − b + L − 1, row-major
    assert.equal(lesa.getBuffer('flatten_index')?.dtype, 'int64');
  });
  lesa.dispose();
  det.dispose();
});

// ---- forward contract --------------------------------------------------------------------------------

test('shapes: batch 1 and 3, train and eval, odd and even sizes, stride 2, non-square maps, every variant', () => {
  const cases: [Partial<LesaOptions>, number[], number[]][] = [
    [{}, [3, 8, 3, 3], [3, 8, 3, 3]],
    [{ featureSize: 4 }, [1, 8, 4, 4], [1, 8, 4, 4]],
    [{ featureSize: 5, stride: 2 }, [2, 8, 5, 5], [2, 8, 2, 2]],
    [{ featureSize: 4, stride: 2 }, [1, 8, 4, 4], [1, 8, 2, 2]],
    [{ featureSize: 4 }, [2, 8, 2, 8], [2, 8, 2, 8]],   // classification: any H×W with H·W = S², as the reference
    [{ peType: 'detection_qr', featureSize: 5, stride: 2 }, [2, 8, 5, 5], [2, 8, 2, 2]],
    [{ static: true, featureSize: 4 }, [1, 8, 4, 4], [1, 8, 4, 4]],
    [{ inPlanes: 6, outPlanes: 12, groups: 3, featureSize: 3 }, [2, 6, 3, 3], [2, 12, 3, 3]],
    [{ groups: 1, dfChannelShrink: [4], dfKernelSize: [3, 1], dfGroup: [2, 2] }, [2, 8, 3, 3], [2, 8, 3, 3]],
  ];
  for (const [o, input, output] of cases) {
    const m = small(o);
    for (const mode of ['train', 'eval'] as const) {
      m.train(mode === 'train');
      tidy(() => {
        const y = m.forward(randn(input, { seed: 1 }));
        assert.deepEqual(y.shape, output, `${JSON.stringify(o)} ${mode}`);
        assert.ok(y.isfinite().all().item(), `${JSON.stringify(o)} ${mode}: finite`);
      });
    }
    m.dispose();
  }
});

test('composition: y = unary + ω ⊙ binary (dynamic), ½ unary + ½ binary (static); binary = LesaBinaryAttention; stride = avg-pool', () => {
  for (const isStatic of [false, true]) {
    const lesa = small({ static: isStatic, featureSize: 4 }).eval();
    const pooled = small({ static: isStatic, featureSize: 4, stride: 2 }, 99).eval();
    const binary = new LesaBinaryAttention({ inPlanes: 8, outPlanes: 8, featureSize: 4, groups: 2 }).eval();
    const own = new Set(stateKeys(binary));
    tidy(() => {
      pooled.loadStateDict(lesa.stateDict());
      binary.loadStateDict(new Map([...lesa.stateDict()].filter(([k]) => own.has(k))));
    });
    tidy(() => {
      const x = randn([2, 8, 4, 4], { seed: 3 });
      const y = lesa.forward(x);
      const m = lesa.unary(x);
      const b = binary.forward(x);
      const expected = isStatic ? m.add(b).mul(0.5) : m.add(lesa.fusionGate(m, b).mul(b));
      assert.ok(maxAbsDiff(y, expected) < 1e-6, `static ${isStatic}`);
      assert.ok(maxAbsDiff(pooled.forward(x), F.avgPool2d(y, 2)) < 1e-6, `static ${isStatic}: stride`);
      if (!isStatic) {
        const gate = lesa.fusionGate(m, b);
        assert.ok((gate.min().item() as number) > 0 && (gate.max().item() as number) < 1);
      }
    });
    for (const m of [lesa, pooled, binary]) m.dispose();
  }
  const s = small({ static: true });
  assert.throws(() => tidy(() => s.fusionGate(randn([1, 8, 3, 3]), randn([1, 8, 3, 3]))), /static LESA has no fusion gate/);
  s.dispose();
});

test('train mode updates every running statistic once per forward; eval mode changes none', () => {
  const m = small();
  const snapshot = () => new Map([...m.namedBuffers()].filter(([k]) => k.includes('running_mean')).map(([k, t]) => [k, t.clone()]));
  const before = snapshot();
  tidy(() => m.eval().forward(randn([2, 8, 3, 3], { seed: 4 })));
  for (const [k, t] of snapshot()) assert.equal(maxAbsDiff(t, before.get(k) as Tensor), 0, k);
  tidy(() => m.train().forward(randn([2, 8, 3, 3], { seed: 4 })));
  const after = snapshot();
  assert.equal(after.size, 6);   // bn_qkv, bn_similarity, bn_output, bn_x, reasoning.2, projection.1
  for (const [k, t] of after) assert.ok(maxAbsDiff(t, before.get(k) as Tensor) > 0, `${k} updated`);
  assert.equal(m.bnSimilarity.numBatchesTracked?.item(), 1);
  for (const t of [...before.values(), ...after.values()]) t.dispose();
  m.dispose();
});

test('forward and backward leak no tensors', () => {
  const m = small({ featureSize: 4, stride: 2 });
  assertNoLeaks(() => {
    const x = randn([2, 8, 4, 4], { seed: 5 }).requiresGrad_();
    m.forward(x).sum().backward();
    assert.deepEqual(x.grad?.shape, [2, 8, 4, 4]);
  });
  m.zeroGrad();
  m.dispose();
});

// ---- float64 gradcheck of the input and every parameter -------------------------------------------

/**
 * Runs `fn` with the module's parameters read from `values` instead: gradcheck hands fn fresh
 * leaves, and every layer here reads its parameters from its own fields at forward time.
 */
function withParameters<T>(root: Module, params: Parameter[], values: Tensor[], fn: () => T): T {
  const replacement = new Map(params.map((p, i) => [p, values[i]]));
  const restore: (() => void)[] = [];
  for (const m of root.modules()) {
    const fields = m as unknown as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      const value = fields[key];
      if (value instanceof Parameter && replacement.has(value)) {
        fields[key] = replacement.get(value);
        restore.push(() => { fields[key] = value; });
      }
    }
  }
  assert.equal(restore.length, params.length, 'every parameter is read from a field');
  try {
    return fn();
  } finally {
    for (const r of restore) r();
  }
}

function gradcheckModule(m: Module, inputShape: number[]): GradcheckResult {
  const named = [...m.namedParameters()];
  const params = named.map(([, p]) => p);
  const x = randn(inputShape, { seed: 11, dtype: 'float64' }).requiresGrad_();
  const result = gradcheck((input, ...values) => withParameters(m, params, values, () => m.forward(input)), [x, ...params]);
  const names = ['input', ...named.map(([k]) => k)];
  const report = result.report.replace(/input (\d+) \[/g, (_, i: string) => `${names[Number(i)]} [`);
  assert.ok(result.ok, report);
  assert.equal(result.report.split('\n').filter((l) => l.includes(': ok,')).length, names.length, report);
  return result;
}

const GRADCHECK_CASES: [string, Partial<LesaOptions>, 'train' | 'eval', number[]][] = [
  ['classification, train-mode BatchNorm, S = 3', {}, 'train', [2, 8, 3, 3]],
  ['detection_qr, eval mode, S = 3', { peType: 'detection_qr' }, 'eval', [2, 8, 3, 3]],
  ['static LESA, train mode, S = 4, stride 2', { static: true, featureSize: 4, stride: 2 }, 'train', [2, 8, 4, 4]],
];

for (const [label, o, mode, shape] of GRADCHECK_CASES) {
  test(`float64 gradcheck, ${label}: input and every parameter`, (t) => {
    const m = small(o, 21).to('float64');
    m.train(mode === 'train');
    if (mode === 'eval') {
      // Non-trivial running statistics, so eval-mode BatchNorm is more than the identity.
      noGrad(() => { for (const [k, b] of m.namedBuffers()) if (k.endsWith('running_var')) b.uniform_(0.5, 1.5); });
    }
    assertNoLeaks(() => {
      const r = gradcheckModule(m, shape);
      t.diagnostic(`${label}: max abs error ${r.maxAbsError.toExponential(2)}, max rel error ${r.maxRelError.toExponential(2)}`);
    });
    m.dispose();
  });
}

// ---- errors ---------------------------------------------------------------------------------------

test('invalid configurations throw TypeError/RangeError naming the constraint, the values and the fix', () => {
  const base = { inPlanes: 8, outPlanes: 8, featureSize: 3, groups: 2 };
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ featureSize: undefined }, /LESA: featureSize is required: the side S of the S×S feature map/],
    [{ featureSize: 4, kernelSize: 3 }, /featureSize 4 and kernelSize 3 disagree; they name one option/],
    [{ kernel_size: 3 }, /LESA: unknown option 'kernel_size' \(did you mean 'kernelSize'\?\); the options are inPlanes, outPlanes/],
    [{ peType: 'axial' }, /LESA: peType must be one of 'classification', 'detection_qr', got "axial"/],
    [{ inPlanes: 6, groups: 4, outPlanes: 8 }, /LESA: inPlanes \(6\) must be divisible by groups \(4\); choose inPlanes as a multiple of groups/],
    [{ outPlanes: 12, groups: 4 }, /outPlanes \/ groups = 3 must be even[\s\S]*multiple of 2·groups/],
    [{ featureSize: 0 }, /LESA: featureSize must be ≥ 1, got 0/],
    [{ stride: 0 }, /LESA: stride must be ≥ 1, got 0/],
    [{ static: 'yes' }, /LESA: static must be true or false/],
    [{ static: true, dfGroup: [1, 1] }, /LESA: dfGroup configure the dynamic fusion gate, which static LESA does not have/],
    [{ dfKernelSize: [2, 1] }, /dfKernelSize\[0\] 2 must be odd/],
    [{ dfKernelSize: [1, 3] }, /the projection kernel dfKernelSize\[1\] must be 1, got 3/],
    [{ dfKernelSize: [] }, /LESA: dfKernelSize must be a list of positive numbers with at least 1 entry, got \[\]/],
    [{ dfChannelShrink: [2, 2, 2] }, /dfKernelSize must be a list of positive numbers with at least 3 entries, got \[1,1\]/],
    [{ dfChannelShrink: [0] }, /LESA: dfChannelShrink must be a list of positive numbers, got \[0\]/],
    [{ dfChannelShrink: [32] }, /dfChannelShrink\[0\] 32 leaves no channels of 16/],
    [{ dfGroup: [3, 1] }, /dfGroup\[0\] 3 must divide the conv's 16 input and 8 output channels/],
    [{ dfGroup: [1, 3] }, /dfGroup\[1\] \(the projection's\) 3 must divide/],
  ];
  for (const [o, pattern] of cases) {
    assert.throws(() => new Lesa({ ...base, ...o } as LesaOptions), pattern, JSON.stringify(o));
  }
  assert.throws(() => new LesaBinaryAttention({ ...base, static: true } as LesaOptions),
    /LesaBinaryAttention: unknown option 'static'; the options are inPlanes/);
  assert.throws(() => new LesaBinaryAttention({ ...base, outPlanes: 7 }), /LesaBinaryAttention: outPlanes \(7\) must be divisible by groups \(2\)/);
});

test('invalid inputs throw ShapeError naming the sizes and the fix', () => {
  const lesa = small({ featureSize: 4 });
  const det = small({ peType: 'detection_qr', featureSize: 4 });
  const pooled = small({ featureSize: 1, stride: 2 });
  const binary = new LesaBinaryAttention({ inPlanes: 8, outPlanes: 8, featureSize: 4, groups: 2 });
  const cases: [Module, number[], RegExp][] = [
    [lesa, [8, 4, 4], /LESA: expected input \(N, C=8, H, W\), got shape \[8, 4, 4\]/],
    [lesa, [2, 4, 4, 4], /LESA: expected input \(N, C=8, H, W\), got shape \[2, 4, 4, 4\]/],
    [lesa, [2, 8, 5, 5], /built for featureSize² = 16 positions \(featureSize 4\), got a 5×5 input \(25 positions\); resize the input to 4×4 or build the layer with featureSize 5/],
    [lesa, [2, 8, 3, 4], /got a 3×4 input \(12 positions\); resize the input to 4×4 or build the layer with a featureSize whose square is H·W/],
    [det, [2, 8, 2, 8], /LESA: the detection_qr position embedding is built for 4×4 maps \(featureSize 4\), got 2×8; resize the input to 4×4$/],
    [det, [2, 8, 6, 6], /got 6×6; resize the input to 4×4 or build the layer with featureSize 6/],
    [pooled, [2, 8, 1, 1], /LESA: average pooling with stride 2 needs H, W ≥ 2, got 1×1; use a larger input or stride 1/],
    [binary, [2, 8, 3, 3], /^ShapeError: LesaBinaryAttention: the classification position embedding is built for featureSize² = 16/],
  ];
  for (const [m, shape, pattern] of cases) {
    assert.throws(() => tidy(() => m.forward(randn(shape))), (e: Error) => {
      assert.equal(e.name, 'ShapeError', e.message);
      assert.match(String(e), pattern);
      return true;
    });
  }
  for (const m of [lesa, det, pooled, binary]) m.dispose();
});
