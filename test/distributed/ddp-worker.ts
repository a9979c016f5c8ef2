/**
 * A training program for the distributed tests, run as a child process:
 *
 *   node ddp-worker.js <out.json> <batchPerRank> <steps> [accumulate|hang-after=N]
 *
 * With WORLD_SIZE set it joins the group and trains a DistributedDataParallel model on its
 * DistributedSampler shard; without, it trains the same model on the whole batch. Rank 0 (or the
 * single process) writes the final weights as JSON. The model is BN-free (Linear, ReLU, Linear)
 * on a fixed synthetic 4-class problem; each rank initialises with its own seed so that only
 * DDP's start-up broadcast can make the ranks agree. `accumulate` runs each step as two
 * half-batches, the first under noSync; `hang-after=N` makes rank 1 stop responding after step N;
 * `syncbn` adds a BatchNorm1d, converted to SyncBatchNorm on the ranks.
 */
import { writeFileSync } from 'node:fs';
import { DistributedDataParallel } from '../../src/distributed/ddp.js';
import { isDistributedEnv } from '../../src/distributed/env.js';
import { ProcessGroup } from '../../src/distributed/process-group.js';
import { DistributedSampler } from '../../src/distributed/sampler.js';
import { convertSyncBatchNorm } from '../../src/distributed/sync-batch-norm.js';
import { BatchNorm1d, Linear, ReLU, Sequential } from '../../src/nn/index.js';
import * as F from '../../src/ops/functional.js';
import { SGD } from '../../src/optim/index.js';
import { manualSeed, randn, tensor } from '../../src/tensor/creation.js';
import { scope } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';

const [outFile, batchArg, stepsArg, mode = ''] = process.argv.slice(2);
// `node --test dist/test/` also runs this file, with no arguments: it is a worker that ddp.test.ts
// starts, not a test, so it does nothing then.
if (outFile === undefined) process.exit(0);
const batch = Number(batchArg);
const steps = Number(stepsArg);
const COUNT = 640;

const group = isDistributedEnv() ? await ProcessGroup.init({ timeoutSeconds: Number(process.env.TEST_TIMEOUT ?? 30) }) : null;
const rank = group?.rank ?? 0;
const worldSize = group?.worldSize ?? 1;

const inputs = randn([COUNT, 16], { seed: 1 }).keep();
const teacher = randn([16, 4], { seed: 2 });
const labels = inputs.matmul(teacher).argmax(1).keep();

manualSeed(100 + rank);
const net = mode === 'syncbn'
  ? new Sequential(new Linear({ inFeatures: 16, outFeatures: 32 }), new BatchNorm1d({ numFeatures: 32 }), new ReLU(), new Linear({ inFeatures: 32, outFeatures: 4 }))
  : new Sequential(new Linear({ inFeatures: 16, outFeatures: 32 }), new ReLU(), new Linear({ inFeatures: 32, outFeatures: 4 }));
if (group && mode === 'syncbn') process.stdout.write(`converted ${convertSyncBatchNorm(net, group)}\n`);
const model: { forward(x: Tensor): Tensor } = group ? new DistributedDataParallel(net, group) : net;
const optimizer = new SGD(net.parameters(), { lr: 0.2, momentum: 0.9 });
const sampler = new DistributedSampler({ count: COUNT, rank, worldSize, seed: 7 });
const perEpoch = Math.floor(sampler.length / batch);
const hangAfter = mode.startsWith('hang-after=') ? Number(mode.slice('hang-after='.length)) : -1;

const lossOf = (idx: Int32Array): Tensor => {
  const index = tensor(idx, { dtype: 'int64' });
  return F.crossEntropy(model.forward(inputs.indexSelect(0, index)), labels.indexSelect(0, index));
};

function train(): void {
  for (let step = 0; step < steps; step++) {
    using _ = scope();
    const epoch = Math.floor(step / perEpoch);
    const start = (step % perEpoch) * batch;
    const idx = sampler.indices(epoch).slice(start, start + batch);
    optimizer.zeroGrad();
    if (mode === 'accumulate') {
      const half = batch / 2;
      const first = () => lossOf(idx.slice(0, half)).mul(0.5).backward();
      if (model instanceof DistributedDataParallel) {
        model.noSync(first);
        if (step === 0) {
          // Inside noSync nothing was averaged: the ranks' gradients still differ.
          const grads = group!.allGatherSync(net.parameters()[0].grad!);
          process.stdout.write(`nosync-local ${grads[0].sub(grads[1]).abs().max().item() as number > 0}\n`);
        }
      } else {
        first();
      }
      lossOf(idx.slice(half)).mul(0.5).backward();
    } else {
      lossOf(idx).backward();
    }
    optimizer.step();
    process.stdout.write(`step ${step}\n`);
    if (rank === 1 && step === hangAfter) {
      // Alive but silent, as a rank stuck in a deadlock or a dead NFS mount would be.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600_000);
    }
  }
}

try {
  train();
} catch (e) {
  // A collective inside backward failed (the Reducer's): name the rank at fault.
  throw group ? group.explain('training step', e) : e;
}

if (rank === 0) {
  const state = [...net.namedParameters(), ...Array.from(net.namedBuffers()).filter(([, b]) => b.dtype === 'float32')];
  const weights = Object.fromEntries(state.map(([name, p]) => [name, Array.from(p.dataSync() as Float32Array)]));
  writeFileSync(outFile, JSON.stringify({ worldSize, weights }));
}
group?.destroy();
