/**
 * Layers against PyTorch 1.13 (one Python run for every case in layer-cases.ts): forward output,
 * input gradient and every parameter gradient in training and eval mode, the running statistics
 * after training steps, state-dict keys, parameter shapes and counts. Then the behaviour PyTorch
 * cannot check (dropout statistics) and every error path.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as init from '../../src/nn/init.js';
import {
  AdaptiveAvgPool2d, AvgPool2d, BatchNorm1d, BatchNorm2d, Conv1d, Conv2d, Dropout, DropPath, Flatten, GELU, GroupNorm,
  LayerNorm, LeakyReLU, Linear, MaxPool2d, Module, ModuleDict, ModuleList, Sequential, ShapeError, Softplus,
} from '../../src/nn/index.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { generator, manualSeed, ones, randn, zeros } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { CASES, type LayerCase } from './layer-cases.js';
import { maxRelError, PyTorchOracle, valuesOf, type TensorEntry, type Values } from './support.js';

const TOLERANCE = { float64: 1e-12, float32: 1e-5 } as Record<string, number>;

interface StepResult { y: Values; gx: Values; grads: Record<string, Values> }
interface TsResult { keys: string[]; shapes: Record<string, number[]>; numParameters: number; steps: StepResult[]; state: Record<string, Values> }
interface PyStep { y: TensorEntry; gx: TensorEntry; grads: Record<string, TensorEntry> }
interface PyResult { keys: string[]; shapes: Record<string, number[]>; numParameters: number; steps: PyStep[]; state: Record<string, TensorEntry> }

const oracle = new PyTorchOracle('vicinity-layers-');
const ts = new Map<string, TsResult>();
let py: PyResult[] = [];

/** Random parameters and running statistics, so no gradient or statistic is trivially 0 or 1. */
function randomizeState(m: Module, seed: number): void {
  const g = generator(seed);
  noGrad(() => {
    for (const p of m.parameters()) init.normal_(p, { mean: 0.2, std: 0.5, generator: g });
    for (const [name, b] of m.namedBuffers()) {
      if (name.endsWith('running_mean')) init.normal_(b, { std: 0.5, generator: g });
      if (name.endsWith('running_var')) init.uniform_(b, { a: 0.5, b: 1.5, generator: g });
      if (name.endsWith('num_batches_tracked')) b.fill_(3);
    }
  });
}

/** Builds the case, runs its steps in vicinity and writes what Python needs; returns the manifest entry. */
function runCase(c: LayerCase, index: number): unknown {
  return tidy(() => {
    const dtype = c.dtype ?? 'float64';
    const m = c.build().to(dtype);
    const shapes = Object.fromEntries([...m.stateDict()].map(([k, t]) => [k, t.shape]));
    const result: TsResult = { keys: [...m.stateDict().keys()], shapes, numParameters: m.numParameters(), steps: [], state: {} };
    ts.set(c.name, result);
    if (!c.input) return { torch: c.torch, dtype };
    randomizeState(m, 1000 + index);
    const state = Object.fromEntries([...m.stateDict()].map(([k, t]) => [k, oracle.write(t)]));
    const steps = (c.steps ?? [true, false]).map((training, s) => {
      m.train(training);
      m.zeroGrad();
      const x = randn(c.input!, { seed: 10 * index + s, dtype }).mul(c.scale ?? 1).requiresGrad_();
      const y = m.forward(x);
      const gy = randn(y.shape, { seed: 10 * index + s + 5000, dtype });
      y.backward(gy);
      const grads = Object.fromEntries(Array.from(m.namedParameters(), ([n, p]) => [n, valuesOf(p.grad!)]));
      result.steps.push({ y: valuesOf(y), gx: valuesOf(x.grad!), grads });
      return { training, x: oracle.write(x), gy: oracle.write(gy) };
    });
    m.zeroGrad();
    result.state = Object.fromEntries([...m.stateDict()].map(([k, t]) => [k, valuesOf(t)]));
    return { torch: c.torch, dtype, state, steps };
  });
}

