import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { DecodedImage } from '../../../src/data/dataset.js';
import {
  affine, centerCrop, crop, hflip, hflipInPlace, pad, resize, rotationMatrix, roundHalfEven,
} from '../../../src/data/transforms/geometry.js';
import { hexBytes, patternImage } from './scripted-rng.js';

/**
 * Fixtures: Pillow 9.4 on patternImage() inputs, e.g.
 *   Image.fromarray(pattern(7, 9, 3)).resize((5, 4), Image.BICUBIC)
 *   Image.fromarray(pattern(6, 7, 3)).rotate(17.3, resample=Image.BILINEAR, fillcolor=(124, 116, 104))
 * stored as the output bytes in hex.
 */
const PIL = {
  downBilinear: '64618a3eb5837a9cb46a568e8386a361537a4f998164699c8b896f58ba9561ba8494ae6ea59d50a678998a51883ec15a5c8a7c7a9c54be7c68674ba8',
  downBicubic: '685a8a39bf847ba0b8664e8c8a86a56746794a9c8460609c91876a4dc8985fc0889db06ca7a047aa789f894b863acb54568782779a52cd815f6044af',
  // image.crop((left, top, right, bottom)).resize(...): what torchvision's resized_crop does.
  cropBilinear: '5d8cbb539d6f3373999b3d758d9d549b8a8f979a5893b44cc1855c8780af7ee151a2c2ac4b9163b5844bd1b8af',
  cropBicubic: '30b8a27f649d78ad7269866d8c6f6f4daca693bd62be9176aa418650797ab396486b4fa7',
  cropBicubicWide: '36be8668a58caf9182c5956a44b86599b046d08d45ac71748d92c28152a2784c866e848b3acc6532cd515cc15f919d8a375e8d4ba55d9eb03bec7843cbb37b9d3a8171209a5576c0',
  upBicubicFirst60: '0058d029b59f2bf68913d88f8e7057b0a3d084c8aa4195105708a74000e08868e7ffeddd8c2e87884a8652907813d77051aea0a8bbe57fa5bb1a6155',
  rotateBilinear: '7c746813e08f77886b97acc347ba7c7691c77c746841a1ab83a88ba8306d645c6b289e8054b1c553cd6a7057d4da96aa739d7162293547635849b6c06a83620943828e44c1ac6b6e8fb02e90bc6666a4a5337cce14926d4946b6755a7c84ab599a8d448c9358d49a6d7c74686b7e966aa49bb0b37ba6dc2884ce4f7c7468',
  rotateBicubic: '7c746800ff9a698f52aaaddc33e06f7b8fd67c746848a8af96b882c3006255545e00a6745fc6f552d9587c5de0ffb0aa58ad7265102648535d44bac171835602457b7c2ac6c564798fad20a9d86860b0b81f7cdf13a7583231d46c2b757bc757ac7730847c46e4946c7c746887759771a79ac4ad7699ef1180e0557c7468',
  rotateNearest: '7c74680ae291957061a7c4f7409f14b5a6ec7c746845db870ae291e60e4ca00a8a20cc4f5391e54fcf654629e3f2d8d446fd8b6e28371d192b42d0b36d7c62093c85e459a5eb314e81ca299eea8b7693c60f6ee311946c1b1ffa14aa56d9b160643f306fd959ef9b1e7c74685e709815f8b2c1a7a3b5dd1b6fd9597c7468',
  shearXBilinear: '0f6cbc3ddb881cd28a977b7599bfd844892a6001b88b6fdced869cc90c656c587222d08760c2e1b5a6ec9c4f9a79c793616d52371d2e4169a850ba8e7c74681a25f2df305786c12b9ce88547d1b06a80667c7468ac45863eab58bf98556751505f8bcc0f6ee37c746868d0aabbc16193db39adba3cf29f61f6a5a97c7468',
  shearYBicubic: '0060c12ddb7c7c74687c74687c74687c74687c7468432ee8a6eab748a17c94745fbac2ff7c74687c7468122e96ff99b7d53554a10d8b4fe38f33b7586409ba068b695a29dc62e5846f1e3b00391c34c0ffb3afe7576c928502c7c432437bc32779ab734fa1d34ccc5e37c08a809c9921ba6ad6b06080745148c3bf697768',
  translateXBilinear: '5c9e749fa1b96aae715241747c74687c74687c7468bc0b70547c6724d1a17ab9e47c74687c74687c74685d7f593e1f2f3c5f9850b5997c74687c74687c7468ac8b3892dc6267daa25b9e837c74687c74687c746888ae5b936d436e7088397dd77c74687c74687c7468b9c6528bda3fbab436f3a0707c74687c74687c7468',
};
const FILL = [124, 116, 104];

const gray = (height: number, width: number, values: number[]): DecodedImage =>
  ({ data: Uint8Array.from(values), height, width, channels: 1 });

