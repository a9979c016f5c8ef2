/**
 * A minimal, read-only ZIP reader: enough for the archives torch.save writes (miniz, via
 * caffe2/serialize/inline_container.cc) and for ordinary zip tools.
 * Spec: PKWARE APPNOTE.TXT 6.3.x — §4.3.7 local file header, §4.3.12 central directory header,
 * §4.3.14–4.3.16 ZIP64 end of central directory record / locator / EOCD, §4.5.3 ZIP64 extra field.
 * Entries may be stored (method 0, what torch writes) or deflated (method 8, what `zip` writes).
 * Every read is bounds-checked and every entry's CRC-32 is verified, so truncated or corrupted
 * archives end in a CheckpointError instead of a RangeError or silently wrong bytes.
 */
import * as zlib from 'node:zlib';
import { CheckpointError } from './raw-tensor.js';

export interface ZipArchive {
  /** Entry names in central-directory order. */
  names(): string[];
  has(name: string): boolean;
  /** The entry's uncompressed bytes; a stored entry is a view into the archive (no copy). */
  read(name: string): Uint8Array;
}

interface CentralEntry {
  name: string;
  method: number;
  flags: number;
  crc: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

const SIG_EOCD = 0x06054b50;
const SIG_ZIP64_LOCATOR = 0x07064b50;
const SIG_ZIP64_EOCD = 0x06064b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;

/** Opens a ZIP archive held in memory. `source` names the file in error messages. */
export function openZip(bytes: Uint8Array, source = 'zip data'): ZipArchive {
  const reader = new Reader(bytes, source);
  const entries = readCentralDirectory(reader);
  return {
    names: () => [...entries.keys()],
    has: (name) => entries.has(name),
    read: (name) => {
      const entry = entries.get(name);
      if (entry === undefined) {
        const listed = [...entries.keys()].slice(0, 8).join(', ');
        throw new CheckpointError(`${source}: archive has no entry "${name}" (it holds ${entries.size}: ${listed}` +
          `${entries.size > 8 ? ', …' : ''})`);
      }
      return readEntry(reader, entry);
    },
  };
}

/** Bounds-checked little-endian reads; every overrun names the structure being read. */
class Reader {
  readonly view: DataView;
  constructor(readonly bytes: Uint8Array, readonly source: string) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(problem: string): never {
    throw new CheckpointError(`${this.source}: ${problem}`);
  }

  need(offset: number, length: number, what: string): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > this.bytes.byteLength) {
      this.fail(`${what} at byte ${offset} (${length} bytes) lies outside the ${this.bytes.byteLength}-byte file; ` +
        'the archive is truncated or corrupt');
    }
  }

  u16(o: number): number { return this.view.getUint16(o, true); }
  u32(o: number): number { return this.view.getUint32(o, true); }
  u64(o: number, what: string): number {
    const v = this.view.getBigUint64(o, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`${what} ${v} is not a usable size; the archive is corrupt`);
    return Number(v);
  }
}

function findEocd(r: Reader): number {
  const len = r.bytes.byteLength;
  if (len < EOCD_SIZE) r.fail(`${len} bytes is too short for a zip archive; the file is truncated or not a zip`);
  const lowest = Math.max(0, len - EOCD_SIZE - MAX_COMMENT);
  // Scan backwards: the record sits at the end, followed only by its own comment.
  for (let pos = len - EOCD_SIZE; pos >= lowest; pos--) {
    if (r.u32(pos) === SIG_EOCD && pos + EOCD_SIZE + r.u16(pos + 20) <= len) return pos;
  }
  return r.fail('no end-of-central-directory record found; the archive is truncated or not a zip file');
}

