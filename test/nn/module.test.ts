/**
 * Module behaviour through real layers: names (checked against PyTorch's for nested containers),
 * state-dict round trips and strict/non-strict loading, train/eval, dtype moves that keep
 * Parameter identity, shared parameters, and no leaked tensors after a training step in tidy().
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import {
  AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Flatten, LayerNorm, Linear, Module, ModuleDict, ModuleList, ReLU, Sequential, StateDictError,
  type StateDict,
} from '../../src/nn/index.js';
import type { Parameter } from '../../src/nn/parameter.js';
import { manualSeed, randn, zeros } from '../../src/tensor/creation.js';
import { memory } from '../../src/tensor/memory.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { maxRelError, PyTorchOracle, valuesOf } from './support.js';

/** The ResNet-like model most tests use: named stages, as Sequential(OrderedDict(...)) in PyTorch. */
function namedModel(seed: number): Sequential {
  manualSeed(seed);
  return Sequential.fromEntries([
    ['stem', new Sequential(new Conv2d({ inChannels: 3, outChannels: 8, kernelSize: 3, bias: false }), new BatchNorm2d({ numFeatures: 8 }))],
    ['block', new Sequential(new Conv2d({ inChannels: 8, outChannels: 8, kernelSize: 3 }), new BatchNorm2d({ numFeatures: 8 }), new ReLU())],
    ['pool', new AdaptiveAvgPool2d({ outputSize: 1 })],
    ['flatten', new Flatten()],
    ['head', new Linear({ inFeatures: 8, outFeatures: 10 })],
  ]);
}

/** A model whose forward maps images to logits, for the training-step tests. */
function classifier(): Sequential {
  return new Sequential(
    new Conv2d({ inChannels: 2, outChannels: 4, kernelSize: 3, padding: 1 }), new BatchNorm2d({ numFeatures: 4 }), new ReLU(),
    new Conv2d({ inChannels: 4, outChannels: 2, kernelSize: 1 }),
  );
}

const shared = new Linear({ inFeatures: 3, outFeatures: 3 });
const MODELS: { name: string; torch: string; build: () => Module }[] = [
  {
    name: 'nested Sequential', torch: 'nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()), nn.Linear(4, 2))',
    build: () => new Sequential(new Conv2d({ inChannels: 3, outChannels: 4, kernelSize: 3 }),
      new Sequential(new BatchNorm2d({ numFeatures: 4 }), new ReLU()), new Linear({ inFeatures: 4, outFeatures: 2 })),
  },
  {
    name: 'named stages',
    torch: "nn.Sequential(OrderedDict([('stem', nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8))), " +
      "('block', nn.Sequential(nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.ReLU())), ('pool', nn.AdaptiveAvgPool2d(1)), ('flatten', nn.Flatten()), ('head', nn.Linear(8, 10))]))",
    build: () => namedModel(0),
  },
  {
    name: 'ModuleDict of ModuleList', torch: "nn.ModuleDict({'a': nn.Linear(2, 3), 'b': nn.ModuleList([nn.Linear(3, 3), nn.LayerNorm(3)])})",
    build: () => new ModuleDict<Module>({
      a: new Linear({ inFeatures: 2, outFeatures: 3 }),
      b: new ModuleList<Module>([new Linear({ inFeatures: 3, outFeatures: 3 }), new LayerNorm({ normalizedShape: 3 })]),
    }),
  },
  {
    name: 'one Linear used twice', torch: '(lambda l: nn.Sequential(l, nn.ReLU(), l))(nn.Linear(3, 3))',
    build: () => new Sequential(shared, new ReLU(), shared),
  },
];

interface PyNames { parameters: string[]; stateDict: string[]; buffers: string[]; numParameters: number }

const SCRIPT = `
from collections import OrderedDict
out = []
for expr in MANIFEST:
    m = eval(expr)
    out.append({'parameters': [n for n, _ in m.named_parameters()], 'stateDict': list(m.state_dict().keys()),
                'buffers': [n for n, _ in m.named_buffers()], 'numParameters': sum(p.numel() for p in m.parameters())})
finish(out)
`;

const oracle = new PyTorchOracle('vicinity-module-');
let py: PyNames[] = [];
before(() => {
  py = oracle.run<PyNames[]>(SCRIPT, MODELS.map((m) => m.torch));
});
after(() => oracle.dispose());

