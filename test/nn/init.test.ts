/**
 * nn.init against torch.nn.init (PyTorch 1.13): the same global seed gives bit-identical values
 * (so the bounds, the fan and the order of draws all match), default Conv/Linear init equals
 * PyTorch's, gains and fans equal calculate_gain and _calculate_fan_in_and_fan_out, and sample
 * statistics of large tensors match theory. One Python run, in before().
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as init from '../../src/nn/init.js';
import { Conv1d, Conv2d, Linear, Module, BatchNorm2d, Sequential } from '../../src/nn/index.js';
import { parameter } from '../../src/nn/parameter.js';
import { empty, generator, manualSeed, rand } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { maxRelError, moments, PyTorchOracle, valuesOf, type TensorEntry, type Values } from './support.js';

const oracle = new PyTorchOracle('vicinity-init-');
after(() => oracle.dispose());

/** One seeded init call, in vicinity and in PyTorch. */
interface SeededCase {
  fn: (t: Tensor) => Tensor;
  torch: string;
  kwargs: Record<string, number | string>;
  shape: number[];
  dtype?: DType;
  /** Allowed max relative error; default 0 (bit-identical). */
  tolerance?: number;
}

const SEEDED: SeededCase[] = [
  { fn: (t) => init.uniform_(t, { a: -2, b: 3 }), torch: 'uniform_', kwargs: { a: -2, b: 3 }, shape: [50, 40] },
  { fn: (t) => init.normal_(t, { mean: 1, std: 3 }), torch: 'normal_', kwargs: { mean: 1, std: 3 }, shape: [1000] },
  { fn: (t) => init.normal_(t, { std: 0.5 }), torch: 'normal_', kwargs: { std: 0.5 }, shape: [7] },
  { fn: (t) => init.kaimingUniform_(t), torch: 'kaiming_uniform_', kwargs: {}, shape: [64, 32, 3, 3] },
  { fn: (t) => init.kaimingUniform_(t, { a: Math.sqrt(5) }), torch: 'kaiming_uniform_', kwargs: { a: Math.sqrt(5) }, shape: [16, 8, 3, 3] },
  {
    fn: (t) => init.kaimingUniform_(t, { mode: 'fanOut', nonlinearity: 'relu' }), torch: 'kaiming_uniform_',
    kwargs: { mode: 'fan_out', nonlinearity: 'relu' }, shape: [16, 8, 5],
  },
  {
    fn: (t) => init.kaimingNormal_(t, { mode: 'fanOut', nonlinearity: 'relu' }), torch: 'kaiming_normal_',
    kwargs: { mode: 'fan_out', nonlinearity: 'relu' }, shape: [32, 16, 3, 3],
  },
  {
    fn: (t) => init.kaimingNormal_(t, { a: 0.2, nonlinearity: 'leakyRelu' }), torch: 'kaiming_normal_',
    kwargs: { a: 0.2, nonlinearity: 'leaky_relu' }, shape: [20, 30],
  },
  { fn: (t) => init.kaimingNormal_(t, { nonlinearity: 'tanh' }), torch: 'kaiming_normal_', kwargs: { nonlinearity: 'tanh' }, shape: [20, 30] },
  { fn: (t) => init.kaimingUniform_(t), torch: 'kaiming_uniform_', kwargs: {}, shape: [20, 10], dtype: 'float64' },
  { fn: (t) => init.xavierUniform_(t, { gain: 2 }), torch: 'xavier_uniform_', kwargs: { gain: 2 }, shape: [30, 20] },
  { fn: (t) => init.xavierNormal_(t), torch: 'xavier_normal_', kwargs: {}, shape: [30, 20, 5] },
  // Φ(a), Φ(b) come from libtorch's erf, Python's from math.erf: they may differ in the last bit.
  { fn: (t) => init.truncNormal_(t), torch: 'trunc_normal_', kwargs: {}, shape: [1000], tolerance: 1e-6 },
  {
    fn: (t) => init.truncNormal_(t, { std: 0.02, a: -0.04, b: 0.04 }), torch: 'trunc_normal_',
    kwargs: { std: 0.02, a: -0.04, b: 0.04 }, shape: [64, 64], tolerance: 1e-6,
  },
  {
    fn: (t) => init.truncNormal_(t, { mean: 1, std: 2, a: -1, b: 2 }), torch: 'trunc_normal_',
    kwargs: { mean: 1, std: 2, a: -1, b: 2 }, shape: [500], dtype: 'float64', tolerance: 1e-12,
  },
  { fn: (t) => init.constant_(t, 0.25), torch: 'constant_', kwargs: { val: 0.25 }, shape: [3, 4] },
];

