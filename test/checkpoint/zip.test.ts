import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { CheckpointError } from '../../src/checkpoint/raw-tensor.js';
import { crc32, openZip } from '../../src/checkpoint/zip.js';

interface TestEntry { name: string; data: Uint8Array; method?: 0 | 8; flags?: number }

/**
 * A tiny zip writer for building inputs the reader must handle, ZIP64 included (small real ZIP64
 * archives are hard to get from other tools). Python's zipfile checks its output below.
 */
function buildZip(entries: TestEntry[], options: { zip64?: boolean; comment?: string } = {}): Uint8Array {
  const parts: Uint8Array[] = [];
  const central: Uint8Array[] = [];
  let offset = 0;
  const enc = new TextEncoder();
  for (const e of entries) {
    const name = enc.encode(e.name);
    const body = e.method === 8 ? new Uint8Array(deflateRawSync(e.data)) : e.data;
    const local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true);
    local.setUint16(6, (e.flags ?? 0) | 0x800, true);
    local.setUint16(8, e.method ?? 0, true);
    local.setUint32(14, crc32(e.data), true);
    local.setUint32(18, body.byteLength, true);
    local.setUint32(22, e.data.byteLength, true);
    local.setUint16(26, name.byteLength, true);
    parts.push(new Uint8Array(local.buffer), name, body);

    const extra = options.zip64 ? new DataView(new ArrayBuffer(28)) : undefined;
    if (extra) {
      extra.setUint16(0, 0x0001, true);
      extra.setUint16(2, 24, true);
      extra.setBigUint64(4, BigInt(e.data.byteLength), true);
      extra.setBigUint64(12, BigInt(body.byteLength), true);
      extra.setBigUint64(20, BigInt(offset), true);
    }
    const cd = new DataView(new ArrayBuffer(46));
    cd.setUint32(0, 0x02014b50, true);
    cd.setUint16(4, 45, true);
    cd.setUint16(6, 45, true);
    cd.setUint16(8, (e.flags ?? 0) | 0x800, true);
    cd.setUint16(10, e.method ?? 0, true);
    cd.setUint32(16, crc32(e.data), true);
    cd.setUint32(20, extra ? 0xffffffff : body.byteLength, true);
    cd.setUint32(24, extra ? 0xffffffff : e.data.byteLength, true);
    cd.setUint16(28, name.byteLength, true);
    cd.setUint16(30, extra ? 28 : 0, true);
    cd.setUint32(42, extra ? 0xffffffff : offset, true);
    central.push(new Uint8Array(cd.buffer), name, ...(extra ? [new Uint8Array(extra.buffer)] : []));
    offset += 30 + name.byteLength + body.byteLength;
  }
  const cdSize = central.reduce((s, p) => s + p.byteLength, 0);
  const tail: Uint8Array[] = [];
  if (options.zip64) {
    const rec = new DataView(new ArrayBuffer(56));
    rec.setUint32(0, 0x06064b50, true);
    rec.setBigUint64(4, 44n, true);
    rec.setUint16(12, 45, true);
    rec.setUint16(14, 45, true);
    rec.setBigUint64(24, BigInt(entries.length), true);
    rec.setBigUint64(32, BigInt(entries.length), true);
    rec.setBigUint64(40, BigInt(cdSize), true);
    rec.setBigUint64(48, BigInt(offset), true);
    const loc = new DataView(new ArrayBuffer(20));
    loc.setUint32(0, 0x07064b50, true);
    loc.setBigUint64(8, BigInt(offset + cdSize), true);
    loc.setUint32(16, 1, true);
    tail.push(new Uint8Array(rec.buffer), new Uint8Array(loc.buffer));
  }
  const comment = enc.encode(options.comment ?? '');
  const eocd = new DataView(new ArrayBuffer(22));
  eocd.setUint32(0, 0x06054b50, true);
  eocd.setUint16(8, options.zip64 ? 0xffff : entries.length, true);
  eocd.setUint16(10, options.zip64 ? 0xffff : entries.length, true);
  eocd.setUint32(12, options.zip64 ? 0xffffffff : cdSize, true);
  eocd.setUint32(16, options.zip64 ? 0xffffffff : offset, true);
  eocd.setUint16(20, comment.byteLength, true);
  // A plain Uint8Array, not a Buffer: Buffer#slice would alias instead of copying.
  return new Uint8Array(Buffer.concat([...parts, ...central, ...tail, new Uint8Array(eocd.buffer), comment]));
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const decode = (b: Uint8Array): string => new TextDecoder().decode(b);
const SAMPLE: TestEntry[] = [
  { name: 'archive/data.pkl', data: text('pickle bytes '.repeat(20)), method: 8 },
  { name: 'archive/data/0', data: Uint8Array.from({ length: 64 }, (_, i) => i * 3) },
  { name: 'archive/version', data: text('3\n') },
  { name: 'archive/ünï.txt', data: new Uint8Array(0) },
];

function assertSample(bytes: Uint8Array): void {
  const zip = openZip(bytes);
  assert.deepEqual(zip.names(), SAMPLE.map((e) => e.name));
  for (const e of SAMPLE) assert.deepEqual([...zip.read(e.name)], [...e.data], e.name);
}

