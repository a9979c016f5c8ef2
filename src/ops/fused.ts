/**
 * The papers' fused operators (native/kernels, registered in native/kernels/registration.cc) and
 * the one switch that chooses them over their composite ATen paths.
 *
 * FUSED_OPS is the table both sides read: the attention layers ask `useFused(ops, device)` before
 * calling a kernel, and analysis/macs.ts takes each kernel's MAC rule from here, so a kernel
 * cannot run without being counted (as the composite ops it replaces count, model-specs.md §0).
 *
 * The switch (kernelMode / setKernelMode / withKernelMode), process-wide:
 *   'auto'       (default) a kernel runs where the table lists the tensor's device and the addon
 *                has it; the composite path runs everywhere else.
 *   'composite'  every layer takes its composite path — the tested oracle of each kernel (tests
 *                and benchmarks compare the two in one process).
 *   'fused'      like 'auto', but a layer whose kernel cannot run throws instead of falling back
 *                (tests that must exercise the kernel).
 * The choice is made when a layer's forward runs; backward follows whichever path forward took.
 */
import { native } from '../native/binding.js';

/** Names of the fused operators, as ops/call.ts reports them. */
export type FusedOpName =
  | 'vicinity::la_normalized_weight'
  | 'vicinity::la_attention'
  | 'vicinity::window_qk'
  | 'vicinity::window_av'
  | 'vicinity::halo_attention';

/** Multiply-accumulates of one call: headline (model-specs.md §0) and 'other' (sampling). */
export interface FusedOpMacs {
  macs: number;
  other: number;
}

export interface FusedOp {
  readonly name: FusedOpName;
  /** The kernel's file under native/kernels. */
  readonly source: string;
  /** Device types the kernel runs on; elsewhere layers take the composite path. */
  readonly devices: readonly string[];
  /** The composite path it replaces, which stays as its oracle. */
  readonly composite: string;
  /** MACs of one call, counted as the composite ops it replaces count. */
  macs(args: readonly unknown[], result: unknown): FusedOpMacs;
}

// Shapes without importing the Tensor class (this file needs no tensor values).
const shapeOrNull = (t: unknown): number[] | null => {
  const shape = (t as { shape?: unknown } | null)?.shape;
  return Array.isArray(shape) ? (shape as number[]) : null;
};
const shapeOf = (t: unknown): number[] => shapeOrNull(t) ?? [];
const numelOf = (t: unknown): number => shapeOrNull(t)?.reduce((a, b) => a * b, 1) ?? 0;
const headline = (macs: number): FusedOpMacs => ({ macs, other: 0 });