/** Default initialisation: the same seed must give PyTorch's parameters exactly. */
const DEFAULTS: { torch: string; build: () => Module }[] = [
  { torch: 'nn.Conv2d(16, 32, 3)', build: () => new Conv2d({ inChannels: 16, outChannels: 32, kernelSize: 3 }) },
  { torch: 'nn.Conv2d(8, 16, (3, 5), groups=4)', build: () => new Conv2d({ inChannels: 8, outChannels: 16, kernelSize: [3, 5], groups: 4 }) },
  { torch: 'nn.Conv1d(4, 8, 3, bias=False)', build: () => new Conv1d({ inChannels: 4, outChannels: 8, kernelSize: 3, bias: false }) },
  { torch: 'nn.Linear(30, 20)', build: () => new Linear({ inFeatures: 30, outFeatures: 20 }) },
  {
    torch: 'nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 4))',
    build: () => new Sequential(new Conv2d({ inChannels: 3, outChannels: 8, kernelSize: 3 }), new BatchNorm2d({ numFeatures: 8 }),
      new Linear({ inFeatures: 8, outFeatures: 4 })),
  },
];

const GAINS: [init.Nonlinearity, string, number | null][] = [
  ['linear', 'linear', null], ['conv2d', 'conv2d', null], ['convTranspose3d', 'conv_transpose3d', null], ['sigmoid', 'sigmoid', null],
  ['tanh', 'tanh', null], ['relu', 'relu', null], ['leakyRelu', 'leaky_relu', null], ['leakyRelu', 'leaky_relu', 0.2], ['selu', 'selu', null],
];
const FAN_SHAPES = [[5, 3], [8, 4, 3, 3], [6, 2, 5], [4, 0, 3]];
const TRUNC = { mean: 1, std: 2, a: -1, b: 2 };

// truncNormal_ samples as timm's trunc_normal_ does (every timm model vicinity ports initialises
// with it), by the inverse CDF, as torch.nn.init.trunc_normal_ did in 1.13; PyTorch 2.13's
// nn.init version samples by rejection instead, so the oracle is timm's function.
const SCRIPT = `
def timm_trunc_normal_(t, mean=0., std=1., a=-2., b=2.):
    cdf = lambda x: (1. + math.erf(x / math.sqrt(2.))) / 2.
    l, u = cdf((a - mean) / std), cdf((b - mean) / std)
    t.uniform_(2 * l - 1, 2 * u - 1); t.erfinv_(); t.mul_(std * math.sqrt(2.)); t.add_(mean); t.clamp_(min=a, max=b)
    return t
r = {'seeded': [], 'defaults': []}
for c in MANIFEST['seeded']:
    torch.manual_seed(c['seed'])
    t = torch.empty(c['shape'], dtype=getattr(torch, c['dtype']))
    (timm_trunc_normal_ if c['torch'] == 'trunc_normal_' else getattr(nn.init, c['torch']))(t, **c['kwargs'])
    r['seeded'].append(save(t))
for c in MANIFEST['defaults']:
    torch.manual_seed(c['seed'])
    r['defaults'].append({k: save(v) for k, v in eval(c['torch']).state_dict().items()})
r['gains'] = [nn.init.calculate_gain(n, p) for n, p in MANIFEST['gains']]
r['fans'] = [list(nn.init._calculate_fan_in_and_fan_out(torch.empty(s))) for s in MANIFEST['fans']]
t = MANIFEST['trunc']
phi = lambda x: math.exp(-x * x / 2) / math.sqrt(2 * math.pi)
Phi = lambda x: (1 + math.erf(x / math.sqrt(2))) / 2
al, be = (t['a'] - t['mean']) / t['std'], (t['b'] - t['mean']) / t['std']
Z = Phi(be) - Phi(al)
d = (phi(al) - phi(be)) / Z
r['truncMean'] = t['mean'] + t['std'] * d
r['truncStd'] = t['std'] * math.sqrt(1 + (al * phi(al) - be * phi(be)) / Z - d * d)
finish(r)
`;

interface PyResult {
  seeded: TensorEntry[];
  defaults: Record<string, TensorEntry>[];
  gains: number[];
  fans: [number, number][];
  truncMean: number;
  truncStd: number;
}

let py: PyResult;
const seededTs: Values[] = [];
const defaultsTs: Record<string, Values>[] = [];

before(() => {
  tidy(() => {
    SEEDED.forEach((c, i) => {
      manualSeed(100 + i);
      seededTs.push(valuesOf(c.fn(empty(c.shape, { dtype: c.dtype ?? 'float32' }))));
    });
    DEFAULTS.forEach((c, i) => {
      manualSeed(200 + i);
      const m = c.build();
      defaultsTs.push(Object.fromEntries([...m.stateDict()].map(([k, t]) => [k, valuesOf(t)])));
      m.dispose();
    });
  });
  py = oracle.run<PyResult>(SCRIPT, {
    seeded: SEEDED.map((c, i) => ({ torch: c.torch, kwargs: c.kwargs, shape: c.shape, dtype: c.dtype ?? 'float32', seed: 100 + i })),
    defaults: DEFAULTS.map((c, i) => ({ torch: c.torch, seed: 200 + i })),
    gains: GAINS.map(([, name, param]) => [name, param]),
    fans: FAN_SHAPES,
    trunc: TRUNC,
  });
});

