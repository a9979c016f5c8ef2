/**
 * Small RGB rasters for explain's and report's pictures: an input image un-normalised, heat maps in
 * a perceptual colour map (viridis, blended over the image), points and crosses drawn on top, and
 * PNG encoding (pngjs). Sizes are display sizes: maps are upscaled with nearest or bilinear sampling
 * so each input pixel stays visible.
 */
import { PNG } from 'pngjs';

/** An RGB image, 3 bytes a pixel, row-major. */
export interface Raster {
  width: number;
  height: number;
  data: Uint8ClampedArray;
}

export function raster(width: number, height: number): Raster {
  return { width, height, data: new Uint8ClampedArray(width * height * 3) };
}

/** An eval-transformed input (C, H, W) back to pixels: x·std + mean, gray replicated to RGB. */
export function fromNormalized(values: Float32Array, channels: number, height: number, width: number, mean: number[], std: number[]): Raster {
  const out = raster(width, height);
  for (let p = 0; p < height * width; p++) {
    for (let c = 0; c < 3; c++) {
      const src = channels === 1 ? 0 : c;
      const v = values[src * height * width + p] * (std[src] ?? std[0]) + (mean[src] ?? mean[0]);
      out.data[p * 3 + c] = Math.round(v * 255);
    }
  }
  return out;
}

/** Nearest-neighbour upscale to (width, height). */
export function resizeNearest(r: Raster, width: number, height: number): Raster {
  const out = raster(width, height);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(r.height - 1, Math.floor((y * r.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(r.width - 1, Math.floor((x * r.width) / width));
      out.data.set(r.data.subarray((sy * r.width + sx) * 3, (sy * r.width + sx) * 3 + 3), (y * width + x) * 3);
    }
  }
  return out;
}

// viridis at 9 stops (matplotlib), interpolated linearly.
const VIRIDIS = [
  [68, 1, 84], [71, 44, 122], [59, 81, 139], [44, 113, 142], [33, 144, 141], [39, 173, 129], [92, 200, 99], [170, 220, 50], [253, 231, 37],
];

/** The viridis colour of t ∈ [0, 1]. */
export function viridis(t: number): [number, number, number] {
  const x = Math.max(0, Math.min(1, Number.isFinite(t) ? t : 0)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(VIRIDIS[i][c] + f * (VIRIDIS[i + 1][c] - VIRIDIS[i][c]))) as [number, number, number];
}

/**
 * A (mapHeight × mapWidth) map scaled to [0, 1] by its maximum, coloured and blended over `base`
 * (alpha of the colour), sampled at `base`'s size (nearest: one block per map cell).
 */
export function overlayMap(base: Raster, map: Float32Array | number[], mapHeight: number, mapWidth: number, alpha = 0.6): Raster {
  let peak = 0;
  for (const v of map) if (v > peak) peak = v;
  const out = raster(base.width, base.height);
  for (let y = 0; y < base.height; y++) {
    const my = Math.min(mapHeight - 1, Math.floor((y * mapHeight) / base.height));
    for (let x = 0; x < base.width; x++) {
      const mx = Math.min(mapWidth - 1, Math.floor((x * mapWidth) / base.width));
      const color = viridis(peak > 0 ? map[my * mapWidth + mx] / peak : 0);
      const i = (y * base.width + x) * 3;
      for (let c = 0; c < 3; c++) out.data[i + c] = Math.round((1 - alpha) * base.data[i + c] + alpha * color[c]);
    }
  }
  return out;
}

/** A filled disc of radius r at (x, y) in pixels (fractional centres allowed; clipped at the edges). */
export function drawDot(r: Raster, x: number, y: number, radius: number, color: [number, number, number]): void {
  for (let yy = Math.floor(y - radius); yy <= Math.ceil(y + radius); yy++) {
    for (let xx = Math.floor(x - radius); xx <= Math.ceil(x + radius); xx++) {
      if (yy < 0 || yy >= r.height || xx < 0 || xx >= r.width || (xx - x) ** 2 + (yy - y) ** 2 > radius * radius) continue;
      r.data.set(color, (yy * r.width + xx) * 3);
    }
  }
}

/** A cross marking a query pixel. */
export function drawCross(r: Raster, x: number, y: number, size: number, color: [number, number, number]): void {
  for (let d = -size; d <= size; d++) {
    for (const [xx, yy] of [[Math.round(x + d), Math.round(y)], [Math.round(x), Math.round(y + d)]]) {
      if (yy >= 0 && yy < r.height && xx >= 0 && xx < r.width) r.data.set(color, (yy * r.width + xx) * 3);
    }
  }
}

/** PNG bytes of a raster (8-bit RGB). */
export function encodePng(r: Raster): Buffer {
  const png = new PNG({ width: r.width, height: r.height });
  for (let p = 0; p < r.width * r.height; p++) {
    png.data[p * 4] = r.data[p * 3];
    png.data[p * 4 + 1] = r.data[p * 3 + 1];
    png.data[p * 4 + 2] = r.data[p * 3 + 2];
    png.data[p * 4 + 3] = 255;
  }
  return PNG.sync.write(png, { colorType: 2 });
}

/** Distinct colours for heads (Tableau 10). */
export const HEAD_COLORS: [number, number, number][] = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75], [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207],
];
