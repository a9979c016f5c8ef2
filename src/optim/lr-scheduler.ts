/**
 * Learning-rate schedules evaluated per step (optimizer update), each a pure function `lrAt(t)`
 * of the update count t = 0, 1, 2, ... and the groups' base lrs. Call `step()` once after each
 * `optimizer.step()`:
 *
 *   const schedule = new CosineSchedule({ optimizer, totalSteps: epochs * stepsPerEpoch, warmupSteps: 500 });
 *   for (...) { loss.backward(); optimizer.step(); optimizer.zeroGrad(); schedule.step(); }
 *
 * The constructor writes lrAt(0) into the optimizer, so update t (0-based) runs with lrAt(t);
 * this is timm's `scheduler.step_update(num_updates)` with num_updates counted after the update.
 *
 * Base lrs: each group's `initialLr`, else its `lr`, which is then saved as `initialLr` (timm's
 * and PyTorch's `initial_lr`), so groups with different lrs keep their ratios, and a schedule
 * built on an optimizer restored from a state dict finds the original base lrs.
 *
 * CosineSchedule is timm's CosineLRScheduler (timm/scheduler/cosine_lr.py, `_get_lr`) with
 * t_in_epochs=False, cycle_limit=1, cycle_mul=1, cycle_decay=1, k_decay=1 and no noise. For a
 * group with base lr b, start s (warmupStartLr, or warmupStartFactor·b), W = warmupSteps,
 * T = totalSteps, m = minLr:
 *
 *   t < W:        lr = s + t·(b − s)/W                           (linear warm-up)
 *   W ≤ t < T:    lr = m + 0.5·(b − m)·(1 + cos(π·t/T))          (t counts from 0, not from W)
 *   t ≥ T:        lr = m
 *
 * With warmupPrefix (timm's warmup_prefix=True) the cosine runs on t − W over T steps instead,
 * so it starts at b right after the warm-up and reaches m at W + T; with warmupStartFactor f this
 * is also PyTorch's SequentialLR([LinearLR(start_factor=f, total_iters=W),
 * CosineAnnealingLR(T_max=T, eta_min=m)], milestones=[W]) up to W + T (PyTorch's cosine then
 * rises again; this one stays at m). Without warm-up both forms are CosineAnnealingLR up to T.
 * The expressions are timm's term for term; only Math.cos may differ from C's cos by 1 ulp.
 * Tests: test/optim/lr-scheduler.test.ts checks all of the above against Python at every step.
 */

/** What a schedule needs of an optimizer: its groups' lrs. */
export interface ScheduledOptimizer {
  paramGroups: { lr: number; initialLr?: number }[];
}

/** The state dict of a schedule, with PyTorch's LRScheduler keys (last_epoch counts step() calls). */
export interface ScheduleStateDict {
  last_epoch: number;
  base_lrs: number[];
  _last_lr: number[];
}

/** The interface every schedule implements. */
export interface LrSchedule {
  /** Advances one update and writes lrAt(stepCount) into the optimizer. */
  step(): void;
  /** The lrs last written, one per group. */
  readonly lastLr: number[];
  /** The number of step() calls so far. */
  readonly stepCount: number;
  /** The lr of each group at update t; depends only on t and the constructor's options. */
  lrAt(t: number): number[];
  stateDict(): ScheduleStateDict;
  loadStateDict(state: ScheduleStateDict): void;
}

/** Linear warm-up options shared by CosineSchedule and ConstantSchedule. */
export interface WarmupOptions {
  /** Updates of linear warm-up; default 0. */
  warmupSteps?: number;
  /** The absolute lr at t = 0 of the warm-up (timm's warmup_lr_init); default 0. */
  warmupStartLr?: number;
  /** Or the lr at t = 0 as a fraction of each group's base lr (PyTorch LinearLR's start_factor). */
  warmupStartFactor?: number;
}

abstract class BaseSchedule implements LrSchedule {
  readonly optimizer: ScheduledOptimizer;
  /** Each group's base lr (its initialLr). */
  baseLrs: number[];
  stepCount = 0;
  lastLr: number[] = [];

