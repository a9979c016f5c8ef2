/**
 * LESA position embeddings: the two relative embeddings of the official LESA module, as functions
 * of the tables the module owns (the tables are registered on the module itself, under the
 * reference's top-level keys `relative` / `flatten_index` and `rel_height` / `rel_width`).
 *   §2.1 Eq. (1)  qᵢᵀ r_{i→j}, "the position embedding method used in [49]" (axial-DeepLab)
 * Reference: Chenglin-Yang/LESA_classification@1d6b9f68, lib/models/LESA.py, class LESA
 * (`__init__` position-embedding block, `_binary_forward`, `_rel_emb`, `rel_to_abs`).
 * Fixtures: lesa-open, lesa-train-open (classification), lesa-detqr-open (detection_qr).
 *
 * Legend: S feature-map side (the reference's `kernel_size`), L = S² positions, i a query and j a
 * key position in raster order (row y outer, column x inner), c an embedding channel.
 *
 * 'classification': one table `relative` (2·qk + vp, 2L − 1) over the FLATTENED index difference
 *   E[c, i, j] = relative[c, i − j + L − 1], split along c into the q-, k- and v-embeddings.
 * 'detection_qr': BoTNet-style 2-D tables `rel_height`, `rel_width` (2S − 1, qk) giving
 *   R[i, j] = rel_width[x_j − x_i + S − 1] + rel_height[y_j − y_i + S − 1] (a q-embedding only).
 *
 * Deviations: 1. detection_qr takes its logits from rel-pos.ts (shared with HaloAttention and
 * MultiHeadSelfAttention2d), which gathers the entries the reference's rel_to_abs pad-and-reshape
 * trick selects (identical values and gradients).
 */
import { arange } from '../tensor/creation.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { globalGeometry, relPosLogits2d } from './rel-pos.js';

/** The two position embeddings of the official module (its `lesa.pe_type`). */
export type LesaPeType = 'classification' | 'detection_qr';
export const LESA_PE_TYPES: readonly LesaPeType[] = ['classification', 'detection_qr'];

/**
 * The `flatten_index` buffer: idx[a, b] = a − b + L − 1 for a row a and column b of an L × L
 * table, flattened row-major, int64 (L²) (the reference's `key_index − query_index + L − 1`).
 */
export function flattenIndex(length: number): Tensor {
  return tidy(() => {
    const rows = arange(0, length, 1, { dtype: 'int64' }).unsqueeze(1);   // (L, 1)
    const cols = arange(0, length, 1, { dtype: 'int64' }).unsqueeze(0);   // (1, L)
    return rows.sub(cols).add(length - 1).reshape([-1]);                  // (L²,)
  });
}

/**
 * The q-, k- and v-embeddings of the classification variant from `relative` (2·qk + vp, 2L − 1):
 * E[c, i, j] = relative[c, i − j + L − 1], split along c as `sizes` = [qk, qk, vp].
 */
export function flattenedEmbeddings(relative: Tensor, index: Tensor, length: number, sizes: [number, number, number]): Tensor[] {
  const channels = sizes[0] + sizes[1] + sizes[2];
  const all = relative.indexSelect(1, index)   // (2qk + vp, L²)
    .view([channels, length, length]);         // (2qk + vp, L, L)
  return all.split(sizes, 0);                  // (qk, L, L), (qk, L, L), (vp, L, L)
}

/**
 * The detection_qr logits qᵢ·R[i, j] for q (N, g, qk, L) with
 * R[i, j] = rel_width[x_j − x_i + S − 1] + rel_height[y_j − y_i + S − 1]: BoTNet's 2-D relative
 * logits over the whole S×S map (rel-pos.ts, globalGeometry); returns (N, g, L, L).
 */
export function relativeLogits2d(q: Tensor, relHeight: Tensor, relWidth: Tensor, side: number): Tensor {
  const [n, g, qk, length] = q.shape;
  const rows = q.permute([0, 1, 3, 2])          // (N, g, L, qk)
    .reshape([n * g, length, qk]);              // (N·g, L, qk)
  return relPosLogits2d(rows, relHeight, relWidth, globalGeometry(side, side))   // Eq. (1) qᵢᵀ r_{i→j}  (N·g, L, L)
    .view([n, g, length, length]);                                               // (N, g, L, L)
}