SEEDED.forEach((c, i) => {
  test(`${c.torch}(${JSON.stringify(c.kwargs)}) on [${c.shape}] ${c.dtype ?? 'float32'}: same values as torch.nn.init after the same seed`, () => {
    const err = maxRelError(seededTs[i], oracle.read(py.seeded[i]));
    assert.ok(err <= (c.tolerance ?? 0), `max relative error ${err}`);
  });
});

DEFAULTS.forEach((c, i) => {
  test(`${c.torch}: default initialisation identical to PyTorch's after the same seed`, () => {
    assert.deepEqual(Object.keys(defaultsTs[i]), Object.keys(py.defaults[i]));
    for (const [key, entry] of Object.entries(py.defaults[i])) {
      assert.equal(maxRelError(defaultsTs[i][key], oracle.read(entry)), 0, key);
    }
  });
});

test('calculateGain and fanInAndFanOut equal torch.nn.init.calculate_gain and _calculate_fan_in_and_fan_out', () => {
  GAINS.forEach(([name, , param], i) => assert.equal(init.calculateGain(name, param ?? undefined), py.gains[i], name));
  FAN_SHAPES.forEach((shape, i) => {
    const { fanIn, fanOut } = init.fanInAndFanOut(shape);
    assert.deepEqual([fanIn, fanOut], py.fans[i], `shape [${shape}]`);
  });
});

test('{ generator } draws from its own generator: the same values as that seed, the global stream untouched', () => tidy(() => {
  manualSeed(5);
  const viaGlobal = valuesOf(init.kaimingNormal_(empty([40, 30])));
  manualSeed(1);
  const expectedNext = valuesOf(rand([5]));
  manualSeed(1);
  const viaGenerator = valuesOf(init.kaimingNormal_(empty([40, 30]), { generator: generator(5) }));
  assert.deepEqual(viaGenerator, viaGlobal);
  assert.deepEqual(valuesOf(rand([5])), expectedNext, 'the global generator did not advance');
  const g = generator(9);
  const first = valuesOf(init.truncNormal_(empty([100]), { generator: g }));
  const second = valuesOf(init.truncNormal_(empty([100]), { generator: g }));
  assert.notDeepEqual(first, second, 'a generator advances between calls');
}));

/** Asserts sample std within 1.5% of theory and |mean − expected| within 5 standard errors. */
function assertMoments(t: Tensor, mean: number, std: number, label: string): void {
  const m = moments(t);
  assert.ok(Math.abs(m.std / std - 1) < 0.015, `${label}: sample std ${m.std} vs theory ${std}`);
  assert.ok(Math.abs(m.mean - mean) < 5 * std / Math.sqrt(t.numel), `${label}: sample mean ${m.mean} vs theory ${mean}`);
}

test('kaiming and xavier samples have the theoretical std (and uniform ones stay within their bound)', () => tidy(() => {
  const g = generator(3);
  const ku = init.kaimingUniform_(empty([256, 128, 3, 3]), { generator: g });
  const kuStd = Math.sqrt(2) / Math.sqrt(128 * 9);
  assertMoments(ku, 0, kuStd, 'kaimingUniform_');
  const { min, max } = moments(ku);
  assert.ok(max <= Math.sqrt(3) * kuStd && min >= -Math.sqrt(3) * kuStd && max > 0.99 * Math.sqrt(3) * kuStd);
  assertMoments(init.kaimingNormal_(empty([128, 256, 3, 3]), { mode: 'fanOut', nonlinearity: 'relu', generator: g }),
    0, Math.sqrt(2 / (128 * 9)), 'kaimingNormal_ fanOut');
  const xu = init.xavierUniform_(empty([400, 600]), { gain: 1.5, generator: g });
  assertMoments(xu, 0, 1.5 * Math.sqrt(2 / 1000), 'xavierUniform_');
  assert.ok(moments(xu).max <= 1.5 * Math.sqrt(6 / 1000));
  assertMoments(init.xavierNormal_(empty([400, 600]), { generator: g }), 0, Math.sqrt(2 / 1000), 'xavierNormal_');
  assertMoments(init.normal_(empty([100000]), { mean: -3, std: 0.5, generator: g }), -3, 0.5, 'normal_');
  const u = init.uniform_(empty([100000]), { a: 2, b: 4, generator: g });
  assertMoments(u, 3, 2 / Math.sqrt(12), 'uniform_');
  assert.ok(moments(u).min >= 2 && moments(u).max < 4);
}));

