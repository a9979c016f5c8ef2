/**
 * SyncBatchNorm (torch.nn.SyncBatchNorm.convert_sync_batchnorm): BatchNorm layers whose training
 * statistics are those of the global batch, all ranks together, instead of each rank's own. The
 * statistics and their gradients are all-reduced by a native autograd function
 * (native/distributed/sync_batch_norm.cc). Evaluation uses the running statistics as before.
 *
 * Conversion is in place: each BatchNorm1d/2d keeps its parameters, buffers and state-dict names
 * (so checkpoints load into the plain model) and only its training forward changes. Models hold
 * their layers in fields as well as in the module tree, so replacing modules would miss them.
 */
import { native } from '../native/binding.js';
import { BatchNorm1d, BatchNorm2d } from '../nn/index.js';
import type { Module } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import type { ProcessGroup } from './process-group.js';

const CONVERTED = Symbol('syncBatchNorm');

/**
 * Makes every BatchNorm layer of `model` synchronise its batch statistics over `group`; returns
 * how many were converted. Call it before wrapping the model in DistributedDataParallel.
 *
 * Example:
 *   convertSyncBatchNorm(model, group);
 *   const ddp = new DistributedDataParallel(model, group);
 */
export function convertSyncBatchNorm(model: Module, group: ProcessGroup): number {
  let converted = 0;
  for (const m of model.modules()) {
    if (!(m instanceof BatchNorm1d || m instanceof BatchNorm2d) || CONVERTED in m) continue;
    const bn = m;
    const plain = bn.forward.bind(bn);
    Object.defineProperty(bn, CONVERTED, { value: true });
    bn.forward = (x: Tensor): Tensor => {
      if (!bn.training || (bn.runningMean === null && !bn.trackRunningStats)) return plain(x);
      let factor = bn.momentum ?? 0;
      const counter = bn.numBatchesTracked;
      if (bn.trackRunningStats && counter) {
        noGrad(() => counter.add_(1));
        factor = bn.momentum ?? 1 / Number(counter.item());
      }
      if (x.shape[1] !== bn.numFeatures) {
        throw new RangeError(`SyncBatchNorm: expected ${bn.numFeatures} channels in dim 1, got input shape [${x.shape.join(', ')}]`);
      }
      try {
        return native.syncBatchNorm(group.nativeHandle, x, bn.weight, bn.bias, bn.runningMean, bn.runningVar, bn.eps, factor,
          Math.round(group.timeoutSeconds * 1000)) as Tensor;
      } catch (e) {
        throw group.explain('SyncBatchNorm', e);
      }
    };
    converted++;
  }
  return converted;
}
