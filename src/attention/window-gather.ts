/**
 * Per-pixel k×k windows as index tensors, shared by the window-attention operators
 * (neighborhood-attention.ts, sasa.ts). No custom kernel: every query's window is listed as flat
 * key positions y·W + x, and the keys/values are gathered with one index_select, so the memory is
 * O(B·heads·H·W·k²·d) — a k²-fold copy of K and V. Two placements:
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
