/**
 * Per-pixel k×k windows, shared by the window-attention operators (neighborhood-attention.ts,
 * sasa.ts), in two implementations of the same products:
 *   fused      native/kernels/window_attention.cc (`vicinity::window_qk`, `vicinity::window_av`)
 *              reads each window in place from the key map given the first key row/column of every
 *              query row/column (windowStarts); nothing k²-sized is materialised.
 *   composite  every query's window listed as flat key positions y·W + x (windowIndex) and the
 *              keys/values gathered with one index_select: a k²-fold copy of K and V
 *              (O(B·heads·H·W·k²·d) memory; on 2 CPU cores 5–10× slower than fused, spent in the
 *              copies, their page faults and index_add's backward).
 * Which one runs is ops/fused.ts's choice (kernel mode 'auto': fused on CPU when the addon has
 * the kernels; 'composite' forces the gather path, the kernels' oracle in tests).
 * Two placements:
 *
 *   'clamped'  NATTEN 0.14.6 (reference-layers.md §6, csrc/cpu `get_window_start`): the window is
 *              shifted inward at the borders and stays on the query's residue class mod dilation,
 *              so every key lies inside the map (needs length ≥ k·dilation per axis).
 *   'centred'  SASA (Ramachandran et al. 2019 §2.2): the window is centred on the query; keys that
 *              fall outside the map are flagged in `valid` for the caller to mask.
 *
 * Window element t = a·k + b (a = row step, b = column step), as NATTEN's a-major order and the
 * leaderj1001 unfold order [dy, dx]. Legend: k kernel size, d dilation, ns = ⌊k/2⌋, T = k².
 */
import { cat } from '../ops/functional.js';
import { useFused, type FusedOpName } from '../ops/fused.js';
import * as aten from '../ops/generated/ops.gen.js';
import { tensor } from '../tensor/creation.js';
import type { Device, Tensor } from '../tensor/tensor.js';

export type WindowPlacement = 'clamped' | 'centred';

export interface WindowIndexOptions {
  kernelSize: number;
  /** Step between window elements; default 1. */
  dilation?: number;
  placement: WindowPlacement;
  /** Device of the index tensors (the device of the tensors they index); default 'cpu'. */
  device?: Device | string;
}

/** Index tensors for every query of an H×W map, in raster order. */
export interface WindowIndex {
  /** int64 (H·W·T): flat key position y·W + x per (query, window element); 0 where invalid. */
  keys: Tensor;
  /**
   * int64 (H·W·T): the true relative offset of each key as a flat index into a (2k−1)×(2k−1)
   * table: ((y − i)/d + k − 1)·(2k − 1) + (x − j)/d + k − 1 (NATTEN's rpb indexing).
   */
  offsets: Tensor;
  /** bool (H·W, T): whether the key lies inside the map; null when every key does ('clamped'). */
  valid: Tensor | null;
}

/**
 * NATTEN 0.14.6 `get_window_start` for one axis: the first key index of query `index`'s window.
 * d = 1: max(i − ns, 0) + (i + ns ≥ L)·(L − i − ns − 1). d > 1: the window stays on i mod d.
 */
export function nattenWindowStart(index: number, length: number, kernelSize: number, dilation: number): number {
  const ns = kernelSize >> 1;
  if (dilation <= 1) return Math.max(index - ns, 0) + (index + ns >= length ? length - index - ns - 1 : 0);
  const ni = index - ns * dilation;
  if (ni < 0) return index % dilation;
  if (index + ns * dilation >= length) {
    const imodd = index % dilation;
    const a = Math.floor(length / dilation) * dilation;
    const b = length - a;
    if (imodd < b) return length - b + imodd - 2 * ns * dilation;
    return a + imodd - kernelSize * dilation;
  }
  return ni;
}

interface IndexArrays {
  keys: BigInt64Array;
  offsets: BigInt64Array;
  valid: Uint8Array | null;
}

// The JS arrays (never tensors, so no scope owns them) of the last few map sizes: a network calls
// the same layer on the same H×W every step.
const cache = new Map<string, IndexArrays>();
const CACHE_SIZE = 32;

function axisStarts(length: number, k: number, d: number, placement: WindowPlacement): number[] {
  const ns = k >> 1;
  return Array.from({ length }, (_, i) => (placement === 'clamped' ? nattenWindowStart(i, length, k, d) : i - ns * d));
}

