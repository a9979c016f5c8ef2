/**
 * Pixel-value operations on HWC uint8 images, as Pillow computes them: the colour half of
 * RandAugment and torchvision's ColorJitter.
 *
 * References (Pillow 9.4, which timm's auto_augment.py and torchvision's PIL path call):
 *   autocontrast, equalize, invert, solarize, posterize → PIL/ImageOps.py (a 256-entry LUT per band);
 *   solarizeAdd → timm auto_augment.py `solarize_add`;
 *   enhance('color' | 'contrast' | 'brightness' | 'sharpness') → PIL/ImageEnhance.py: blend of the
 *     image with a degenerate image (grey, mean grey, black, SMOOTH-filtered) by libImaging/Blend.c
 *     in float32, truncated; the SMOOTH 3×3 filter is libImaging/Filter.c `ImagingFilter3x3`;
 *   toGray → Pillow's RGB→'L' (ITU-R 601-2 luma in 16-bit fixed point, Convert.c `rgb2l`).
 * Byte-exact against Pillow 9.4 (fixtures in test/data/transforms/color-ops.test.ts).
 * Deviations: none known for 1- and 3-channel images.
 */

import type { DecodedImage } from '../dataset.js';
import { newImage } from './geometry.js';

const f32 = Math.fround;

/** Maps every value through a per-band table (`lut[band * 256 + v]`, or one table for all bands). */
export function applyLut(image: DecodedImage, lut: Uint8Array): DecodedImage {
  const out = newImage(image.height, image.width, image.channels);
  const { data, channels } = image;
  if (lut.length === 256) {
    for (let i = 0; i < data.length; i++) out.data[i] = lut[data[i]];
  } else {
    for (let i = 0; i < data.length; i++) out.data[i] = lut[(i % channels) * 256 + data[i]];
  }
  return out;
}

/** Per-band histograms, `channels × 256` counts. */
export function histogram(image: DecodedImage): Int32Array {
  const { data, channels } = image;
  const h = new Int32Array(channels * 256);
  for (let i = 0; i < data.length; i++) h[(i % channels) * 256 + data[i]]++;
  return h;
}

/** Table of v ↦ f(v) for v in 0..255, clipped to uint8. */
function table(f: (v: number) => number): Uint8Array {
  const lut = new Uint8Array(256);
  for (let v = 0; v < 256; v++) lut[v] = Math.max(0, Math.min(255, f(v)));
  return lut;
}

/** 255 − v (ImageOps.invert). */
export function invert(image: DecodedImage): DecodedImage {
  return applyLut(image, table((v) => 255 - v));
}

/** v < threshold ? v : 255 − v (ImageOps.solarize); threshold 256 leaves the image unchanged. */
export function solarize(image: DecodedImage, threshold: number): DecodedImage {
  return applyLut(image, table((v) => (v < threshold ? v : 255 - v)));
}

/** v < threshold ? min(255, v + add) : v (timm solarize_add). */
export function solarizeAdd(image: DecodedImage, add: number, threshold = 128): DecodedImage {
  return applyLut(image, table((v) => (v < threshold ? v + add : v)));
}

/** Keeps the `bits` high bits of every value (ImageOps.posterize; timm returns the image for bits ≥ 8). */
export function posterize(image: DecodedImage, bits: number): DecodedImage {
  if (bits >= 8) return image;
  const mask = ~(2 ** (8 - Math.max(0, bits)) - 1);
  return applyLut(image, table((v) => v & mask));
}

/** Stretches each band so its lowest value becomes 0 and its highest 255 (ImageOps.autocontrast, cutoff 0). */
export function autocontrast(image: DecodedImage): DecodedImage {
  const h = histogram(image);
  const lut = new Uint8Array(image.channels * 256);
  for (let b = 0; b < image.channels; b++) {
    let lo = 0;
    while (lo < 255 && h[b * 256 + lo] === 0) lo++;
    let hi = 255;
    while (hi > 0 && h[b * 256 + hi] === 0) hi--;
    const scale = 255.0 / (hi - lo);
    const offset = -lo * scale;
    for (let v = 0; v < 256; v++) {
      lut[b * 256 + v] = hi <= lo ? v : Math.max(0, Math.min(255, Math.trunc(v * scale + offset)));
    }
  }
  return applyLut(image, lut);
}

