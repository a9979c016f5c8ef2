/**
 * Wall seconds of one training step (forward, cross-entropy, backward, SGD step) of a model on
 * random data: the median of the last 4 of 6 steps (the first two warm up allocators and
 * oneDNN). Shared by bench/train-step.ts and bench/results.ts. Trains `model`: pass a copy.
 */
import type { Classifier } from '../src/models/registry.js';
import { SGD } from '../src/optim/index.js';
import { randint, randn } from '../src/tensor/creation.js';
import { flushFinalizers } from '../src/tensor/memory.js';
import { scope } from '../src/tensor/scope.js';
import { disposeBatch, trainStep } from '../src/train/classifier-loop.js';

export async function medianStepSeconds(model: Classifier, input: [number, number, number, number], numClasses: number): Promise<number> {
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const batch = { images: randn(input), labels: randint(0, numClasses, [input[0]]) };
  model.train();
  const times: number[] = [];
  for (let i = 0; i < 6; i++) {
    const start = performance.now();
    {
      using _ = scope();
      trainStep(model, optimizer, batch);
    }
    await flushFinalizers();
    if (i >= 2) times.push((performance.now() - start) / 1000);
  }
  disposeBatch(batch);
  optimizer.dispose();
  times.sort((a, b) => a - b);
  return (times[1] + times[2]) / 2;
}