const SCRIPT = `
out = []
for case in MANIFEST:
    m = eval(case['torch']).to(getattr(torch, case['dtype']))
    sd = m.state_dict()
    r = {'keys': list(sd.keys()), 'shapes': {k: list(v.shape) for k, v in sd.items()},
         'numParameters': sum(p.numel() for p in m.parameters()), 'steps': [], 'state': {}}
    if 'steps' in case:
        m.load_state_dict({k: load(e) for k, e in case['state'].items()})
        for step in case['steps']:
            m.train(step['training'])
            m.zero_grad(set_to_none=True)
            x = load(step['x']).requires_grad_(True)
            y = m(x)
            y.backward(load(step['gy']))
            r['steps'].append({'y': save(y), 'gx': save(x.grad),
                               'grads': {n: save(p.grad) for n, p in m.named_parameters()}})
        r['state'] = {k: save(v) for k, v in m.state_dict().items()}
    out.append(r)
finish(out)
`;

before(() => {
  const manifest = CASES.map((c, i) => runCase(c, i));
  py = oracle.run<PyResult[]>(SCRIPT, manifest);
});
after(() => oracle.dispose());

function assertClose(actual: Values, expected: TensorEntry, tolerance: number, what: string): void {
  const err = maxRelError(actual, oracle.read(expected));
  assert.ok(err <= tolerance, `${what}: max relative error ${err.toExponential(2)} > ${tolerance}`);
}

CASES.forEach((c, i) => {
  test(`${c.name}: state-dict keys, shapes and parameter count = torch ${c.torch}`, () => {
    const mine = ts.get(c.name)!;
    assert.deepEqual(mine.keys, py[i].keys);
    assert.deepEqual(mine.shapes, py[i].shapes);
    assert.equal(mine.numParameters, py[i].numParameters);
  });
  if (!c.input) return;
  test(`${c.name}: forward, input and parameter gradients, running stats = torch`, () => {
    const mine = ts.get(c.name)!;
    const tolerance = TOLERANCE[c.dtype ?? 'float64'];
    const modes = c.steps ?? [true, false];
    assert.equal(py[i].steps.length, modes.length);
    py[i].steps.forEach((ref, s) => {
      const where = `step ${s} (${modes[s] ? 'train' : 'eval'})`;
      assertClose(mine.steps[s].y, ref.y, tolerance, `${where} output`);
      assertClose(mine.steps[s].gx, ref.gx, tolerance, `${where} input grad`);
      assert.deepEqual(Object.keys(mine.steps[s].grads), Object.keys(ref.grads), `${where} parameters with grads`);
      for (const [name, g] of Object.entries(ref.grads)) assertClose(mine.steps[s].grads[name], g, tolerance, `${where} grad of ${name}`);
    });
    for (const [key, entry] of Object.entries(py[i].state)) assertClose(mine.state[key], entry, tolerance, `final ${key}`);
  });
});

// ---- behaviour without a PyTorch counterpart ----

test('BatchNorm2d counts training steps only, and eval leaves the running statistics alone', () => tidy(() => {
  const bn = new BatchNorm2d({ numFeatures: 2 });
  bn.forward(randn([3, 2, 2, 2], { seed: 1 }));
  bn.forward(randn([3, 2, 2, 2], { seed: 2 }));
  assert.equal(bn.numBatchesTracked!.item(), 2);
  assert.equal(bn.numBatchesTracked!.dtype, 'int64');
  const mean = valuesOf(bn.runningMean!);
  bn.eval().forward(randn([3, 2, 2, 2], { seed: 3 }));
  assert.equal(bn.numBatchesTracked!.item(), 2);
  assert.deepEqual(valuesOf(bn.runningMean!), mean);
  bn.resetRunningStats();
  assert.equal(bn.numBatchesTracked!.item(), 0);
  assert.deepEqual(Array.from(valuesOf(bn.runningVar!).data), [1, 1]);
}));

