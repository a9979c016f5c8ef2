/**
 * 2-D relative-position logits, shared by HaloAttention and MultiHeadSelfAttention2d.
 *   HaloNet slides, "Relative Spatial Attention": logit = q·k + q·r_{a−i, b−j}      → relPosLogits2d()
 *   AA-Net / BoTNet §3 Fig. 4: r = R_h + R_w, one table per axis, logits summed     → relPosLogits2d()
 * For a query at (qy, qx) of a query grid and a key at (ky, kx) of a key grid:
 *   rel[q, k] = q · width_rel[kx − qx + widthOffset] + q · height_rel[ky − qy + heightOffset]   Eq. (R)
 * Reference: huggingface/pytorch-image-models@aa4b5850, timm/layers/halo_attn.py and
 * timm/layers/bottleneck_attn.py, class PosEmbedRel (`rel_logits_1d`'s pad/reshape trick computes
 * the same gather). Fixtures: halo-attn-open, halo-attn-avgdown-open, botnet-attn-open (through the
 * two layers).
 * The two references differ only in the geometry, so it is a parameter:
 *   haloGeometry(b, win)  queries b×b in-block, keys win×win in-window, tables 2·win − 1 rows,
 *                         offset win − 1 (rows 0 … win − b − 1 are never used);
 *   globalGeometry(H, W)  queries = keys = the whole H×W map, tables 2H − 1 and 2W − 1 rows,
 *                         offsets H − 1 and W − 1 (every row used).
 * Deviations: 1. timm's `rel_to_abs` pad/reshape is replaced by a gather of the same entries
 * (identical values and gradients, any query/key grid). 2. Geometry and table mismatches throw
 * (timm indexes silently or fails inside reshape). 3. resizeRelPosTable (no timm counterpart)
 * resamples a table for another feature size, see its TSDoc.
 * Legend: N batch·heads (·blocks), d the q/k head width, R table rows.
 */
import { init, Module, type Parameter } from '../nn/index.js';
import { newParameter } from '../nn/layers/new-parameter.js';
import { integerAtLeast, knownOptions, optionNames, positiveNumber } from '../nn/layers/validation.js';
import { arange, tensor } from '../tensor/creation.js';
import { ShapeError } from '../tensor/shape-error.js';
import type { Device, Tensor } from '../tensor/tensor.js';

/** Where queries and keys sit, and which table row is offset 0 on each axis. */
export interface RelPosGeometry {
  queryHeight: number;
  queryWidth: number;
  keyHeight: number;
  keyWidth: number;
  /** Table row of (ky − qy) = 0. */
  heightOffset: number;
  /** Table row of (kx − qx) = 0. */
  widthOffset: number;
}

/** HaloAttn: queries at in-block (qy, qx) ∈ [0, b)², keys at in-window (ky, kx) ∈ [0, win)². */
export function haloGeometry(blockSize: number, winSize: number): RelPosGeometry {
  return {
    queryHeight: blockSize, queryWidth: blockSize, keyHeight: winSize, keyWidth: winSize,
    heightOffset: winSize - 1, widthOffset: winSize - 1,
  };
}

/** BottleneckAttn: every position of an H×W map attends to every position of it. */
export function globalGeometry(height: number, width: number): RelPosGeometry {
  return {
    queryHeight: height, queryWidth: width, keyHeight: height, keyWidth: width,
    heightOffset: height - 1, widthOffset: width - 1,
  };
}

/** (queries, keys) int64 table rows k − q + offset, raster over one axis. */
function offsetRows(queries: number, keys: number, offset: number, device: Device): Tensor {
  const k = arange(0, keys, 1, { device }).reshape([1, keys]);
  const q = arange(0, queries, 1, { device }).reshape([queries, 1]);
  return k.sub(q).add(offset); // (queries, keys)
}

