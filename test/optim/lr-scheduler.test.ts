/**
 * Schedules against Python, at every step t = 0..N (past the end too), for two param groups with
 * different base lrs:
 *  - CosineSchedule against timm's CosineLRScheduler._get_lr, transcribed below (timm is not
 *    installed here) from huggingface/pytorch-image-models timm/scheduler/cosine_lr.py, and, for
 *    its two pieces, against PyTorch's own schedulers: without warm-up it is CosineAnnealingLR up
 *    to totalSteps; ConstantSchedule's warm-up with warmupStartFactor is LinearLR.
 *  - StepSchedule against torch.optim.lr_scheduler.StepLR.
 * Both the lr the schedule writes into the optimizer after each step() and the pure lrAt(t) are
 * checked. One Python process for all cases.
 */
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import { parameter } from '../../src/nn/parameter.js';
import {
  ConstantSchedule, CosineSchedule, StepSchedule, type LrSchedule, type ScheduledOptimizer,
} from '../../src/optim/lr-scheduler.js';
import { SGD } from '../../src/optim/sgd.js';
import { tensor } from '../../src/tensor/creation.js';
import { assertClose, expected, runTorch, type TorchResults } from '../support/parity.js';

const BASE_LRS = [0.1, 0.025];

interface Case {
  name: string;
  steps: number;
  make: (optimizer: ScheduledOptimizer) => LrSchedule;
  /** Python assigning `lrs`: a list per step t = 0..steps of the lr of each group (base_lrs given). */
  python: string;
  /** Absolute tolerance: 0 for the timm transcription (the same expression), 1e-15 for PyTorch's recursive forms. */
  atol: number;
}

// timm's CosineLRScheduler._get_lr for cycle_mul = cycle_decay = k_decay = 1, cycle_limit = 1,
// lines as in timm; warmup_lr_init may differ per group here to test warmupStartFactor.
const TIMM = `
import math
def timm_cosine(t, base_values, t_initial, lr_min, warmup_t, warmup_lr_inits, warmup_prefix):
    warmup_steps = [(v - w) / warmup_t for v, w in zip(base_values, warmup_lr_inits)] if warmup_t else [1 for _ in base_values]
    if t < warmup_t:
        return [w + t * s for w, s in zip(warmup_lr_inits, warmup_steps)]
    if warmup_prefix:
        t = t - warmup_t
    i = t // t_initial
    t_i = t_initial
    t_curr = t - (t_initial * i)
    if i < 1:
        return [lr_min + 0.5 * (lr_max - lr_min) * (1 + math.cos(math.pi * t_curr / t_i)) for lr_max in base_values]
    return [lr_min for _ in base_values]
`;

const timmCase = (name: string, o: { total: number; warmup: number; minLr: number; start?: number; factor?: number; prefix?: boolean }): Case => ({
  name: `CosineSchedule = timm CosineLRScheduler: ${name}`,
  steps: o.total + o.warmup + 5,
  make: (optimizer) => new CosineSchedule({
    optimizer, totalSteps: o.total, warmupSteps: o.warmup, minLr: o.minLr, warmupStartLr: o.start,
    warmupStartFactor: o.factor, warmupPrefix: o.prefix,
  }),
  python: `${TIMM}
inits = [${o.factor ?? 'None'} * b for b in base_lrs] if ${o.factor !== undefined ? 'True' : 'False'} else [${o.start ?? 0}] * len(base_lrs)
lrs = [timm_cosine(t, base_lrs, ${o.total}, ${o.minLr}, ${o.warmup}, inits, ${o.prefix ? 'True' : 'False'}) for t in range(steps + 1)]`,
  atol: 0,
});

/** Python recording a PyTorch scheduler's lrs, stepped once per optimizer step. */
const torchScheduler = (make: string) => `
opt = torch.optim.SGD([{'params': [torch.zeros(1, requires_grad=True)], 'lr': b} for b in base_lrs], lr=1.0)
sched = ${make}
lrs = [[g['lr'] for g in opt.param_groups]]
for _ in range(steps):
    opt.step()
    sched.step()
    lrs.append([g['lr'] for g in opt.param_groups])`;

