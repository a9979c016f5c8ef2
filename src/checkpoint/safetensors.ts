/**
 * safetensors reader and writer in plain TypeScript.
 * Format (https://github.com/huggingface/safetensors, README "Format"):
 *   u64 LE N | N bytes of JSON header | data buffer
 *   header = { name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: { str: str } }
 *   offsets are relative to the start of the data buffer.
 * Validation follows the reference Rust crate (safetensors/src/tensor.rs, `validate`): offsets must
 * tile the data buffer exactly — sorted, no gaps, no overlaps, nothing left over — and each slice
 * must be exactly numel × itemsize bytes. Anything else is a CheckpointError, never a crash.
 * Writing mirrors the reference too: tensors ordered by item size (largest first, so every tensor
 * is aligned to its item size) then by name, `__metadata__` first, header space-padded to 8 bytes.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import {
  CheckpointError, DTYPE_SIZE, type DType, type RawTensor, describe, numel, readCheckpointBytes, validateRawTensor,
} from './raw-tensor.js';

export interface Safetensors {
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

const TO_FILE_DTYPE: Record<DType, string> = {
  float32: 'F32', float64: 'F64', bfloat16: 'BF16', float16: 'F16',
  int64: 'I64', int32: 'I32', int16: 'I16', int8: 'I8', uint8: 'U8', bool: 'BOOL',
};
const FROM_FILE_DTYPE = new Map<string, DType>(
  Object.entries(TO_FILE_DTYPE).map(([ours, theirs]) => [theirs, ours as DType]));

/** The reference crate refuses headers above 100 MB; a larger N means a corrupt length prefix. */
const MAX_HEADER_BYTES = 100_000_000;
const METADATA_KEY = '__metadata__';

interface Entry { name: string; dtype: DType; shape: number[]; begin: number; end: number }

/**
 * Parses a safetensors file held in memory. Tensor `data` are views into `bytes` (no copy):
 * copy them before mutating either side. `source` names the file in error messages.
 */
export function parseSafetensors(bytes: Uint8Array, source = 'safetensors data'): Safetensors {
  const fail = (problem: string): never => {
    throw new CheckpointError(`${source}: ${problem}`);
  };
  if (bytes.byteLength < 8) {
    fail(`file is ${bytes.byteLength} bytes, too short for the 8-byte header length; ` +
      'it is truncated or not a safetensors file');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getBigUint64(0, true);
  if (n > BigInt(bytes.byteLength - 8)) {
    fail(`header length ${n} is larger than the ${bytes.byteLength - 8} bytes that follow it; ` +
      'the file is truncated or not a safetensors file');
  }
  const headerLength = Number(n);
  if (headerLength > MAX_HEADER_BYTES) fail(`header length ${headerLength} exceeds the 100 MB limit`);
  const header = parseHeaderJson(bytes.subarray(8, 8 + headerLength), fail);
  const dataStart = 8 + headerLength;
  const dataLength = bytes.byteLength - dataStart;

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = parseMetadata(info, fail);
    else entries.push(parseEntry(name, info, dataLength, fail));
  }
  checkTiling(entries, dataLength, fail);

  const tensors = new Map<string, RawTensor>();
  for (const e of entries) {
    // A plain Uint8Array view (not a Buffer) so results compare equal to hand-built tensors.
    const data = new Uint8Array(bytes.buffer, bytes.byteOffset + dataStart + e.begin, e.end - e.begin);
    tensors.set(e.name, { dtype: e.dtype, shape: e.shape, data });
  }
  return { tensors, metadata };
}

function parseHeaderJson(raw: Uint8Array, fail: (p: string) => never): Record<string, unknown> {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    return fail('header is not valid UTF-8; the file is corrupt or not a safetensors file');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    return fail(`header is not valid JSON (${(err as Error).message}); ` +
      'the file is corrupt or not a safetensors file');
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) {
    return fail(`header must be a JSON object, got ${describe(header)}`);
  }
  return header as Record<string, unknown>;
}