test('patternImage reproduces the fixtures\' input bytes', () => {
  assert.deepEqual([...patternImage(5, 6, 3).data.subarray(0, 8)], hexBytes('075bc545db870ae2'));
});

test('hflip mirrors each row of a 3-wide, 2-high RGB image and leaves the input alone', () => {
  const image: DecodedImage = {
    data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]), height: 2, width: 3, channels: 3,
  };
  const flipped = hflip(image);
  assert.deepEqual([...flipped.data], [7, 8, 9, 4, 5, 6, 1, 2, 3, 16, 17, 18, 13, 14, 15, 10, 11, 12]);
  assert.equal(image.data[0], 1);
  assert.deepEqual([...hflipInPlace(flipped).data], [...image.data]);
});

test('pad surrounds the image with the fill; crop reads at the given offsets, zero outside', () => {
  const image = gray(2, 2, [1, 2, 3, 4]);
  const padded = pad(image, 1);
  assert.deepEqual([padded.height, padded.width], [4, 4]);
  assert.deepEqual([...padded.data], [0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0]);
  assert.deepEqual([...pad(image, 1, 9).data.subarray(0, 6)], [9, 9, 9, 9, 9, 1]);
  // crop(pad(x, p), (top, left)) == crop(x, (top − p, left − p)): the pipeline's CIFAR crop.
  assert.deepEqual([...crop(padded, { top: 0, left: 1, height: 2, width: 3 }).data], [0, 0, 0, 1, 2, 0]);
  assert.deepEqual([...crop(image, { top: -1, left: 0, height: 2, width: 3 }).data], [0, 0, 0, 1, 2, 0]);
  assert.deepEqual([...crop(image, { top: 1, left: -1, height: 2, width: 2 }).data], [0, 3, 0, 0]);
});

test('centerCrop uses torchvision offsets: round half to even, padding ⌊d/2⌋ before', () => {
  const image = gray(1, 6, [0, 1, 2, 3, 4, 5]);
  assert.deepEqual([...centerCrop(image, 1, 3).data], [2, 3, 4]);     // (6 − 3)/2 = 1.5 → 2
  assert.deepEqual([...centerCrop(image, 1, 1).data], [2]);           // 2.5 → 2
  assert.deepEqual([...centerCrop(image, 1, 4).data], [1, 2, 3, 4]);
  assert.equal(centerCrop(image, 1, 6), image);
  assert.deepEqual([...centerCrop(gray(1, 2, [7, 8]), 1, 5).data], [0, 7, 8, 0, 0]);  // pad left 1, right 2
});

test('roundHalfEven is Python round()', () => {
  assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, 2.4, 2.6, 3].map(roundHalfEven), [0, 2, 2, -0, -2, 2, 3, 3]);
});

test('bilinear 2×2 → 4×4 matches Pillow (and half-pixel-centre interpolation by hand)', () => {
  const out = resize(gray(2, 2, [0, 100, 200, 50]), 4, 4, { interpolation: 'bilinear' });
  // Sample positions (i + ½)/2 − ½ = −¼, ¼, ¾, 1¼, clamped: weights (1,0), (¾,¼), (¼,¾), (0,1);
  // the horizontal pass rounds to uint8 first (row 1: 200, 162.5 → 163, 87.5 → 88, 50).
  assert.deepEqual([...out.data], [0, 25, 75, 100, 50, 60, 78, 88, 150, 129, 85, 63, 200, 163, 88, 50]);
});

test('bicubic 2×2 → 4×4 and nearest 2×2 → 3×5 match Pillow', () => {
  const image = gray(2, 2, [0, 100, 200, 50]);
  assert.deepEqual([...resize(image, 4, 4, { interpolation: 'bicubic' }).data],
    [0, 8, 79, 115, 44, 52, 79, 94, 169, 138, 81, 52, 232, 182, 81, 31]);
  assert.deepEqual([...resize(image, 3, 5, { interpolation: 'nearest' }).data],
    [0, 0, 100, 100, 100, 200, 200, 50, 50, 50, 200, 200, 50, 50, 50]);
});

test('downscaling (antialiased like Pillow) and upscaling match Pillow byte for byte', () => {
  const image = patternImage(7, 9, 3);
  assert.deepEqual([...resize(image, 4, 5, { interpolation: 'bilinear' }).data], hexBytes(PIL.downBilinear));
  assert.deepEqual([...resize(image, 4, 5, { interpolation: 'bicubic' }).data], hexBytes(PIL.downBicubic));
  const up = resize(image, 10, 12, { interpolation: 'bicubic' });
  assert.deepEqual([up.height, up.width, up.channels], [10, 12, 3]);
  assert.deepEqual([...up.data.subarray(0, 60)], hexBytes(PIL.upBicubicFirst60));
});

