/**
 * The typed interface of the native addon, and the only importer of the .node file.
 *
 * Thread defaults are set here, before libtorch starts (architecture.md, "Threads"): libtorch
 * 1.13 would otherwise use one intra-op thread on a 2-core machine (half of hardware_concurrency);
 * 2.x uses the physical cores, which is every core here (docs/benchmarks.md, "Threads").
 */
import { threadCountProblem, threadsFromEnvironment } from './thread-limit.js';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../package-root.js';

export type DType =
  | 'float32' | 'float64' | 'bfloat16' | 'float16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

/** An opaque per-call random generator (see `generator(seed)`). */
export interface NativeGenerator { readonly __generator: unique symbol }

export interface BuildInfo {
  torchVersion: string;
  torchSource: string;
  /** Which libtorch, as a person says it: "pip torch 2.13.0 in .venv", "Debian libtorch-dev 1.13.1". */
  torchLabel: string;
  /** The build's backend (build/<backend>/, VICINITY_BACKEND). */
  backend: string;
  cxx11Abi: boolean;
  compiler: string;
  napiVersion: number;
  parallelInfo: string;
  cudaAvailable: boolean;
  cudaDevices: number;
  blasThreads: number;
  /** The BLAS libtorch links: 'OpenBLAS' (Debian), 'MKL' (pip's wheel) or 'unknown'. */
  blasLibrary: string;
}

/** Methods implemented natively on every tensor (src/tensor/tensor.ts adds the rest). */
export declare class TensorBase {
  protected constructor();
  dispose(): void;
  readonly disposed: boolean;
  readonly shape: number[];
  readonly strides: number[];
  readonly dtype: DType;
  readonly device: string;
  readonly ndim: number;
  readonly numel: number;
  requiresGrad: boolean;
  get grad(): TensorBase | null;
  set grad(value: TensorBase | null);
  readonly isLeaf: boolean;
  readonly gradFn: string | null;
  readonly isContiguous: boolean;
  readonly version: number;
  sameAs(other: TensorBase): boolean;
  item(): number | boolean;
  dataSync(): Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;
  data(): Promise<Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array>;
  _backward(gradient: TensorBase | null, retainGraph: boolean): void;
  _setData(other: TensorBase): void;
  /** Reports the storage size to V8: for tensors only the garbage collector will free. */
  _trackGc(): void;
  toString(): string;
}

/** A c10d process group (native/distributed/process_group.cc). */
export interface NativeProcessGroup {
  readonly rank: number;
  readonly size: number;
  allReduce(tensors: TensorBase[], op: 'sum' | 'product' | 'min' | 'max', timeoutMs?: number): NativeWork;
  broadcast(tensors: TensorBase[], root: number, timeoutMs?: number): NativeWork;
  allGather(tensor: TensorBase, timeoutMs?: number): NativeWork;
  barrier(timeoutMs?: number): NativeWork;
  storeSet(key: string, value: string): void;
  storeGet(key: string): string | null;
  storeAdd(key: string, by: number): number;
  destroy(): void;
}

/** A launched collective: wait() blocks this thread, waitAsync() waits on a worker thread. */
export interface NativeWork {
  wait(timeoutMs?: number): TensorBase[] | undefined;
  waitAsync(timeoutMs?: number): Promise<TensorBase[] | undefined>;
  isCompleted(): boolean;
}

/** c10d's gradient Reducer (native/distributed/reducer.cc). */
export interface NativeReducer {
  prepareForForward(): boolean;
  prepareForBackward(outputs: TensorBase[]): void;
  bucketCount(): number;
}