  protected constructor(optimizer: ScheduledOptimizer) {
    if (!optimizer || !Array.isArray(optimizer.paramGroups)) {
      throw new TypeError(`${this.constructor.name}: options.optimizer must be an optimizer (SGD, AdamW, ...)`);
    }
    this.optimizer = optimizer;
    this.baseLrs = optimizer.paramGroups.map((group) => (group.initialLr ??= group.lr));
  }

  abstract lrAt(t: number): number[];

  /** Call last in the subclass constructor, once lrAt can run. */
  protected start(): void {
    this.apply();
  }

  step(): void {
    this.stepCount += 1;
    this.apply();
  }

  stateDict(): ScheduleStateDict {
    return { last_epoch: this.stepCount, base_lrs: [...this.baseLrs], _last_lr: [...this.lastLr] };
  }

  loadStateDict(state: ScheduleStateDict): void {
    const name = `${this.constructor.name}.loadStateDict`;
    if (!state || !Number.isInteger(state.last_epoch) || state.last_epoch < 0 || !Array.isArray(state.base_lrs)) {
      throw new TypeError(`${name}: expected { last_epoch, base_lrs } from stateDict(), got ${JSON.stringify(state)}`);
    }
    if (state.base_lrs.length !== this.optimizer.paramGroups.length) {
      throw new Error(`${name}: the state dict has ${state.base_lrs.length} base lrs but the optimizer has ` +
        `${this.optimizer.paramGroups.length} param groups; build the optimizer with the groups that were saved`);
    }
    this.stepCount = state.last_epoch;
    this.baseLrs = [...state.base_lrs];
    this.optimizer.paramGroups.forEach((group, i) => (group.initialLr = this.baseLrs[i]));
    this.apply();
  }

  private apply(): void {
    if (this.optimizer.paramGroups.length !== this.baseLrs.length) {
      throw new Error(`${this.constructor.name}: the optimizer has ${this.optimizer.paramGroups.length} param groups ` +
        `but the schedule was built for ${this.baseLrs.length}; build the schedule after adding every group`);
    }
    this.lastLr = this.lrAt(this.stepCount);
    this.optimizer.paramGroups.forEach((group, i) => (group.lr = this.lastLr[i]));
  }

  /** The warm-up lr of each group at t < warmupSteps (timm: warmup_lr_init + t·warmup_steps[i]). */
  protected warmupLr(t: number, warmup: Warmup): number[] {
    return this.baseLrs.map((base) => {
      const start = warmup.startFactor !== undefined ? warmup.startFactor * base : warmup.startLr ?? 0;
      return start + t * ((base - start) / warmup.steps);
    });
  }
}

export interface CosineScheduleOptions extends WarmupOptions {
  optimizer: ScheduledOptimizer;
  /** Updates of the cosine (timm's t_initial), counted from t = 0 unless warmupPrefix. */
  totalSteps: number;
  /** The lr at and after totalSteps (timm's lr_min, the same for every group); default 0. */
  minLr?: number;
  /** Start the cosine after the warm-up instead of at t = 0 (timm's warmup_prefix); default false. */
  warmupPrefix?: boolean;
}

/**
 * Linear warm-up, then cosine decay to minLr (formula in the file header).
 *
 * Errors: a RangeError for totalSteps not a positive integer, warmupSteps not an integer in
 * [0, totalSteps], a negative minLr, warmupStartLr or warmupStartFactor; a TypeError when both
 * warmupStartLr and warmupStartFactor are given.
 */
export class CosineSchedule extends BaseSchedule {
  readonly totalSteps: number;
  readonly minLr: number;
  readonly warmupPrefix: boolean;
  readonly warmup: Warmup;

  constructor(options: CosineScheduleOptions) {
    super(options?.optimizer);
    const { totalSteps, minLr = 0, warmupPrefix = false } = options;
    this.warmup = checkWarmup('CosineSchedule', options);
    if (!(Number.isInteger(totalSteps) && totalSteps > 0)) {
      throw new RangeError(`CosineSchedule: totalSteps must be a positive integer, got ${totalSteps}`);
    }
    if (!warmupPrefix && this.warmup.steps > totalSteps) {
      throw new RangeError(`CosineSchedule: warmupSteps ${this.warmup.steps} exceeds totalSteps ${totalSteps}; the ` +
        'warm-up counts towards totalSteps (pass { warmupPrefix: true } to run it before the cosine)');
    }
    requireNonNegative('CosineSchedule', 'minLr', minLr);
    this.totalSteps = totalSteps;
    this.minLr = minLr;
    this.warmupPrefix = warmupPrefix;
    this.start();
  }