test('BatchNorm2d.normalizeInside (fused kernels) keeps the running statistics exactly as forward, momentum or cumulative', () => tidy(() => {
  for (const momentum of [0.1, null]) {
    const [a, b] = [new BatchNorm2d({ numFeatures: 3, momentum }).to('float64'), new BatchNorm2d({ numFeatures: 3, momentum }).to('float64')];
    const seen: boolean[] = [];
    for (const [seed, training] of [[1, true], [2, true], [3, false], [4, true]] as [number, boolean][]) {
      a.train(training);
      b.train(training);
      const x = randn([2, 3, 4, 5], { seed, dtype: 'float64' });
      a.forward(x);
      b.normalizeInside(x.shape, (batchStats) => {
        seen.push(batchStats);
        const mean = x.mean([0, 2, 3]);
        return { result: null, mean, variance: x.sub(mean.view([1, 3, 1, 1])).pow(2).mean([0, 2, 3]) };
      });
    }
    assert.deepEqual(seen, [true, true, false, true]);
    assert.equal(b.numBatchesTracked!.item(), 3);
    for (const key of ['running_mean', 'running_var'] as const) {
      const worst = a.getBuffer(key)!.sub(b.getBuffer(key)!).abs().max().item() as number;
      assert.ok(worst < 1e-14, `${key} (momentum ${momentum}): ${worst}`);
    }
  }
  assert.throws(() => new BatchNorm2d({ numFeatures: 3, affine: false }).normalizeInside([2, 3, 4, 4], () => ({ result: 0, mean: zeros([3]), variance: ones([3]) })),
    /BatchNorm2d: normalizeInside needs affine parameters and running statistics; use forward/);
}));

test('Dropout zeroes a fraction p while training, scales the rest by 1/(1-p), and passes gradients through the mask', () => tidy(() => {
  manualSeed(7);
  const drop = new Dropout({ p: 0.3 });
  const x = ones([200, 500]).requiresGrad_();
  const y = drop.forward(x);
  y.sum().backward();
  const { data } = valuesOf(y);
  const zerosCount = data.filter((v) => v === 0).length;
  assert.ok(Math.abs(zerosCount / data.length - 0.3) < 0.01, `zero fraction ${zerosCount / data.length}`);
  assert.ok(data.every((v) => v === 0 || Math.abs(v - 1 / 0.7) < 1e-6));
  assert.deepEqual(valuesOf(x.grad!), valuesOf(y));
  assert.equal(drop.eval().forward(x), x, 'eval mode returns the input itself');
  assert.equal(new Dropout({ p: 0 }).forward(x), x);
  assert.ok(valuesOf(new Dropout({ p: 1 }).forward(x)).data.every((v) => v === 0));
}));

test('DropPath drops whole samples with probability p while training and scales the kept ones', () => tidy(() => {
  manualSeed(11);
  const dropPath = new DropPath({ p: 0.25 });
  const x = ones([4000, 3, 2]).requiresGrad_();
  const y = dropPath.forward(x);
  y.sum().backward();
  const { data } = valuesOf(y.reshape([4000, 6]));
  let dropped = 0;
  for (let n = 0; n < 4000; n++) {
    const sample = data.subarray(6 * n, 6 * n + 6);
    const kept = sample[0] !== 0;
    if (!kept) dropped++;
    assert.ok(sample.every((v) => (kept ? Math.abs(v - 1 / 0.75) < 1e-6 : v === 0)), `sample ${n} is not all-or-nothing`);
  }
  assert.ok(Math.abs(dropped / 4000 - 0.25) < 0.025, `dropped fraction ${dropped / 4000}`);
  assert.deepEqual(valuesOf(x.grad!), valuesOf(y));
  assert.equal(dropPath.eval().forward(x), x);
  assert.equal(new DropPath().forward(x), x, 'default p = 0 is the identity');
  const all = valuesOf(new DropPath({ p: 1 }).forward(x)).data;
  assert.ok(all.every((v) => v === 0), 'p = 1 gives zeros, not NaN');
}));

test('Conv2d and BatchNorm parameters keep their identity through resetParameters', () => {
  const conv = new Conv2d({ inChannels: 2, outChannels: 3, kernelSize: 3 });
  const w = conv.weight;
  conv.resetParameters();
  assert.equal(conv.weight, w);
  assert.equal(conv.getParameter('weight'), w);
  const bn = new BatchNorm1d({ numFeatures: 3 });
  noGrad(() => bn.weight!.fill_(5));
  bn.resetParameters();
  assert.deepEqual(Array.from(valuesOf(bn.weight!).data), [1, 1, 1]);
});

// ---- errors ----

const conv = (o: Partial<ConstructorParameters<typeof Conv2d>[0]>) => () =>
  new Conv2d({ inChannels: 4, outChannels: 8, kernelSize: 3, ...o });

