/**
 * Decodes one JPEG or PNG file to `height × width × channels` uint8 pixels (HWC, row-major).
 *
 * Two decoders, picked once per thread:
 *   'sharp'  libvips through the optional `sharp` package: several times faster on JPEG;
 *   'js'     pure JavaScript (jpeg-js, pngjs): always available, no native code.
 * Default ('auto'): sharp when it can be imported, else js. Env VICINITY_IMAGE_DECODER=js|sharp
 * forces one (sharp then fails loudly when it is missing).
 *
 * Both decoders give the same pixels as torchvision's default loader (PIL `Image.open` +
 * `convert('RGB')` / `convert('L')`), so that a dataset reads the same with either:
 *   - the decoder's native channels are converted here, in JS, with one formula for both:
 *     gray → RGB replicates; RGB → gray is PIL's ITU-R 601-2 luma
 *     L = (19595 R + 38470 G + 7471 B + 32768) >> 16; alpha is dropped, not composited;
 *   - EXIF orientation is not applied and embedded ICC profiles are ignored (PIL does neither);
 *   - 16-bit PNG samples keep their high byte (as PIL and libvips do), not pngjs's rounding.
 * PNG therefore decodes bit-identically; JPEG differs by a few levels (libjpeg-turbo and jpeg-js
 * use different IDCTs and chroma upsampling), which test/data/image-decode.test.ts bounds.
 *
 * Strictness also follows PIL's default: a truncated file or an undecodable stream is an error,
 * while damage the codec recovers from (a libjpeg warning such as extraneous bytes) decodes, so
 * that one slightly damaged photo does not end a long run that PIL would have finished.
 *
 * Deviation: the format is told by the magic bytes, never the file name, and only JPEG and PNG
 * are accepted, even though sharp and PIL read more (WebP, GIF, TIFF, BMP): a dataset must not
 * decode with one decoder and fail with the other.
 *
 * Worker threads: libvips must stay loaded for the life of the process, so on Linux the main
 * thread must call {@link loadImageDecoder} before it starts workers that decode with sharp
 * (sharp's documentation, "Worker threads").
 */
import { readFile } from 'node:fs/promises';
import jpeg from 'jpeg-js';
import pngjs from 'pngjs';
import type { DecodedImage } from './dataset.js';
import { DatasetError } from './errors.js';

/** The two decoder implementations. */
export type ImageDecoderName = 'sharp' | 'js';

/** Per-call options of {@link decodeImage}. */
export interface DecodeImageOptions {
  /** Use this decoder instead of the thread's active one (tests compare the two). */
  decoder?: ImageDecoderName;
}

/** The subset of sharp's API used here; typed locally so the build does not need sharp. */
interface SharpInstance {
  raw(): SharpInstance;
  toBuffer(options: { resolveWithObject: true }): Promise<{
    data: Uint8Array; info: { width: number; height: number; channels: number; size: number };
  }>;
}
type SharpFactory = (input: Uint8Array, options: { ignoreIcc: boolean; failOn: string }) => SharpInstance;

/** Env variable that forces a decoder. */
export const IMAGE_DECODER_ENV = 'VICINITY_IMAGE_DECODER';

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

let sharpPromise: Promise<SharpFactory | undefined> | undefined;
let decoderPromise: Promise<ImageDecoderName> | undefined;
let activeDecoder: ImageDecoderName | undefined;

/** Imports sharp once per thread; undefined when it is not installed or fails to load. */
function importSharp(): Promise<SharpFactory | undefined> {
  // A variable specifier keeps TypeScript from resolving the optional package at build time.
  const specifier = 'sharp';
  sharpPromise ??= import(specifier).then(
    (module: { default: SharpFactory }) => module.default,
    () => undefined);
  return sharpPromise;
}

/**
 * Picks this thread's decoder (once) and loads it; call it in the main thread before starting
 * decoding workers, so that sharp's native library is loaded first (see the file header).
 *
 * @returns 'sharp' or 'js'
 * @throws Error when VICINITY_IMAGE_DECODER is not 'js', 'sharp' or 'auto', or is 'sharp' and
 *   sharp cannot be imported
 */
export function loadImageDecoder(): Promise<ImageDecoderName> {
  decoderPromise ??= (async () => {
    const wanted = process.env[IMAGE_DECODER_ENV] ?? 'auto';
    if (wanted !== 'auto' && wanted !== 'sharp' && wanted !== 'js') {
      throw new Error(`${IMAGE_DECODER_ENV}=${JSON.stringify(wanted)} is not 'js', 'sharp' or ` +
        `'auto'; unset it to use sharp when installed, else the pure-JS decoders`);
    }
    const sharp = wanted === 'js' ? undefined : await importSharp();
    if (wanted === 'sharp' && sharp === undefined) {
      throw new Error(`${IMAGE_DECODER_ENV}=sharp but the optional package sharp cannot be ` +
        `imported; install it (\`npm install sharp\`) or set ${IMAGE_DECODER_ENV}=js`);
    }
    activeDecoder = sharp === undefined ? 'js' : 'sharp';
    return activeDecoder;
  })();
  return decoderPromise;
}