  lrAt(t: number): number[] {
    const { totalSteps, minLr, warmup } = this;
    if (t < warmup.steps) return this.warmupLr(t, warmup);
    const tCosine = this.warmupPrefix ? t - warmup.steps : t;
    if (tCosine >= totalSteps) return this.baseLrs.map(() => minLr);
    // timm's expression, term for term: lr_min + 0.5 * (lr_max - lr_min) * (1 + cos(pi * t_curr / t_i)).
    return this.baseLrs.map((base) => minLr + 0.5 * (base - minLr) * (1 + Math.cos(Math.PI * tCosine / totalSteps)));
  }
}

export interface StepScheduleOptions {
  optimizer: ScheduledOptimizer;
  /** Updates between decays (PyTorch StepLR's step_size). */
  stepSize: number;
  /** Multiplicative decay; default 0.1. */
  gamma?: number;
}

/**
 * lr = base·gamma^⌊t / stepSize⌋: PyTorch StepLR's closed form, counted in updates.
 *
 * Errors: a RangeError for stepSize not a positive integer or a negative gamma.
 */
export class StepSchedule extends BaseSchedule {
  readonly stepSize: number;
  readonly gamma: number;

  constructor(options: StepScheduleOptions) {
    super(options?.optimizer);
    const { stepSize, gamma = 0.1 } = options;
    if (!(Number.isInteger(stepSize) && stepSize > 0)) {
      throw new RangeError(`StepSchedule: stepSize must be a positive integer, got ${stepSize}`);
    }
    requireNonNegative('StepSchedule', 'gamma', gamma);
    this.stepSize = stepSize;
    this.gamma = gamma;
    this.start();
  }

  lrAt(t: number): number[] {
    return this.baseLrs.map((base) => base * this.gamma ** Math.floor(t / this.stepSize));
  }
}

export interface ConstantScheduleOptions extends WarmupOptions {
  optimizer: ScheduledOptimizer;
}

/**
 * The base lr, after an optional linear warm-up (the warm-up formula of CosineSchedule).
 *
 * Errors: as CosineSchedule's for the warm-up options.
 */
export class ConstantSchedule extends BaseSchedule {
  readonly warmup: Warmup;

  constructor(options: ConstantScheduleOptions) {
    super(options?.optimizer);
    this.warmup = checkWarmup('ConstantSchedule', options);
    this.start();
  }

  lrAt(t: number): number[] {
    return t < this.warmup.steps ? this.warmupLr(t, this.warmup) : [...this.baseLrs];
  }
}

/** Validated warm-up options: the step count and the start, absolute or as a factor. */
interface Warmup {
  steps: number;
  startLr?: number;
  startFactor?: number;
}

function checkWarmup(name: string, options: WarmupOptions): Warmup {
  const { warmupSteps = 0, warmupStartLr, warmupStartFactor } = options;
  if (!(Number.isInteger(warmupSteps) && warmupSteps >= 0)) {
    throw new RangeError(`${name}: warmupSteps must be an integer ≥ 0, got ${warmupSteps}`);
  }
  if (warmupStartLr !== undefined && warmupStartFactor !== undefined) {
    throw new TypeError(`${name}: pass warmupStartLr (absolute) or warmupStartFactor (of each base lr), not both`);
  }
  if (warmupStartLr !== undefined) requireNonNegative(name, 'warmupStartLr', warmupStartLr);
  if (warmupStartFactor !== undefined) requireNonNegative(name, 'warmupStartFactor', warmupStartFactor);
  return { steps: warmupSteps, startLr: warmupStartLr, startFactor: warmupStartFactor };
}

function requireNonNegative(name: string, key: string, value: number): void {
  if (!(typeof value === 'number' && value >= 0)) {
    throw new RangeError(`${name}: ${key} must be a number ≥ 0, got ${value}`);
  }
}