function buildArrays(height: number, width: number, k: number, d: number, placement: WindowPlacement): IndexArrays {
  const rows = axisStarts(height, k, d, placement);
  const cols = axisStarts(width, k, d, placement);
  const n = height * width * k * k;
  const keys = new BigInt64Array(n);
  const offsets = new BigInt64Array(n);
  const valid = new Uint8Array(n);
  const span = 2 * k - 1;
  let allValid = true;
  let e = 0;
  for (let i = 0; i < height; i++) {
    for (let j = 0; j < width; j++) {
      for (let a = 0; a < k; a++) {
        const y = rows[i] + a * d;
        for (let b = 0; b < k; b++, e++) {
          const x = cols[j] + b * d;
          const inside = y >= 0 && y < height && x >= 0 && x < width;
          allValid &&= inside;
          valid[e] = inside ? 1 : 0;
          keys[e] = BigInt(inside ? y * width + x : 0);
          offsets[e] = BigInt(((y - i) / d + k - 1) * span + (x - j) / d + k - 1);
        }
      }
    }
  }
  return { keys, offsets, valid: allValid ? null : valid };
}

/** The window of every query of an H×W map; see the file header for the placements. */
export function windowIndex(height: number, width: number, o: WindowIndexOptions): WindowIndex {
  const k = o.kernelSize;
  const d = o.dilation ?? 1;
  const key = `${height},${width},${k},${d},${o.placement}`;
  let arrays = cache.get(key);
  if (!arrays) {
    arrays = buildArrays(height, width, k, d, o.placement);
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value as string);
    cache.set(key, arrays);
  }
  const device = (o.device ?? 'cpu') as Device;
  return {
    keys: tensor(arrays.keys, { device }),
    offsets: tensor(arrays.offsets, { device }),
    valid: arrays.valid ? tensor(arrays.valid, { shape: [height * width, k * k], dtype: 'bool', device }) : null,
  };
}

/**
 * Gathers the windows of `tokens` (..., L, C) at `keys` (Q·T flat positions into L) as
 * (..., Q, T, C). Differentiable (index_select's backward is index_add).
 */
export function gatherWindows(tokens: Tensor, keys: Tensor, windowSize: number): Tensor {
  const shape = tokens.shape;
  const lead = shape.slice(0, -2);
  const channels = shape[shape.length - 1];
  return tokens.indexSelect(shape.length - 2, keys)              // (..., Q·T, C)
    .reshape([...lead, keys.shape[0] / windowSize, windowSize, channels]); // (..., Q, T, C)
}

const WINDOW_OPS: readonly FusedOpName[] = ['vicinity::window_qk', 'vicinity::window_av'];

/**
 * Whether the window layers run the fused kernel now for tensors on `device` (ops/fused.ts
 * `useFused`: CPU, the addon has it, kernel mode not 'composite'; mode 'fused' throws otherwise).
 */
export function fusedWindowsActive(device: Device | string = 'cpu'): boolean {
  return useFused(WINDOW_OPS, device);
}

/** First key row of every query row and first key column of every query column, int64. */
export interface WindowStarts {
  rows: Tensor;
  cols: Tensor;
  kernelSize: number;
  dilation: number;
}

/** The window starts of an H×W map for the fused kernel (same placements as windowIndex). */
export function windowStarts(height: number, width: number, o: WindowIndexOptions): WindowStarts {
  const k = o.kernelSize;
  const d = o.dilation ?? 1;
  const device = (o.device ?? 'cpu') as Device;
  const starts = (length: number) => tensor(BigInt64Array.from(axisStarts(length, k, d, o.placement), BigInt), { device });
  return { rows: starts(height), cols: starts(width), kernelSize: k, dilation: d };
}

/**
 * Window logits: q (N, H, W, C) · key (N, Hk, Wk, C) over each query's window → (N, H, W, k²),
 * window element t = a·k + b; keys outside the key map give 0 (mask them). Fused kernel; its
 * backward is hand-written (window_attention.cc).
 */
export function windowQk(q: Tensor, key: Tensor, s: WindowStarts): Tensor {
  return aten.vicinity_window_qk(q, key, s.rows, s.cols, s.kernelSize, s.dilation);
}

/** Weighted window sum: attn (N, H, W, k²) × value (N, Hk, Wk, C) → (N, H, W, C). Fused kernel. */
export function windowAv(attn: Tensor, value: Tensor, s: WindowStarts): Tensor {
  return aten.vicinity_window_av(attn, value, s.rows, s.cols, s.kernelSize, s.dilation);
}

// Elements of a chunk's logits: 2²¹ (8 MB float32) keeps every temporary of the chunk below
// glibc's mmap threshold and in cache; a whole batch's logits (150 MB for one 28×28 layer at batch
// 128) are page-faulted afresh by every op, which measured as much as the products themselves.
const CHUNK_LOGITS = 2 ** 21;

