/**
 * Native memory counters: the tensors alive now (native/core/tensor.cc), for leak checks and logs,
 * and libtorch's CPU allocator statistics (native/core/memory_stats.cc), exact byte counts of
 * every CPU storage libtorch allocates, op temporaries included, with a resettable peak — the
 * CPU counterpart of torch.cuda.memory_allocated / max_memory_allocated.
 */
import { native } from '../native/binding.js';

export interface MemoryInfo {
  /** Tensor objects not yet disposed or collected. */
  liveTensors: number;
  /** Bytes of the storages those tensors own (views count 0). */
  liveBytes: number;
  /** Tensors made since start-up. */
  createdTensors: number;
  /** Bytes of CPU storage libtorch's allocator holds now (allocated since the addon loaded). */
  allocatedBytes: number;
  /** The most `allocatedBytes` has been since the last resetPeakMemory() (or the addon's load). */
  peakAllocatedBytes: number;
  /** CPU allocations made since the addon loaded. */
  allocations: number;
  /** The process's resident set size (includes freed memory glibc keeps, libraries, the JS heap). */
  rss: number;
}

export function memory(): MemoryInfo {
  return { ...native.memoryCounters(), ...native.allocatorStats(), rss: process.memoryUsage.rss() };
}

/**
 * Starts a new peak: `memory().peakAllocatedBytes` becomes the bytes allocated now, so a later
 * read gives the peak of what ran in between (e.g. one training step).
 */
export function resetPeakMemory(): void {
  native.resetPeakMemory();
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