function checkTable(name: string, table: Tensor, d: number, queries: number, keys: number, offset: number): void {
  if (table.shape.length !== 2 || table.shape[1] !== d) {
    throw new ShapeError(`relPosLogits2d: ${name} must be (rows, ${d}) to match q's last dim ${d}, got [${table.shape}]`);
  }
  const lowest = offset - (queries - 1);
  const highest = keys - 1 + offset;
  if (lowest < 0 || highest > table.shape[0] - 1) {
    throw new RangeError(`relPosLogits2d: ${name} has ${table.shape[0]} rows but the geometry indexes rows ` +
      `${lowest} … ${highest} (${queries} queries, ${keys} keys, offset ${offset}); ` +
      'build the table with as many rows as the geometry needs');
  }
}

/**
 * Relative-position logits, Eq. (R) above.
 *
 * Shape: q (N, Hq·Wq, d) with queries in raster order; heightRel (R_h, d), widthRel (R_w, d)
 * → (N, Hq·Wq, Hk·Wk), keys in raster order.
 *
 * Errors: ShapeError when q is not (N, Hq·Wq, d) or a table's width is not d; RangeError when the
 * geometry indexes rows outside a table.
 *
 * @example
 * const rel = relPosLogits2d(q, hRel, wRel, globalGeometry(8, 8));   // (N, 64, 64)
 */
export function relPosLogits2d(q: Tensor, heightRel: Tensor, widthRel: Tensor, g: RelPosGeometry): Tensor {
  const { queryHeight: hq, queryWidth: wq, keyHeight: hk, keyWidth: wk } = g;
  if (q.shape.length !== 3 || q.shape[1] !== hq * wq) {
    throw new ShapeError(`relPosLogits2d: q must be (N, ${hq}·${wq}, d) for a ${hq}×${wq} query grid, got [${q.shape}]`);
  }
  const [n, , d] = q.shape;
  checkTable('height_rel', heightRel, d, hq, hk, g.heightOffset);
  checkTable('width_rel', widthRel, d, wq, wk, g.widthOffset);
  const device = q.device as Device;
  const grid = q.reshape([n, hq, wq, d]);                                    // (N, Hq, Wq, d)
  const byWidthRow = grid.matmul(widthRel.t());                              // (N, Hq, Wq, R_w)
  const widthIndex = offsetRows(wq, wk, g.widthOffset, device)
    .reshape([1, 1, wq, wk]).expand([n, hq, wq, wk]);                        // (N, Hq, Wq, Wk)
  const relWidth = byWidthRow.gather(3, widthIndex);                         // (N, Hq, Wq, Wk)
  const byHeightRow = grid.matmul(heightRel.t());                            // (N, Hq, Wq, R_h)
  const heightIndex = offsetRows(hq, hk, g.heightOffset, device)
    .reshape([1, hq, 1, hk]).expand([n, hq, wq, hk]);                        // (N, Hq, Wq, Hk)
  const relHeight = byHeightRow.gather(3, heightIndex);                      // (N, Hq, Wq, Hk)
  return relHeight.unsqueeze(4).add(relWidth.unsqueeze(3))                   // Eq. (R)  (N, Hq, Wq, Hk, Wk)
    .reshape([n, hq * wq, hk * wk]);                                         // (N, Hq·Wq, Hk·Wk)
}

/**
 * Resamples a relative-position table (R, d) to `rows` rows by 1-D linear interpolation along the
 * position axis with align-corners semantics: output row i samples the input at
 *   p = i · (R − 1) / (rows − 1)      (rows ≥ 2; the first and last rows map to each other),
 *   p = (R − 1) / 2                    (rows = 1: the centre row, i.e. offset 0),
 * value = (1 − (p − ⌊p⌋)) · table[⌊p⌋] + (p − ⌊p⌋) · table[⌊p⌋ + 1]. For tables of 2H − 1 rows
 * resized to 2H' − 1 this scales offsets by (H − 1)/(H' − 1) and keeps offset 0 on offset 0. For
 * rows ≥ 2 it equals torch F.interpolate(table.T[None], rows, mode='linear', align_corners=True);
 * for rows = 1 torch would take row 0 instead of the centre. rows = R returns the table exactly.
 * Differentiable with respect to the table.
 *
 * Errors: ShapeError for a table that is not 2-D with ≥ 1 row; RangeError for rows < 1.
 */
