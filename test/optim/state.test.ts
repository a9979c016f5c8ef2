/**
 * Optimizer and schedule state: resuming from a state dict (through JSON) equals training
 * straight through, bit for bit; state dicts cross to and from PyTorch (1.13) in both directions;
 * training loops keep the live-tensor count constant after the first step; loadStateDict errors;
 * paramGroupsNoWeightDecay. One Python process, for the PyTorch round trips.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { before, describe, test } from 'node:test';
import { Module } from '../../src/nn/module.js';
import { parameter } from '../../src/nn/parameter.js';
import { AdamW } from '../../src/optim/adamw.js';
import { clipGradNorm } from '../../src/optim/clip-grad.js';
import { CosineSchedule, StepSchedule, type LrSchedule } from '../../src/optim/lr-scheduler.js';
import { paramGroupsNoWeightDecay, type Optimizer, type OptimizerStateDict } from '../../src/optim/optimizer.js';
import { SGD } from '../../src/optim/sgd.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { memory } from '../../src/tensor/memory.js';
import { tidy } from '../../src/tensor/scope.js';
import { Tensor, type DType } from '../../src/tensor/tensor.js';
import { assertClose, PYTHON as ORACLE_PYTHON } from '../support/parity.js';

const STEPS = 20;
const HALF = 10;
const SHAPES = [[3, 4], [5]];
const INITIAL = SHAPES.map((shape, i) => randn(shape, { dtype: 'float64', seed: 900 + i }).keep());
const GRADS = SHAPES.map((shape, i) => randn([STEPS, ...shape], { dtype: 'float64', seed: 910 + i }).keep());

type AnyOptimizer = Optimizer<{ lr: number }>;

interface Setup {
  optimizer: AnyOptimizer;
  schedule: LrSchedule | null;
}

/** The two configurations: groups with different hyper-parameters, SGD and AdamW, with schedules. */
const CONFIGS: Record<'sgd' | 'adamw', { make: (ps: Tensor[], schedule: boolean) => Setup; python: string }> = {
  sgd: {
    make: (ps, schedule) => {
      const optimizer = new SGD([
        { params: [ps[0]], momentum: 0.9, nesterov: true },
        { params: [ps[1]], lr: 0.05, momentum: 0 },
      ], { lr: 0.1, weightDecay: 1e-3 }) as unknown as AnyOptimizer;
      return { optimizer, schedule: schedule ? new StepSchedule({ optimizer, stepSize: 4, gamma: 0.5 }) : null };
    },
    python: `torch.optim.SGD([{'params': [ps[0]], 'momentum': 0.9, 'nesterov': True}, {'params': [ps[1]], 'lr': 0.05, 'momentum': 0}], lr=0.1, weight_decay=1e-3)`,
  },
  adamw: {
    make: (ps, schedule) => {
      const optimizer = new AdamW([
        { params: [ps[0]], amsgrad: true },
        { params: [ps[1]], lr: 0.01, weightDecay: 0 },
      ], { lr: 0.02, weightDecay: 0.05 }) as unknown as AnyOptimizer;
      return { optimizer, schedule: schedule ? new CosineSchedule({ optimizer, totalSteps: STEPS, warmupSteps: 3, minLr: 1e-4 }) : null };
    },
    python: `torch.optim.AdamW([{'params': [ps[0]], 'amsgrad': True}, {'params': [ps[1]], 'lr': 0.01, 'weight_decay': 0}], lr=0.02, weight_decay=0.05)`,
  },
};

/** Steps `from`..`to`-1: fixed gradients, clipping, update, schedule. */
function train(ps: Tensor[], { optimizer, schedule }: Setup, from: number, to: number): void {
  for (let s = from; s < to; s++) {
    tidy(() => {
      ps.forEach((p, i) => (p.grad = GRADS[i].select(0, s).clone()));
      clipGradNorm(ps, 2.0);
      optimizer.step();
      optimizer.zeroGrad();
      schedule?.step();
    });
  }
}

/** Parameters holding copies of `values` (the scope frees the intermediate clones). */
const freshParams = (values: Tensor[]) => tidy(() => values.map((v) => parameter(v.clone())));

// ---- JSON with tensors ------------------------------------------------------------------------

interface EncodedTensor { __tensor__: true; dtype: DType; shape: number[]; data: number[] }

function encode(value: unknown): unknown {
  if (value instanceof Tensor) {
    return { __tensor__: true, dtype: value.dtype, shape: value.shape, data: Array.from(value.dataSync() as Float64Array) };
  }
  if (Array.isArray(value)) return value.map(encode);
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encode(v)]));
  return value;
}

