/** Optimizers, gradient clipping and learning-rate schedules (torch.optim, timm.scheduler). */
export {
  Optimizer, paramGroupsNoWeightDecay,
  type Hyperparameter, type OptimizerStateDict, type ParamGroup, type ParamGroupOptions, type ParamState,
  type ParamsArgument,
} from './optimizer.js';
export { SGD, type SGDHyperparameters, type SGDOptions } from './sgd.js';
export { AdamW, type AdamWHyperparameters, type AdamWOptions } from './adamw.js';
export { clipGradNorm, clipGradValue, type ClipGradNormOptions } from './clip-grad.js';
export {
  ConstantSchedule, CosineSchedule, StepSchedule,
  type ConstantScheduleOptions, type CosineScheduleOptions, type LrSchedule, type ScheduleStateDict,
  type ScheduledOptimizer, type StepScheduleOptions, type WarmupOptions,
} from './lr-scheduler.js';
