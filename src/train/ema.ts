/**
 * Exponential moving average of a model's weights, after timm's ModelEmaV2
 * (timm/utils/model_ema.py): a second copy of the network whose parameters follow
 *
 *   θ_ema ← decay·θ_ema + (1 − decay)·θ        after every optimizer step
 *
 * starting from the model's own values. The copy is evaluated like the model (it is always in eval
 * mode). Deviation, as the brief for the trainer asks and timm's ModelEmaV3 does with
 * apply_buffer_ema=False: buffers (BatchNorm running statistics and counters) are copied from the
 * model, not averaged; `{ averageBuffers: true }` averages the floating ones as ModelEmaV2 does.
 *
 *   const ema = new ModelEma({ model, copy: createModel(name, options), decay: 0.9998 });
 *   ... optimizer.step(); ema.update(model);
 *   await evaluate(ema.module, batches);
 */
import type { Module, StateDict } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

const FLOATING = new Set(['float32', 'float64', 'float16', 'bfloat16']);

export interface ModelEmaOptions<M extends Module> {
  /** The model being trained; its current state seeds the average. */
  model: Module;
  /** A second instance of the same architecture (e.g. createModel with the same options), on the same device. */
  copy: M;
  /** Weight of the old average per update, in [0, 1); timm's default 0.9999. */
  decay: number;
  /** Average floating buffers too (ModelEmaV2) instead of copying them; default false. */
  averageBuffers?: boolean;
}

/**
 * The moving average. `module` is the averaged network, in eval mode.
 *
 * Errors: a RangeError for decay outside [0, 1); a StateDictError when `copy` does not have the
 * model's parameter and buffer names and shapes.
 */
export class ModelEma<M extends Module> {
  readonly module: M;
  readonly decay: number;
  readonly averageBuffers: boolean;
  /** Updates applied so far. */
  updates = 0;

  constructor(options: ModelEmaOptions<M>) {
    const { model, copy, decay, averageBuffers = false } = options;
    if (!(decay >= 0 && decay < 1)) {
      throw new RangeError(`ModelEma: decay must be in [0, 1), got ${decay}; timm's default is 0.9999`);
    }
    this.module = copy;
    this.decay = decay;
    this.averageBuffers = averageBuffers;
    tidy(() => copy.loadStateDict(model.stateDict()));
    copy.eval();
    for (const p of copy.parameters()) p.requiresGrad_(false);
  }

  /** One EMA step towards `model`'s current parameters (call after each optimizer step). */
  update(model: Module): void {
    const d = this.decay;
    noGrad(() => tidy(() => {
      const own = new Map<string, Tensor>(this.module.namedParameters());
      for (const [name, p] of model.namedParameters()) {
        // decay·e + (1 − decay)·m, in this order (timm ModelEmaV2's update_fn).
        this.target(own, name, 'parameter').mul_(d).add_(p, 1 - d);
      }
      const buffers = new Map(this.module.namedBuffers());
      for (const [name, b] of model.namedBuffers()) {
        const target = this.target(buffers, name, 'buffer');
        if (this.averageBuffers && FLOATING.has(b.dtype)) target.mul_(d).add_(b, 1 - d);
        else target.copy_(b);
      }
    }));
    this.updates += 1;
  }

  /** The averaged weights under their PyTorch names (detached views; dispose or use in a scope). */
  stateDict(): StateDict {
    return this.module.stateDict();
  }

  /** Restores averaged weights saved by `stateDict()` (strict). */
  loadStateDict(state: StateDict | Record<string, Tensor>): void {
    this.module.loadStateDict(state);
  }

  dispose(): void {
    this.module.dispose();
  }

  private target(map: Map<string, Tensor>, name: string, kind: string): Tensor {
    const t = map.get(name);
    if (!t) {
      throw new Error(`ModelEma.update: the model has ${kind} '${name}' but the EMA copy does not; ` +
        'build the copy with the same architecture and options as the model');
    }
    return t;
  }
}