function decode(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(decode);
  if (value === null || typeof value !== 'object') return value;
  const t = value as EncodedTensor;
  if (t.__tensor__) return tensor(t.dtype === 'float32' ? Float32Array.from(t.data) : Float64Array.from(t.data), { shape: t.shape });
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, decode(v)]));
}

const flat = (ps: Tensor[]) => ps.map((p) => Array.from(p.dataSync() as Float64Array));

describe('resume from a state dict (through JSON) = training straight through, bitwise', () => {
  for (const [name, config] of Object.entries(CONFIGS)) {
    test(name, () => {
      const straightParams = freshParams(INITIAL);
      const straight = config.make(straightParams, true);
      train(straightParams, straight, 0, STEPS);

      const firstParams = freshParams(INITIAL);
      const first = config.make(firstParams, true);
      train(firstParams, first, 0, HALF);
      const saved = JSON.stringify(encode({ optimizer: first.optimizer.stateDict(), schedule: first.schedule!.stateDict() }));
      const paramValues = firstParams.map((p) => p.clone().keep());
      first.optimizer.dispose();

      const resumedParams = freshParams(paramValues);
      const resumed = config.make(resumedParams, true);
      const loaded = tidy(() => decode(JSON.parse(saved)) as { optimizer: OptimizerStateDict; schedule: never });
      resumed.optimizer.loadStateDict(loaded.optimizer);
      resumed.schedule!.loadStateDict(loaded.schedule);
      train(resumedParams, resumed, HALF, STEPS);

      resumedParams.forEach((p, i) => assert.ok(p.equal(straightParams[i]), `${name}: parameter ${i} differs after resuming`));
      assert.deepEqual(resumed.optimizer.paramGroups.map((g) => g.lr), straight.optimizer.paramGroups.map((g) => g.lr));
      assert.deepEqual(resumed.schedule!.stateDict(), straight.schedule!.stateDict());
      const resumedState = resumed.optimizer.stateDict().state;
      for (const [index, entry] of Object.entries(straight.optimizer.stateDict().state)) {
        for (const [key, value] of Object.entries(entry)) {
          const other = resumedState[Number(index)][key];
          if (value instanceof Tensor) assert.ok(value.equal(other as Tensor), `${name}: state ${index}.${key} differs`);
          else assert.equal(other, value, `${name}: state ${index}.${key}`);
        }
      }
      for (const s of [straight, resumed]) s.optimizer.dispose();
      [...straightParams, ...firstParams, ...resumedParams, ...paramValues].forEach((p) => p.dispose());
    });
  }
});

// ---- PyTorch round trips -----------------------------------------------------------------------

const PYTHON = String.raw`
import json, sys, torch
data = json.load(open(sys.argv[1])) if sys.argv[1] != '-' else json.load(sys.stdin)
def dec(v):
    if isinstance(v, dict):
        if v.get('__tensor__'): return torch.tensor(v['data'], dtype=getattr(torch, v['dtype'])).reshape(v['shape'])
        return {k: dec(x) for k, x in v.items()}
    if isinstance(v, list): return [dec(x) for x in v]
    return v
def enc(v):
    if torch.is_tensor(v): return {'__tensor__': True, 'dtype': str(v.dtype)[6:], 'shape': list(v.shape), 'data': v.reshape(-1).tolist()}
    if isinstance(v, dict): return {k: enc(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)): return [enc(x) for x in v]
    return v
grads = [dec(g) for g in data['grads']]
def train(ps, opt, start, stop):
    for s in range(start, stop):
        for p, g in zip(ps, grads): p.grad = g[s].clone()
        torch.nn.utils.clip_grad_norm_(ps, 2.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
results = {}
for name, make in data['configs'].items():
    ps = [dec(p).clone().requires_grad_() for p in data['initial']]
    opt = eval(make)
    train(ps, opt, 0, data['half'])
    saved = json.loads(json.dumps(enc(opt.state_dict())))
    params_half = [p.detach().clone() for p in ps]
    train(ps, opt, data['half'], data['steps'])
    final = [p.detach().reshape(-1).tolist() for p in ps]
    # Ours -> PyTorch: a fresh optimizer loads our dict and finishes the run.
    ps = [dec(p).clone().requires_grad_() for p in data['ours'][name]['params']]
    opt = eval(make)
    ours = dec(data['ours'][name]['dict'])
    ours['state'] = {int(k): v for k, v in ours['state'].items()}  # JSON made the indices strings
    opt.load_state_dict(ours)
    train(ps, opt, data['half'], data['steps'])
    results[name] = {'dict': saved, 'params_half': enc(params_half), 'final': final,
                     'from_ours': [p.detach().reshape(-1).tolist() for p in ps]}
print(json.dumps(results))
`;