export function resizeRelPosTable(table: Tensor, rows: number): Tensor {
  integerAtLeast('resizeRelPosTable', 'rows', rows, 1);
  if (table.shape.length !== 2 || table.shape[0] < 1) {
    throw new ShapeError(`resizeRelPosTable: the table must be (rows ≥ 1, d), got [${table.shape}]`);
  }
  const r = table.shape[0];
  const lower = new Array<number>(rows);
  const upper = new Array<number>(rows);
  const frac = new Array<number>(rows);
  for (let i = 0; i < rows; i++) {
    const p = rows === 1 ? (r - 1) / 2 : (i * (r - 1)) / (rows - 1);
    lower[i] = Math.min(Math.floor(p), Math.max(r - 2, 0));
    upper[i] = Math.min(lower[i] + 1, r - 1);
    frac[i] = r === 1 ? 0 : p - lower[i];
  }
  const device = table.device as Device;
  const w = tensor(frac, { dtype: table.dtype, device }).reshape([rows, 1]);            // (rows, 1)
  const below = table.indexSelect(0, tensor(lower, { dtype: 'int64', device }));        // (rows, d)
  const above = table.indexSelect(0, tensor(upper, { dtype: 'int64', device }));        // (rows, d)
  return below.mul(w.neg().add(1)).add(above.mul(w));
}

export interface RelPosEmbedding2dOptions {
  /** Rows of `height_rel` (2·win − 1 for HaloAttn, 2H − 1 for BottleneckAttn). */
  heightRows: number;
  /** Rows of `width_rel`. */
  widthRows: number;
  /** Width of each row: the q/k head width d. */
  dimHead: number;
  /** Std of the N(0, std²) draw made at construction, as timm's PosEmbedRel (default dimHead^-0.5). */
  scale?: number;
}

const REL_POS_EMBEDDING2D_OPTION_NAMES = optionNames<RelPosEmbedding2dOptions>({ heightRows: 1, widthRows: 1, dimHead: 1, scale: 1 });

/**
 * The two learnt tables of timm's PosEmbedRel, under its state-dict names.
 *
 * Parameters: `height_rel` (heightRows, dimHead), `width_rel` (widthRows, dimHead), both
 * N(0, scale²) at construction (the owning layer re-draws them trunc_normal, as timm does).
 *
 * Shape: forward(q (N, Hq·Wq, d), geometry) → (N, Hq·Wq, Hk·Wk), Eq. (R).
 */
export class RelPosEmbedding2d extends Module<[Tensor, RelPosGeometry]> {
  readonly heightRel: Parameter;
  readonly widthRel: Parameter;
  readonly dimHead: number;

  constructor(o: RelPosEmbedding2dOptions) {
    super();
    knownOptions('RelPosEmbedding2d', o, REL_POS_EMBEDDING2D_OPTION_NAMES);
    const layer = 'RelPosEmbedding2d';
    const heightRows = integerAtLeast(layer, 'heightRows', o.heightRows, 1);
    const widthRows = integerAtLeast(layer, 'widthRows', o.widthRows, 1);
    this.dimHead = integerAtLeast(layer, 'dimHead', o.dimHead, 1);
    const scale = positiveNumber(layer, 'scale', o.scale ?? this.dimHead ** -0.5);
    this.heightRel = this.registerParameter('height_rel', newParameter([heightRows, this.dimHead]));
    this.widthRel = this.registerParameter('width_rel', newParameter([widthRows, this.dimHead]));
    init.normal_(this.heightRel, { std: scale });
    init.normal_(this.widthRel, { std: scale });
  }

  forward(q: Tensor, geometry: RelPosGeometry): Tensor {
    return relPosLogits2d(q, this.heightRel, this.widthRel, geometry);
  }
}
