import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  CheckpointError, DTYPES, DTYPE_SIZE, type DType, type RawTensor, fromFlatArray, toFlatArray,
} from '../../src/checkpoint/raw-tensor.js';
import {
  parseSafetensors, readSafetensors, serializeSafetensors, writeSafetensors,
} from '../../src/checkpoint/safetensors.js';
import { fixturesDir } from '../support/paths.js';

/** Values per dtype that exercise sign, rounding and range edges; all exactly representable. */
const SAMPLES: Record<DType, Array<number | bigint | boolean>> = {
  float32: [0, -0, 1.5, -2.25, 3.4028234663852886e38, 1.401298464324817e-45, Infinity, NaN],
  float64: [0, -0, Math.PI, -1e300, 5e-324, Number.MAX_VALUE, -Infinity, NaN],
  bfloat16: [0, -0, 1, -2.5, 3.3895313892515355e38, 9.183549615799121e-41, Infinity, NaN],
  float16: [0, -0, 1, -2.5, 65504, 5.960464477539063e-8, 6.103515625e-5, -Infinity],
  int64: [0n, -1n, 2n ** 62n, -(2n ** 63n), 2n ** 63n - 1n, 9007199254740993n, 7n, -7n],
  int32: [0, -1, 2 ** 31 - 1, -(2 ** 31), 5, 6, 7, 8],
  int16: [0, -1, 32767, -32768, 5, 6, 7, 8],
  int8: [0, -1, 127, -128, 5, 6, 7, 8],
  uint8: [0, 1, 255, 128, 5, 6, 7, 8],
  bool: [true, false, true, true, false, false, true, false],
};

function allDtypes(): Map<string, RawTensor> {
  const tensors = new Map<string, RawTensor>();
  for (const dtype of DTYPES) tensors.set(`t.${dtype}`, fromFlatArray(dtype, [2, 4], SAMPLES[dtype]));
  tensors.set('scalar', fromFlatArray('float32', [], [42]));
  tensors.set('empty', fromFlatArray('int64', [0, 3], []));
  return tensors;
}

/** Hand-assembles a file from an arbitrary header, to produce malformed inputs. */
function fileWith(header: unknown, data: Uint8Array | number): Uint8Array {
  const json = header instanceof Uint8Array ? header
    : new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.byteLength + body.byteLength);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.byteLength), true);
  out.set(json, 8);
  out.set(body, 8 + json.byteLength);
  return out;
}

function headerOf(bytes: Uint8Array): { length: number; json: Record<string, unknown> } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { length, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) as Record<string, unknown> };
}

test('round trip keeps every dtype bit-exact', () => {
  const tensors = allDtypes();
  const parsed = parseSafetensors(serializeSafetensors(tensors, { format: 'pt', note: 'ünïcode' }));
  assert.deepEqual(parsed.metadata, { format: 'pt', note: 'ünïcode' });
  assert.deepEqual([...parsed.tensors.keys()].sort(), [...tensors.keys()].sort());
  for (const [name, t] of tensors) assert.deepEqual(parsed.tensors.get(name), t, name);
  for (const dtype of DTYPES) {
    const values = toFlatArray(parsed.tensors.get(`t.${dtype}`)!);
    assert.deepEqual(values, SAMPLES[dtype], dtype);
  }
  assert.deepEqual(toFlatArray(parsed.tensors.get('scalar')!), [42]);
  assert.deepEqual(parsed.tensors.get('empty')!.shape, [0, 3]);
});

