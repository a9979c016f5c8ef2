import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { deflateSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import type { DecodedImage } from '../../src/data/dataset.js';
import { DatasetError } from '../../src/data/errors.js';
import {
  activeImageDecoder, convertChannels, decodeImage, decodeImageFile, IMAGE_DECODER_ENV,
  loadImageDecoder, sharpAvailable, type ImageDecoderName,
} from '../../src/data/image-decode.js';

const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-decode-'));
after(() => rmSync(dir, { recursive: true, force: true }));

let HAVE_SHARP = false;
before(async () => { HAVE_SHARP = await sharpAvailable(); });
const NO_SHARP = 'the optional package sharp is not installed';
/** The test suite's Python (test/support/parity.ts); only PIL is used here, not torch. */
const PYTHON = process.env['VICINITY_TEST_PYTHON'] ?? '/usr/bin/python3';
const W = 19;
const H = 13;

/** A smooth RGBA test pattern (JPEG-friendly) with varying alpha. */
function pattern(width = W, height = H): Uint8Array {
  const rgba = new Uint8Array(width * height * 4);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = 4 * (y * width + x);
      rgba[i] = Math.round((255 * x) / (width - 1));
      rgba[i + 1] = Math.round((255 * y) / (height - 1));
      rgba[i + 2] = (x * 11 + y * 5) % 256;
      rgba[i + 3] = (x * 40 + 3) % 256;
    }
  }
  return rgba;
}

/** PIL's convert('L') of one RGB pixel. */
function luma(r: number, g: number, b: number): number {
  return (19595 * r + 38470 * g + 7471 * b + 32768) >> 16;
}

function pngjsFile(rgba: Uint8Array, options: { colorType?: 0 | 2 | 4 | 6 } = {}): Uint8Array {
  const png = new pngjs.PNG({ width: W, height: H });
  png.data = Buffer.from(rgba);
  return pngjs.PNG.sync.write(png, { colorType: options.colorType ?? 6 });
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function chunk(type: string, data: Uint8Array): Buffer {
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  let crc = 0xffffffff;
  for (const byte of body) crc = CRC_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  const out = Buffer.alloc(12 + data.length);
  out.writeUInt32BE(data.length, 0);
  body.copy(out, 4);
  out.writeUInt32BE((crc ^ 0xffffffff) >>> 0, 8 + data.length);
  return out;
}

/** A hand-made PNG (filter 0 rows) for what pngjs cannot write: palettes, tRNS, 16-bit RGB. */
function handPng(options: { colorType: 0 | 2 | 3; bitDepth: 8 | 16; samples: number[]; palette?: number[]; trns?: number[] }): Uint8Array {
  const perPixel = (options.colorType === 2 ? 3 : 1) * (options.bitDepth / 8);
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(W, 0);
  ihdr.writeUInt32BE(H, 4);
  ihdr.set([options.bitDepth, options.colorType, 0, 0, 0], 8);
  const raw = Buffer.alloc(H * (1 + W * perPixel));
  const sampleBytes = options.bitDepth / 8;
  for (let y = 0, s = 0; y < H; y++) {
    for (let i = 0; i < W * perPixel / sampleBytes; i++, s++) {
      const at = y * (1 + W * perPixel) + 1 + i * sampleBytes;
      if (sampleBytes === 2) raw.writeUInt16BE(options.samples[s]!, at); else raw[at] = options.samples[s]!;
    }
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr),
    ...(options.palette ? [chunk('PLTE', Uint8Array.from(options.palette))] : []),
    ...(options.trns ? [chunk('tRNS', Uint8Array.from(options.trns))] : []),
    chunk('IDAT', deflateSync(raw)), chunk('IEND', new Uint8Array(0)),
  ]);
}

function jpegFile(rgba: Uint8Array, quality = 90): Uint8Array {
  return jpeg.encode({ width: W, height: H, data: Buffer.from(rgba) }, quality).data;
}

/** What the tests use of sharp to write a grayscale JPEG. */
type SharpForTest = (input: Uint8Array, options: { raw: { width: number; height: number; channels: 1 } }) => {
  jpeg(options: { quality: number }): { toBuffer(): Promise<Uint8Array> };
};

/** Every decoder available here. */
function decoders(): ImageDecoderName[] {
  return HAVE_SHARP ? ['js', 'sharp'] : ['js'];
}

