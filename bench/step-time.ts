/**
 * Wall seconds of one training step (forward, cross-entropy, backward, SGD step) of a model on
 * random data: the median of 4 timed steps after 2 warm-up ones (which warm up allocators and
 * oneDNN), timed by the one step timer (src/analysis/step-timer.ts). Shared by
 * bench/train-step.ts and bench/results.ts. Trains `model`: pass a copy.
 *
 * pairedStepSeconds times two models in alternation, a step of each per round, so a ratio of
 * their medians compares them under the same machine state (a shared VM's speed drifts by
 * 10–20% over minutes; two models timed one after the other inherit that drift, paired ones not).
 */
import { median, timeSteps } from '../src/analysis/step-timer.js';
import type { Classifier } from '../src/models/registry.js';
import { SGD } from '../src/optim/index.js';
import { randint, randn } from '../src/tensor/creation.js';
import { flushFinalizers } from '../src/tensor/memory.js';
import { scope } from '../src/tensor/scope.js';
import { disposeBatch, trainStep } from '../src/train/classifier-loop.js';

/** One model's training step on a fixed random batch, and what to free afterwards. */
interface Stepper {
  step(): void;
  dispose(): void;
}

function stepper(model: Classifier, input: [number, number, number, number], numClasses: number): Stepper {
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9 });
  const batch = { images: randn(input), labels: randint(0, numClasses, [input[0]]) };
  model.train();
  return {
    step: () => { trainStep(model, optimizer, batch); },
    dispose: () => {
      disposeBatch(batch);
      optimizer.dispose();
    },
  };
}

export async function medianStepSeconds(model: Classifier, input: [number, number, number, number], numClasses: number): Promise<number> {
  const s = stepper(model, input, numClasses);
  try {
    const times = await timeSteps(s.step, { warmup: 2, steps: 4 });
    return times.medianMs / 1000;
  } finally {
    s.dispose();
  }
}

export interface PairedModel {
  model: Classifier;
  input: [number, number, number, number];
  numClasses: number;
}

/** Median step seconds of a and b over `rounds` rounds of one step each (after 2 warm-up rounds). */
export async function pairedStepSeconds(a: PairedModel, b: PairedModel, rounds = 5): Promise<[number, number]> {
  const steppers = [stepper(a.model, a.input, a.numClasses), stepper(b.model, b.input, b.numClasses)];
  const ms: number[][] = [[], []];
  try {
    for (let round = 0; round < rounds + 2; round++) {
      for (const [i, s] of steppers.entries()) {
        const t0 = performance.now();
        { using _ = scope(); s.step(); }
        if (round >= 2) ms[i].push(performance.now() - t0);
        await flushFinalizers();
      }
    }
    return [median(ms[0]) / 1000, median(ms[1]) / 1000];
  } finally {
    for (const s of steppers) s.dispose();
  }
}
