/**
 * Geometric operations on HWC uint8 images: resize, crop, pad, horizontal flip and the affine warp
 * under RandAugment's Rotate / Shear / Translate.
 *
 * References: Pillow 9.4 (what torchvision's PIL path and timm's RandAugment call):
 *   resize()  → `Image.resize` = libImaging/Resample.c `ImagingResample` (separable convolution,
 *               coefficients in 22-bit fixed point, horizontal pass then vertical, uint8 between).
 *               NEAREST → `ImagingScaleAffine` (source index ⌊(x + ½)·in/out⌋). With a box it is
 *               `image.crop(box).resize(...)`, torchvision's F.resized_crop (RandomResizedCrop).
 *   affine()  → `Image.transform(size, AFFINE, data, resample, fillcolor)` = libImaging/Geometry.c
 *               `ImagingGenericTransform` with its bilinear/bicubic 8-bit filters; NEAREST →
 *               `ImagingScaleAffine` (scale/translate) or `affine_fixed` (16.16 fixed point).
 *   crop(), pad(), hflip() → torchvision F.crop (zero fill outside), F.pad (constant), F.hflip.
 * Byte-exact against Pillow 9.4 for every filter of resize and affine (the fixtures in
 * test/data/transforms/geometry.test.ts were made with it).
 *
 * Deviations:
 *   1. resize() does antialias like Pillow (the filter widens by the downscale factor), so it
 *      matches torchvision's PIL path, not its tensor path with antialias=False.
 *   2. Images here carry 1 or 3 channels; Pillow's RGBA/LA alpha handling has no counterpart.
 */

import type { DecodedImage } from '../dataset.js';

/** Resampling filter of a resize or warp. */
export type Interpolation = 'bilinear' | 'bicubic' | 'nearest';

/** A rectangle of an image in pixels; it may reach outside the image (see crop()). */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** A new zero-filled image of the given shape. */
export function newImage(height: number, width: number, channels: 1 | 3): DecodedImage {
  return { data: new Uint8Array(height * width * channels), height, width, channels };
}

// ---------------------------------------------------------------------------------------------
// Resize (Pillow Resample.c)

/** Pillow's fixed-point precision of 8-bit resampling: 32 − 8 − 2 bits. */
const PRECISION_BITS = 22;

interface ResampleFilter {
  support: number;
  weight: (x: number) => number;
}

const FILTERS: Record<'bilinear' | 'bicubic', ResampleFilter> = {
  bilinear: { support: 1, weight: (x) => { x = Math.abs(x); return x < 1 ? 1 - x : 0; } },
  // Keys' cubic convolution with a = −0.5, as Resample.c's bicubic_filter.
  bicubic: {
    support: 2,
    weight: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
  },
};

/** Per output pixel: first input index, tap count, and fixed-point weights (`ksize` apart). */
interface Coefficients {
  bounds: Int32Array;
  weights: Int32Array;
  ksize: number;
}

/**
 * Resample.c `precompute_coeffs` + `normalize_coeffs_8bpc`: the taps mapping a line of `inSize`
 * pixels onto `outSize` pixels, as indices from `start` (the crop's origin; taps never leave the crop).
 */
function coefficients(inSize: number, outSize: number, filter: ResampleFilter, start: number): Coefficients {
  const scale = inSize / outSize;
  const filterScale = Math.max(scale, 1);   // widen the filter when shrinking: antialiasing
  const support = filter.support * filterScale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const weights = new Int32Array(outSize * ksize);
  const taps = new Float64Array(ksize);
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - support + 0.5), 0);
    const count = Math.min(Math.trunc(center + support + 0.5), inSize) - xmin;
    let total = 0;
    for (let x = 0; x < count; x++) {
      taps[x] = filter.weight((x + xmin - center + 0.5) / filterScale);
      total += taps[x];
    }
    for (let x = 0; x < count; x++) {
      const w = total !== 0 ? taps[x] / total : taps[x];
      weights[xx * ksize + x] = Math.trunc(w < 0 ? -0.5 + w * 2 ** PRECISION_BITS : 0.5 + w * 2 ** PRECISION_BITS);
    }
    bounds[xx * 2] = start + xmin;
    bounds[xx * 2 + 1] = count;
  }
  return { bounds, weights, ksize };
}