/** Histogram equalisation per band (ImageOps.equalize). */
export function equalize(image: DecodedImage): DecodedImage {
  const h = histogram(image);
  const lut = new Uint8Array(image.channels * 256);
  for (let b = 0; b < image.channels; b++) {
    let total = 0;
    let last = 0;
    let used = 0;
    for (let v = 0; v < 256; v++) {
      const n = h[b * 256 + v];
      if (n) { total += n; last = n; used++; }
    }
    const step = Math.floor((total - last) / 255);
    let n = Math.floor(step / 2);
    for (let v = 0; v < 256; v++) {
      lut[b * 256 + v] = used <= 1 || step === 0 ? v : Math.min(255, Math.floor(n / step));
      n += h[b * 256 + v];
    }
  }
  return applyLut(image, lut);
}

/** Pillow's RGB → 'L': (19595·R + 38470·G + 7471·B + 2¹⁵) >> 16, i.e. ITU-R 601-2 luma, rounded. */
export function luma(r: number, g: number, b: number): number {
  return (r * 19595 + g * 38470 + b * 7471 + 0x8000) >>> 16;
}

/** One-channel luma image of an RGB image (a 1-channel image is returned as is). */
export function toGray(image: DecodedImage): DecodedImage {
  if (image.channels === 1) return image;
  const out = newImage(image.height, image.width, 1);
  const d = image.data;
  for (let i = 0, p = 0; i < out.data.length; i++, p += 3) out.data[i] = luma(d[p], d[p + 1], d[p + 2]);
  return out;
}

/** Three-channel image repeating a gray image's value (Pillow 'L' → 'RGB'). */
export function grayToRgb(image: DecodedImage): DecodedImage {
  if (image.channels === 3) return image;
  const out = newImage(image.height, image.width, 3);
  for (let i = 0; i < image.data.length; i++) out.data.fill(image.data[i], 3 * i, 3 * i + 3);
  return out;
}

/**
 * Image.blend(degenerate, image, factor) = degenerate + factor·(image − degenerate), in float32
 * and truncated (Blend.c); clipped to 0..255 when factor is outside [0, 1].
 */
export function blend(degenerate: DecodedImage, image: DecodedImage, factor: number): DecodedImage {
  if (factor === 0) return { ...degenerate, data: degenerate.data.slice() };
  if (factor === 1) return { ...image, data: image.data.slice() };
  const out = newImage(image.height, image.width, image.channels);
  const alpha = f32(factor);
  const a = degenerate.data;
  const b = image.data;
  for (let i = 0; i < b.length; i++) {
    const v = f32(a[i] + f32(alpha * (b[i] - a[i])));
    out.data[i] = v <= 0 ? 0 : v >= 255 ? 255 : Math.trunc(v);
  }
  return out;
}

/** Which ImageEnhance class to apply. */
export type Enhancement = 'color' | 'contrast' | 'brightness' | 'sharpness';

/** ImageEnhance.<kind>(image).enhance(factor): 1 is the identity, 0 the degenerate image. */
export function enhance(image: DecodedImage, kind: Enhancement, factor: number): DecodedImage {
  return blend(degenerateImage(image, kind), image, factor);
}

function degenerateImage(image: DecodedImage, kind: Enhancement): DecodedImage {
  switch (kind) {
    case 'brightness': return newImage(image.height, image.width, image.channels);
    case 'color': return image.channels === 1 ? image : grayToRgb(toGray(image));
    case 'contrast': {
      const gray = toGray(image).data;
      let sum = 0;
      for (let i = 0; i < gray.length; i++) sum += gray[i];
      const out = newImage(image.height, image.width, image.channels);
      out.data.fill(Math.trunc(sum / gray.length + 0.5));   // int(ImageStat mean + 0.5)
      return out;
    }
    case 'sharpness': return smooth(image);
  }
}

/**
 * ImageFilter.SMOOTH: the 3×3 kernel [1 1 1; 1 5 1; 1 1 1] / 13 in float32, +0.5 and truncated;
 * the border rows and columns are copied unchanged (Filter.c ImagingFilter3x3).
 */
export function smooth(image: DecodedImage): DecodedImage {
  const { height, width, channels, data } = image;
  const out = { ...image, data: data.slice() };
  if (height < 3 || width < 3) return out;
  const k1 = f32(1 / 13);
  const k5 = f32(5 / 13);
  const stride = width * channels;
  const row3 = (p: number, centre: number): number =>
    f32(f32(f32(data[p - channels] * k1) + f32(data[p] * centre)) + f32(data[p + channels] * k1));
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      for (let c = 0; c < channels; c++) {
        const p = y * stride + x * channels + c;
        let s = f32(0.5);
        s = f32(s + row3(p + stride, k1));
        s = f32(s + row3(p, k5));
        s = f32(s + row3(p - stride, k1));
        out.data[p] = s <= 0 ? 0 : s >= 255 ? 255 : Math.trunc(s);
      }
    }
  }
  return out;
}