/** The decoder this thread uses, or undefined before the first {@link loadImageDecoder}/decode. */
export function activeImageDecoder(): ImageDecoderName | undefined {
  return activeDecoder;
}

/** True when the optional sharp package can be imported in this thread. */
export async function sharpAvailable(): Promise<boolean> {
  return (await importSharp()) !== undefined;
}

function startsWith(bytes: Uint8Array, magic: readonly number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

/** 'jpeg' / 'png' from the magic bytes; otherwise a DatasetError describing what the bytes look like. */
function detectFormat(bytes: Uint8Array, file: string): 'jpeg' | 'png' {
  if (startsWith(bytes, JPEG_MAGIC)) return 'jpeg';
  if (startsWith(bytes, PNG_MAGIC)) return 'png';
  const head = Array.from(bytes.subarray(0, 8), (b) => b.toString(16).padStart(2, '0')).join(' ');
  const text = bytes.length > 0 && bytes.subarray(0, 64).every((b) => b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127));
  const looks = bytes.length === 0 ? 'the file is empty'
    : text ? `it looks like text (${JSON.stringify(Buffer.from(bytes.subarray(0, 24)).toString('latin1'))}${bytes.length > 24 ? '…' : ''})`
      : `it starts with bytes ${head}`;
  throw new DatasetError(file,
    `${file}: not a JPEG or PNG image: ${looks}, while a JPEG starts with ff d8 ff and a PNG ` +
    `with 89 50 4e 47; replace the file with the image, or remove it from the dataset`);
}

function corrupt(file: string, format: string, cause: unknown): DatasetError {
  const reason = (cause instanceof Error ? cause.message : String(cause)).split('\n')[0];
  return new DatasetError(file,
    `${file}: corrupt or truncated ${format.toUpperCase()} (${reason}); the file was damaged ` +
    `or cut short, download or export it again, or remove it from the dataset`, { cause });
}

/**
 * Converts `height × width × from` pixels (from = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) to
 * `to` channels: alpha dropped, gray replicated, RGB → gray by PIL's luma (see the header).
 * Writes into `out` when given (e.g. a SharedArrayBuffer view), else returns `data` itself when
 * nothing changes, or a new array.
 */
export function convertChannels(data: Uint8Array, pixels: number, from: number, to: 1 | 3, out?: Uint8Array): Uint8Array {
  if (out === undefined && from === to) return data;
  out ??= new Uint8Array(pixels * to);
  if (out.length !== pixels * to || data.length < pixels * from) {
    throw new RangeError(`convertChannels: ${pixels} pixels need ${pixels * from} input and ` +
      `${pixels * to} output bytes, got ${data.length} and ${out.length}`);
  }
  if (from === to) { out.set(data.subarray(0, pixels * to)); return out; }
  const color = from >= 3;
  for (let i = 0, s = 0; i < pixels; i++, s += from) {
    if (to === 1) {
      out[i] = color ? (19595 * data[s]! + 38470 * data[s + 1]! + 7471 * data[s + 2]! + 32768) >> 16 : data[s]!;
    } else if (color) {
      out[3 * i] = data[s]!; out[3 * i + 1] = data[s + 1]!; out[3 * i + 2] = data[s + 2]!;
    } else {
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = data[s]!;
    }
  }
  return out;
}

async function decodeWithSharp(bytes: Uint8Array, file: string, format: string, channels: 1 | 3): Promise<DecodedImage> {
  const sharp = await importSharp();
  if (sharp === undefined) {
    throw new Error(`decodeImage: decoder 'sharp' requested but the optional package sharp ` +
      `cannot be imported; install it or use decoder 'js'`);
  }
  let result;
  try {
    // failOn 'truncated': abort on truncation and errors, not on recoverable warnings (as PIL).
    result = await sharp(bytes, { ignoreIcc: true, failOn: 'truncated' }).raw().toBuffer({ resolveWithObject: true });
  } catch (cause) {
    throw corrupt(file, format, cause);
  }
  const { width, height, channels: from } = result.info;
  const data = new Uint8Array(result.data.buffer, result.data.byteOffset, result.data.byteLength);
  return { data: convertChannels(data, width * height, from, channels), height, width, channels };
}