export interface NativeAddon {
  TensorBase: typeof TensorBase;
  setTensorClass(cls: Function): void;
  opId(name: string, overload: string): number;
  opSchema(id: number): string;
  call(id: number, args: unknown[]): unknown;
  allOpNames(): string[];
  buildInfo(): BuildInfo;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  setBlasThreads(n: number): boolean;
  manualSeed(seed: number): void;
  makeGenerator(seed: number): NativeGenerator;
  seedGenerator(generator: NativeGenerator, seed: number): void;
  memoryCounters(): { liveTensors: number; liveBytes: number; createdTensors: number };
  allocatorStats(): { allocatedBytes: number; peakAllocatedBytes: number; allocations: number; cachedBytes: number };
  resetPeakMemory(): void;
  emptyCache(): void;
  setCacheLimit(bytes: number): void;
  fromTypedArray(data: ArrayBufferView, shape: number[], dtype: DType): TensorBase;
  isGradEnabled(): boolean;
  setGradEnabled(enabled: boolean): boolean;
  grad(
    outputs: TensorBase[], inputs: TensorBase[], gradOutputs: (TensorBase | null)[],
    retainGraph: boolean, createGraph: boolean, allowUnused: boolean,
  ): (TensorBase | null)[];
  initProcessGroup(options: {
    host: string; port: number; rank: number; worldSize: number; timeoutMs: number; backend: 'gloo' | 'nccl'; hostStore: boolean;
  }): Promise<NativeProcessGroup>;
  distributedInfo(): { gloo: boolean; nccl: boolean };
  syncBatchNorm(
    group: NativeProcessGroup, input: TensorBase, weight: TensorBase | null, bias: TensorBase | null,
    runningMean: TensorBase | null, runningVar: TensorBase | null, eps: number, momentum: number, timeoutMs: number,
  ): TensorBase;
  Reducer: new (group: NativeProcessGroup, params: TensorBase[], names: string[], bucketCapBytes: number, findUnused: boolean) => NativeReducer;
}

export { packageRoot };
/** The build to load: VICINITY_BACKEND (default, venv, debian; scripts/find-libtorch.mjs), else default. */
export const backend = process.env.VICINITY_BACKEND || 'default';
if (!['default', 'venv', 'debian'].includes(backend)) {
  throw new Error(`vicinity: VICINITY_BACKEND=${backend} is not a backend; use default (unset), venv or debian`);
}
export const addonPath = path.join(packageRoot, 'build', backend, 'vicinity.node');

/** Thread count used at start-up: VICINITY_NUM_THREADS (checked by thread-limit.ts's rule), else every available core. */
export const defaultThreads = threadsFromEnvironment() ?? os.availableParallelism();

/** The idle OpenMP threads' spin (GOMP_SPINCOUNT) vicinity sets with PASSIVE when neither is set. */
const OPENMP_SPIN_COUNT = 30_000;

function load(): NativeAddon {
  if (!existsSync(addonPath)) {
    throw new Error(
      `vicinity: the native addon is not built (${addonPath} is missing); run \`bash scripts/setup.sh\` ` +
        `(pip torch 2.x in .venv/, then the build) or \`${backend === 'default' ? '' : `VICINITY_BACKEND=${backend} `}` +
        'npm run build:addon` (needs libtorch: scripts/setup.sh installs it)',
    );
  }
  // libgomp reads its settings once, when libtorch is loaded: they must be in the environment first.
  // Idle OpenMP threads spin 30,000 iterations (tens of µs), then sleep: the gaps between one op's
  // parallel region and the next are mostly shorter than that, and waking a sleeping thread for
  // each costs more than the region of a small op (docs/benchmarks.md, "Threads and the OpenMP
  // wait policy"). A user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT is left as it is.
  if (process.env.OMP_WAIT_POLICY === undefined) {
    process.env.OMP_WAIT_POLICY = 'PASSIVE';
    process.env.GOMP_SPINCOUNT ??= String(OPENMP_SPIN_COUNT);
  }
  try {
    return createRequire(import.meta.url)(addonPath) as NativeAddon;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    throw new Error(
      `vicinity: cannot load the native addon (${message}); if libtorch moved or was removed, ` +
        'rebuild with `npm run build:addon` (run `vicinity doctor` for details)',
    );
  }
}

export const native: NativeAddon = load();
// Every setNumThreads goes through the one thread-count rule: libtorch would hang spawning 1e5 threads.
const setNativeThreads = native.setNumThreads.bind(native);
native.setNumThreads = (n: number) => {
  const problem = threadCountProblem(n);
  if (problem) throw new RangeError(`setNumThreads: the thread count ${problem}`);
  setNativeThreads(n);
};
native.setNumThreads(defaultThreads);