test('resize of a box equals Pillow crop(box).resize() = torchvision resized_crop', () => {
  const image = patternImage(7, 9, 3);
  const bilinear = resize(image, 3, 5, { interpolation: 'bilinear', box: { top: 2, left: 1, height: 4, width: 6 } });
  assert.deepEqual([...bilinear.data], hexBytes(PIL.cropBilinear));
  const bicubic = resize(image, 4, 3, { interpolation: 'bicubic', box: { top: 1, left: 2, height: 6, width: 7 } });
  assert.deepEqual([...bicubic.data], hexBytes(PIL.cropBicubic));
  const wide = resize(image, 2, 12, { interpolation: 'bicubic', box: { top: 3, left: 0, height: 4, width: 9 } });
  assert.deepEqual([...wide.data], hexBytes(PIL.cropBicubicWide));
  const same = resize(image, 4, 6, { box: { top: 2, left: 1, height: 4, width: 6 } });
  assert.deepEqual([...same.data], [...crop(image, { top: 2, left: 1, height: 4, width: 6 }).data]);
});

test('nearest resize of a box steps from the crop origin like Pillow crop().resize()', () => {
  // Rows 53..54 of a column whose value is its row, stretched to 49 rows: Pillow gives 24 × 53 then
  // 25 × 54 (stepping (y + ½)·2/49 from 0; stepping from 53 would round one more row down).
  const column: DecodedImage = { data: Uint8Array.from({ length: 60 }, (_, i) => i), height: 60, width: 1, channels: 1 };
  const out = resize(column, 49, 1, { interpolation: 'nearest', box: { top: 53, left: 0, height: 2, width: 1 } });
  assert.deepEqual([...out.data], [...Array(24).fill(53), ...Array(25).fill(54)]);
});

test('nearest translate follows Pillow ImagingScaleAffine, filling what it uncovers', () => {
  const image: DecodedImage = { data: Uint8Array.from({ length: 63 }, (_, i) => i), height: 7, width: 9, channels: 1 };
  const out = affine(image, [1, 0, -2.6, 0, 1, 1.5], { interpolation: 'nearest', fill: [200] });
  const row = (r: number): number[] => [...out.data.subarray(r * 9, r * 9 + 9)];
  assert.deepEqual(row(0), [200, 200, 200, 18, 19, 20, 21, 22, 23]);
  assert.deepEqual(row(4), [200, 200, 200, 54, 55, 56, 57, 58, 59]);
  assert.deepEqual(row(5), Array(9).fill(200));
});

test('resize rejects boxes outside the image and bad sizes, naming the values', () => {
  const image = patternImage(4, 4, 1);
  assert.throws(() => resize(image, 2, 2, { box: { top: 2, left: 0, height: 3, width: 2 } }), /box \(top 2, left 0, 3×2\).*4×4 image/);
  assert.throws(() => resize(image, 0, 2), /positive integers, got 0×2/);
});

test('affine rotate / shear / translate match Pillow transform with fillcolor', () => {
  const image = patternImage(6, 7, 3);
  const rotation = rotationMatrix(17.3, 6, 7);
  assert.deepEqual([...affine(image, rotation, { interpolation: 'bilinear', fill: FILL }).data], hexBytes(PIL.rotateBilinear));
  assert.deepEqual([...affine(image, rotation, { interpolation: 'bicubic', fill: FILL }).data], hexBytes(PIL.rotateBicubic));
  assert.deepEqual([...affine(image, rotation, { interpolation: 'nearest', fill: FILL }).data], hexBytes(PIL.rotateNearest));
  assert.deepEqual([...affine(image, [1, 0.27, 0, 0, 1, 0], { interpolation: 'bilinear', fill: FILL }).data], hexBytes(PIL.shearXBilinear));
  assert.deepEqual([...affine(image, [1, 0, 0, -0.3, 1, 0], { interpolation: 'bicubic', fill: FILL }).data], hexBytes(PIL.shearYBicubic));
  assert.deepEqual([...affine(image, [1, 0, 0.37 * 7, 0, 1, 0], { interpolation: 'bilinear', fill: FILL }).data], hexBytes(PIL.translateXBilinear));
});

test('the identity warp and a zero rotation return the image unchanged', () => {
  const image = patternImage(5, 4, 3);
  for (const interpolation of ['bilinear', 'bicubic', 'nearest'] as const) {
    assert.deepEqual([...affine(image, [1, 0, 0, 0, 1, 0], { interpolation }).data], [...image.data]);
    assert.deepEqual([...affine(image, rotationMatrix(0, 5, 4), { interpolation }).data], [...image.data]);
  }
  const m = rotationMatrix(90, 4, 4);
  assert.deepEqual(m.map((v) => Math.round(v * 1e12) / 1e12), [0, -1, 4, 1, 0, 0]);
});
