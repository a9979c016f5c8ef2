import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DecodedImage } from '../../../src/data/dataset.js';
import {
  autocontrast, blend, enhance, equalize, grayToRgb, invert, luma, posterize, solarize, solarizeAdd, toGray,
} from '../../../src/data/transforms/color-ops.js';
import { hexBytes, patternImage } from './scripted-rng.js';

/** Pillow 9.4: ImageEnhance.<Kind>(Image.fromarray(pattern(5, 6, 3))).enhance(factor), as hex. */
const ENHANCED: Record<string, string> = {
  'color 0.37': '33527a81b89963b395837570b7c2d460834f431f63463b80e6dcda8b3b52662f5e62a27474b5b6b3adc7243752ab78948ed2a750363c1c1a21748baa80af884778692c2e7f9a566095b075b8d4b17eb3a872776d686f7e915279',
  'color 1.63': '0063ff08fd7400ff8ca66a5196c5ff1fba007c00ff4516fffdd3cdff0045d900b500f52900f6fdb69eff0040b7ff39b500ff6e8b19311d17343196ff1dee4100af6e090fffff0b3b6ce30083ff6405ecbd6780565370b1ff01ae',
  'contrast 0.37': '506f96679e7f51a1838476718b96a8658854714d91675ca1a79d9ba2526988518059986a5b9c9e908aa450637ea16e8a67ab80765c6158565d6c83a26a9a725384755758a9a45f6a7d985c87a480659a8f757b717076859c5d84',
  'contrast 1.63': '0046f322ff8e00ff9ea56950c2f1ff1ab5004e00de2400ffffffffff002eb7009300ff3300ffffd9c1ff00148bff43bf24ff9565000c000000399eff33ff5700a3620000ffff023184fb00b4ff951effd6647c524b69aaff00a3',
  'brightness 0.37': '0221481951310353353729233d485b173a07230044190f53594f4e55051c3b03330b4b1d0e4f50423d5703163154203d195d33280e140a090f1e35541d4c25063627090b5c56121c2f4a0f3a5633184c42282d242229384f0f36',
  'brightness 1.63': '0b94ff70ffdc10ffecf2b69effffff68ff209c01ff7242ffffffffff167bff10e034ff803fffffffffff0e61d8ff91ff72ffe2b341592f284687ecff80ffa41bf1b02c32ffff4f7fd2ff42ffffe26bffffb1ca9f99b6f7ff44f1',
  'sharpness 0.37': '075bc545db870ae291957061a7c4f7409f146001b84a53d1c2b0bcbe416c94397f20cc4f27d6da8d91d13c5692b4639c5db7826e28371d192b5498c159b77c2b8e7d443cc6eb314e81ca299eea8b42d0b36d7c625e7098d62a94',
  'sharpness 1.63': '075bc545db870ae291957061a7c4f7409f146001b84100f4ffffebff002bab009420cc4f27d6dadcbaff002177ff4ead2eff936e28371d192b5189ff44e64d00995a0001ffeb314e81ca299eea8b42d0b36d7c625e7098d62a94',
};
/** Pillow: pattern(5, 6, 3).convert('L'), and ImageOps.autocontrast of pattern // 3 + 40. */
const GRAY = '4ea59879c1733247df56458aa2b2358bb93f1c889d68376ca2c8a2756f6a';
const AUTOCONTRAST_LOW = '005bc344dd8103e38b997056adc5fb3ea0006200b64427e4ffdad3f10c3ea609841ace4223d7dabda6ee033c7df158a244fe846f272716181a5191e74ed159099463161efef8304286cb17a3ec8441d1af6f7c565e7091e12a8e';

const row = (values: number[], channels: 1 | 3 = 1): DecodedImage =>
  ({ data: Uint8Array.from(values), height: 1, width: values.length / channels, channels });