/** Fixed-point accumulator → uint8, as Resample.c's clip8 (arithmetic shift floors). */
function clip8(sum: number): number {
  const v = sum >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** ImagingResampleHorizontal_8bpc over `rows` rows starting at input row `rowOffset`. */
function resampleHorizontal(image: DecodedImage, rowOffset: number, rows: number, outWidth: number, c: Coefficients): DecodedImage {
  const { data, width, channels } = image;
  const out = newImage(rows, outWidth, channels);
  const dst = out.data;
  const { bounds, weights, ksize } = c;
  const half = 1 << (PRECISION_BITS - 1);
  for (let y = 0; y < rows; y++) {
    const rowIn = (y + rowOffset) * width * channels;
    let o = y * outWidth * channels;
    for (let xx = 0; xx < outWidth; xx++) {
      const count = bounds[xx * 2 + 1];
      const k = xx * ksize;
      let p = rowIn + bounds[xx * 2] * channels;
      if (channels === 3) {   // the three bands share each weight load, as Resample.c does
        let s0 = half, s1 = half, s2 = half;
        for (let x = 0; x < count; x++, p += 3) {
          const w = weights[k + x];
          s0 += data[p] * w;
          s1 += data[p + 1] * w;
          s2 += data[p + 2] * w;
        }
        dst[o++] = clip8(s0);
        dst[o++] = clip8(s1);
        dst[o++] = clip8(s2);
      } else {
        let s0 = half;
        for (let x = 0; x < count; x++, p++) s0 += data[p] * weights[k + x];
        dst[o++] = clip8(s0);
      }
    }
  }
  return out;
}

/**
 * ImagingResampleVertical_8bpc; `rowOffset` is the input row that coefficient bound 0 means.
 * Accumulates whole rows (sequential memory) instead of Pillow's per-value column walk; the sums
 * are the same integers.
 */
function resampleVertical(image: DecodedImage, rowOffset: number, outHeight: number, c: Coefficients): DecodedImage {
  const { data, width, channels } = image;
  const out = newImage(outHeight, width, channels);
  const stride = width * channels;
  const sums = new Float64Array(stride);   // exact: |sum| < 2^31 ≪ 2^53
  const half = 1 << (PRECISION_BITS - 1);
  for (let yy = 0; yy < outHeight; yy++) {
    const ymin = c.bounds[yy * 2] - rowOffset;
    const count = c.bounds[yy * 2 + 1];
    sums.fill(half);
    for (let y = 0; y < count; y++) {
      const w = c.weights[yy * c.ksize + y];
      const row = (ymin + y) * stride;
      for (let i = 0; i < stride; i++) sums[i] += data[row + i] * w;
    }
    const rowOut = yy * stride;
    for (let i = 0; i < stride; i++) out.data[rowOut + i] = clip8(sums[i]);
  }
  return out;
}

/**
 * Resizes `box` of `image` (default: all of it) to `height × width`: Pillow's
 * `image.crop(box).resize((width, height), filter)`, i.e. torchvision's F.resized_crop, without
 * the copy. (Pillow's own `resize(box=...)` differs at the box edges: its taps may read outside.)
 *
 * A pass whose size does not change is an exact copy in Pillow and is skipped here.
 */
export function resize(
  image: DecodedImage, height: number, width: number,
  options: { interpolation?: Interpolation; box?: CropBox } = {},
): DecodedImage {
  const box = options.box ?? { top: 0, left: 0, height: image.height, width: image.width };
  checkBoxInside(image, box, 'resize');
  if (!(height >= 1 && width >= 1 && Number.isInteger(height) && Number.isInteger(width))) {
    throw new RangeError(`resize: output size must be positive integers, got ${height}×${width}`);
  }
  const interpolation = options.interpolation ?? 'bilinear';
  if (interpolation === 'nearest') return resizeNearest(image, height, width, box);
  const filter = FILTERS[interpolation];
  if (box.height === height && box.width === width) return crop(image, box);
  const vertical = box.height !== height
    ? coefficients(box.height, height, filter, box.top) : null;
  // Only the rows the vertical pass reads need the horizontal pass (Resample.c's ybox_first/last).
  let firstRow = box.top;
  let lastRow = box.top + box.height;
  if (vertical) {
    firstRow = vertical.bounds[0];
    lastRow = vertical.bounds[(height - 1) * 2] + vertical.bounds[(height - 1) * 2 + 1];
  }
  const horizontal = box.width !== width
    ? resampleHorizontal(image, firstRow, lastRow - firstRow, width,
      coefficients(box.width, width, filter, box.left))
    : crop(image, { top: firstRow, left: box.left, height: lastRow - firstRow, width });
  return vertical ? resampleVertical(horizontal, firstRow, height, vertical) : horizontal;
}

/**
 * Pillow NEAREST resize of the cropped box (ImagingScaleAffine): source ⌊(x + ½)·scale⌋ with the
 * position accumulated step by step, as Pillow does, so rounding at pixel edges agrees.
 */
function resizeNearest(image: DecodedImage, height: number, width: number, box: CropBox): DecodedImage {
  const { channels } = image;
  const out = newImage(height, width, channels);
  const sourceX = new Int32Array(width);
  const xScale = box.width / width;
  let xo = xScale * 0.5;
  for (let x = 0; x < width; x++, xo += xScale) sourceX[x] = box.left + Math.min(Math.trunc(xo), box.width - 1);
  const yScale = box.height / height;
  let yo = yScale * 0.5;
  for (let y = 0; y < height; y++, yo += yScale) {
    const rowIn = (box.top + Math.min(Math.trunc(yo), box.height - 1)) * image.width * channels;
    const rowOut = y * width * channels;
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < channels; c++) out.data[rowOut + x * channels + c] = image.data[rowIn + sourceX[x] * channels + c];
    }
  }
  return out;
}