test('truncNormal_ stays within [a, b] and matches the truncated normal mean and std', () => tidy(() => {
  const t = init.truncNormal_(empty([200000], { dtype: 'float64' }), { ...TRUNC, generator: generator(4) });
  const m = moments(t);
  assert.ok(m.min >= TRUNC.a && m.max <= TRUNC.b, `range [${m.min}, ${m.max}]`);
  assertMoments(t, py.truncMean, py.truncStd, 'truncNormal_');
  const narrow = moments(init.truncNormal_(empty([10000]), { std: 0.02, a: -0.02, b: 0.02, generator: generator(5) }));
  assert.ok(narrow.min >= -0.02 && narrow.max <= 0.02);
}));

test('default Conv2d and Linear parameters lie within ±1/√fanIn and fill that range', () => tidy(() => {
  manualSeed(0);
  const conv = new Conv2d({ inChannels: 64, outChannels: 32, kernelSize: 3 });
  const fc = new Linear({ inFeatures: 1000, outFeatures: 500 });
  for (const [label, w, b, bound] of [['Conv2d', conv.weight, conv.bias!, 1 / 24], ['Linear', fc.weight, fc.bias!, 1 / Math.sqrt(1000)]] as const) {
    const mw = moments(w);
    assert.ok(mw.max <= bound && mw.min >= -bound && mw.max > 0.99 * bound, `${label} weight in [${mw.min}, ${mw.max}], bound ${bound}`);
    assertMoments(w, 0, bound / Math.sqrt(3), `${label} weight`);
    const mb = moments(b);
    assert.ok(mb.max <= bound && mb.min >= -bound, `${label} bias in [${mb.min}, ${mb.max}]`);
  }
  conv.dispose();
  fc.dispose();
}));

test('constant_, zeros_ and ones_ fill; every init works in place on a Parameter that requires grad', () => tidy(() => {
  const p = parameter(empty([3, 2]));
  assert.equal(init.ones_(p), p);
  assert.deepEqual(Array.from(valuesOf(p).data), [1, 1, 1, 1, 1, 1]);
  init.zeros_(p);
  assert.deepEqual(Array.from(valuesOf(p).data), [0, 0, 0, 0, 0, 0]);
  for (const fn of [init.kaimingUniform_, init.kaimingNormal_, init.xavierUniform_, init.xavierNormal_, init.truncNormal_, init.normal_, init.uniform_]) {
    assert.equal(fn(p), p);
    assert.ok(p.requiresGrad && p.isLeaf && p.gradFn === null, `${fn.name} left a leaf that requires grad`);
  }
  assert.equal(init.kaimingUniform_(empty([0, 3])).numel, 0, 'zero-element tensors are returned untouched');
  p.dispose();
}));

test('init functions reject impossible arguments, naming the value and the fix', () => tidy(() => {
  assert.throws(() => init.fanInAndFanOut(empty([5])), /fanInAndFanOut: .*at least 2 dims \(out, in, \.\.\.\), got shape \[5\]/);
  assert.throws(() => init.kaimingUniform_(empty([5])), /at least 2 dims/);
  assert.throws(() => init.xavierNormal_(empty([])), /got shape \[\]/);
  assert.throws(() => init.calculateGain('softmax' as init.Nonlinearity), /calculateGain: unsupported nonlinearity 'softmax'; use one of linear, .*selu/);
  assert.throws(() => init.calculateGain('leakyRelu', Number.NaN), /calculateGain: the negative slope of leakyRelu must be a finite number, got NaN/);
  assert.throws(() => init.kaimingNormal_(empty([3, 3]), { mode: 'fan_in' as init.FanMode }), /kaiming init: mode must be 'fanIn' or 'fanOut', got "fan_in"/);
  assert.throws(() => init.kaimingNormal_(empty([3, 3]), { nonlinearity: 'leaky_relu' as init.Nonlinearity }), /unsupported nonlinearity 'leaky_relu'/);
  assert.throws(() => init.uniform_(empty([3]), { a: 1, b: 0 }), /uniform_: the range \[a, b\) needs a ≤ b, got a = 1, b = 0/);
  assert.throws(() => init.normal_(empty([3]), { std: -1 }), /normal_: std must be ≥ 0, got -1/);
  assert.throws(() => init.truncNormal_(empty([3]), { a: 1, b: 1 }), /truncNormal_: the bounds need a < b, got a = 1, b = 1/);
  assert.throws(() => init.truncNormal_(empty([3]), { std: 0 }), /truncNormal_: std must be > 0, got 0/);
}));