test('16-bit floats: every bit pattern survives decode/encode; ties round to even as PyTorch does', () => {
  const valueOf = (dtype: DType, bits: number): number =>
    toFlatArray({ dtype, shape: [], data: Uint8Array.of(bits & 0xff, bits >> 8) })[0] as number;
  const bitsOf = (dtype: DType, v: number): number => {
    const d = fromFlatArray(dtype, [], [v]).data;
    return d[0]! | (d[1]! << 8);
  };
  for (let bits = 0; bits < 0x10000; bits++) {
    // NaN payloads are not preserved (both encoders emit the canonical quiet NaN).
    if (!((bits & 0x7c00) === 0x7c00 && (bits & 0x3ff) !== 0)) {
      assert.equal(bitsOf('float16', valueOf('float16', bits)), bits, `float16 0x${bits.toString(16)}`);
    }
    if (!((bits & 0x7f80) === 0x7f80 && (bits & 0x7f) !== 0)) {
      assert.equal(bitsOf('bfloat16', valueOf('bfloat16', bits)), bits, `bfloat16 0x${bits.toString(16)}`);
    }
  }
  // Values checked against torch.tensor([v], dtype=torch.float64).half() / .bfloat16().
  assert.equal(bitsOf('float16', 1 + 2 ** -11), 0x3c00); // tie → even
  assert.equal(bitsOf('float16', 1 + 3 * 2 ** -11), 0x3c02); // tie → even (up)
  assert.equal(bitsOf('float16', 65520), 0x7c00); // first value that overflows
  assert.equal(bitsOf('float16', 65519), 0x7bff);
  assert.equal(bitsOf('float16', 2 ** -25), 0x0000); // half the smallest subnormal → 0
  assert.equal(bitsOf('float16', 3 * 2 ** -25), 0x0002);
  assert.equal(bitsOf('float16', -0.006662368881949307), 0x9ed2); // double rounding via float32, like torch
  assert.equal(bitsOf('bfloat16', 1 + 2 ** -8), 0x3f80);
  assert.equal(bitsOf('bfloat16', 1 + 3 * 2 ** -8), 0x3f82);
  assert.equal(bitsOf('bfloat16', NaN), 0x7fc0);
});

test('writer orders tensors by item size then name, aligns each to its item size, pads the header', () => {
  const bytes = serializeSafetensors({ b: fromFlatArray('int8', [3], [1, 2, 3]), a: fromFlatArray('float64', [1], [1]),
    c: fromFlatArray('float64', [2], [1, 2]), d: fromFlatArray('float32', [1], [1]) }, { k: 'v' });
  const { length, json } = headerOf(bytes);
  assert.equal(length % 8, 0);
  assert.deepEqual(Object.keys(json), ['__metadata__', 'a', 'c', 'd', 'b']);
  for (const [name, info] of Object.entries(json)) {
    if (name === '__metadata__') continue;
    const { dtype, data_offsets: [begin] } = info as { dtype: string; data_offsets: [number, number] };
    assert.equal((8 + length + begin) % ({ F64: 8, F32: 4, I8: 1 } as Record<string, number>)[dtype]!, 0, name);
  }
  // No metadata → no __metadata__ entry, like the reference writer.
  assert.ok(!('__metadata__' in headerOf(serializeSafetensors({ a: fromFlatArray('uint8', [1], [1]) })).json));
});