function checkBoxInside(image: DecodedImage, box: CropBox, what: string): void {
  const { top, left, height, width } = box;
  if (!(top >= 0 && left >= 0 && height >= 1 && width >= 1 && top + height <= image.height && left + width <= image.width) ||
      ![top, left, height, width].every(Number.isInteger)) {
    throw new RangeError(
      `${what}: box (top ${top}, left ${left}, ${height}×${width}) must be whole pixels inside the ` +
      `${image.height}×${image.width} image; crop() first if it reaches outside`);
  }
}

// ---------------------------------------------------------------------------------------------
// Crop, pad, flip

/**
 * The `box` of `image` as a new image; parts outside the image are 0, as torchvision's F.crop
 * (which pads before cropping).
 */
export function crop(image: DecodedImage, box: CropBox): DecodedImage {
  const { channels } = image;
  const out = newImage(box.height, box.width, channels);
  const x0 = Math.max(0, box.left);
  const x1 = Math.min(image.width, box.left + box.width);
  if (x1 <= x0) return out;
  for (let y = Math.max(0, box.top); y < Math.min(image.height, box.top + box.height); y++) {
    const from = (y * image.width + x0) * channels;
    out.data.set(image.data.subarray(from, from + (x1 - x0) * channels),
      ((y - box.top) * box.width + (x0 - box.left)) * channels);
  }
  return out;
}

/**
 * Centre crop to `height × width` with torchvision's offsets: round((in − out) / 2), half to even;
 * a side shorter than the crop is zero-padded first by ⌊(out − in) / 2⌋ before (F.center_crop).
 * Returns `image` itself when nothing changes.
 */
export function centerCrop(image: DecodedImage, height: number, width: number): DecodedImage {
  const start = (inSize: number, outSize: number): number =>
    inSize >= outSize ? roundHalfEven((inSize - outSize) / 2) : -Math.floor((outSize - inSize) / 2);
  const top = start(image.height, height);
  const left = start(image.width, width);
  if (top === 0 && left === 0 && height === image.height && width === image.width) return image;
  return crop(image, { top, left, height, width });
}

/** Pads every side by `padding` pixels of value `fill` (torchvision F.pad, constant mode). */
export function pad(image: DecodedImage, padding: number, fill = 0): DecodedImage {
  const out = newImage(image.height + 2 * padding, image.width + 2 * padding, image.channels);
  if (fill !== 0) out.data.fill(fill);
  const rowBytes = image.width * image.channels;
  for (let y = 0; y < image.height; y++) {
    out.data.set(image.data.subarray(y * rowBytes, (y + 1) * rowBytes),
      ((y + padding) * out.width + padding) * image.channels);
  }
  return out;
}

/** Mirrors left–right, in place (the caller owns `image.data`). */
export function hflipInPlace(image: DecodedImage): DecodedImage {
  const { data, width, channels } = image;
  for (let y = 0; y < image.height; y++) {
    const row = y * width * channels;
    for (let a = 0, b = width - 1; a < b; a++, b--) {
      for (let c = 0; c < channels; c++) {
        const t = data[row + a * channels + c];
        data[row + a * channels + c] = data[row + b * channels + c];
        data[row + b * channels + c] = t;
      }
    }
  }
  return image;
}

