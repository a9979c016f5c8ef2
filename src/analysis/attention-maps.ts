/**
 * Reading attention records (attention/attention-capture.ts) as pictures: for a query pixel of a
 * layer's query grid, the weight every key pixel gets, per head, on the layer's key grid (its input
 * map); the LA-layer's deformed sampling points; LESA's gate per layer; LSAG's weight per shifted
 * variant. Every function reads the record's own layout, so what is drawn is what the layer used.
 */
import type { AttentionRecord } from '../attention/attention-capture.js';
import { samplingCoordinates } from '../attention/la-sampling.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** Weights of one query over a key grid: `data[h·height·width + y·width + x]`. */
export interface QueryMap {
  heads: number;
  height: number;
  width: number;
  data: Float32Array;
}

/** The kinds that have a per-query map over pixels. */
export const MAP_KINDS = ['halo', 'sasa', 'neighborhood', 'mhsa', 'lesa-binary', 'lsag-global'] as const;

function values(t: Tensor): Float32Array {
  return tidy(() => t.float().cpu().contiguous().dataSync() as Float32Array);
}

function squareSide(n: number, what: string): number {
  const side = Math.round(Math.sqrt(n));
  if (side * side !== n) throw new Error(`${what}: ${n} tokens are not a square grid; the map needs its height and width`);
  return side;
}

/** [height, width] of a record's query grid. */
export function queryGrid(r: AttentionRecord): [number, number] {
  const l = r.layout;
  switch (r.kind) {
    case 'halo': return [l.blocksY * l.blockSize / l.blockStride, l.blocksX * l.blockSize / l.blockStride];
    case 'sasa': case 'neighborhood': case 'mhsa': return [l.height, l.width];
    case 'lesa-binary': { const s = squareSide(l.length, r.module); return [s, s]; }
    case 'lsag-global': case 'lsag-local': { const s = squareSide(l.tokens, r.module); return [s, s]; }
    case 'la-offsets': case 'lesa-gate': return [r.value.shape[2], r.value.shape[3]];
    case 'la-weights': { const s = squareSide(r.value.shape[3], r.module); return [s, s]; }
  }
}

/**
 * The weights query (y, x) of image `batch` gives every key pixel, per head.
 *
 * Errors: a RangeError for a query outside the grid or a kind without pixel maps.
 */
export function attentionMap(r: AttentionRecord, q: { batch?: number; y: number; x: number }): QueryMap {
  const b = q.batch ?? 0;
  const [qh, qw] = queryGrid(r);
  if (!(q.y >= 0 && q.y < qh && q.x >= 0 && q.x < qw && Number.isInteger(q.y) && Number.isInteger(q.x))) {
    throw new RangeError(`attentionMap: query (${q.y}, ${q.x}) is outside ${r.module}'s ${qh}×${qw} query grid`);
  }
  const v = values(r.value);
  const l = r.layout;
  switch (r.kind) {
    case 'halo': {
      const { heads, blocksY, blocksX, blockSize: bs, haloSize: h, blockStride, height, width } = l;
      const bds = bs / blockStride;
      const win = bs + 2 * h;
      const [by, bx, iy, ix] = [Math.floor(q.y / bds), Math.floor(q.x / bds), q.y % bds, q.x % bds];
      const out: QueryMap = { heads, height, width, data: new Float32Array(heads * height * width) };
      const blocks = blocksY * blocksX;
      for (let n = 0; n < heads; n++) {
        // value (B·nh, blocks, bds², win²): row (b·nh + n, block, query in block)
        const base = (((b * heads + n) * blocks + by * blocksX + bx) * bds * bds + iy * bds + ix) * win * win;
        for (let wy = 0; wy < win; wy++) {
          for (let wx = 0; wx < win; wx++) {
            const [py, px] = [by * bs - h + wy, bx * bs - h + wx];
            if (py >= 0 && py < height && px >= 0 && px < width) out.data[(n * height + py) * width + px] += v[base + wy * win + wx];
          }
        }
      }
      return out;
    }
    case 'sasa': case 'neighborhood': {
      const [, heads, P, T] = r.value.shape;
      const keys = Array.from(r.keys!.cpu().dataSync() as BigInt64Array, Number);
      const valid = r.valid ? (r.valid.cpu().to('uint8').dataSync() as Uint8Array) : null;
      const { height, width } = l;
      const p = q.y * width + q.x;
      const out: QueryMap = { heads, height, width, data: new Float32Array(heads * height * width) };
      for (let n = 0; n < heads; n++) {
        for (let t = 0; t < T; t++) {
          if (valid && !valid[p * T + t]) continue;
          out.data[n * height * width + keys[p * T + t]] += v[((b * heads + n) * P + p) * T + t];
        }
      }
      return out;
    }
    case 'mhsa': case 'lesa-binary': case 'lsag-global': {
      // mhsa (B·nh, L, L); lesa-binary (N, g, L, L); lsag-global (B, hk, g, N, N): rows b, then heads.
      const L = qh * qw;
      const s = r.value.shape;
      const nh = r.kind === 'mhsa' ? l.heads : r.kind === 'lesa-binary' ? s[1] : s[1] * s[2];
      const out: QueryMap = { heads: nh, height: qh, width: qw, data: new Float32Array(nh * L) };
      const p = q.y * qw + q.x;
      for (let n = 0; n < nh; n++) {
        const base = ((b * nh + n) * L + p) * L;
        out.data.set(v.subarray(base, base + L), n * L);
      }
      return out;
    }
    default:
      throw new RangeError(`attentionMap: ${r.kind} records have no per-pixel map (see laSamplingPoints, lesaGate, lsagVariantWeights)`);
  }
}