test('every reference fixture parses and matches an independent Python reader', () => {
  const files = readdirSync(fixturesDir).filter((f) => f.endsWith('.safetensors')).sort();
  assert.ok(files.length > 0, `no .safetensors fixtures in ${fixturesDir}`);
  // Oracle: Python's struct/json/array (no shared code), summed sequentially like the JS side.
  const oracle = JSON.parse(execFileSync('/usr/bin/python3', ['-c', `
import json, struct, sys, array
out = {}
for f in sys.argv[1:]:
    b = open(f, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); res = {}
    for k, v in h.items():
        if k == '__metadata__': res[k] = v; continue
        s, e = v['data_offsets']; a = array.array({'F32': 'f', 'I64': 'q', 'F64': 'd'}[v['dtype']], b[8 + n + s:8 + n + e])
        total = 0.0
        for x in a: total += float(x)
        res[k] = [v['dtype'], v['shape'], total, list(a[:4])]
    out[f] = res
print(json.dumps(out))`, ...files.map((f) => path.join(fixturesDir, f))], { encoding: 'utf8' })) as
    Record<string, Record<string, unknown>>;
  const fileDtype: Record<string, DType> = { F32: 'float32', I64: 'int64', F64: 'float64' };
  for (const file of files) {
    const full = path.join(fixturesDir, file);
    const { tensors, metadata } = parseSafetensors(readFileSync(full), file);
    const expected = oracle[full]!;
    assert.deepEqual(metadata, expected.__metadata__ ?? {}, file);
    assert.equal(tensors.size, Object.keys(expected).length - ('__metadata__' in expected ? 1 : 0), file);
    for (const [name, t] of tensors) {
      const [dtype, shape, total, head] = expected[name] as [string, number[], number, number[]];
      assert.equal(t.dtype, fileDtype[dtype], `${file} ${name}`);
      assert.deepEqual(t.shape, shape, `${file} ${name}`);
      const values = toFlatArray(t).map(Number);
      assert.equal(values.reduce((a, b) => a + b, 0), total, `${file} ${name} sum`);
      assert.deepEqual(values.slice(0, 4), head, `${file} ${name} head`);
    }
    // Re-serializing what was read reproduces the same tensors and metadata.
    const again = parseSafetensors(serializeSafetensors(tensors, metadata));
    assert.deepEqual(again.metadata, metadata);
    for (const [name, t] of tensors) assert.deepEqual(again.tensors.get(name), t, `${file} ${name} rewrite`);
  }
});