interface PythonResult { dict: OptimizerStateDict; params_half: unknown; final: number[][]; from_ours: number[][] }

describe('state dicts cross to and from torch.optim', () => {
  const ours: Record<string, { params: unknown; dict: unknown; final: number[][] }> = {};
  let theirs: Record<string, PythonResult> = {};
  before(() => {
    for (const [name, config] of Object.entries(CONFIGS)) {
      const ps = freshParams(INITIAL);
      const setup = config.make(ps, false);
      train(ps, setup, 0, HALF);
      ours[name] = { params: encode(ps), dict: encode(setup.optimizer.stateDict()), final: [] };
      train(ps, setup, HALF, STEPS);
      ours[name].final = flat(ps);
      setup.optimizer.dispose();
    }
    const input = {
      initial: encode(INITIAL), grads: encode(GRADS), half: HALF, steps: STEPS, ours,
      configs: Object.fromEntries(Object.entries(CONFIGS).map(([k, c]) => [k, c.python])),
    };
    const out = execFileSync(ORACLE_PYTHON, ['-c', PYTHON, '-'], { input: JSON.stringify(input), encoding: 'utf8', maxBuffer: 1 << 26 });
    theirs = JSON.parse(out) as Record<string, PythonResult>;
  });

  for (const name of Object.keys(CONFIGS)) {
    const tolerance = { rtol: 1e-12, atol: 1e-14 }; // AdamW's β^t: V8's ** and C's pow differ by up to 1 ulp

    test(`${name}: 20 steps = PyTorch's`, () => {
      theirs[name].final.forEach((values, i) => assertClose(tensor(ours[name].final[i], { dtype: 'float64' }), values, { label: `p${i}`, ...tolerance }));
    });

    test(`${name}: PyTorch's state dict has our keys`, () => {
      const mine = decode(ours[name].dict) as OptimizerStateDict;
      const torchDict = theirs[name].dict;
      // Keys that select PyTorch's implementation, and 2.x's decoupled_weight_decay (fixed true for AdamW).
      const implementation = new Set(['foreach', 'capturable', 'differentiable', 'fused', 'decoupled_weight_decay']);
      torchDict.param_groups.forEach((group, i) => {
        assert.deepEqual(Object.keys(mine.param_groups[i]).sort(), Object.keys(group).filter((k) => !implementation.has(k)).sort());
        assert.deepEqual(mine.param_groups[i].params, group.params);
      });
      for (const [index, entry] of Object.entries(torchDict.state)) {
        const present = Object.entries(entry).filter(([, v]) => v !== null).map(([k]) => k); // SGD's momentum_buffer: None
        assert.deepEqual(Object.keys(mine.state[Number(index)] ?? {}).sort(), present.sort(), `state ${index}`);
      }
    });

    test(`${name}: PyTorch's state dict loads here and finishes the run as PyTorch does`, () => {
      tidy(() => {
        const ps = freshParams(decode(theirs[name].params_half) as Tensor[]);
        const setup = CONFIGS[name as 'sgd'].make(ps, false);
        setup.optimizer.loadStateDict(decode(theirs[name].dict) as OptimizerStateDict);
        train(ps, setup, HALF, STEPS);
        ps.forEach((p, i) => assertClose(p.reshape(-1), theirs[name].final[i], { label: `p${i}`, ...tolerance }));
        setup.optimizer.dispose();
        ps.forEach((p) => p.dispose());
      });
    });

    test(`${name}: our state dict loads into PyTorch and finishes the run as we do`, () => {
      theirs[name].from_ours.forEach((values, i) => assertClose(tensor(ours[name].final[i], { dtype: 'float64' }), values, { label: `p${i}`, ...tolerance }));
    });
  }
});

// ---- leaks, errors, groups -----------------------------------------------------------------------

test('a training loop keeps memory().liveTensors constant after the first step', () => {
  for (const config of Object.values(CONFIGS)) {
    const start = memory().liveTensors;
    const ps = freshParams(INITIAL);
    const setup = config.make(ps, true);
    const counts: number[] = [];
    for (let s = 0; s < 8; s++) {
      tidy(() => {
        const loss = ps.map((p, i) => p.sub(GRADS[i].select(0, s)).pow(2).sum()).reduce((a, b) => a.add(b));
        loss.backward();
        clipGradNorm(ps, 1.0);
        setup.optimizer.step();
        setup.optimizer.zeroGrad();
        setup.schedule!.step();
      });
      counts.push(memory().liveTensors);
    }
    assert.deepEqual(counts.slice(1), counts.slice(1).map(() => counts[0]), `live tensors per step: ${counts}`);
    tidy(() => setup.optimizer.loadStateDict(setup.optimizer.stateDict())); // replaces the state: frees the old
    assert.equal(memory().liveTensors, counts[0]);
    setup.optimizer.dispose();
    ps.forEach((p) => p.dispose());
    assert.equal(memory().liveTensors, start, 'dispose() frees every state tensor');
  }
});

