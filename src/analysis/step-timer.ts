/**
 * The one step timer of the benchmarks (`vicinity bench`, bench/train-step.ts, bench/results.ts):
 * `warmup` untimed steps, then `steps` timed ones, each in its own scope with pending finalizers
 * flushed between steps (outside the timing), so memory stays flat and no step pays for the
 * previous one's garbage.
 *
 * Statistics: every step's time is kept; the mean is what timm's benchmark.py reports (its
 * `*_step_time` columns, and samples/s from the wall time of the timed loop), the median is what
 * a single probe should use (robust to one slow step on a shared machine).
 */
import { flushFinalizers } from '../tensor/memory.js';
import { scope } from '../tensor/scope.js';

export interface StepTimes {
  /** Each timed step, in milliseconds, in order. */
  stepMs: number[];
  meanMs: number;
  medianMs: number;
  /** Wall seconds of the timed loop, finalizer flushes and `untimed` work included (timm's samples/s basis). */
  wallSeconds: number;
}

/** The median of a non-empty list. */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/**
 * Runs `step` warm-up + timed times (see the file header); `untimed` runs before each step outside
 * its timing (timm zeroes gradients there). Errors: RangeError for counts that are not integers
 * (steps ≥ 1, warmup ≥ 0).
 */
export async function timeSteps(step: () => void, counts: { warmup: number; steps: number },
  untimed: () => void = () => undefined): Promise<StepTimes> {
  const { warmup, steps } = counts;
  if (!Number.isInteger(steps) || steps < 1 || !Number.isInteger(warmup) || warmup < 0) {
    throw new RangeError(`timeSteps: steps must be a positive and warmup a non-negative integer, got ${steps} and ${warmup}`);
  }
  for (let i = 0; i < warmup; i++) {
    untimed();
    { using _ = scope(); step(); }
    await flushFinalizers();
  }
  const stepMs: number[] = [];
  const start = performance.now();
  for (let i = 0; i < steps; i++) {
    untimed();
    const t0 = performance.now();
    { using _ = scope(); step(); }
    stepMs.push(performance.now() - t0);
    await flushFinalizers();
  }
  const wallSeconds = (performance.now() - start) / 1000;
  return { stepMs, meanMs: stepMs.reduce((a, b) => a + b, 0) / steps, medianMs: median(stepMs), wallSeconds };
}