const CASES: Case[] = [
  timmCase('no warm-up', { total: 40, warmup: 0, minLr: 0 }),
  timmCase('warm-up from 0, minLr', { total: 50, warmup: 8, minLr: 1e-4 }),
  timmCase('warm-up from an absolute lr', { total: 30, warmup: 5, minLr: 1e-5, start: 1e-6 }),
  timmCase('warm-up from a factor of each base lr', { total: 30, warmup: 6, minLr: 0, factor: 0.01 }),
  timmCase('warm-up as a prefix', { total: 25, warmup: 7, minLr: 2e-3, start: 1e-4, prefix: true }),
  timmCase('warm-up as long as the schedule', { total: 10, warmup: 10, minLr: 1e-3 }),
  {
    name: 'CosineSchedule without warm-up = torch CosineAnnealingLR (up to totalSteps)',
    steps: 60,
    make: (optimizer) => new CosineSchedule({ optimizer, totalSteps: 60, minLr: 1e-3 }),
    python: torchScheduler('torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=60, eta_min=1e-3)'),
    atol: 1e-15,
  },
  {
    name: 'CosineSchedule with warmupPrefix, warmupStartFactor = torch LinearLR then CosineAnnealingLR (SequentialLR)',
    steps: 35,
    make: (optimizer) => new CosineSchedule({
      optimizer, totalSteps: 30, warmupSteps: 5, warmupStartFactor: 0.1, warmupPrefix: true, minLr: 1e-4,
    }),
    python: torchScheduler(`torch.optim.lr_scheduler.SequentialLR(opt, [
    torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=5),
    torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30, eta_min=1e-4)], milestones=[5])`),
    atol: 1e-15,
  },
  {
    name: 'ConstantSchedule warm-up from a factor = torch LinearLR',
    steps: 20,
    make: (optimizer) => new ConstantSchedule({ optimizer, warmupSteps: 8, warmupStartFactor: 0.25 }),
    python: torchScheduler('torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.25, total_iters=8)'),
    atol: 1e-15,
  },
  {
    name: 'StepSchedule = torch StepLR',
    steps: 45,
    make: (optimizer) => new StepSchedule({ optimizer, stepSize: 7, gamma: 0.5 }),
    python: torchScheduler('torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.5)'),
    atol: 1e-15,
  },
  {
    name: 'StepSchedule with the default gamma 0.1 = torch StepLR',
    steps: 30,
    make: (optimizer) => new StepSchedule({ optimizer, stepSize: 10 }),
    python: torchScheduler('torch.optim.lr_scheduler.StepLR(opt, step_size=10)'),
    atol: 1e-15,
  },
];

function optimizerWithGroups(): SGD {
  return new SGD(BASE_LRS.map((lr) => ({ params: [parameter(tensor([0]))], lr })), { lr: 1 });
}

/** The lrs in the optimizer after construction and after each step(), and lrAt(t) for the same t. */
function runCase(c: Case): { written: number[][]; pure: number[][] } {
  const optimizer = optimizerWithGroups();
  const schedule = c.make(optimizer);
  const written = [optimizer.paramGroups.map((g) => g.lr)];
  for (let t = 1; t <= c.steps; t++) {
    schedule.step();
    written.push(optimizer.paramGroups.map((g) => g.lr));
    assert.deepEqual(schedule.lastLr, written[t], 'lastLr is what step() wrote');
  }
  assert.equal(schedule.stepCount, c.steps);
  const pure = Array.from({ length: c.steps + 1 }, (_, t) => schedule.lrAt(t));
  return { written, pure };
}

describe('learning-rate schedules = Python', () => {
  let results: TorchResults = new Map();
  before(() => {
    results = runTorch(CASES.map((c) => ({
      name: c.name,
      params: { base_lrs: BASE_LRS, steps: c.steps },
      code: `${c.python}\nout = torch.tensor(lrs, dtype=torch.float64)`,
    })));
  });
  for (const c of CASES) {
    test(c.name, () => {
      const { written, pure } = runCase(c);
      const e = expected(results, c.name);
      // rtol: V8's Math.cos and C's cos differ by up to 1 ulp.
      const options = { rtol: 1e-13, atol: c.atol };
      assertClose(tensor(written, { dtype: 'float64' }), e, { label: `${c.name}: lrs written`, ...options });
      assertClose(tensor(pure, { dtype: 'float64' }), e, { label: `${c.name}: lrAt(t)`, ...options });
    });
  }
});

