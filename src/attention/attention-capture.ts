/**
 * Attention capture: the attention weights every attention layer computes, and the LA-layer's
 * offsets, for one forward pass — the library side of `vicinity explain` (like Hugging Face's
 * `output_attentions`, but without changing any forward's return value).
 *
 *   const { result: logits, records } = captureAttention(model, () => model.forward(x));
 *   for (const r of records) console.log(r.module, r.kind, r.value.shape);
 *   disposeRecords(records);
 *
 * Each layer makes one `recordAttention(kind, value, layout)` call where it has the weights; the
 * call does nothing unless a capture is running, so forward passes outside a capture cost nothing.
 * While a capture runs, layers with a fused kernel that never materialises the weights take their
 * composite path (same output, test-checked against each other), so fused and composite paths
 * record the same tensors. The record is named after the innermost module running (tracked with
 * forward hooks on every module of `model`, nn/module.ts).
 *
 * What each kind records (value shape; `layout` keys):
 *   halo          softmax weights (B·nh, blocks, bds², win²); {batch, heads, blocksY, blocksX,
 *                 blockSize, haloSize, blockStride, height, width}
 *   sasa,         softmax weights (B, nh, H·W, T), T = k² window keys; {height, width} and `keys`:
 *   neighborhood  the (H·W, T) int64 flat key index (key t of query p is pixel keys[p, t]) and
 *                 `valid`: (H·W, T) bool or null (every key on the map)
 *   mhsa          softmax weights (B·nh, L, L) over all L = H·W keys; {batch, heads, height, width}
 *   lesa-binary   S of Eq. (3), (N, g, L, L); {height, width}
 *   lesa-gate     ω of Eq. (7), (N, O, H, W): the weight of the binary term (y = m + ω ⊙ binary)
 *   lsag-local    weights over the T shifted variants, (B, N, hk, g, T); {tokens, variants}
 *   lsag-global   softmax weights (B, hk, g, N, N); {tokens}
 *   la-offsets    Δp' after rounding and Eq. (7)'s constraint, (B, n_off, Ho, Wo) in output-grid
 *                 pixels — exactly what both the fused kernel and the composite path sample with;
 *                 {heads, kernelSize, perPoint (0/1), stride, height, width} (input H, W)
 *   la-weights    the aggregation weights w (B, m, K, P) of Eq. (6)/(8); {heads, kernelSize}
 */
import { withKernelMode } from '../ops/fused.js';
import type { Module, RemovableHandle } from '../nn/module.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export type AttentionKind =
  | 'halo' | 'sasa' | 'neighborhood' | 'mhsa' | 'lesa-binary' | 'lesa-gate' | 'lsag-local' | 'lsag-global' | 'la-offsets' | 'la-weights';

/** One recorded tensor; see the file header for each kind's shape and layout. */
export interface AttentionRecord {
  /** Dotted name of the module that recorded it ('' for the root). */
  module: string;
  /** The layer's class name. */
  type: string;
  kind: AttentionKind;
  /** Detached, kept until disposeRecords. */
  value: Tensor;
  /** Sizes needed to read `value` (numbers), and index tensors (kept, disposed with the record). */
  layout: Record<string, number>;
  keys?: Tensor;
  valid?: Tensor | null;
}

interface Capture {
  stack: { name: string; type: string }[];
  records: AttentionRecord[];
}

let active: Capture | null = null;

/** True while captureAttention runs: layers then take the paths that materialise their weights. */
export function attentionCaptureActive(): boolean {
  return active !== null;
}

/**
 * Called by attention layers with their weights; a no-op outside captureAttention. The value is
 * detached and kept (it survives the caller's tidy scope).
 */
export function recordAttention(kind: AttentionKind, value: Tensor, layout: Record<string, number> = {},
  index: { keys?: Tensor; valid?: Tensor | null } = {}): void {
  if (!active) return;
  const top = active.stack.at(-1) ?? { name: '', type: 'unknown' };
  active.records.push({
    module: top.name, type: top.type, kind, value: keep(value.detach()), layout: { ...layout },
    ...(index.keys ? { keys: keep(index.keys.detach()) } : {}),
    ...(index.valid !== undefined ? { valid: index.valid ? keep(index.valid.detach()) : null } : {}),
  });
}

/**
 * Runs `fn` (a forward pass of `model`, with or without gradients) and returns its result with
 * every attention record made meanwhile, in the order the layers ran. Captures do not nest.
 *
 * Errors: an Error when a capture is already running.
 */
export function captureAttention<T>(model: Module, fn: () => T): { result: T; records: AttentionRecord[] } {
  if (active) throw new Error('captureAttention: a capture is already running (captures do not nest)');
  const capture: Capture = { stack: [], records: [] };
  const handles: RemovableHandle[] = [];
  for (const [name, m] of model.namedModules()) {
    const entry = { name, type: m.constructor.name };
    handles.push(m.registerForwardPreHook(() => { capture.stack.push(entry); }));
    handles.push(m.registerForwardHook(() => { capture.stack.pop(); }));
  }
  active = capture;
  try {
    // The fused kernels never materialise the weights: a capture runs every layer's composite path.
    return { result: withKernelMode('composite', fn), records: capture.records };
  } catch (e) {
    disposeRecords(capture.records);
    throw e;
  } finally {
    active = null;
    for (const h of handles) h.remove();
  }
}

/** Frees the records' tensors. */
export function disposeRecords(records: AttentionRecord[]): void {
  for (const r of records) {
    r.value.dispose();
    r.keys?.dispose();
    r.valid?.dispose();
  }
}