function readCentralDirectory(r: Reader): Map<string, CentralEntry> {
  const eocd = findEocd(r);
  let count = r.u16(eocd + 10);
  let size = r.u32(eocd + 12);
  let offset = r.u32(eocd + 16);
  if (r.u16(eocd + 4) !== 0 || r.u16(eocd + 6) !== 0) r.fail('multi-disk (split) zip archives are not supported');

  const locator = eocd - 20;
  if (locator >= 0 && r.u32(locator) === SIG_ZIP64_LOCATOR) {
    // ZIP64: the real counts and offsets live in the ZIP64 EOCD record the locator points to.
    const at = r.u64(locator + 8, 'ZIP64 end-of-central-directory offset');
    r.need(at, 56, 'ZIP64 end-of-central-directory record');
    if (r.u32(at) !== SIG_ZIP64_EOCD) r.fail(`no ZIP64 end-of-central-directory record at byte ${at}; the archive is corrupt`);
    count = r.u64(at + 32, 'ZIP64 entry count');
    size = r.u64(at + 40, 'ZIP64 central directory size');
    offset = r.u64(at + 48, 'ZIP64 central directory offset');
  } else if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
    r.fail('the end-of-central-directory record defers to a ZIP64 record that is missing; the archive is truncated or corrupt');
  }
  r.need(offset, size, 'central directory');

  const entries = new Map<string, CentralEntry>();
  let pos = offset;
  for (let i = 0; i < count; i++) {
    r.need(pos, 46, `central directory entry ${i}`);
    if (r.u32(pos) !== SIG_CENTRAL) r.fail(`central directory entry ${i} at byte ${pos} has a bad signature; the archive is corrupt`);
    const nameLength = r.u16(pos + 28);
    const extraLength = r.u16(pos + 30);
    const commentLength = r.u16(pos + 32);
    r.need(pos + 46, nameLength + extraLength + commentLength, `central directory entry ${i}'s name and extra fields`);
    const flags = r.u16(pos + 8);
    const name = decodeName(r.bytes.subarray(pos + 46, pos + 46 + nameLength), flags);
    const entry: CentralEntry = {
      name, flags, method: r.u16(pos + 10), crc: r.u32(pos + 16),
      compressedSize: r.u32(pos + 20), size: r.u32(pos + 24), localOffset: r.u32(pos + 42),
    };
    applyZip64Extra(r, entry, pos + 46 + nameLength, extraLength);
    if (entries.has(name)) r.fail(`entry "${name}" appears twice; the archive is ambiguous`);
    entries.set(name, entry);
    pos += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** §4.5.3: the ZIP64 extra field holds, in order, only the sizes/offset whose 32-bit field is saturated. */
function applyZip64Extra(r: Reader, entry: CentralEntry, start: number, length: number): void {
  const wants = [entry.size === 0xffffffff, entry.compressedSize === 0xffffffff, entry.localOffset === 0xffffffff];
  if (!wants.some(Boolean)) return;
  for (let p = start; p + 4 <= start + length;) {
    const id = r.u16(p);
    const size = r.u16(p + 2);
    if (id === 0x0001) {
      let q = p + 4;
      const take = (what: string): number => {
        if (q + 8 > p + 4 + size) r.fail(`entry "${entry.name}": ZIP64 extra field is too short for its ${what}`);
        const v = r.u64(q, `entry "${entry.name}" ${what}`);
        q += 8;
        return v;
      };
      if (wants[0]) entry.size = take('size');
      if (wants[1]) entry.compressedSize = take('compressed size');
      if (wants[2]) entry.localOffset = take('local header offset');
      return;
    }
    p += 4 + size;
  }
  r.fail(`entry "${entry.name}" needs a ZIP64 extra field but has none; the archive is corrupt`);
}

function decodeName(raw: Uint8Array, flags: number): string {
  // Bit 11 marks UTF-8 names; otherwise the spec says CP437, which agrees with latin1 on ASCII.
  return new TextDecoder(flags & 0x800 ? 'utf-8' : 'latin1').decode(raw);
}

function readEntry(r: Reader, entry: CentralEntry): Uint8Array {
  const what = `entry "${entry.name}"`;
  if (entry.flags & 0x1) r.fail(`${what} is encrypted; vicinity reads unencrypted archives only`);
  r.need(entry.localOffset, 30, `${what}'s local header`);
  if (r.u32(entry.localOffset) !== SIG_LOCAL) {
    r.fail(`${what}: no local header at byte ${entry.localOffset}; the archive is corrupt`);
  }
  // Sizes come from the central directory: local headers may defer them to a data descriptor.
  const dataStart = entry.localOffset + 30 + r.u16(entry.localOffset + 26) + r.u16(entry.localOffset + 28);
  r.need(dataStart, entry.compressedSize, `${what}'s data`);
  const raw = r.bytes.subarray(dataStart, dataStart + entry.compressedSize);

  let data: Uint8Array;
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.size) r.fail(`${what} is stored but its sizes disagree; the archive is corrupt`);
    data = raw;
  } else if (entry.method === 8) {
    try {
      data = zlib.inflateRawSync(raw, { maxOutputLength: Math.max(entry.size, 1) });
    } catch (err) {
      return r.fail(`${what} does not inflate (${(err as Error).message}); the archive is corrupt`);
    }
    if (data.byteLength !== entry.size) {
      r.fail(`${what} inflates to ${data.byteLength} bytes, not the ${entry.size} recorded; the archive is corrupt`);
    }
    data = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } else {
    return r.fail(`${what} uses compression method ${entry.method}; only stored (0) and deflate (8) are ` +
      'supported — re-save the checkpoint with torch.save or a standard zip tool');
  }
  const actual = crc32(data);
  if (actual !== entry.crc) {
    r.fail(`${what} fails its CRC-32 check (expected ${hex(entry.crc)}, got ${hex(actual)}); the archive is corrupt`);
  }
  return data;
}

function hex(v: number): string {
  return `0x${v.toString(16).padStart(8, '0')}`;
}

// ---- CRC-32 (IEEE 802.3, the zip polynomial) ---------------------------------------------------

let table: Uint32Array | undefined;

/** zlib.crc32 is native from Node 20.15; older Node 20 releases get the table-driven fallback. */
export function crc32(data: Uint8Array): number {
  const native = (zlib as { crc32?: (d: Uint8Array) => number }).crc32;
  if (typeof native === 'function') return native(data) >>> 0;
  table ??= buildTable();
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function buildTable(): Uint32Array {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
}