test('Conv2d and Conv1d reject invalid configurations, naming the value and the constraint', () => {
  assert.throws(conv({ groups: 3 }), /Conv2d: inChannels \(4\) must be divisible by groups \(3\)/);
  assert.throws(conv({ outChannels: 6, groups: 4 }), /Conv2d: outChannels \(6\) must be divisible by groups \(4\)/);
  assert.throws(conv({ kernelSize: 0 }), /Conv2d: kernelSize\[0\] must be ≥ 1, got 0/);
  assert.throws(conv({ kernelSize: [3, 0] }), /Conv2d: kernelSize\[1\] must be ≥ 1, got 0/);
  assert.throws(conv({ kernelSize: [3, 3, 3] as unknown as [number, number] }), /Conv2d: kernelSize must be a number or 2 numbers/);
  assert.throws(conv({ kernelSize: 2.5 }), /Conv2d: kernelSize\[0\] must be an integer, got 2.5/);
  assert.throws(conv({ inChannels: 0 }), /Conv2d: inChannels must be ≥ 1, got 0/);
  assert.throws(conv({ stride: 0 }), /Conv2d: stride\[0\] must be ≥ 1, got 0/);
  assert.throws(conv({ padding: -1 }), /Conv2d: padding\[0\] must be ≥ 0, got -1/);
  assert.throws(conv({ dilation: 0 }), /Conv2d: dilation\[0\] must be ≥ 1, got 0/);
  assert.throws(conv({ groups: 0 }), /Conv2d: groups must be ≥ 1, got 0/);
  assert.throws(conv({ padding: 'full' as 'same' }), /Conv2d: padding must be one of 'same', 'valid', got "full"/);
  assert.throws(conv({ padding: 'same', stride: 2 }), /Conv2d: padding 'same' needs stride 1, got stride \[2,2\]/);
  assert.throws(conv({ paddingMode: 'mirror' as 'reflect' }), /Conv2d: paddingMode must be one of 'zeros', 'reflect', 'replicate', 'circular'/);
  assert.throws(conv({ bias: 0 as unknown as boolean }), /Conv2d: bias must be true or false, got 0/);
  assert.throws(() => new Conv1d({ inChannels: 3, outChannels: 3, kernelSize: -1 }), /Conv1d: kernelSize must be ≥ 1, got -1/);
});

test('Conv2d and Conv1d reject inputs of the wrong rank or channel count with a ShapeError', () => tidy(() => {
  const c2 = new Conv2d({ inChannels: 4, outChannels: 8, kernelSize: 3 });
  const expected = /^Conv2d: expected input \(N, C_in=4, H, W\) or \(C_in=4, H, W\), got shape \[2, 3, 8, 8\]$/;
  assert.throws(() => c2.forward(zeros([2, 3, 8, 8])), (e: unknown) => e instanceof ShapeError && expected.test(e.message));
  assert.throws(() => c2.forward(zeros([4, 8])), /Conv2d: expected input .* got shape \[4, 8\]/);
  assert.throws(() => c2.forward(zeros([1, 1, 4, 8, 8])), /got shape \[1, 1, 4, 8, 8\]/);
  const c1 = new Conv1d({ inChannels: 2, outChannels: 2, kernelSize: 1 });
  assert.throws(() => c1.forward(zeros([1, 3, 5])), /Conv1d: expected input \(N, C_in=2, L\) or \(C_in=2, L\), got shape \[1, 3, 5\]/);
}));

test('Linear rejects bad sizes and inputs whose last dim is not inFeatures', () => tidy(() => {
  assert.throws(() => new Linear({ inFeatures: 0, outFeatures: 2 }), /Linear: inFeatures must be ≥ 1, got 0/);
  assert.throws(() => new Linear({ inFeatures: 2, outFeatures: 1.5 }), /Linear: outFeatures must be an integer, got 1.5/);
  const fc = new Linear({ inFeatures: 4, outFeatures: 2 });
  assert.throws(() => fc.forward(zeros([3, 5])), /^ShapeError: Linear: expected input \(\*, inFeatures=4\), got shape \[3, 5\]$/);
  assert.throws(() => fc.forward(zeros([])), /Linear: expected input .*got shape \[\]/);
}));

