/**
 * Wall seconds of one training step (forward, cross-entropy, backward, SGD step) of a model on
 * random data: the median of 4 timed steps after 2 warm-up ones (which warm up allocators and
 * oneDNN), timed by the one step timer (src/analysis/step-timer.ts). Shared by
 * bench/train-step.ts and bench/results.ts. Trains `model`: pass a copy.
 */
import { timeSteps } from '../src/analysis/step-timer.js';
import type { Classifier } from '../src/models/registry.js';
import { SGD } from '../src/optim/index.js';
import { randint, randn } from '../src/tensor/creation.js';
import { disposeBatch, trainStep } from '../src/train/classifier-loop.js';

export async function medianStepSeconds(model: Classifier, input: [number, number, number, number], numClasses: number): Promise<number> {
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const batch = { images: randn(input), labels: randint(0, numClasses, [input[0]]) };
  model.train();
  try {
    const times = await timeSteps(() => { trainStep(model, optimizer, batch); }, { warmup: 2, steps: 4 });
    return times.medianMs / 1000;
  } finally {
    disposeBatch(batch);
    optimizer.dispose();
  }
}