describe('loadStateDict errors', () => {
  const build = () => CONFIGS.sgd.make(freshParams(INITIAL), false).optimizer;

  test('a different number of groups', () => {
    const dict = build().stateDict();
    const single = new SGD(freshParams(INITIAL), { lr: 0.1 });
    assert.throws(() => single.loadStateDict(dict),
      /SGD.loadStateDict: the state dict has 2 param groups but this optimizer has 1; build the optimizer with the same param groups/);
  });

  test('a group of a different size', () => {
    const dict = build().stateDict();
    dict.param_groups[1].params = [1, 2];
    assert.throws(() => build().loadStateDict(dict), /param group 1 of the state dict has 2 parameters but this optimizer's group 1 has 1/);
  });

  test('a dict from another optimizer', () => {
    const adamw = CONFIGS.adamw.make(freshParams(INITIAL), false).optimizer;
    assert.throws(() => build().loadStateDict(adamw.stateDict()),
      /SGD.loadStateDict: param group 0 has 'betas', which SGD does not use \(it takes lr, momentum, dampening, weight_decay, nesterov, maximize\)/);
  });

  test("PyTorch 2.x's decoupled_weight_decay: true is AdamW, false (Adam's L2 decay) is refused", () => {
    const adamw = () => CONFIGS.adamw.make(freshParams(INITIAL), false).optimizer;
    const dict = adamw().stateDict();
    assert.equal('decoupled_weight_decay' in dict.param_groups[0], false);
    for (const g of dict.param_groups) g.decoupled_weight_decay = true;
    adamw().loadStateDict(dict);
    dict.param_groups[1].decoupled_weight_decay = false;
    assert.throws(() => adamw().loadStateDict(dict),
      /AdamW.loadStateDict: param group 1 has decoupled_weight_decay = false, but AdamW means decoupled_weight_decay = true/);
  });

  test('state for an unknown parameter, bad values, not a dict', () => {
    const optimizer = build();
    const dict = optimizer.stateDict();
    dict.state[7] = { momentum_buffer: null };
    assert.throws(() => optimizer.loadStateDict(dict), /state for parameter 7, which no param group lists/);
    const negative = optimizer.stateDict();
    negative.param_groups[0].lr = -1;
    assert.throws(() => optimizer.loadStateDict(negative), /SGD: lr must be ≥ 0, got -1 \(param group 0 of the state dict\)/);
    assert.throws(() => optimizer.loadStateDict({} as OptimizerStateDict), /expected \{ state, param_groups \} from stateDict\(\)/);
  });
});

class Block extends Module<[], null> {
  constructor() {
    super();
    this.registerParameter('weight', randn([4, 3], { seed: 1 }));
    this.registerParameter('bias', randn([4], { seed: 2 }));
    this.registerParameter('pos_embed', randn([1, 2, 4], { seed: 3 }));
    this.registerParameter('frozen', randn([4, 4], { seed: 4 })).requiresGrad = false;
  }
  forward(): null { return null; }
}

class Head extends Module<[], null> {
  constructor() {
    super();
    this.registerParameter('bias', randn([2, 2], { seed: 5 })); // ndim 2, but named '.bias'
  }
  forward(): null { return null; }
}

class Net extends Module<[], null> {
  constructor() {
    super();
    this.registerParameter('scale', randn([], { seed: 6 }));
    this.register('block', new Block());
    this.register('head', new Head());
  }
  forward(): null { return null; }
}

test('paramGroupsNoWeightDecay: ndim ≤ 1, .bias and skipped names get no decay (timm order)', () => {
  const net = new Net();
  const [noDecay, decay] = paramGroupsNoWeightDecay(net, 0.05, { skip: (name) => name.endsWith('pos_embed') });
  const names = new Map([...net.namedParameters()].map(([n, p]) => [p as Tensor, n]));
  assert.deepEqual(noDecay.params.map((p) => names.get(p)), ['scale', 'block.bias', 'block.pos_embed', 'head.bias']);
  assert.deepEqual(decay.params.map((p) => names.get(p)), ['block.weight']);
  assert.equal(noDecay.weightDecay, 0);
  assert.equal(decay.weightDecay, 0.05);
  const optimizer = new AdamW(paramGroupsNoWeightDecay(net, 0.05), { lr: 1e-3 });
  assert.deepEqual(optimizer.paramGroups.map((g) => g.weightDecay), [0, 0.05]);
});
