/**
 * LA-layer deformed keys and window values (Local Attention Layers for Vision Transformers, §3.1,
 * Eq. 8's k_{t'} + Δp'_{t'} read as "K sampled at the deformed position", DCN notation), as fixed
 * by docs/design/la-layer.md, Computation step 4.
 *   sampling coordinates (Y, X) = (i + r_y + Δp'_dy, j + r_x + Δp'_dx)  → samplingCoordinates()
 *   key_{n,r}(p) = bilinear(K_n, Y, X), zero outside the map             → sampleBilinear()
 *   value_{n,r}(p) = V_n(i + r_y, j + r_x), zero outside the map         → windowValues()
 *   Δp' in the fused kernel's (B, m, K, 2, P) layout                      → pointOffsets()
 * On CPU LALayer.forward runs sampling and aggregation fused (native/kernels/la_attention.cc, the
 * same conventions); these composite functions serve other devices, `sample()` and the tests.
 * Reference: none official; la-layer.md @ e8bc893a and the fixtures' `conventions` ("Bilinear
 * sampling"). Fixtures: every la-layer-* fixture except -literal-.
 * Legend: B batch, m heads, d = C_out/m, k kernel size, K = k², P = Ho·Wo output pixels in raster
 * order, r = (ky − ⌊k/2⌋, kx − ⌊k/2⌋) with (ky, kx) in raster order (ky outer).
 * Deviations:
 *   1. Bilinear sampling gathers the four corners itself instead of calling F.gridSample: the
 *      conventions pin y0 = floor(Y) with floor held constant, so at an exactly integer Y the
 *      coordinate gradient is k[y0+1] − k[y0]. grid_sample's [−1, 1] round trip moves integer
 *      coordinates by an ulp to either side, flipping that one-sided difference; measured with
 *      PyTorch 1.13 on the fixtures, it costs rel. errors of 0.25–0.8 (la-layer-zerooffsets-open,
 *      offset gradients) and 1.4e-2 (la-layer-softmax-open), against exactly 0 for the gather.
 *      It also handles Ho = 1 or Wo = 1, where 2Y/(Ho − 1) − 1 is undefined.
 */
import * as F from '../ops/functional.js';
import { arange } from '../tensor/creation.js';
import type { Device, Tensor } from '../tensor/tensor.js';

export interface SamplingGrid {
  /** Rows Y, (B, m or 1, K, P). */
  y: Tensor;
  /** Columns X, (B, m or 1, K, P). */
  x: Tensor;
}

/**
 * The undeformed window positions (i + r_y, j + r_x) of every kernel point and output pixel,
 * each (K, P), integers in x's dtype.
 */
function windowGrid(kernelSize: number, height: number, width: number, like: Tensor): SamplingGrid {
  const k = kernelSize;
  const half = (k - 1) / 2;
  const options = { dtype: like.dtype, device: like.device as Device };
  const r = arange(-half, half + 1, 1, options);                               // (k)
  const rows = arange(height, undefined, 1, options).reshape([1, 1, height, 1]); // (1, 1, Ho, 1)
  const cols = arange(width, undefined, 1, options).reshape([1, 1, 1, width]);   // (1, 1, 1, Wo)
  const y = r.reshape([k, 1, 1, 1]).add(rows)                                  // (k, 1, Ho, 1)
    .expand([k, k, height, width]).reshape([k * k, height * width]);            // (K, P)
  const x = r.reshape([1, k, 1, 1]).add(cols)                                  // (1, k, 1, Wo)
    .expand([k, k, height, width]).reshape([k * k, height * width]);            // (K, P)
  return { y, x };
}

/**
 * Sampling coordinates in output-grid pixels from the constrained offsets Δp' (B, n_off, Ho, Wo):
 * 'per-point' channel ((n·k + ky)·k + kx)·2 + t (torchvision deform_conv2d's layout, t = 0 for dy),
 * 'per-pixel' channels (dy, dx) shared by every head and kernel point.
 */