/** The test PNGs, by name, with the RGB they must decode to (alpha dropped). */
function pngCases(): { name: string; bytes: Uint8Array; rgb?: Uint8Array }[] {
  const rgba = pattern();
  const rgb = convertChannels(rgba, W * H, 4, 3);
  const gray = Uint8Array.from({ length: W * H }, (_, i) => rgba[4 * i]!);
  const indices = Array.from({ length: W * H }, (_, i) => i % 4);
  const palette = [10, 20, 30, 200, 100, 0, 0, 255, 7, 255, 255, 255];
  const keyed = Array.from({ length: W * H * 3 }, (_, i) => (i % 3 === 0 ? 40 : (i * 7) % 256));
  return [
    { name: 'rgba.png', bytes: pngjsFile(rgba), rgb },
    // opaque input: pngjs composites alpha onto white when it writes colour type 2
    { name: 'rgb.png', bytes: pngjsFile(rgba.map((v, i) => (i % 4 === 3 ? 255 : v)), { colorType: 2 }), rgb },
    { name: 'gray.png', bytes: handPng({ colorType: 0, bitDepth: 8, samples: [...gray] }), rgb: convertChannels(gray, W * H, 1, 3) },
    { name: 'palette-trns.png', bytes: handPng({ colorType: 3, bitDepth: 8, samples: indices, palette, trns: [0, 128] }),
      rgb: Uint8Array.from(indices.flatMap((k) => palette.slice(3 * k, 3 * k + 3))) },
    // the colour key is pixel 0's colour: it must keep that colour (pngjs alone would blacken it)
    { name: 'rgb-colour-key.png', bytes: handPng({ colorType: 2, bitDepth: 8, samples: keyed, trns: [0, 40, 0, keyed[1]!, 0, keyed[2]!] }), rgb: Uint8Array.from(keyed) },
    { name: 'rgb16.png', bytes: handPng({ colorType: 2, bitDepth: 16, samples: Array.from({ length: W * H * 3 }, (_, i) => (i * 4099) % 65536) }),
      rgb: Uint8Array.from({ length: W * H * 3 }, (_, i) => ((i * 4099) % 65536) >> 8) },
  ];
}

function assertClose(a: DecodedImage, b: DecodedImage, maxDiff: number, label: string): number {
  assert.deepEqual([a.height, a.width, a.channels], [b.height, b.width, b.channels], label);
  let max = 0;
  for (let i = 0; i < a.data.length; i++) max = Math.max(max, Math.abs(a.data[i]! - b.data[i]!));
  assert.ok(max <= maxDiff, `${label}: max difference ${max} > ${maxDiff}`);
  return max;
}

test('PNG: RGB and gray outputs are the exact pixels, alpha dropped, with every decoder', async () => {
  for (const { name, bytes, rgb } of pngCases()) {
    for (const decoder of decoders()) {
      const color = await decodeImage(bytes, name, 3, { decoder });
      assert.deepEqual([color.height, color.width, color.channels], [H, W, 3], `${name} ${decoder}`);
      assert.deepEqual(color.data, rgb, `${name} ${decoder} RGB`);
      const gray = await decodeImage(bytes, name, 1, { decoder });
      const want = Uint8Array.from({ length: W * H }, (_, i) => luma(rgb![3 * i]!, rgb![3 * i + 1]!, rgb![3 * i + 2]!));
      assert.deepEqual(gray.data, want, `${name} ${decoder} gray`);
    }
  }
});

test('JPEG: sharp and jpeg-js agree within 3 levels, colour and gray', async (t) => {
  if (!HAVE_SHARP) { t.skip(NO_SHARP); return; }
  const bytes = jpegFile(pattern());
  for (const channels of [3, 1] as const) {
    const js = await decodeImage(bytes, 'p.jpg', channels, { decoder: 'js' });
    const sharp = await decodeImage(bytes, 'p.jpg', channels, { decoder: 'sharp' });
    assertClose(js, sharp, 3, `channels ${channels}`);
  }
  // and both are close to the encoded pixels (JPEG is lossy: quality 90 on a smooth pattern)
  const js = await decodeImage(bytes, 'p.jpg', 3, { decoder: 'js' });
  const truth = { data: convertChannels(pattern(), W * H, 4, 3), height: H, width: W, channels: 3 as const };
  assertClose(js, truth, 24, 'js vs source');
});