function parseMetadata(info: unknown, fail: (p: string) => never): Record<string, string> {
  if (info === null) return {};
  if (typeof info !== 'object' || Array.isArray(info)) {
    return fail(`"${METADATA_KEY}" must be an object of strings, got ${describe(info)}`);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(info)) {
    if (typeof v !== 'string') fail(`"${METADATA_KEY}" value for ${JSON.stringify(k)} is ${describe(v)}; metadata values must be strings`);
    Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

function parseEntry(name: string, info: unknown, dataLength: number, fail: (p: string) => never): Entry {
  const where = `tensor ${JSON.stringify(name)}`;
  if (typeof info !== 'object' || info === null || Array.isArray(info)) {
    return fail(`${where}: header entry must be an object { dtype, shape, data_offsets }, got ${describe(info)}`);
  }
  const { dtype, shape, data_offsets: offsets } = info as Record<string, unknown>;
  const ours = typeof dtype === 'string' ? FROM_FILE_DTYPE.get(dtype) : undefined;
  if (ours === undefined) {
    return fail(`${where}: unknown dtype ${JSON.stringify(dtype)}; vicinity reads ${[...FROM_FILE_DTYPE.keys()].join(', ')}`);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    return fail(`${where}: shape ${JSON.stringify(shape)} must be an array of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    return fail(`${where}: data_offsets ${JSON.stringify(offsets)} must be [begin, end] with non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  let count: number;
  try {
    count = numel(shape as number[], where);
  } catch (err) {
    return fail((err as Error).message);
  }
  if (end < begin) fail(`${where}: data_offsets [${begin}, ${end}] end before they begin; the header is corrupt`);
  if (end > dataLength) {
    fail(`${where}: data_offsets [${begin}, ${end}] reach past the ${dataLength}-byte data buffer; ` +
      'the file is truncated');
  }
  const expected = count * DTYPE_SIZE[ours];
  if (end - begin !== expected) {
    fail(`${where}: ${dtype} shape [${(shape as number[]).join(', ')}] needs ${expected} bytes ` +
      `but data_offsets [${begin}, ${end}] span ${end - begin}; the header is corrupt`);
  }
  return { name, dtype: ours, shape: [...(shape as number[])], begin, end };
}

/** The reference requires the slices, sorted by offset, to cover the data buffer back to back. */
function checkTiling(entries: Entry[], dataLength: number, fail: (p: string) => never): void {
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous = '';
  for (const e of sorted) {
    if (e.begin < cursor) {
      fail(`tensor ${JSON.stringify(e.name)} (data_offsets [${e.begin}, ${e.end}]) overlaps ` +
        `${JSON.stringify(previous)} (ending at ${cursor}); the header is corrupt`);
    }
    if (e.begin > cursor) {
      fail(`data bytes ${cursor}..${e.begin} belong to no tensor (gap before ${JSON.stringify(e.name)}); ` +
        'the header is corrupt');
    }
    cursor = e.end;
    previous = e.name;
  }
  if (cursor !== dataLength) {
    fail(`tensors cover ${cursor} bytes but the data buffer holds ${dataLength}; ` +
      'the file has trailing bytes or a corrupt header');
  }
}

// ---- writing -----------------------------------------------------------------------------------

type TensorsInput = Map<string, RawTensor> | Record<string, RawTensor>;

/** Header bytes (length prefix included) and the tensors in file order. */
function layout(tensors: TensorsInput, metadata?: Record<string, string>): { head: Uint8Array; order: RawTensor[] } {
  const named = tensors instanceof Map ? [...tensors] : Object.entries(tensors);
  for (const [name, t] of named) {
    if (typeof name !== 'string') throw new CheckpointError(`serializeSafetensors: tensor names must be strings, got ${describe(name)}`);
    if (name === METADATA_KEY) throw new CheckpointError(`serializeSafetensors: "${METADATA_KEY}" is reserved; rename that tensor`);
    validateRawTensor(t, `serializeSafetensors: tensor ${JSON.stringify(name)}`);
  }
  named.sort(([an, a], [bn, b]) => DTYPE_SIZE[b.dtype] - DTYPE_SIZE[a.dtype] || (an < bn ? -1 : an > bn ? 1 : 0));

  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new CheckpointError(`serializeSafetensors: metadata ${JSON.stringify(k)} is ${describe(v)}; ` +
          'metadata values must be strings (use JSON.stringify for structured values)');
      }
    }
    header[METADATA_KEY] = metadata;
  }
  let offset = 0;
  for (const [name, t] of named) {
    const entry = { dtype: TO_FILE_DTYPE[t.dtype], shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    Object.defineProperty(header, name, { value: entry, enumerable: true, writable: true, configurable: true });
    offset += t.data.byteLength;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const head = new Uint8Array(8 + padded).fill(0x20, 8 + json.byteLength);
  new DataView(head.buffer).setBigUint64(0, BigInt(padded), true);
  head.set(json, 8);
  return { head, order: named.map(([, t]) => t) };
}

/** Serializes tensors (and optional string metadata) to safetensors bytes. */
export function serializeSafetensors(tensors: TensorsInput, metadata?: Record<string, string>): Uint8Array {
  const { head, order } = layout(tensors, metadata);
  const total = order.reduce((sum, t) => sum + t.data.byteLength, head.byteLength);
  const out = new Uint8Array(total);
  out.set(head, 0);
  let offset = head.byteLength;
  for (const t of order) {
    out.set(t.data, offset);
    offset += t.data.byteLength;
  }
  return out;
}

/** Reads and parses a .safetensors file; errors name the path. */
export async function readSafetensors(file: string): Promise<Safetensors> {
  return parseSafetensors(await readCheckpointBytes(file), file);
}

/**
 * Writes a .safetensors file atomically: the bytes go to a temporary file in the same directory,
 * are fsynced, then renamed over `file`, so a crash or a full disk never leaves a half-written
 * checkpoint behind. Tensors are written piece by piece (no second copy of the whole file).
 */
export async function writeSafetensors(file: string, tensors: TensorsInput, metadata?: Record<string, string>): Promise<void> {
  const { head, order } = layout(tensors, metadata);
  const dir = path.dirname(path.resolve(file));
  const temp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let handle: FileHandle;
  try {
    handle = await open(temp, 'wx');
  } catch (err) {
    throw fileWriteError(err, file);
  }
  try {
    await writeAll(handle, head);
    for (const t of order) await writeAll(handle, t.data);
    await handle.sync();
    await handle.close();
    await rename(temp, file);
  } catch (err) {
    await handle.close().catch(() => undefined);
    await unlink(temp).catch(() => undefined);
    throw fileWriteError(err, file);
  }
  await syncDirectory(dir);
}

/**
 * A failed write as an error naming the file and the cause in words (a full disk, a read-only
 * directory), keeping the errno `code` for callers that branch on it.
 */
export function fileWriteError(err: unknown, file: string): Error {
  const code = (err as NodeJS.ErrnoException).code;
  const reason = code === 'ENOSPC' ? 'no space left on the device (ENOSPC); free some space or write elsewhere'
    : code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? `its directory is not writable (${code}); choose a writable directory`
      : code === 'ENOENT' ? `its directory ${path.dirname(file)} does not exist (ENOENT)`
        : (err as Error).message;
  const error = new Error(`cannot write ${file}: ${reason}`, { cause: err });
  if (code) Object.assign(error, { code });
  return error;
}

async function writeAll(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.byteLength - done);
    done += bytesWritten;
  }
}

/** Makes the rename itself durable; some platforms cannot fsync a directory, which is harmless. */
async function syncDirectory(dir: string): Promise<void> {
  try {
    const handle = await open(dir, 'r');
    try { await handle.sync(); } finally { await handle.close(); }
  } catch {
    // Best effort only: the file's own contents were already fsynced.
  }
}