export function samplingCoordinates(
  offsets: Tensor, o: { heads: number; kernelSize: number; perPoint: boolean },
): SamplingGrid {
  const [, , height, width] = offsets.shape;
  const window = windowGrid(o.kernelSize, height, width, offsets);
  const split = splitOffsets(offsets, o);                                       // (B, m|1, K|1, 2, P)
  return {
    y: window.y.add(split.select(3, 0)),                                        // (B, m|1, K, P)
    x: window.x.add(split.select(3, 1)),                                        // (B, m|1, K, P)
  };
}

/** Δp' (B, n_off, Ho, Wo) as (B, m, K, 2, P) per point, or (B, 1, 1, 2, P) per pixel (views). */
function splitOffsets(offsets: Tensor, o: { heads: number; kernelSize: number; perPoint: boolean }): Tensor {
  const [B, , height, width] = offsets.shape;
  const P = height * width;
  return o.perPoint
    ? offsets.reshape([B, o.heads, o.kernelSize * o.kernelSize, 2, P])
    : offsets.reshape([B, 1, 1, 2, P]);
}

/**
 * Δp' (B, n_off, Ho, Wo) in the fused kernel's layout (B, m, K, 2, P) (`vicinity::la_attention`,
 * native/kernels/la_attention.cc): a view per point; per pixel expanded over heads and kernel
 * points without copying, so autograd sums the kernel's offset gradient back to (dy, dx).
 */
export function pointOffsets(
  offsets: Tensor, o: { heads: number; kernelSize: number; perPoint: boolean },
): Tensor {
  const [B, , height, width] = offsets.shape;
  return splitOffsets(offsets, o).expand([B, o.heads, o.kernelSize * o.kernelSize, 2, height * width]);
}

/**
 * Bilinear samples of `map` (B, m, d, H, W) at (Y, X) (B, m or 1, K, P): integer coordinates are
 * pixel centres, each of the four corners outside the map reads 0 (grid_sample's align_corners
 * True, zeros padding), and the coordinate gradient holds floor() constant. Returns (B, m, d, K, P).
 */
export function sampleBilinear(map: Tensor, grid: SamplingGrid): Tensor {
  const [B, m, d, height, width] = map.shape;
  const [, mg, K, P] = grid.y.shape;
  const flat = map.reshape([B, m, d, height * width]);                         // (B, m, d, H·W)
  const y0 = grid.y.detach().floor();
  const x0 = grid.x.detach().floor();
  const fy = grid.y.sub(y0);
  const fx = grid.x.sub(x0);
  let sum: Tensor | null = null;
  for (const [dy, wy] of [[0, fy.neg().add(1)], [1, fy]] as const) {
    for (const [dx, wx] of [[0, fx.neg().add(1)], [1, fx]] as const) {
      const cy = y0.add(dy);
      const cx = x0.add(dx);
      const inside = cy.ge(0).logicalAnd(cy.lt(height)).logicalAnd(cx.ge(0)).logicalAnd(cx.lt(width));
      const weight = wy.mul(wx).mul(inside.to(map.dtype));                     // (B, m|1, K, P)
      const index = cy.clamp(0, height - 1).mul(width).add(cx.clamp(0, width - 1)).to('int64')
        .reshape([B, mg, 1, K * P])                                             // (B, m|1, 1, K·P)
        .expand([B, m, d, K * P]);                                              // (B, m, d, K·P)
      const corner = flat.gather(3, index).reshape([B, m, d, K, P]);           // (B, m, d, K, P)
      const term = corner.mul(weight.unsqueeze(2));
      sum = sum === null ? term : sum.add(term);
    }
  }
  return sum as Tensor;
}

/** V on the plain k×k window, zero outside the map: (B, m·d, Ho, Wo) → (B, m, d, K, P). */
export function windowValues(v: Tensor, o: { heads: number; kernelSize: number }): Tensor {
  const [B, C, height, width] = v.shape;
  const k = o.kernelSize;
  const columns = F.unfold(v, k, { padding: (k - 1) / 2 });                   // (B, C·K, P)
  return columns.reshape([B, o.heads, C / o.heads, k * k, height * width]);    // (B, m, d, K, P)
}