test('reads stored, deflated and ZIP64 archives (checked against Python zipfile)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-zip-'));
  try {
    const ours = path.join(dir, 'ours64.zip');
    writeFileSync(ours, buildZip(SAMPLE, { zip64: true, comment: 'has a comment' }));
    const theirs = path.join(dir, 'python.zip');
    // Python writes a deflated + stored archive with a comment, and reads back our ZIP64 one.
    const seen = JSON.parse(execFileSync('/usr/bin/python3', ['-c', `
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[2], 'w') as z:
    z.writestr('a/stored.bin', bytes(range(256)) * 3, compress_type=zipfile.ZIP_STORED)
    z.writestr('a/deflated.txt', 'hello ' * 500, compress_type=zipfile.ZIP_DEFLATED)
    z.comment = b'python archive'
with zipfile.ZipFile(sys.argv[1]) as z:
    assert z.testzip() is None
    print(json.dumps({i.filename: list(z.read(i.filename)) for i in z.infolist()}))`, ours, theirs], { encoding: 'utf8' })) as
      Record<string, number[]>;
    assert.deepEqual(Object.keys(seen), SAMPLE.map((e) => e.name));
    for (const e of SAMPLE) assert.deepEqual(seen[e.name], [...e.data]);

    assertSample(readFileSync(ours));
    const zip = openZip(readFileSync(theirs));
    assert.deepEqual(zip.names(), ['a/stored.bin', 'a/deflated.txt']);
    assert.deepEqual([...zip.read('a/stored.bin')], Array.from({ length: 768 }, (_, i) => i % 256));
    assert.equal(decode(zip.read('a/deflated.txt')), 'hello '.repeat(500));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('plain (non-ZIP64) archives read the same', () => {
  assertSample(buildZip(SAMPLE));
  assert.ok(openZip(buildZip(SAMPLE)).has('archive/version'));
  assert.ok(!openZip(buildZip(SAMPLE)).has('archive/nope'));
});

test('a missing entry names what the archive does hold', () => {
  assert.throws(() => openZip(buildZip(SAMPLE), 'ck.pt').read('archive/nope'),
    (e: unknown) => e instanceof CheckpointError && /ck\.pt: archive has no entry "archive\/nope".*archive\/data\.pkl/.test(e.message));
});

test('truncation at every cut point is a CheckpointError', () => {
  for (const zip64 of [false, true]) {
    const bytes = buildZip(SAMPLE, { zip64 });
    for (let cut = 0; cut < bytes.byteLength; cut++) {
      assert.throws(() => {
        const zip = openZip(bytes.subarray(0, cut));
        for (const name of zip.names()) zip.read(name);
      }, CheckpointError, `zip64=${zip64} cut at ${cut}`);
    }
  }
});

test('any single corrupted byte reads back correctly or is a CheckpointError', () => {
  for (const zip64 of [false, true]) {
    const bytes = buildZip(SAMPLE, { zip64 });
    for (let i = 0; i < bytes.byteLength; i++) {
      for (const value of [0x00, 0xff, bytes[i]! ^ 0x10]) {
        if (value === bytes[i]) continue;
        const copy = bytes.slice();
        copy[i] = value;
        try {
          const zip = openZip(copy);
          // Whatever still opens must yield the original contents (the CRC guards the data).
          for (const e of SAMPLE) if (zip.has(e.name)) assert.deepEqual([...zip.read(e.name)], [...e.data], `byte ${i}`);
        } catch (err) {
          assert.ok(err instanceof CheckpointError, `byte ${i} = ${value}: ${String(err)}`);
        }
      }
    }
  }
});

test('specific corruptions name the problem', () => {
  const base = buildZip([{ name: 'x', data: text('hello') }]);
  const cases: Array<[Uint8Array, RegExp]> = [
    [new Uint8Array(10), /too short/],
    [new Uint8Array(100), /no end-of-central-directory/],
    [(() => { const b = base.slice(); b[30 + 1 + 2] ^= 0xff; return b; })(), /CRC-32/],
    [buildZip([{ name: 'x', data: text('hello'), flags: 1 }]), /encrypted/],
    [(() => { const b = base.slice(); b[8] = 12; b[36 + 10] = 12; return b; })(), /compression method 12/],
    [(() => { const b = base.slice(); b.set([0, 0, 0, 0], 0); return b; })(), /no local header/],
    [buildZip([{ name: 'x', data: text('a') }, { name: 'x', data: text('b') }]), /appears twice/],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(() => { const z = openZip(bytes, 'f.zip'); for (const n of z.names()) z.read(n); },
      (e: unknown) => e instanceof CheckpointError && message.test(e.message) && e.message.startsWith('f.zip: '), message.source);
  }
  // Deflate data that does not inflate.
  const broken = buildZip([{ name: 'd', data: text('x'.repeat(100)), method: 8 }]);
  broken.fill(0xff, 31, 35);
  assert.throws(() => openZip(broken).read('d'), CheckpointError);
});

test('crc32 matches the standard check value', () => {
  assert.equal(crc32(text('123456789')), 0xcbf43926);
  assert.equal(crc32(new Uint8Array(0)), 0);
});
