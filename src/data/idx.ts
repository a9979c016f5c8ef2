/**
 * The IDX file format (LeCun's MNIST distribution format, also used by Fashion-MNIST).
 *
 * Layout, all integers big-endian (http://yann.lecun.com/exdb/mnist/, "FILE FORMATS"):
 *   bytes 0-1   zero
 *   byte  2     element type: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32, 0x0D float32,
 *               0x0E float64
 *   byte  3     number of dimensions d
 *   4·d bytes   the dimensions, uint32 each
 *   then        the elements, row-major
 * So images are magic 0x00000803 ([n, rows, cols]) and labels 0x00000801 ([n]).
 *
 * Files are read whole, gzipped (detected by the gzip magic 1f 8b, as distributed) or not.
 *
 * Deviations from a permissive reader:
 *   1. Only uint8 elements are supported; every MNIST-family dataset uses them, and other
 *      types would need a typed array per dtype that nothing here consumes.
 *   2. Bytes after the last element are an error, not ignored: they mean the header is wrong
 *      or two files were concatenated, and silently dropping them would hide either.
 */
import { readFile } from 'node:fs/promises';
import { gunzipSync } from 'node:zlib';
import { DatasetError } from './errors.js';

/** A decoded IDX file: its shape and its elements in row-major order. */
export interface IdxArray {
  /** Dimensions from the header, e.g. [60000, 28, 28] for Fashion-MNIST train images. */
  shape: number[];
  /** The elements; `data.length` is the product of `shape`. */
  data: Uint8Array;
}

const IDX_TYPES: Record<number, string> = {
  0x08: 'uint8',
  0x09: 'int8',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
};
const UINT8 = 0x08;

/** True when the bytes start with the gzip magic number 1f 8b (RFC 1952 §2.3.1). */
export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
}

function hex(value: number, digits: number): string {
  return '0x' + value.toString(16).padStart(digits, '0');
}

function gunzip(bytes: Uint8Array, source: string): Uint8Array {
  try {
    const out = gunzipSync(bytes);
    // A plain Uint8Array view: Buffer's own slice() shares memory, which surprises callers.
    return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new DatasetError(source,
      `${source}: corrupt gzip data (${reason}); the file was probably cut short or damaged ` +
      `in transfer, download or extract it again`, { cause });
  }
}

/** Reads the header, returning the shape and where the elements start. */
function parseHeader(bytes: Uint8Array, source: string): { shape: number[]; offset: number } {
  if (bytes.length < 4) {
    throw new DatasetError(source,
      `${source}: truncated IDX header: the file has ${bytes.length} bytes but the magic ` +
      `number alone needs 4; the file is empty or cut short, download it again`);
  }
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    const magic = ((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!) >>> 0;
    throw new DatasetError(source,
      `${source}: bad magic number ${hex(magic, 8)}; an IDX file starts with two zero bytes ` +
      `(e.g. 0x00000803 for images, 0x00000801 for labels), so this is not an IDX file`);
  }
  const type = bytes[2]!;
  const rank = bytes[3]!;
  if (type !== UINT8) {
    const name = IDX_TYPES[type];
    throw new DatasetError(source,
      name === undefined
        ? `${source}: unknown IDX element type ${hex(type, 2)}; valid types are 0x08-0x0E, ` +
          `so this is not an IDX file`
        : `${source}: unsupported IDX element type ${hex(type, 2)} (${name}); only 0x08 ` +
          `(uint8) is supported, as used by MNIST and Fashion-MNIST`);
  }
  if (rank === 0) {
    throw new DatasetError(source,
      `${source}: IDX header declares 0 dimensions; an images file has 3 and a labels file 1`);
  }
  const offset = 4 + 4 * rank;
  if (bytes.length < offset) {
    throw new DatasetError(source,
      `${source}: truncated IDX header: ${rank} dimensions need ${offset} header bytes but ` +
      `the file has only ${bytes.length}; download it again`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape = Array.from({ length: rank }, (_, i) => view.getUint32(4 + 4 * i, false));
  return { shape, offset };
}

/**
 * Decodes IDX bytes, gunzipping them first when they start with the gzip magic.
 *
 * @param bytes  the file's contents
 * @param source the file name, used in error messages
 * @returns the shape and a Uint8Array of the elements that does not alias `bytes`
 * @throws DatasetError on corrupt gzip, a bad magic number, an element type other than
 *   uint8, a header that promises more elements than the file holds, or trailing bytes
 *
 * @example
 * const { shape, data } = parseIdx(await readFile(path), path);  // shape [10000, 28, 28]
 */
export function parseIdx(bytes: Uint8Array, source: string): IdxArray {
  const gzipped = isGzip(bytes);
  const raw = gzipped ? gunzip(bytes, source) : bytes;
  const what = gzipped ? 'decompressed data' : 'file';
  const { shape, offset } = parseHeader(raw, source);
  const count = shape.reduce((a, b) => a * b, 1);
  const available = raw.length - offset;
  if (available < count) {
    throw new DatasetError(source,
      `${source}: truncated: header says shape [${shape.join(', ')}] = ${count} items but ` +
      `only ${available} bytes of data follow in the ${what}; the file was cut short, ` +
      `download it again`);
  }
  if (available > count) {
    throw new DatasetError(source,
      `${source}: ${available - count} trailing bytes: header says shape ` +
      `[${shape.join(', ')}] = ${count} items but ${available} bytes of data follow in the ` +
      `${what}; the header is wrong or files were concatenated`);
  }
  // Gunzip output is ours to hand out; raw input belongs to the caller, so copy it.
  const data = gzipped
    ? raw.subarray(offset)
    : Uint8Array.prototype.slice.call(raw, offset, offset + count);
  return { shape, data };
}

/**
 * Reads and decodes an IDX file (`.gz` or not; detected from the contents, not the name).
 *
 * @throws DatasetError when the file cannot be read or is malformed (see {@link parseIdx})
 */
export async function readIdx(path: string): Promise<IdxArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : cause instanceof Error ? cause.message : String(cause);
    throw new DatasetError(path, `${path}: cannot read IDX file: ${reason}`, { cause });
  }
  return parseIdx(bytes, path);
}

/**
 * Encodes a uint8 array as IDX bytes (uncompressed); the inverse of {@link parseIdx}.
 * Used to write subsets and test files.
 *
 * @throws RangeError when `data.length` is not the product of `shape` or a dimension is not a
 *   uint32
 */
export function encodeIdx(shape: readonly number[], data: Uint8Array): Uint8Array {
  if (shape.length === 0 || shape.length > 255) {
    throw new RangeError(`encodeIdx: shape has ${shape.length} dimensions; IDX allows 1 to 255`);
  }
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new RangeError(`encodeIdx: dimension ${d} in [${shape.join(', ')}] is not a uint32`);
    }
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) {
    throw new RangeError(
      `encodeIdx: shape [${shape.join(', ')}] holds ${count} items but data has ${data.length}`);
  }
  const offset = 4 + 4 * shape.length;
  const out = new Uint8Array(offset + count);
  const view = new DataView(out.buffer);
  out[2] = UINT8;
  out[3] = shape.length;
  shape.forEach((d, i) => view.setUint32(4 + 4 * i, d, false));
  out.set(data, offset);
  return out;
}
