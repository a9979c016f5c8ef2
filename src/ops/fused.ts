/**
 * The papers' fused operators (native/kernels, registered in native/kernels/registration.cc), the
 * stock libtorch ops that serve as fused paths (scaled_dot_product_attention, libtorch ≥ 2.0), and
 * the one switch that chooses them over their composite ATen paths.
 *
 * FUSED_OPS is the table the layers read: they ask `useFused(ops, device)` before calling a fused
 * op; layers whose fast path is an algebraic reordering of stock ops (no op of its own) ask
 * `fastPathsEnabled()`. MACs are always counted on the composite path (analysis/macs.ts runs
 * under 'composite'), the formulation model-specs.md §0 counts, so no kernel or reordering changes
 * a model's MACs.
 *
 * The switch (kernelMode / setKernelMode / withKernelMode), process-wide:
 *   'auto'       (default) a fused op runs where the table lists the tensor's device and the
 *                libtorch/addon has it; the composite path runs everywhere else.
 *   'composite'  every layer takes its composite path — the tested oracle of each fused path
 *                (tests and benchmarks compare the two in one process), and what attention
 *                capture, ONNX export and MAC counting run.
 *   'fused'      like 'auto', but a layer whose fused op cannot run throws instead of falling back
 *                (tests that must exercise the kernel).
 * The choice is made when a layer's forward runs; backward follows whichever path forward took.
 */
import { native } from '../native/binding.js';

/** Names of the fused operators, as ops/call.ts reports them. */
export type FusedOpName =
  | 'vicinity::la_normalized_weight'
  | 'vicinity::la_offsets'
  | 'vicinity::la_attention'
  | 'vicinity::window_qk'
  | 'vicinity::window_av'
  | 'vicinity::halo_attention'
  | 'vicinity::halo_attention_projected'
  | 'vicinity::window_softmax_attention'
  | 'vicinity::window_softmax_attention_qkv'
  | 'vicinity::lesa_binary'
  | 'vicinity::lsag_variant_attention'
  | 'aten::scaled_dot_product_attention';

export interface FusedOp {
  readonly name: FusedOpName;
  /** The kernel's file under native/kernels, or null for a stock libtorch op. */
  readonly source: string | null;
  /** For a stock op: the libtorch that has it (what the fallback message names). */
  readonly since?: string;
  /** Device types the kernel runs on; elsewhere layers take the composite path. */
  readonly devices: readonly string[];
  /** The composite path it replaces, which stays as its oracle. */
  readonly composite: string;
}

export const FUSED_OPS: Readonly<Record<FusedOpName, FusedOp>> = {
  'vicinity::la_normalized_weight': {
    name: 'vicinity::la_normalized_weight',
    source: 'la_normalized_weight.cc',
    devices: ['cpu', 'cuda'],   // built from ATen ops: runs wherever they do
    composite: 'softplus, product, sums and division (LA Eq. 8, la-layer.md step 5)',
  },
  'vicinity::la_offsets': {
    name: 'vicinity::la_offsets',
    source: 'la_offsets.cc',
    devices: ['cpu'],
    composite: 'LALayer: la-offsets.ts roundOffsets + constrainOffsets (Eq. 7: round, amax, amin, clamps, ·l / D)',
  },
  'vicinity::la_attention': {
    name: 'vicinity::la_attention',
    source: 'la_attention.cc',
    devices: ['cpu'],
    composite: 'LALayer: la-sampling.ts sampleBilinear + windowValues, then the Eq. 8 einsums',
  },
  'vicinity::window_qk': {
    name: 'vicinity::window_qk',
    source: 'window_attention.cc',
    devices: ['cpu'],
    composite: 'window-gather.ts gatherWindows (index_select of the keys) + einsum',
  },
  'vicinity::window_av': {
    name: 'vicinity::window_av',
    source: 'window_attention.cc',
    devices: ['cpu'],
    composite: 'window-gather.ts gatherWindows (index_select of the values) + einsum',
  },
  'vicinity::halo_attention': {
    name: 'vicinity::halo_attention',
    source: 'halo_attention.cc',
    devices: ['cpu'],
    composite: 'HaloAttention: unfolded k/v windows, relPosLogits2d, q·kᵀ, softmax, ·v (halo-attention.ts)',
  },
  'vicinity::halo_attention_projected': {
    name: 'vicinity::halo_attention_projected',
    source: 'halo_attention.cc',
    devices: ['cpu'],
    composite: 'HaloAttention: the kv 1×1 conv, then the composite halo_attention replaces (halo-attention.ts)',
  },
  'vicinity::window_softmax_attention': {
    name: 'vicinity::window_softmax_attention',
    source: 'window_softmax.cc',
    devices: ['cpu'],
    composite: 'window_qk, + rpb, softmax, window_av (neighborhood-attention.ts)',
  },
  'vicinity::window_softmax_attention_qkv': {
    name: 'vicinity::window_softmax_attention_qkv',
    source: 'window_softmax.cc',
    devices: ['cpu'],
    composite: 'window_softmax_attention of the split qkv projection, whose gradients autograd concatenates',
  },
  'vicinity::lesa_binary': {
    name: 'vicinity::lesa_binary',
    source: 'lesa_binary.cc',
    devices: ['cpu'],
    composite: 'LesaBinaryAttention (classification): gathered embeddings, three logit einsums, bn_similarity, softmax, ·v and ·r^v (lesa-binary.ts)',
  },
  'vicinity::lsag_variant_attention': {
    name: 'vicinity::lsag_variant_attention',
    source: 'lsag_variant_attention.cc',
    devices: ['cpu'],
    composite: 'LsagLocalAttention: logits and Σ_t w_t z_t as batched matmuls over the (B·N, T, D) view of the variants, softmax (lsag-attention.ts)',
  },
  'aten::scaled_dot_product_attention': {
    name: 'aten::scaled_dot_product_attention',
    source: null,
    since: 'libtorch 2.0',
    // CPU: ATen's flash-attention kernel (no (Lq, Lk) weights kept for backward); CUDA: flash /
    // memory-efficient kernels.
    devices: ['cpu', 'cuda'],
    composite: 'q·kᵀ·scale, softmax, ·v (LsagGlobalAttention)',
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

/**
 * Whether the loaded addon registers `name` (an addon built before the kernel lacks it), or, for
 * a stock op, whether the linked libtorch has it.
 */
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
      ? (op.source === null
        ? `this libtorch (${native.buildInfo().torchVersion}) lacks ${name} (${op.since} has it)`
        : `the addon lacks ${name} (native/kernels/${op.source}); rebuild it with \`npm run build:addon\``)
      : !op.devices.includes(type)
        ? `${name} runs on ${op.devices.join(', ')}, not on '${device}'`
        : null;
    if (problem === null) continue;
    if (mode === 'fused') throw new Error(`kernel mode 'fused': ${problem}; use setKernelMode('auto') to fall back to the composite path`);
    return false;
  }
  return true;
}

/**
 * Whether layers may take fast paths that are algebraic reorderings of stock ops (no fused op of
 * their own, e.g. LsagLocalAttention's projection-free logits): every mode but 'composite'.
 */
export function fastPathsEnabled(): boolean {
  return mode !== 'composite';
}