/** One deformed sampling point of the LA-layer, in the layer's input pixels (and output grid). */
export interface SamplingPoint {
  head: number;
  /** Kernel point index ky·k + kx. */
  point: number;
  /** Position on the output grid (Ho × Wo) where the keys are sampled. */
  gridY: number;
  gridX: number;
  /** The same on the layer's input map (× stride). */
  y: number;
  x: number;
  /** The aggregation weight of this point, when a la-weights record is given. */
  weight?: number;
}

/**
 * The k² sampling points per head of output pixel (y, x), from a la-offsets record (with the
 * weights of the matching la-weights record, if given): the undeformed window plus Δp', as
 * la-sampling.ts's samplingCoordinates computes for the composite path.
 */
export function laSamplingPoints(offsets: AttentionRecord, q: { batch?: number; y: number; x: number }, weights?: AttentionRecord): SamplingPoint[] {
  if (offsets.kind !== 'la-offsets') throw new RangeError(`laSamplingPoints: expected a la-offsets record, got ${offsets.kind}`);
  const b = q.batch ?? 0;
  const { heads, kernelSize: k, perPoint, stride } = offsets.layout;
  const [, , Ho, Wo] = offsets.value.shape;
  if (!(q.y >= 0 && q.y < Ho && q.x >= 0 && q.x < Wo)) throw new RangeError(`laSamplingPoints: (${q.y}, ${q.x}) is outside the ${Ho}×${Wo} grid`);
  const [ys, xs] = tidy(() => {
    const grid = samplingCoordinates(offsets.value.narrow(0, b, 1), { heads, kernelSize: k, perPoint: perPoint === 1 });
    return [values(grid.y.expand([1, heads, k * k, Ho * Wo])), values(grid.x.expand([1, heads, k * k, Ho * Wo]))];
  });
  const w = weights ? values(weights.value) : null;
  const p = q.y * Wo + q.x;
  const points: SamplingPoint[] = [];
  for (let n = 0; n < heads; n++) {
    for (let t = 0; t < k * k; t++) {
      const i = (n * k * k + t) * Ho * Wo + p;
      const point: SamplingPoint = { head: n, point: t, gridY: ys[i], gridX: xs[i], y: ys[i] * stride, x: xs[i] * stride };
      if (w) point.weight = w[((b * heads + n) * k * k + t) * Ho * Wo + p];
      points.push(point);
    }
  }
  return points;
}

/** LESA's gate ω of one layer: mean, min and max over channels and pixels of image `batch`, and its per-pixel mean map. */
export function lesaGate(r: AttentionRecord, batch = 0): { mean: number; min: number; max: number; map: QueryMap } {
  if (r.kind !== 'lesa-gate') throw new RangeError(`lesaGate: expected a lesa-gate record, got ${r.kind}`);
  const [, O, H, W] = r.value.shape;
  const v = values(r.value).subarray(batch * O * H * W, (batch + 1) * O * H * W);
  const map = new Float32Array(H * W);
  let [sum, min, max] = [0, Infinity, -Infinity];
  for (let c = 0; c < O; c++) {
    for (let p = 0; p < H * W; p++) {
      const x = v[c * H * W + p];
      map[p] += x / O;
      sum += x;
      if (x < min) min = x;
      if (x > max) max = x;
    }
  }
  return { mean: sum / (O * H * W), min, max, map: { heads: 1, height: H, width: W, data: map } };
}

/** LSAG local attention: the weight of each shifted variant for token (y, x), per head (hk·g rows of T). */
export function lsagVariantWeights(r: AttentionRecord, q: { batch?: number; y: number; x: number }): number[][] {
  if (r.kind !== 'lsag-local') throw new RangeError(`lsagVariantWeights: expected a lsag-local record, got ${r.kind}`);
  const [, N, hk, g, T] = r.value.shape;
  const [, w] = queryGrid(r);
  const v = values(r.value);
  const base = ((q.batch ?? 0) * N + q.y * w + q.x) * hk * g * T;
  return Array.from({ length: hk * g }, (_, n) => Array.from(v.subarray(base + n * T, base + (n + 1) * T)));
}
