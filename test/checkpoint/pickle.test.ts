import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CheckpointError } from '../../src/checkpoint/raw-tensor.js';
import { type PickleGlobal, unpickle } from '../../src/checkpoint/pickle.js';

/** Runs a Python 3 snippet (standard library only) that prints {name: pickle hex}. */
function pythonPickles(body: string, ...args: string[]): Record<string, Uint8Array> {
  const out = execFileSync('/usr/bin/python3', ['-c', `import collections, json, pickle, sys\n${body}`, ...args], { encoding: 'utf8' });
  const hex = JSON.parse(out) as Record<string, string>;
  return Object.fromEntries(Object.entries(hex).map(([k, v]) => [k, Uint8Array.from(Buffer.from(v, 'hex'))]));
}

const SAMPLE_PY = `
shared = [1, 2]
od = collections.OrderedDict([('z', 1), ('a', 2.5)])
rec = []; rec.append(rec)
obj = {
  'ints': [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, 2**53, 2**53 + 1, -2**63, 2**100, -2**100],
  'floats': [0.0, -0.0, 1.5, -1e300, 5e-324, float('inf'), float('-inf')],
  'nan': float('nan'),
  'strs': ['', 'ascii', 'ünïcødé ✓', '🙂', 'x' * 300],
  'bytes': [b'', b'\\x00\\xff\\x80abc'],
  'consts': [None, True, False],
  'tuple': (1, ('nested', ()), [3]),
  'od': od,
  'int_keys': {0: 'zero', 7: 'seven'},
  'tuple_keys': {(1, 'a'): 'x'},
  'sets': [{1, 2}, frozenset({'f'})],
  'shared': [shared, shared],
  'rec': rec,
  '__proto__': 'just a key',
}
print(json.dumps({f'p{p}': pickle.dumps(obj, protocol=p).hex() for p in (2, 3, 4, 5)}))`;

test('Python values unpickle to the documented JS values, protocols 2-5', () => {
  const pickles = pythonPickles(SAMPLE_PY);
  assert.deepEqual(Object.keys(pickles), ['p2', 'p3', 'p4', 'p5']);
  for (const [protocol, bytes] of Object.entries(pickles)) {
    const v = unpickle(bytes) as Record<string, unknown>;
    assert.deepEqual(v.ints, [0, 1, -1, 255, 256, 65535, 65536, -(2 ** 31), 2 ** 31 - 1, 2 ** 31, 2n ** 53n,
      2n ** 53n + 1n, -(2n ** 63n), 2n ** 100n, -(2n ** 100n)], protocol);
    assert.deepEqual(v.floats, [0, -0, 1.5, -1e300, 5e-324, Infinity, -Infinity], protocol);
    assert.ok(Number.isNaN(v.nan), protocol);
    assert.deepEqual(v.strs, ['', 'ascii', 'ünïcødé ✓', '🙂', 'x'.repeat(300)], protocol);
    assert.deepEqual(v.bytes, [new Uint8Array(0), Uint8Array.of(0, 0xff, 0x80, 0x61, 0x62, 0x63)], protocol);
    assert.deepEqual(v.consts, [null, true, false], protocol);
    assert.deepEqual(v.tuple, [1, ['nested', []], [3]], protocol);
    // OrderedDict keeps its order; all-string keys give a plain object.
    assert.deepEqual(Object.entries(v.od as object), [['z', 1], ['a', 2.5]], protocol);
    assert.deepEqual(v.int_keys, new Map<unknown, unknown>([[0, 'zero'], [7, 'seven']]), protocol);
    const tupleKeys = v.tuple_keys as Map<unknown, unknown>;
    assert.ok(tupleKeys instanceof Map, protocol);
    assert.deepEqual([...tupleKeys], [[[1, 'a'], 'x']], protocol);
    assert.deepEqual(v.sets, [new Set([1, 2]), new Set(['f'])], protocol);
    const shared = v.shared as unknown[][];
    assert.equal(shared[0], shared[1], `${protocol}: shared references stay shared`);
    const rec = v.rec as unknown[];
    assert.equal(rec[0], rec, `${protocol}: a self-containing list stays cyclic`);
    // "__proto__" is an ordinary own key, not a prototype change.
    assert.equal(Object.getPrototypeOf(v), Object.prototype);
    assert.equal(Object.getOwnPropertyDescriptor(v, '__proto__')?.value, 'just a key');
  }
});