/** The per-chunk step of fusedWindowAttention: raw q·k logits → attention weights. */
export type WindowWeights = (qk: Tensor, q: Tensor) => Tensor;

/**
 * softmax-style window attention with the fused kernel, over chunks of the batch:
 * q, key, value (B, nh, H·W, dh) on an H×W map → (B, nh, H·W, dh), where each chunk's weights
 * are weights(q·k (b, nh, H·W, k²), q (b, nh, H·W, dh)) — the caller's biases, mask, softmax and
 * dropout. Chunks change no value (every op is per image); split/cat keep the backward one pass.
 * chunkLogits (default 2²¹) bounds the logits elements per chunk (at least one image).
 */
export function fusedWindowAttention(q: Tensor, key: Tensor, value: Tensor, height: number, width: number,
  s: WindowStarts, weights: WindowWeights, chunkLogits = CHUNK_LOGITS): Tensor {
  const [B, nh, P, dh] = q.shape;
  const T = s.kernelSize * s.kernelSize;
  const images = Math.max(1, Math.floor(chunkLogits / (nh * P * T)));
  const grid = (t: Tensor) => t.reshape([t.shape[0] * nh, height, width, t.shape[3]]); // (b·nh, H, W, ·)
  const [qs, ks, vs] = [q, key, value].map((t) => (images >= B ? [t] : t.split(images, 0)));
  const outs = qs.map((qc, i) => {
    const b = qc.shape[0];
    const qk = windowQk(grid(qc), grid(ks[i]), s).reshape([b, nh, P, T]); // (b, nh, H·W, T)
    const attn = weights(qk, qc);                                         // (b, nh, H·W, T)
    return windowAv(grid(attn), grid(vs[i]), s).reshape([b, nh, P, dh]);  // (b, nh, H·W, dh)
  });
  return outs.length === 1 ? outs[0] : cat(outs, 0);
}

/**
 * Window softmax attention in one fused kernel (native/kernels/window_softmax.cc): q, key, value
 * (B, nh, H·W, dh) on an H×W map, a bias (nh, H·W, k²) added to the logits (NATTEN's rpb) and a
 * key embedding (nh, k², dh) added to every window's keys (SASA's r), each or null, and the
 * logits' scale (default 1) → (B, nh, H·W, dh) = Σ_t softmax_t(scale·q·(k_t + e_t) + bias_t) v_t
 * over each query's in-map window (keys off the map are masked). No (B, nh, H·W, k²) tensor is
 * kept; backward recomputes the weights.
 */
export function windowSoftmaxAttention(q: Tensor, key: Tensor, value: Tensor, height: number, width: number,
  s: WindowStarts, o: { bias?: Tensor | null; keyEmbed?: Tensor | null; scale?: number }): Tensor {
  const [B, nh, P, dh] = q.shape;
  // (B, nh, H, W, ·) views at the callers' strides (the kernel reads them in place and lays its
  // output out as value, its gradients as their inputs).
  const grid = (t: Tensor) => t.reshape([B, nh, height, width, t.shape[3]]);
  const T = s.kernelSize * s.kernelSize;
  return aten.vicinity_window_softmax_attention(grid(q), grid(key), grid(value), s.rows, s.cols,
    o.bias ? o.bias.reshape([nh, height, width, T]) : null, o.keyEmbed ?? null, s.kernelSize, s.dilation, o.scale ?? 1)
    .reshape([B, nh, P, dh]);
}

/**
 * windowSoftmaxAttention of q, key and value packed as one projection qkv (B, H, W, 3C), channels
 * [q, k, v] × heads × dh (NATTEN's qkv Linear), in one kernel that returns their gradient packed
 * the same way (window_softmax.cc `window_softmax_attention_qkv`): no concatenation of three
 * gradients in backward. → (B, heads, H·W, dh).
 */
export function windowSoftmaxAttentionQkv(qkv: Tensor, heads: number, s: WindowStarts,
  o: { bias?: Tensor | null; scale?: number }): Tensor {
  const [B, height, width, C3] = qkv.shape;
  const dh = C3 / (3 * heads);
  const T = s.kernelSize * s.kernelSize;
  return aten.vicinity_window_softmax_attention_qkv(qkv, heads, s.rows, s.cols,
    o.bias ? o.bias.reshape([heads, height, width, T]) : null, s.kernelSize, s.dilation, o.scale ?? 1)
    .reshape([B, heads, height * width, dh]);
}
