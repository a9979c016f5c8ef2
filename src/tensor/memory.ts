/** Native tensor counters (native/core/tensor.cc): what is alive now, for leak checks and logs. */
import { native } from '../native/binding.js';

export interface MemoryInfo {
  /** Tensor objects not yet disposed or collected. */
  liveTensors: number;
  /** Bytes of the storages those tensors own (views count 0). */
  liveBytes: number;
  /** Tensors made since start-up. */
  createdTensors: number;
  /** The process's resident set size. */
  rss: number;
}

export function memory(): MemoryInfo {
  return { ...native.memoryCounters(), rss: process.memoryUsage.rss() };
}

/** Sets libtorch's intra-op thread count (default: every available core, or VICINITY_NUM_THREADS). */
export function setNumThreads(n: number): void {
  native.setNumThreads(n);
}

export function getNumThreads(): number {
  return native.getNumThreads();
}

/**
 * Lets Node run pending native finalizers. N-API defers the finalizers of collected tensor
 * objects to the event loop, so a long loop that never awaits keeps their small native records
 * (not their data: dispose() and scopes free that at once) until it yields. Training loops
 * await this between steps; a synchronous loop of your own should too, every few steps.
 */
export function flushFinalizers(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