/** Hand-assembled protocol 2 pickle: PROTO 2, GLOBAL module\nname\n, args, REDUCE, STOP. */
function callPickle(module: string, name: string, arg: string): Uint8Array {
  const a = new TextEncoder().encode(arg);
  const len = new Uint8Array(new Uint32Array([a.byteLength]).buffer);
  return Uint8Array.from([0x80, 2, ...new TextEncoder().encode(`c${module}\n${name}\n`), 0x58, ...len, ...a, 0x85, 0x52, 0x2e]);
}

test('globals outside the whitelist are refused before anything runs', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-pickle-'));
  try {
    const marker = path.join(dir, 'pwned');
    // Real Python-made exploit pickles: os.system (pickled as posix.system), eval via STACK_GLOBAL.
    const evil = pythonPickles(`
import os
class Evil:
    def __reduce__(self): return (os.system, ('touch ' + sys.argv[1],))
class Eval:
    def __reduce__(self): return (eval, ('open(sys.argv[1], "w")',))
print(json.dumps({'system': pickle.dumps({'w': Evil()}, protocol=2).hex(),
                  'eval4': pickle.dumps([Eval()], protocol=4).hex(),
                  'getattr2': pickle.dumps(getattr, protocol=2).hex()}))`, marker);
    const cases: Array<[Uint8Array, string]> = [
      [evil.system!, 'posix.system'],
      [evil.eval4!, 'builtins.eval'],
      [evil.getattr2!, 'builtins.getattr'],
      [callPickle('os', 'system', `touch ${marker}`), 'os.system'],
      [callPickle('builtins', 'exec', `open('${marker}', 'w')`), 'builtins.exec'],
      [callPickle('__builtin__', 'eval', '1'), 'builtins.eval'],
      [callPickle('subprocess', 'Popen', 'true'), 'subprocess.Popen'],
      [callPickle('torch.nn.modules.linear', 'Linear', ''), 'torch.nn.modules.linear.Linear'],
    ];
    for (const [bytes, name] of cases) {
      assert.throws(() => unpickle(bytes, { source: 'evil.pkl' }), (e: unknown) =>
        e instanceof CheckpointError &&
        e.message.includes(`checkpoint refers to ${name}, which vicinity does not load (only tensors, dicts, lists, numbers and strings)`) &&
        e.message.includes('torch.save(model.state_dict(), path)'), name);
    }
    assert.ok(!existsSync(marker), 'no payload ran');
    assert.throws(() => unpickle(callPickle('__torch__.M', 'M', '')), /TorchScript/);
    assert.throws(() => unpickle(callPickle('numpy.core.multiarray', 'scalar', '')), /NumPy/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('caller-supplied globals and persistent ids are the only extension points', () => {
  const seen: unknown[][] = [];
  const point: PickleGlobal = { qualifiedName: 'geo.Point', call: (args) => { seen.push(args); return { x: args[0] }; } };
  const bytes = callPickle('geo', 'Point', 'p');
  assert.deepEqual(unpickle(bytes, { globals: new Map([['geo.Point', point]]) }), { x: 'p' });
  assert.deepEqual(seen, [['p']]);
  // BINPERSID with a persistent id tuple ('k', 3); refused without a persistentLoad.
  const persid = Uint8Array.of(0x80, 2, 0x58, 1, 0, 0, 0, 0x6b, 0x4b, 3, 0x86, 0x51, 0x2e);
  assert.deepEqual(unpickle(persid, { persistentLoad: (pid) => ({ loaded: pid }) }), { loaded: ['k', 3] });
  assert.throws(() => unpickle(persid), /persistent id/);
});

test('truncation at every cut point is a CheckpointError', () => {
  const { p2, p4 } = pythonPickles(`
obj = {'a': [1, 2.5, 'three', None, True], 'b': collections.OrderedDict(x=(1, 2)), 'c': 2**70, 'd': b'xy'}
print(json.dumps({'p2': pickle.dumps(obj, protocol=2).hex(), 'p4': pickle.dumps(obj, protocol=4).hex()}))`);
  for (const bytes of [p2!, p4!]) {
    assert.deepEqual((unpickle(bytes) as { c: bigint }).c, 2n ** 70n);
    for (let cut = 0; cut < bytes.byteLength; cut++) {
      assert.throws(() => unpickle(bytes.subarray(0, cut)), CheckpointError, `cut at ${cut}`);
    }
    // Any single corrupted byte yields a value or a CheckpointError — never another exception.
    for (let i = 0; i < bytes.byteLength; i++) {
      for (const value of [0x00, 0x28, 0x2e, 0x52, 0x63, 0x71, 0x8a, 0xff]) {
        const copy = bytes.slice();
        copy[i] = value;
        try { unpickle(copy); } catch (err) { assert.ok(err instanceof CheckpointError, `byte ${i} = ${value}: ${String(err)}`); }
      }
    }
  }
});

test('malformed opcode streams name the problem', () => {
  const cases: Array<[number[], RegExp]> = [
    [[], /without a STOP/],
    [[0x80, 2, 0x4e], /without a STOP/],
    [[0x80, 9, 0x4e, 0x2e], /protocol 9/],
    [[0x80, 2, 0x2e], /STOP with 0 values/],
    [[0x80, 2, 0x52, 0x2e], /stack underflow/],
    [[0x80, 2, 0x4e, 0x4e, 0x2e], /STOP with 2 values/],
    [[0x80, 2, 0x74, 0x2e], /expected a MARK/],
    [[0x80, 2, 0x68, 5, 0x2e], /memo slot 5 is read before it is written/],
    [[0x80, 2, 0x4e, 0x4e, 0x61, 0x2e], /APPEND\(S\) on null/],
    [[0x80, 2, 0x5d, 0x4e, 0x4e, 0x73, 0x2e], /SETITEM\(S\) on an array/],
    [[0x80, 2, 0x4e, 0x29, 0x52, 0x2e], /not a whitelisted global/],
    [[0x80, 2, 0x5d, 0x7d, 0x62, 0x2e], /BUILD sets state on an array/],
    [[0x80, 2, 0x46, 0x2e], /opcode 0x46 is not one vicinity reads/],
    [[0x80, 2, 0x58, 0xff, 0xff, 0xff, 0x7f, 0x2e], /runs past the end/],
    [[0x80, 2, 0x58, 2, 0, 0, 0, 0xc3, 0x28, 0x2e], /not valid UTF-8/],
    [[0x80, 2, 0x63, 0x6f, 0x73], /no terminating newline/],
  ];
  for (const [bytes, message] of cases) {
    assert.throws(() => unpickle(Uint8Array.from(bytes), { source: 'x.pkl' }),
      (e: unknown) => e instanceof CheckpointError && message.test(e.message) && e.message.startsWith('x.pkl: '), message.source);
  }
});

test('deep nesting does not overflow the JS stack', () => {
  const depth = 100_000;
  // EMPTY_LIST × depth, then APPEND × (depth - 1): [[[…]]]
  const bytes = new Uint8Array(2 + depth + (depth - 1) + 1);
  bytes.set([0x80, 2]);
  bytes.fill(0x5d, 2, 2 + depth);
  bytes.fill(0x61, 2 + depth, 2 + 2 * depth - 1);
  bytes[bytes.length - 1] = 0x2e;
  let v = unpickle(bytes) as unknown[];
  let levels = 1;
  while (v.length === 1) { v = v[0] as unknown[]; levels++; }
  assert.equal(levels, depth);
});