test('a grayscale JPEG decodes to equal R, G and B, and to itself as gray', async (t) => {
  if (!HAVE_SHARP) { t.skip(NO_SHARP); return; }
  const specifier = 'sharp';  // not a literal: the build must not need the optional package
  const { default: sharp } = await import(specifier) as { default: SharpForTest };
  const gray = Buffer.from(Uint8Array.from({ length: W * H }, (_, i) => (i * 3) % 256));
  const bytes = await sharp(gray, { raw: { width: W, height: H, channels: 1 } }).jpeg({ quality: 95 }).toBuffer();
  for (const decoder of decoders()) {
    const rgb = await decodeImage(bytes, 'g.jpg', 3, { decoder });
    const one = await decodeImage(bytes, 'g.jpg', 1, { decoder });
    for (let i = 0; i < W * H; i++) {
      assert.equal(rgb.data[3 * i], one.data[i], `${decoder} pixel ${i} R`);
      assert.equal(rgb.data[3 * i + 2], one.data[i], `${decoder} pixel ${i} B`);
    }
  }
  assertClose(await decodeImage(bytes, 'g.jpg', 1, { decoder: 'js' }), await decodeImage(bytes, 'g.jpg', 1, { decoder: 'sharp' }), 3, 'gray jpeg');
});