/** Mirrors left–right into a new image. */
export function hflip(image: DecodedImage): DecodedImage {
  return hflipInPlace({ ...image, data: image.data.slice() });
}

/** Python's round(): to nearest, ties to even (torchvision and timm compute sizes with it). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ---------------------------------------------------------------------------------------------
// Affine warp (Pillow Geometry.c)

/**
 * Warps `image` by the inverse affine map `matrix` = (a, b, c, d, e, f): output pixel (x, y) takes
 * the input at (a·x' + b·y' + c, d·x' + e·y' + f) where x' = x + ½, y' = y + ½, and `fill` (one
 * value per channel) where that lands outside the image. Same size as the input.
 */
export function affine(
  image: DecodedImage, matrix: readonly number[],
  options: { interpolation?: Interpolation; fill?: readonly number[] } = {},
): DecodedImage {
  const { height, width, channels } = image;
  const fill = options.fill ?? [0, 0, 0];
  const interpolation = options.interpolation ?? 'bilinear';
  if (interpolation === 'nearest' && matrix[1] === 0 && matrix[3] === 0) return affineNearestScale(image, matrix, fill);
  if (interpolation === 'nearest' && fitsFixedPoint(matrix, width, height)) return affineNearestFixed(image, matrix, fill);
  const out = newImage(height, width, channels);
  const sample = SAMPLERS[interpolation];
  const [a, b, c, d, e, f] = matrix;
  for (let y = 0; y < height; y++) {
    const yc = y + 0.5;
    for (let x = 0; x < width; x++) {
      const xc = x + 0.5;
      const xin = a * xc + b * yc + c;
      const yin = d * xc + e * yc + f;
      const o = (y * width + x) * channels;
      if (xin < 0 || xin >= width || yin < 0 || yin >= height) {
        for (let ch = 0; ch < channels; ch++) out.data[o + ch] = fill[ch] ?? fill[0];
      } else {
        sample(image, xin, yin, out.data, o);
      }
    }
  }
  return out;
}

/**
 * Pillow's NEAREST scale/translate (Geometry.c ImagingScaleAffine): positions stepped in float
 * from the first pixel centre; COORD maps negatives to −1 (outside).
 */
function affineNearestScale(image: DecodedImage, m: readonly number[], fill: readonly number[]): DecodedImage {
  const { height, width, channels, data } = image;
  const out = newImage(height, width, channels);
  const coord = (v: number): number => (v < 0 ? -1 : Math.trunc(v));
  const sourceX = new Int32Array(width);
  let xo = m[2] + m[0] * 0.5;
  for (let x = 0; x < width; x++, xo += m[0]) sourceX[x] = coord(xo);
  let yo = m[5] + m[4] * 0.5;
  for (let y = 0; y < height; y++, yo += m[4]) {
    const yin = coord(yo);
    for (let x = 0; x < width; x++) {
      const inside = yin >= 0 && yin < height && sourceX[x] >= 0 && sourceX[x] < width;
      const o = (y * width + x) * channels;
      const p = (yin * width + sourceX[x]) * channels;
      for (let ch = 0; ch < channels; ch++) out.data[o + ch] = inside ? data[p + ch] : fill[ch] ?? fill[0];
    }
  }
  return out;
}

/** Geometry.c check_fixed at the four corners: coordinates stay within 16.16 fixed point. */
function fitsFixedPoint(m: readonly number[], width: number, height: number): boolean {
  return [[0, 0], [width, height], [0, height], [width, 0]].every(([x, y]) =>
    Math.abs(x * m[0] + y * m[1] + m[2]) < 32768 && Math.abs(x * m[3] + y * m[4] + m[5]) < 32768);
}

/** Pillow's NEAREST affine (Geometry.c affine_fixed): source coordinates stepped in 16.16 fixed point. */
function affineNearestFixed(image: DecodedImage, m: readonly number[], fill: readonly number[]): DecodedImage {
  const { height, width, channels, data } = image;
  const out = newImage(height, width, channels);
  const fix = (v: number): number => Math.floor(v * 65536 + 0.5);
  const [a0, a1, a3, a4] = [fix(m[0]), fix(m[1]), fix(m[3]), fix(m[4])];
  let rowX = fix(m[2] + m[0] * 0.5 + m[1] * 0.5);
  let rowY = fix(m[5] + m[3] * 0.5 + m[4] * 0.5);
  for (let y = 0; y < height; y++, rowX += a1, rowY += a4) {
    let xx = rowX;
    let yy = rowY;
    for (let x = 0; x < width; x++, xx += a0, yy += a3) {
      const xin = xx >> 16;
      const yin = yy >> 16;
      const o = (y * width + x) * channels;
      const inside = xin >= 0 && xin < width && yin >= 0 && yin < height;
      const p = (yin * width + xin) * channels;
      for (let ch = 0; ch < channels; ch++) out.data[o + ch] = inside ? data[p + ch] : fill[ch] ?? fill[0];
    }
  }
  return out;
}