test('BatchNorm rejects bad options, wrong ranks and channels, and one value per channel in training', () => tidy(() => {
  assert.throws(() => new BatchNorm2d({ numFeatures: 0 }), /BatchNorm2d: numFeatures must be ≥ 1, got 0/);
  assert.throws(() => new BatchNorm2d({ numFeatures: 2, momentum: 1.5 }), /BatchNorm2d: momentum must be in \[0, 1\], got 1.5/);
  assert.throws(() => new BatchNorm2d({ numFeatures: 2, eps: 0 }), /BatchNorm2d: eps must be a positive finite number, got 0/);
  assert.throws(() => new BatchNorm1d({ numFeatures: 2, affine: 'yes' as unknown as boolean }), /BatchNorm1d: affine must be true or false/);
  const bn2 = new BatchNorm2d({ numFeatures: 3 });
  assert.throws(() => bn2.forward(zeros([2, 3, 4])), /^ShapeError: BatchNorm2d: expected input \(N, C=3, H, W\), got shape \[2, 3, 4\]$/);
  assert.throws(() => bn2.forward(zeros([2, 4, 2, 2])), /BatchNorm2d: expected input \(N, C=3, H, W\), got shape \[2, 4, 2, 2\]/);
  const bn1 = new BatchNorm1d({ numFeatures: 3 });
  assert.throws(() => bn1.forward(zeros([2, 3, 4, 5])), /BatchNorm1d: expected input \(N, C=3\) or \(N, C=3, L\), got shape \[2, 3, 4, 5\]/);
  assert.throws(() => bn1.forward(zeros([1, 3])), /BatchNorm1d: expected more than 1 value per channel .* got input shape \[1, 3\]; use a batch larger than 1 or call eval\(\)/);
  assert.equal(bn1.numBatchesTracked!.item(), 1, 'PyTorch also counts the step before the check fails');
  assert.deepEqual(bn1.eval().forward(zeros([1, 3])).shape, [1, 3]);
}));

test('LayerNorm and GroupNorm reject bad options and mismatched inputs', () => tidy(() => {
  assert.throws(() => new LayerNorm({ normalizedShape: [] }), /LayerNorm: normalizedShape must be a number or a non-empty array, got \[\]/);
  assert.throws(() => new LayerNorm({ normalizedShape: [4, 0] }), /LayerNorm: normalizedShape\[1\] must be ≥ 1, got 0/);
  assert.throws(() => new LayerNorm({ normalizedShape: 4, eps: -1 }), /LayerNorm: eps must be a positive finite number, got -1/);
  const ln = new LayerNorm({ normalizedShape: [3, 4] });
  assert.throws(() => ln.forward(zeros([2, 4, 3])), /^ShapeError: LayerNorm: expected input \(\*, 3, 4\), got shape \[2, 4, 3\]$/);
  assert.throws(() => ln.forward(zeros([4])), /LayerNorm: expected input \(\*, 3, 4\), got shape \[4\]/);
  assert.throws(() => new GroupNorm({ numGroups: 4, numChannels: 6 }), /GroupNorm: numChannels \(6\) must be divisible by numGroups \(4\)/);
  assert.throws(() => new GroupNorm({ numGroups: 0, numChannels: 6 }), /GroupNorm: numGroups must be ≥ 1, got 0/);
  const gn = new GroupNorm({ numGroups: 2, numChannels: 4 });
  assert.throws(() => gn.forward(zeros([2, 6, 3])), /^ShapeError: GroupNorm: expected input \(N, C=4, \*\), got shape \[2, 6, 3\]$/);
  assert.throws(() => gn.forward(zeros([4])), /GroupNorm: expected input \(N, C=4, \*\), got shape \[4\]/);
}));