MODELS.forEach((spec, i) => {
  test(`${spec.name}: parameter and buffer names and the parameter count = torch`, () => {
    const m = spec.build();
    assert.deepEqual(Array.from(m.namedParameters(), ([n]) => n), py[i].parameters);
    assert.deepEqual(Array.from(m.namedBuffers(), ([n]) => n), py[i].buffers);
    assert.equal(m.numParameters(), py[i].numParameters);
  });
});

MODELS.forEach((spec, i) => {
  // A module reachable twice is listed under each path ('0.weight' and '2.weight'), as torch's.
  test(`${spec.name}: state-dict keys = torch`, () => {
    assert.deepEqual([...spec.build().stateDict().keys()], py[i].stateDict);
  });
});

test("nested names read like PyTorch's: '0.weight', 'block.1.bias'; a shared Linear counts once", () => {
  const names = Array.from(MODELS[0].build().namedParameters(), ([n]) => n);
  assert.ok(names.includes('0.weight') && names.includes('1.0.bias'));
  assert.ok(Array.from(namedModel(0).namedParameters(), ([n]) => n).includes('block.1.bias'));
  const twice = new Sequential(shared, new ReLU(), shared);
  assert.equal(twice.parameters().length, 2);
  assert.equal(twice.numParameters(), 12);
});

class Tied extends Module {
  readonly encoder: Linear;
  readonly decoderWeight: Parameter;
  constructor() {
    super();
    this.encoder = this.register('encoder', new Linear({ inFeatures: 4, outFeatures: 4, bias: false }));
    this.decoderWeight = this.registerParameter('decoder_weight', this.encoder.weight);
  }
  forward(x: Tensor): Tensor {
    return this.encoder.forward(x).matmul(this.decoderWeight);
  }
}

test('a Parameter registered twice is trained once but saved under both names', () => tidy(() => {
  const m = new Tied();
  assert.deepEqual(Array.from(m.namedParameters(), ([n]) => n), ['decoder_weight']);
  assert.equal(m.numParameters(), 16);
  assert.deepEqual([...m.stateDict().keys()], ['decoder_weight', 'encoder.weight']);
  m.forward(randn([2, 4], { seed: 1 })).sum().backward();
  assert.ok(m.encoder.weight.grad !== null);
}));

/** A state dict's values copied out, to compare later. */
const snapshot = (sd: StateDict) => new Map([...sd].map(([k, t]) => [k, valuesOf(t)]));

test('stateDict → loadStateDict round trip copies every value, keeps identities and does not alias', () => tidy(() => {
  const a = namedModel(1);
  a.forward(randn([2, 3, 7, 7], { seed: 2 }));   // non-trivial running statistics
  const b = namedModel(2);
  const before = b.parameters();
  const report = b.loadStateDict(a.stateDict());
  assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
  const expected = snapshot(a.stateDict());
  for (const [key, t] of b.stateDict()) assert.equal(maxRelError(t, expected.get(key)!), 0, key);
  assert.ok(b.parameters().every((p, i) => p === before[i]), 'parameters keep their identity');
  a.forward(randn([2, 3, 7, 7], { seed: 3 }));
  assert.equal(maxRelError(b.stateDict().get('stem.1.running_mean')!, expected.get('stem.1.running_mean')!), 0, 'b does not alias a');
  const fromRecord = namedModel(3);
  fromRecord.loadStateDict(Object.fromEntries(b.stateDict()));
  assert.equal(maxRelError(fromRecord.stateDict().get('block.0.weight')!, expected.get('block.0.weight')!), 0);
  assert.equal(Number(fromRecord.stateDict().get('stem.1.num_batches_tracked')!.item()), 1);
}));

/** a's state dict with one key missing, one unexpected and one of the wrong shape. */
function brokenStateDict(): StateDict {
  const sd = namedModel(1).stateDict();
  sd.delete('block.0.bias');
  sd.set('extra.weight', zeros([2]));
  sd.set('stem.0.weight', zeros([8, 3, 1, 1]));
  return sd;
}
const BROKEN_REPORT = {
  missing: ['block.0.bias'],
  unexpected: ['extra.weight'],
  mismatched: [{ key: 'stem.0.weight', expected: [8, 3, 3, 3], got: [8, 3, 1, 1] }],
};