type Sampler = (image: DecodedImage, xin: number, yin: number, out: Uint8Array, o: number) => void;

const clampIndex = (i: number, size: number): number => (i < 0 ? 0 : i >= size ? size - 1 : i);

const SAMPLERS: Record<Interpolation, Sampler> = {
  nearest: (image, xin, yin, out, o) => {
    const p = (Math.trunc(yin) * image.width + Math.trunc(xin)) * image.channels;
    for (let ch = 0; ch < image.channels; ch++) out[o + ch] = image.data[p + ch];
  },
  // Geometry.c bilinear_filter32RGB: edge-clamped taps around (xin − ½, yin − ½), truncated.
  bilinear: (image, xin, yin, out, o) => {
    const { data, width, height, channels } = image;
    const xs = xin - 0.5;
    const ys = yin - 0.5;
    const x = Math.floor(xs);
    const y = Math.floor(ys);
    const dx = xs - x;
    const dy = ys - y;
    const x0 = clampIndex(x, width) * channels;
    const x1 = clampIndex(x + 1, width) * channels;
    const row0 = clampIndex(y, height) * width * channels;
    const row1 = clampIndex(y + 1, height) * width * channels;
    for (let ch = 0; ch < channels; ch++) {
      const top = data[row0 + x0 + ch] + (data[row0 + x1 + ch] - data[row0 + x0 + ch]) * dx;
      const bottom = data[row1 + x0 + ch] + (data[row1 + x1 + ch] - data[row1 + x0 + ch]) * dx;
      out[o + ch] = Math.trunc(top + (bottom - top) * dy);
    }
  },
  // Geometry.c bicubic_filter32RGB: its cubic is Keys' a = −1 (not Resample.c's −0.5), clipped.
  bicubic: (image, xin, yin, out, o) => {
    const { data, width, height, channels } = image;
    const xs = xin - 0.5;
    const ys = yin - 0.5;
    const x = Math.floor(xs) - 1;
    const y = Math.floor(ys) - 1;
    const dx = xs - (x + 1);
    const dy = ys - (y + 1);
    for (let ch = 0; ch < channels; ch++) {
      const rows = [0, 0, 0, 0];
      for (let j = 0; j < 4; j++) {
        const row = clampIndex(y + j, height) * width * channels + ch;
        rows[j] = cubicA1(data[row + clampIndex(x, width) * channels], data[row + clampIndex(x + 1, width) * channels],
          data[row + clampIndex(x + 2, width) * channels], data[row + clampIndex(x + 3, width) * channels], dx);
      }
      const v = cubicA1(rows[0], rows[1], rows[2], rows[3], dy);
      out[o + ch] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
    }
  },
};

/** Geometry.c's BICUBIC macro: the cubic through v1..v4 at fraction d past v2. */
function cubicA1(v1: number, v2: number, v3: number, v4: number, d: number): number {
  const p2 = -v1 + v3;
  const p3 = 2 * (v1 - v2) + v3 - v4;
  const p4 = -v1 + v2 - v3 + v4;
  return v2 + d * (p2 + d * (p3 + d * p4));
}

/**
 * Pillow `Image.rotate(degrees)` (counter-clockwise, about the centre, same size) as an affine()
 * matrix, with Pillow's rounding of cos/sin to 15 decimals.
 */
export function rotationMatrix(degrees: number, height: number, width: number): number[] {
  const angle = -((((degrees % 360) + 360) % 360) * (Math.PI / 180));   // Python: -math.radians(angle % 360)
  const round15 = (v: number): number => Number(v.toFixed(15));
  const m = [round15(Math.cos(angle)), round15(Math.sin(angle)), 0, round15(-Math.sin(angle)), round15(Math.cos(angle)), 0];
  const cx = width / 2;
  const cy = height / 2;
  m[2] = m[0] * -cx + m[1] * -cy + cx;
  m[5] = m[3] * -cx + m[4] * -cy + cy;
  return m;
}
