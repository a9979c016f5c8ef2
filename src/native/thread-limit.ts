/**
 * One rule for every thread count a user sets: libtorch's intra-op threads (VICINITY_NUM_THREADS,
 * setNumThreads, `bench --num-threads`) and the data loader's workers (`--workers`, DataLoader).
 * A count is an integer from its minimum up to THREADS_PER_CORE × the available cores: more
 * threads than that only oversubscribe the cores, and far more (thousands) exhaust memory or hang
 * while spawning. No addon import here, so the CLI can check the environment before libtorch loads.
 */
import os from 'node:os';

/** Threads allowed per available core. */
export const THREADS_PER_CORE = 4;

/** The largest thread count accepted on this machine. */
export function maxThreads(): number {
  return THREADS_PER_CORE * os.availableParallelism();
}

/**
 * What is wrong with `value` as a thread count (undefined when fine). `min` is 1 for libtorch
 * threads and 0 for loader workers (0 = the main thread).
 */
export function threadCountProblem(value: unknown, min: 0 | 1 = 1): string | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= min && value <= maxThreads()) return undefined;
  const shown = typeof value === 'string' ? `'${value}'` : String(value);
  return `must be ${threadCountRule(min)}, got ${shown}`;
}

/** The rule in words: 'an integer from 1 to 8 (4 per core; this machine has 2)'. */
export function threadCountRule(min: 0 | 1 = 1): string {
  return `an integer from ${min} to ${maxThreads()} (${THREADS_PER_CORE} per core; this machine has ${os.availableParallelism()})`;
}

/** A thread count written as text (a flag, an environment variable): decimal digits only. */
export function parseThreadCount(text: string, label: string, min: 0 | 1 = 1): number {
  const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
  // The problem quotes the text as given ('1000', ' 7x'), not the number it parsed to.
  if (threadCountProblem(n, min)) throw new RangeError(`${label} ${threadCountProblem(text, min)}`);
  return n;
}

/** VICINITY_NUM_THREADS checked (undefined when unset or empty). Errors: RangeError naming the variable. */
export function threadsFromEnvironment(env: NodeJS.ProcessEnv = process.env): number | undefined {
  const text = env.VICINITY_NUM_THREADS;
  if (text === undefined || text.trim() === '') return undefined;
  return parseThreadCount(text, 'VICINITY_NUM_THREADS');
}
