/**
 * Native memory counters: the tensors alive now (native/core/tensor.cc), for leak checks and logs,
 * and libtorch's CPU allocator statistics (native/core/memory_stats.cc), exact byte counts of
 * every CPU storage libtorch allocates, op temporaries included, with a resettable peak — the
 * CPU counterpart of torch.cuda.memory_allocated / max_memory_allocated — and the allocator's
 * cache of freed large blocks (≥ 1 MiB, kept mapped for reuse instead of being unmapped and
 * page-faulted in again by the next step), which emptyCache() returns, as torch.cuda.empty_cache.
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
  /** Bytes of freed large blocks the allocator keeps for reuse (not in allocatedBytes). */
  cachedBytes: number;
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

/** Returns the allocator's cached blocks to the system (memory().cachedBytes becomes 0). */
export function emptyCache(): void {
  native.emptyCache();
}

/**
 * The most bytes of freed large blocks the CPU allocator keeps for reuse (default: a quarter of
 * the machine's memory; 0 turns the cache off). Empties the cache first.
 */
export function setCpuCacheLimit(bytes: number): void {
  if (!(Number.isFinite(bytes) && bytes >= 0)) {
    throw new RangeError(`setCpuCacheLimit: bytes must be a finite number ≥ 0, got ${String(bytes)}; pass 0 to turn the cache off`);
  }
  native.setCacheLimit(bytes);
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