test('Dropout, DropPath and activations reject out-of-range options', () => {
  assert.throws(() => new Dropout({ p: 1.5 }), /Dropout: p must be in \[0, 1\], got 1.5/);
  assert.throws(() => new Dropout({ p: -0.1 }), /Dropout: p must be in \[0, 1\], got -0.1/);
  assert.throws(() => new DropPath({ p: 2 }), /DropPath: p must be in \[0, 1\], got 2/);
  assert.throws(() => new DropPath({ p: Number.NaN }), /DropPath: p must be a number, got NaN/);
  assert.throws(() => new GELU({ approximate: 'erf' as 'none' }), /GELU: approximate must be one of 'none', 'tanh', got "erf"/);
  assert.throws(() => new Softplus({ beta: 0 }), /Softplus: beta must be non-zero/);
  assert.throws(() => new Softplus({ threshold: Infinity }), /Softplus: threshold must be a finite number, got Infinity/);
  assert.throws(() => new LeakyReLU({ negativeSlope: Number.NaN }), /LeakyReLU: negativeSlope must be a finite number, got NaN/);
});

test('pooling layers reject bad sizes, too much padding and inputs that are not 3-D/4-D', () => tidy(() => {
  assert.throws(() => new MaxPool2d({ kernelSize: 0 }), /MaxPool2d: kernelSize\[0\] must be ≥ 1, got 0/);
  assert.throws(() => new MaxPool2d({ kernelSize: 3, padding: 2 }), /MaxPool2d: padding must be at most half the kernel size, got padding \[2,2\] with kernelSize \[3,3\]/);
  assert.throws(() => new AvgPool2d({ kernelSize: 2, stride: 0 }), /AvgPool2d: stride\[0\] must be ≥ 1, got 0/);
  assert.throws(() => new AvgPool2d({ kernelSize: 2, divisorOverride: 0 }), /AvgPool2d: divisorOverride must be ≥ 1, got 0/);
  assert.throws(() => new AdaptiveAvgPool2d({ outputSize: 0 }), /AdaptiveAvgPool2d: outputSize\[0\] must be ≥ 1, got 0/);
  assert.throws(() => new AdaptiveAvgPool2d({ outputSize: [1, 2, 3] as unknown as [number, number] }), /outputSize must be a number or \[H_out, W_out\]/);
  const pool = new MaxPool2d({ kernelSize: 2 });
  assert.throws(() => pool.forward(zeros([4, 4])), /^ShapeError: MaxPool2d: expected input \(N, C, H, W\) or \(C, H, W\), got shape \[4, 4\]$/);
  assert.throws(() => new AdaptiveAvgPool2d({ outputSize: 1 }).forward(zeros([1, 1, 1, 4, 4])), /AdaptiveAvgPool2d: expected input/);
}));

test('Flatten rejects non-integer dims and dims outside the input', () => tidy(() => {
  assert.throws(() => new Flatten({ startDim: 0.5 }), /Flatten: startDim must be an integer, got 0.5/);
  assert.throws(() => new Flatten().forward(zeros([3])), /^ShapeError: Flatten: dims 1 … -1 do not fit an input of shape \[3\]; need -1 ≤ dim < 1 and startDim ≤ endDim$/);
  assert.throws(() => new Flatten({ startDim: 2, endDim: 1 }).forward(zeros([2, 3, 4])), /Flatten: dims 2 … 1 do not fit/);
  assert.deepEqual(new Flatten({ startDim: 0 }).forward(zeros([])).shape, [1]);
}));

test('containers: Sequential indexing and pushing, ModuleList and ModuleDict errors', () => {
  const seq = new Sequential(new Linear({ inFeatures: 2, outFeatures: 2 }), new Flatten());
  assert.equal(seq.length, 2);
  assert.ok(seq.at(-1) instanceof Flatten);
  assert.throws(() => seq.at(2), /Sequential: index 2 is out of range for 2 modules/);
  assert.throws(() => seq.push({} as Module), /Sequential: expected a Module, got \[object Object\]/);
  const list = new ModuleList([new Flatten()]);
  assert.throws(() => list.at(-2), /ModuleList: index -2 is out of range for 1 module$/);
  assert.throws(() => list.forward(), /ModuleList has no forward/);
  const dict = new ModuleDict({ a: new Flatten() });
  const replacement = new Flatten();
  dict.set('a', replacement);
  assert.equal(dict.get('a'), replacement);
  assert.equal(dict.size, 1);
  assert.throws(() => dict.set('b.c', new Flatten()), /module name 'b.c' must be non-empty and contain no '.'/);
  assert.throws(() => dict.forward(), /ModuleDict has no forward/);
});