test('PIL (torchvision\'s loader) decodes the same pixels', async (t) => {
  const probe = spawnSync(PYTHON, ['-c', 'import PIL'], { encoding: 'utf8' });
  if (probe.status !== 0) { t.skip(`${PYTHON} with PIL is not available`); return; }
  const files = [...pngCases().map(({ name, bytes }) => ({ name, bytes })), { name: 'p.jpg', bytes: jpegFile(pattern()) }];
  for (const f of files) writeFileSync(path.join(dir, f.name), f.bytes);
  const script = 'import sys\nfrom PIL import Image\nfor n in sys.argv[1:]:\n' +
    '  im = Image.open(n)\n  for m in ("RGB", "L"): sys.stdout.write(im.convert(m).tobytes().hex() + "\\n")\n';
  const run = spawnSync(PYTHON, ['-c', script, ...files.map((f) => path.join(dir, f.name))], { encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trim().split('\n');
  for (const [k, f] of files.entries()) {
    for (const [j, channels] of ([3, 1] as const).entries()) {
      const pil = { data: Uint8Array.from(Buffer.from(lines[2 * k + j]!, 'hex')), height: H, width: W, channels };
      for (const decoder of decoders()) {
        const ours = await decodeImage(f.bytes, f.name, channels, { decoder });
        // PNG exactly; JPEG exactly with sharp (both libjpeg-turbo), within 3 levels with jpeg-js
        const tolerance = f.name.endsWith('.jpg') && decoder === 'js' ? 3 : 0;
        assertClose(ours, pil, tolerance, `${f.name} ${decoder} channels ${channels} vs PIL`);
      }
    }
  }
});

test('corrupt and non-image bytes are DatasetErrors naming the file, with every decoder', async () => {
  const png = pngjsFile(pattern());
  const jpg = jpegFile(pattern());
  const cases: [string, Uint8Array, RegExp][] = [
    ['cut.png', png.subarray(0, png.length - 30), /cut\.png: corrupt or truncated PNG \(/],
    ['cut.jpg', jpg.subarray(0, jpg.length >> 1), /cut\.jpg: corrupt or truncated JPEG \(/],
    ['cut80.jpg', jpg.subarray(0, Math.floor(jpg.length * 0.8)), /cut80\.jpg: corrupt or truncated JPEG \(/],
    ['junk.jpg', Buffer.concat([jpg.subarray(0, 200), Buffer.alloc(400, 7)]), /junk\.jpg: corrupt or truncated JPEG/],
    ['notes.jpg', Buffer.from('these are my holiday notes\n'), /notes\.jpg: not a JPEG or PNG image: it looks like text \("these are my holiday/],
    ['empty.png', new Uint8Array(0), /empty\.png: not a JPEG or PNG image: the file is empty/],
    ['anim.png', Buffer.from('GIF89a\x01\x00\x01\x00\x80\x00', 'latin1'), /anim\.png: not a JPEG or PNG image: .*ff d8 ff/],
  ];
  for (const [name, bytes, pattern] of cases) {
    for (const decoder of decoders()) {
      await assert.rejects(decodeImage(bytes, path.join('/data', name), 3, { decoder }), (e: unknown) => {
        assert.ok(e instanceof DatasetError, `${name} ${decoder}: expected a DatasetError, got ${String(e)}`);
        assert.equal(e.file, path.join('/data', name));
        assert.match(e.message, pattern, `${name} ${decoder}`);
        assert.match(e.message, /remove it from the dataset/);
        return true;
      });
    }
  }
  await assert.rejects(decodeImage(png, 'x.png', 2 as 3), /channels must be 1 or 3, got 2/);
});

test('damage the codec recovers from decodes, as with PIL: extraneous bytes before EOI', async () => {
  const jpg = jpegFile(pattern());
  const extra = Buffer.concat([jpg.subarray(0, jpg.length - 2), Buffer.from([1, 2, 3, 4, 5]), jpg.subarray(jpg.length - 2)]);
  for (const decoder of decoders()) {
    const clean = await decodeImage(jpg, 'clean.jpg', 3, { decoder });
    assert.deepEqual((await decodeImage(extra, 'extra.jpg', 3, { decoder })).data, clean.data, decoder);
  }
});

test('decodeImageFile reads the file; a missing one is a DatasetError', async () => {
  const file = path.join(dir, 'file.png');
  writeFileSync(file, pngjsFile(pattern()));
  const image = await decodeImageFile(file, 3, { decoder: 'js' });
  assert.deepEqual(image.data, convertChannels(pattern(), W * H, 4, 3));
  await assert.rejects(decodeImageFile(path.join(dir, 'gone.png'), 3), (e: unknown) =>
    e instanceof DatasetError && /gone\.png: cannot read image: no such file/.test(e.message));
});

test('convertChannels: replicate, luma, drop alpha, into a given buffer', () => {
  assert.deepEqual(convertChannels(Uint8Array.of(5, 200), 2, 1, 3), Uint8Array.of(5, 5, 5, 200, 200, 200));
  assert.deepEqual(convertChannels(Uint8Array.of(255, 0, 0, 9, 0, 255, 0, 9), 2, 4, 1), Uint8Array.of(76, 150));
  assert.deepEqual(convertChannels(Uint8Array.of(7, 99, 8, 1), 2, 2, 3), Uint8Array.of(7, 7, 7, 8, 8, 8));
  const out = new Uint8Array(new SharedArrayBuffer(3));
  assert.equal(convertChannels(Uint8Array.of(1, 2, 3), 1, 3, 3, out), out);
  assert.deepEqual([...out], [1, 2, 3]);
  assert.throws(() => convertChannels(Uint8Array.of(1, 2), 2, 1, 3, new Uint8Array(5)), RangeError);
});

test('the active decoder is sharp when installed, and is reported', async () => {
  const chosen = await loadImageDecoder();
  assert.equal(activeImageDecoder(), chosen);
  if (process.env[IMAGE_DECODER_ENV] === undefined) assert.equal(chosen, HAVE_SHARP ? 'sharp' : 'js');
});

/** Runs decodeImage in a worker thread with the given env; returns what it reports. */
function inWorker(env: Record<string, string>): Promise<{ decoder?: string; sum?: number; error?: string }> {
  const url = new URL('../../src/data/image-decode.js', import.meta.url).href;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    import(${JSON.stringify(url)}).then(async (m) => {
      try {
        const decoder = await m.loadImageDecoder();
        const image = await m.decodeImage(workerData, 'w.png', 1);
        parentPort.postMessage({ decoder, active: m.activeImageDecoder(), sum: image.data.reduce((a, b) => a + b, 0) });
      } catch (e) { parentPort.postMessage({ error: e.message }); }
    });`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, env, workerData: pngjsFile(pattern()) });
    worker.once('message', (message) => { resolve(message); void worker.terminate(); });
    worker.once('error', reject);
  });
}

test('in worker threads: the env forces a decoder, and both decode the same', async () => {
  await loadImageDecoder();  // the main thread loads sharp before any worker does (file header)
  const gray = convertChannels(pattern(), W * H, 4, 1).reduce((a, b) => a + b, 0);
  const js = await inWorker({ [IMAGE_DECODER_ENV]: 'js' });
  assert.deepEqual(js, { decoder: 'js', active: 'js', sum: gray });
  const auto = await inWorker({});
  assert.deepEqual(auto, { decoder: HAVE_SHARP ? 'sharp' : 'js', active: HAVE_SHARP ? 'sharp' : 'js', sum: gray });
  const bogus = await inWorker({ [IMAGE_DECODER_ENV]: 'pillow' });
  assert.match(bogus.error!, /VICINITY_IMAGE_DECODER="pillow" is not 'js', 'sharp' or 'auto'/);
});