test('invert, solarize, posterize and solarizeAdd on known values', () => {
  const image = row([0, 37, 99, 100, 128, 200, 255]);
  assert.deepEqual([...invert(image).data], [255, 218, 156, 155, 127, 55, 0]);
  assert.deepEqual([...solarize(image, 100).data], [0, 37, 99, 155, 127, 55, 0]);
  assert.deepEqual([...solarize(image, 256).data], [...image.data]);
  assert.deepEqual([...solarize(image, 0).data], [255, 218, 156, 155, 127, 55, 0]);
  assert.deepEqual([...posterize(image, 2).data], [0, 0, 64, 64, 128, 192, 192]);
  assert.deepEqual([...posterize(image, 0).data], [0, 0, 0, 0, 0, 0, 0]);
  assert.equal(posterize(image, 8), image);
  assert.deepEqual([...solarizeAdd(image, 99).data], [99, 136, 198, 199, 128, 200, 255]);
  assert.deepEqual([...solarizeAdd(row([120, 127]), 200).data], [255, 255]);
});

test('equalize spreads three equal bins to 0, 128, 255 (ImageOps.equalize by hand)', () => {
  // step = (765 − 255) // 255 = 2; n starts at 1: lut[10] = 0, lut[20] = 256 // 2, lut[30] = 511 // 2 → 255.
  const values = [...Array(255).fill(10), ...Array(255).fill(20), ...Array(255).fill(30)];
  const out = equalize({ data: Uint8Array.from(values), height: 15, width: 51, channels: 1 });
  assert.deepEqual([out.data[0], out.data[300], out.data[700]], [0, 128, 255]);
  const withTail = equalize({ data: Uint8Array.from([...values, 255, 255, 255]), height: 12, width: 64, channels: 1 });
  assert.deepEqual([withTail.data[0], withTail.data[300], withTail.data[700], withTail.data[767]], [0, 85, 170, 255]);
  const flat = row([7, 7, 7]);
  assert.deepEqual([...equalize(flat).data], [7, 7, 7]);
});

test('equalize and autocontrast work per band', () => {
  const rgb = row([0, 50, 7, 255, 60, 7, 128, 100, 7, 10, 200, 7], 3);
  assert.deepEqual([...autocontrast(rgb).data], [0, 0, 7, 255, 17, 7, 128, 85, 7, 10, 255, 7]);
  // Pillow: autocontrast([50, 60, 100, 200]) = [0, 17, 85, 255] (scale 1.7, offset −85, truncated).
  assert.deepEqual([...autocontrast(row([50, 60, 100, 200])).data], [0, 17, 85, 255]);
  const low = patternImage(5, 6, 3);
  for (let i = 0; i < low.data.length; i++) low.data[i] = Math.floor(low.data[i] / 3) + 40;
  assert.deepEqual([...autocontrast(low).data], hexBytes(AUTOCONTRAST_LOW));
});

test('toGray is Pillow RGB → L (601-2 luma, rounded) and grayToRgb replicates', () => {
  assert.deepEqual([...toGray(patternImage(5, 6, 3)).data], hexBytes(GRAY));
  assert.equal(luma(255, 255, 255), 255);
  assert.equal(luma(255, 0, 0), 76);   // 0.299 · 255 = 76.2
  assert.equal(luma(0, 255, 0), 150);  // 0.587 · 255 = 149.7
  assert.deepEqual([...grayToRgb(row([3, 9])).data], [3, 3, 3, 9, 9, 9]);
});

test('enhance color / contrast / brightness / sharpness match Pillow ImageEnhance byte for byte', () => {
  const image = patternImage(5, 6, 3);
  for (const [key, hex] of Object.entries(ENHANCED)) {
    const [kind, factor] = key.split(' ');
    const out = enhance(image, kind as 'color', Number(factor));
    assert.deepEqual([...out.data], hexBytes(hex), key);
  }
});

test('blend is float32 degenerate + factor·(image − degenerate), truncated and clipped', () => {
  const black = row([0, 0, 0]);
  const image = row([10, 100, 200]);
  assert.deepEqual([...blend(black, image, 0.5).data], [5, 50, 100]);
  assert.deepEqual([...blend(black, image, 0.37).data], [3, 37, 74]);   // 3.7, 37, 74.0 truncated
  assert.deepEqual([...blend(black, image, 1.9).data], [19, 190, 255]);
  assert.deepEqual([...enhance(image, 'brightness', 1).data], [10, 100, 200]);
  assert.deepEqual([...enhance(row([9, 9, 9, 9], 1), 'color', 1.9).data], [9, 9, 9, 9]);  // gray: no colour to boost
});