describe('schedules', () => {
  test('keep each group\'s base lr in initialLr and reuse it when rebuilt', () => {
    const optimizer = optimizerWithGroups();
    const first = new StepSchedule({ optimizer, stepSize: 1, gamma: 0.5 });
    first.step();
    assert.deepEqual(optimizer.paramGroups.map((g) => g.initialLr), BASE_LRS);
    assert.deepEqual(first.lastLr, [0.05, 0.0125]);
    // A second schedule on the same optimizer starts from the base lrs, not the decayed ones.
    const second = new CosineSchedule({ optimizer, totalSteps: 10 });
    assert.deepEqual(second.baseLrs, BASE_LRS);
    assert.deepEqual(second.lastLr, BASE_LRS);
  });

  test('CosineSchedule reaches minLr at totalSteps and stays there', () => {
    const schedule = new CosineSchedule({ optimizer: optimizerWithGroups(), totalSteps: 100, warmupSteps: 10, minLr: 1e-5 });
    assert.deepEqual(schedule.lrAt(0), [0, 0]);
    assert.deepEqual(schedule.lrAt(5), [0.05, 0.0125]);
    assert.deepEqual(schedule.lrAt(100), [1e-5, 1e-5]);
    assert.deepEqual(schedule.lrAt(1e6), [1e-5, 1e-5]);
  });

  test('ConstantSchedule without warm-up is the base lr', () => {
    const optimizer = optimizerWithGroups();
    const schedule = new ConstantSchedule({ optimizer });
    schedule.step();
    assert.deepEqual(schedule.lastLr, BASE_LRS);
    assert.deepEqual(schedule.lrAt(12345), BASE_LRS);
  });

  test('invalid options throw naming the option and value', () => {
    const optimizer = optimizerWithGroups();
    assert.throws(() => new CosineSchedule({ optimizer, totalSteps: 0 }), /CosineSchedule: totalSteps must be a positive integer, got 0/);
    assert.throws(() => new CosineSchedule({ optimizer, totalSteps: 10.5 }), /got 10.5/);
    assert.throws(() => new CosineSchedule({ optimizer, totalSteps: 10, warmupSteps: 11 }),
      /warmupSteps 11 exceeds totalSteps 10.*warmupPrefix: true/);
    assert.throws(() => new CosineSchedule({ optimizer, totalSteps: 10, warmupSteps: -1 }), /warmupSteps must be an integer ≥ 0, got -1/);
    assert.throws(() => new CosineSchedule({ optimizer, totalSteps: 10, minLr: -1 }), /minLr must be a number ≥ 0, got -1/);
    assert.throws(() => new CosineSchedule({ optimizer, totalSteps: 10, warmupSteps: 2, warmupStartLr: 0, warmupStartFactor: 0.1 }),
      /pass warmupStartLr \(absolute\) or warmupStartFactor \(of each base lr\), not both/);
    assert.throws(() => new StepSchedule({ optimizer, stepSize: 0 }), /StepSchedule: stepSize must be a positive integer, got 0/);
    assert.throws(() => new StepSchedule({ optimizer, stepSize: 3, gamma: -0.1 }), /gamma must be a number ≥ 0, got -0.1/);
    assert.throws(() => new ConstantSchedule({ optimizer: undefined as unknown as ScheduledOptimizer }),
      /ConstantSchedule: options.optimizer must be an optimizer/);
  });

  test('loadStateDict checks the group count', () => {
    const schedule = new StepSchedule({ optimizer: optimizerWithGroups(), stepSize: 2 });
    assert.throws(() => schedule.loadStateDict({ last_epoch: 3, base_lrs: [0.1], _last_lr: [0.1] }),
      /StepSchedule.loadStateDict: the state dict has 1 base lrs but the optimizer has 2 param groups/);
    assert.throws(() => schedule.loadStateDict({ last_epoch: -1, base_lrs: [0.1, 0.1], _last_lr: [] }), /expected \{ last_epoch, base_lrs \}/);
  });
});