test('strict loadStateDict lists every missing, unexpected and mis-shaped key and loads nothing', () => tidy(() => {
  const b = namedModel(2);
  const before = snapshot(b.stateDict());
  assert.throws(() => b.loadStateDict(brokenStateDict()), (e: unknown) => {
    assert.ok(e instanceof StateDictError);
    assert.deepEqual(e.report, BROKEN_REPORT);
    assert.match(e.message, /^Sequential\.loadStateDict: missing keys: block\.0\.bias; unexpected keys: extra\.weight; shape mismatches: stem\.0\.weight expected \[8,3,3,3\] got \[8,3,1,1\]$/);
    return true;
  });
  for (const [key, t] of b.stateDict()) assert.equal(maxRelError(t, before.get(key)!), 0, `${key} unchanged`);
}));

test('non-strict loadStateDict returns the report and loads only the keys that match', () => tidy(() => {
  const b = namedModel(2);
  const before = snapshot(b.stateDict());
  const source = brokenStateDict();
  assert.deepEqual(b.loadStateDict(source, { strict: false }), BROKEN_REPORT);
  const after = b.stateDict();
  assert.equal(maxRelError(after.get('block.0.weight')!, source.get('block.0.weight')!), 0, 'matching key loaded');
  assert.equal(maxRelError(after.get('stem.0.weight')!, before.get('stem.0.weight')!), 0, 'mis-shaped key skipped');
  assert.equal(maxRelError(after.get('block.0.bias')!, before.get('block.0.bias')!), 0, 'missing key untouched');
}));

test('train() and eval() reach every descendant', () => {
  const m = MODELS[2].build();
  assert.ok([...m.modules()].every((x) => x.training));
  m.eval();
  assert.ok([...m.modules()].every((x) => !x.training));
  m.train();
  assert.ok([...m.modules()].every((x) => x.training));
  m.train(false);
  assert.equal([...m.modules()].filter((x) => x.training).length, 0);
});

test("to('float64') converts in place: same Parameter objects, float buffers converted, the step counter stays int64", () => tidy(() => {
  const m = classifier();
  const params = m.parameters();
  const bn = m.at(1) as BatchNorm2d;
  m.to('float64');
  assert.ok(m.parameters().every((p, i) => p === params[i] && p.dtype === 'float64'));
  assert.equal(bn.runningMean!.dtype, 'float64');
  assert.equal(bn.numBatchesTracked!.dtype, 'int64');
  const y = m.forward(randn([2, 2, 4, 4], { seed: 1, dtype: 'float64' }));
  y.sum().backward();
  assert.equal(y.dtype, 'float64');
  assert.equal(params[0].grad!.dtype, 'float64');
  assert.equal(bn.numBatchesTracked!.item(), 1);
  assert.notEqual(maxRelError(bn.runningMean!, zeros([4], { dtype: 'float64' })), 0, 'the converted buffer is the one updated');
  m.to('float32');
  assert.ok(m.parameters().every((p, i) => p === params[i] && p.dtype === 'float32'));
}));

test('zeroGrad clears every gradient; apply visits children before their parent', () => tidy(() => {
  const m = classifier();
  m.forward(randn([2, 2, 3, 3], { seed: 4 })).sum().backward();
  assert.ok(m.parameters().every((p) => p.grad !== null));
  m.zeroGrad();
  assert.ok(m.parameters().every((p) => p.grad === null));
  const order: string[] = [];
  namedModel(0).apply((x) => order.push(x.constructor.name));
  assert.deepEqual(order.slice(0, 3), ['Conv2d', 'BatchNorm2d', 'Sequential']);
  assert.equal(order.at(-1), 'Sequential');
}));

test('a forward and backward step inside tidy() leaves no live tensor behind', () => {
  const m = classifier();
  const step = () => tidy(() => {
    const x = randn([2, 2, 5, 5], { seed: 5 });
    const loss = m.forward(x).pow(2).mean();
    loss.backward();
    for (const p of m.parameters()) valuesOf(p.grad!);
    m.zeroGrad();
  });
  step();   // first call may create lazily cached state
  const start = memory().liveTensors;
  for (let i = 0; i < 3; i++) step();
  assert.equal(memory().liveTensors, start);
  m.eval();
  tidy(() => { m.forward(randn([1, 2, 5, 5], { seed: 6 })); });
  assert.equal(memory().liveTensors, start);
  m.dispose();
});

test('register rejects duplicate and dotted names', () => {
  const m = new Sequential(new ReLU());
  assert.throws(() => m.register('0', new ReLU()), /register: module '0' is already registered/);
  assert.throws(() => m.register('a.b', new ReLU()), /register: module name 'a.b' must be non-empty and contain no '.'/);
  assert.throws(() => m.registerParameter('', zeros([1])), /register: parameter name '' must be non-empty/);
});