export const FUSED_OPS: Readonly<Record<FusedOpName, FusedOp>> = {
  'vicinity::la_normalized_weight': {
    name: 'vicinity::la_normalized_weight',
    source: 'la_normalized_weight.cc',
    devices: ['cpu', 'cuda'],   // built from ATen ops: runs wherever they do
    composite: 'softplus, product, sums and division (LA Eq. 8, la-layer.md step 5)',
    // The Σ_c softplus(key_c)·q_c products, outside the headline: 1 per element of q.
    macs: (args) => ({ macs: 0, other: numelOf(args[0]) }),
  },
  'vicinity::la_attention': {
    name: 'vicinity::la_attention',
    source: 'la_attention.cc',
    devices: ['cpu'],
    composite: 'LALayer: la-sampling.ts sampleBilinear + windowValues, then the Eq. 8 einsums',
    // q (B, m, d, P) and offsets (B, m, K, 2, P): B·m·d·K·P for q·key and again for Σ_r w_r·v_r,
    // the composite path's two einsums.
    macs: (args) => headline(2 * numelOf(args[0]) * (shapeOf(args[3])[2] ?? 0)),
  },
  'vicinity::window_qk': {
    name: 'vicinity::window_qk',
    source: 'window_attention.cc',
    devices: ['cpu'],
    composite: 'window-gather.ts gatherWindows (index_select of the keys) + einsum',
    // B·heads·H·W·k²·d: out.numel · d, as the einsum it replaces.
    macs: (args, result) => headline(numelOf(result) * (shapeOf(args[0])[3] ?? 0)),
  },
  'vicinity::window_av': {
    name: 'vicinity::window_av',
    source: 'window_attention.cc',
    devices: ['cpu'],
    composite: 'window-gather.ts gatherWindows (index_select of the values) + einsum',
    macs: (args, result) => headline(numelOf(result) * (shapeOf(args[0])[3] ?? 0)),
  },
  'vicinity::halo_attention': {
    name: 'vicinity::halo_attention',
    source: 'halo_attention.cc',
    devices: ['cpu'],
    composite: 'HaloAttention: unfolded k/v windows, relPosLogits2d, q·kᵀ, softmax, ·v (halo-attention.ts)',
    // Q = B·nh·blocks·bds² queries of q (…, dqk), win from the tables' 2·win − 1 rows, dv from the
    // result: the composite's q·kᵀ (Q·win²·dqk), the two table products of relPosLogits2d
    // (2·Q·(2·win − 1)·dqk) and attn·v (Q·win²·dv).
    macs: (args, result) => {
      const q = shapeOf(args[0]);
      const dqk = q[3] ?? 0;
      const queries = dqk > 0 ? numelOf(args[0]) / dqk : 0;
      const rows = shapeOf(args[2])[0] ?? 0;
      const win = (rows + 1) / 2;
      const dv = shapeOf(result)[3] ?? 0;
      return headline(queries * (win * win * dqk + 2 * rows * dqk + win * win * dv));
    },
  },
};

/** How layers choose between a fused kernel and the composite path (see the file header). */
export type KernelMode = 'auto' | 'fused' | 'composite';

const MODES: readonly KernelMode[] = ['auto', 'fused', 'composite'];
let mode: KernelMode = 'auto';
const inAddon = new Map<FusedOpName, boolean>();

export function kernelMode(): KernelMode {
  return mode;
}

/** Sets the process-wide mode; returns the previous one. */
export function setKernelMode(next: KernelMode): KernelMode {
  if (!MODES.includes(next)) {
    throw new TypeError(`setKernelMode: mode must be one of ${MODES.map((m) => `'${m}'`).join(', ')}, got ${JSON.stringify(next)}`);
  }
  const previous = mode;
  mode = next;
  return previous;
}

/**
 * Runs fn under `next` and restores the previous mode when fn returns (or, for a promise, when
 * it settles). The layers decide in forward, so backward need not run inside.
 */
export function withKernelMode<T>(next: KernelMode, fn: () => T): T {
  const previous = setKernelMode(next);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    mode = previous;
    throw e;
  }
  if (result instanceof Promise) {
    return result.finally(() => { mode = previous; }) as T;
  }
  mode = previous;
  return result;
}

/** Whether the loaded addon registers `name` (an addon built before the kernel lacks it). */
export function fusedOpAvailable(name: FusedOpName): boolean {
  let known = inAddon.get(name);
  if (known === undefined) {
    try {
      native.opId(name, '');
      known = true;
    } catch {
      known = false;
    }
    inAddon.set(name, known);
  }
  return known;
}

/**
 * Whether a layer runs the kernels `ops` (all of them) for tensors on `device` now. Errors:
 * under 'fused', a kernel the addon lacks or that does not run on `device`.
 */
export function useFused(ops: readonly FusedOpName[], device: string): boolean {
  if (mode === 'composite') return false;
  const type = device.split(':')[0];
  for (const name of ops) {
    const op = FUSED_OPS[name];
    const problem = !fusedOpAvailable(name)
      ? `the addon lacks ${name} (native/kernels/${op.source}); rebuild it with \`npm run build:addon\``
      : !op.devices.includes(type)
        ? `${name} runs on ${op.devices.join(', ')}, not on '${device}'`
        : null;
    if (problem === null) continue;
    if (mode === 'fused') throw new Error(`kernel mode 'fused': ${problem}; use setKernelMode('auto') to fall back to the composite path`);
    return false;
  }
  return true;
}