/**
 * Removes the tRNS chunk of a gray or RGB PNG: pngjs turns colour-key-transparent pixels into
 * black, while PIL's convert('RGB') and libvips keep their colour (alpha is dropped anyway).
 * Palette PNGs keep it: there it only adds alpha to palette entries.
 */
function withoutColorKey(bytes: Uint8Array): Uint8Array {
  const colorType = bytes[25];  // IHDR data starts at 16: width 4, height 4, depth 1, colour type
  if (bytes.length < 33 || (colorType !== 0 && colorType !== 2)) return bytes;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 8; at + 12 <= bytes.length;) {
    const length = view.getUint32(at, false);
    const end = at + 12 + length;  // length, type, data, CRC
    if (bytes[at + 4] === 0x74 && bytes[at + 5] === 0x52 && bytes[at + 6] === 0x4e && bytes[at + 7] === 0x53) {
      const out = new Uint8Array(bytes.length - (end - at));
      out.set(bytes.subarray(0, at));
      out.set(bytes.subarray(end), at);
      return out;
    }
    at = end;
  }
  return bytes;
}

function decodePngJs(bytes: Uint8Array, file: string, channels: 1 | 3): DecodedImage {
  let png: { width: number; height: number; depth: number; data: ArrayLike<number> };
  try {
    const input = Buffer.from(withoutColorKey(bytes));
    // skipRescale: 16-bit samples come back as a Uint16Array, reduced below like libvips/PIL.
    const parsed = pngjs.PNG.sync.read(input, { skipRescale: true });
    png = { width: parsed.width, height: parsed.height, depth: parsed.depth, data: parsed.data };
  } catch (cause) {
    throw corrupt(file, 'png', cause);
  }
  const { width, height } = png;
  const rgba = png.depth === 16 ? Uint8Array.from(png.data as Uint16Array, (v) => v >> 8) : toUint8(png.data);
  // pngjs always gives RGBA; a gray PNG has R = G = B, whose luma is exactly that value.
  return { data: convertChannels(rgba, width * height, 4, channels), height, width, channels };
}

function toUint8(data: ArrayLike<number>): Uint8Array {
  if (data instanceof Uint8Array) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return Uint8Array.from(data);
}

function decodeJpegJs(bytes: Uint8Array, file: string, channels: 1 | 3): DecodedImage {
  let image;
  try {
    // tolerantDecoding (jpeg-js's default): recover from damaged blocks as libjpeg and PIL do.
    image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: true });
  } catch (cause) {
    throw corrupt(file, 'jpeg', cause);
  }
  const { width, height } = image;
  if (width === 0 || height === 0 || image.data.length !== width * height * 3) {
    throw corrupt(file, 'jpeg', new Error(`decoded ${image.data.length} bytes for ${width}x${height} pixels`));
  }
  // jpeg-js always gives RGB (gray JPEGs replicated, so their luma is exact).
  return { data: convertChannels(image.data, width * height, 3, channels), height, width, channels };
}

/**
 * Decodes JPEG or PNG bytes to `channels` (1 gray, 3 RGB) uint8 pixels, HWC row-major.
 *
 * @param bytes    the encoded file
 * @param file     its path, named in errors
 * @param channels 1 or 3; conversion as in the file header (alpha dropped)
 * @param options  `decoder` overrides the thread's active decoder
 * @returns a fresh image whose `data` the caller owns
 * @throws DatasetError when the bytes are not a JPEG/PNG, or are corrupt or truncated
 *
 * @example
 * const image = await decodeImage(await readFile(path), path, 3);  // image.data: H·W·3 bytes
 */
export async function decodeImage(
  bytes: Uint8Array, file: string, channels: 1 | 3, options: DecodeImageOptions = {},
): Promise<DecodedImage> {
  if (channels !== 1 && channels !== 3) {
    throw new TypeError(`decodeImage: channels must be 1 or 3, got ${JSON.stringify(channels)}`);
  }
  const format = detectFormat(bytes, file);
  const decoder = options.decoder ?? await loadImageDecoder();
  if (decoder === 'sharp') return decodeWithSharp(bytes, file, format, channels);
  return format === 'png' ? decodePngJs(bytes, file, channels) : decodeJpegJs(bytes, file, channels);
}

/**
 * Reads and decodes an image file (see {@link decodeImage}).
 *
 * @throws DatasetError when the file cannot be read, or is not a valid JPEG/PNG
 */
export async function decodeImageFile(
  file: string, channels: 1 | 3, options: DecodeImageOptions = {},
): Promise<DecodedImage> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file (was it moved or deleted after the dataset was listed?)'
      : cause instanceof Error ? cause.message : String(cause);
    throw new DatasetError(file, `${file}: cannot read image: ${reason}`, { cause });
  }
  return decodeImage(bytes, file, channels, options);
}
