/**
 * The typed interface of the native addon, and the only importer of the .node file.
 *
 * Thread defaults are set here, before libtorch starts (architecture.md, "Threads"): libtorch
 * 1.13 would otherwise use one intra-op thread on a 2-core machine.
 */
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
  cxx11Abi: boolean;
  compiler: string;
  napiVersion: number;
  parallelInfo: string;
  cudaAvailable: boolean;
  cudaDevices: number;
  blasThreads: number;
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
  allocatorStats(): { allocatedBytes: number; peakAllocatedBytes: number; allocations: number };
  resetPeakMemory(): void;
  fromTypedArray(data: ArrayBufferView, shape: number[], dtype: DType): TensorBase;
  isGradEnabled(): boolean;
  setGradEnabled(enabled: boolean): boolean;
  grad(
    outputs: TensorBase[], inputs: TensorBase[], gradOutputs: (TensorBase | null)[],
    retainGraph: boolean, createGraph: boolean, allowUnused: boolean,
  ): (TensorBase | null)[];
}

export { packageRoot };
export const addonPath = path.join(packageRoot, 'build/Release/vicinity.node');

/** Thread count used at start-up: VICINITY_NUM_THREADS, else every available core. */
export const defaultThreads = Number(process.env.VICINITY_NUM_THREADS) || os.availableParallelism();

function load(): NativeAddon {
  if (!existsSync(addonPath)) {
    throw new Error(
      `vicinity: the native addon is not built (${addonPath} is missing); run \`npm run build:addon\` ` +
        '(it needs libtorch: `apt-get install -y libtorch-dev` on Debian 12)',
    );
  }
  // libgomp reads its settings once, when libtorch is loaded: they must be in the environment first.
  process.env.OMP_WAIT_POLICY ??= 'PASSIVE';
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
native.setNumThreads(defaultThreads);