test('readSafetensors / writeSafetensors: atomic replace, no temporary files left behind', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-st-'));
  try {
    const file = path.join(dir, 'w.safetensors');
    await writeSafetensors(file, allDtypes(), { step: '1' });
    await writeSafetensors(file, { x: fromFlatArray('float32', [2], [1, 2]) }, { step: '2' });
    const read = await readSafetensors(file);
    assert.deepEqual(read.metadata, { step: '2' });
    assert.deepEqual([...read.tensors.keys()], ['x']);
    assert.deepEqual(toFlatArray(read.tensors.get('x')!), [1, 2]);
    // A rejected write leaves the previous file untouched.
    const bad = { data: new Uint8Array(3), dtype: 'float32', shape: [1] } as RawTensor;
    await assert.rejects(writeSafetensors(file, { bad }), CheckpointError);
    assert.deepEqual(readdirSync(dir), ['w.safetensors']);
    assert.deepEqual([...(await readSafetensors(file)).tensors.keys()], ['x']);
    await assert.rejects(readSafetensors(path.join(dir, 'missing.safetensors')), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writer rejects invalid input with CheckpointError', () => {
  const ok = fromFlatArray('float32', [1], [1]);
  assert.throws(() => serializeSafetensors({ __metadata__: ok }), /reserved/);
  assert.throws(() => serializeSafetensors({ a: ok }, { n: 3 as unknown as string }), /metadata values must be strings/);
  assert.throws(() => serializeSafetensors({ a: { ...ok, shape: [2] } }), /needs 8 bytes but data holds 4/);
  assert.throws(() => serializeSafetensors({ a: { ...ok, dtype: 'complex64' as DType } }), CheckpointError);
  assert.throws(() => serializeSafetensors({ a: { ...ok, shape: [-1] } }), CheckpointError);
});

test('truncation at every cut point is a CheckpointError', () => {
  const small = serializeSafetensors({ a: fromFlatArray('float32', [3], [1, 2, 3]), b: fromFlatArray('int64', [1], [5n]) }, { m: 'x' });
  for (let cut = 0; cut < small.byteLength; cut++) {
    assert.throws(() => parseSafetensors(small.subarray(0, cut)), CheckpointError, `cut at ${cut}`);
  }
  const fixture = readFileSync(path.join(fixturesDir, 'lesa-open.safetensors'));
  for (let cut = 0; cut < fixture.byteLength; cut += 97) {
    assert.throws(() => parseSafetensors(fixture.subarray(0, cut)), CheckpointError, `fixture cut at ${cut}`);
  }
});

test('malformed headers name the problem', () => {
  const f32 = (offsets: unknown, shape: unknown = [2]): unknown => ({ dtype: 'F32', shape, data_offsets: offsets });
  const cases: Array<[Uint8Array, RegExp]> = [
    [Uint8Array.of(1, 2, 3), /too short/],
    [(() => { const b = fileWith({}, 0); new DataView(b.buffer).setBigUint64(0, 1n << 40n, true); return b; })(), /header length 1099511627776 is larger/],
    [fileWith('{"a": ', 0), /not valid JSON/],
    [fileWith('[1, 2]', 0), /must be a JSON object/],
    [fileWith('null', 0), /must be a JSON object/],
    [fileWith(Uint8Array.of(0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d), 0), /not valid UTF-8/],
    [fileWith({ a: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1), /unknown dtype "F8_E4M3"/],
    [fileWith({ a: f32([0, 8], [-2]) }, 8), /non-negative integers/],
    [fileWith({ a: f32([0, 8], [1.5]) }, 8), /non-negative integers/],
    [fileWith({ a: f32([0, 8], 'x') }, 8), /non-negative integers/],
    [fileWith({ a: f32([0, 8.5]) }, 8), /data_offsets/],
    [fileWith({ a: f32([0]) }, 8), /data_offsets/],
    [fileWith({ a: f32([8, 0]) }, 8), /end before they begin/],
    [fileWith({ a: f32([0, 16]) }, 8), /reach past the 8-byte data buffer/],
    [fileWith({ a: f32([0, 12], [2]) }, 12), /needs 8 bytes/],
    [fileWith({ a: f32([0, 8]), b: f32([4, 12]) }, 12), /overlaps/],
    [fileWith({ a: f32([0, 8]), b: f32([12, 20]) }, 20), /gap/],
    [fileWith({ a: f32([0, 8]) }, 12), /trailing bytes/],
    [fileWith({ a: 7 }, 0), /header entry must be an object/],
    [fileWith({ __metadata__: { k: 1 }, a: f32([0, 8]) }, 8), /metadata values must be strings/],
    [fileWith({ __metadata__: ['x'], a: f32([0, 8]) }, 8), /must be an object of strings/],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(() => parseSafetensors(bytes, 'bad.safetensors'),
      (err: unknown) => err instanceof CheckpointError && message.test(err.message) && err.message.startsWith('bad.safetensors: '),
      message.source);
  }
  // Zero-size tensors may share an offset; a null __metadata__ reads as empty.
  const ok = parseSafetensors(fileWith({ __metadata__: null, e: f32([0, 0], [0]), a: f32([0, 8]) }, 8));
  assert.deepEqual(ok.metadata, {});
  assert.deepEqual(ok.tensors.get('e')!.shape, [0]);
});

test('any corrupted header byte gives a valid result or a CheckpointError, never a crash', () => {
  const bytes = serializeSafetensors({ w: fromFlatArray('float32', [2, 2], [1, 2, 3, 4]), n: fromFlatArray('int64', [], [3n]) }, { a: 'b' });
  const { length } = headerOf(bytes);
  for (let i = 0; i < 8 + length; i++) {
    for (const value of [0x00, 0x22, 0x30, 0x39, 0x5b, 0x7d, 0xff, bytes[i]! ^ 0x01]) {
      const copy = bytes.slice();
      copy[i] = value;
      try {
        const { tensors } = parseSafetensors(copy);
        for (const t of tensors.values()) assert.equal(t.data.byteLength, t.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[t.dtype]);
      } catch (err) {
        assert.ok(err instanceof CheckpointError, `byte ${i} = ${value}: ${String(err)}`);
      }
    }
  }
});

test('parsed tensors are plain views into the input', () => {
  const bytes = serializeSafetensors({ a: fromFlatArray('uint8', [2], [1, 2]) });
  const t = parseSafetensors(Buffer.from(bytes)).tensors.get('a')!;
  assert.equal(Object.getPrototypeOf(t.data), Uint8Array.prototype);
});
