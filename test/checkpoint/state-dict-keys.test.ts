import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CheckpointError, type RawTensor, fromFlatArray } from '../../src/checkpoint/raw-tensor.js';
import { extractStateDict, renameKeys, stripPrefix } from '../../src/checkpoint/state-dict-keys.js';

const t = (v: number): RawTensor => fromFlatArray('float32', [1], [v]);
/** A state dict as readTorchCheckpoint returns it: a plain object of tensors. */
const sd = { 'conv.weight': t(1), 'conv.bias': t(2) };
const ema = { 'conv.weight': t(10), 'conv.bias': t(20) };

function keysAndValues(m: Map<string, RawTensor>): Array<[string, number]> {
  return [...m].map(([k, v]) => [k, new DataView(v.data.buffer, v.data.byteOffset).getFloat32(0, true)]);
}

test('a flat mapping is the state dict itself (object or Map)', () => {
  assert.deepEqual(keysAndValues(extractStateDict(sd)), [['conv.weight', 1], ['conv.bias', 2]]);
  assert.deepEqual(keysAndValues(extractStateDict(new Map(Object.entries(sd)))), [['conv.weight', 1], ['conv.bias', 2]]);
});

test('envelopes: net, model, state_dict, model_state_dict; live weights win over EMA', () => {
  const expected = [['conv.weight', 1], ['conv.bias', 2]];
  assert.deepEqual(keysAndValues(extractStateDict({ net: sd, epoch: 3, acc: 91.5 })), expected);
  assert.deepEqual(keysAndValues(extractStateDict({ model_ema: ema, model: sd, optimizer: { state: new Map() } })), expected);
  assert.deepEqual(keysAndValues(extractStateDict({ state_dict_ema: ema, state_dict: sd })), expected);
  assert.deepEqual(keysAndValues(extractStateDict({ model_state_dict: sd, epoch: 1 })), expected);
  // Only EMA present: take it.
  assert.deepEqual(keysAndValues(extractStateDict({ model_ema: ema, epoch: 1 })), [['conv.weight', 10], ['conv.bias', 20]]);
  // Nested envelopes.
  assert.deepEqual(keysAndValues(extractStateDict({ model: { state_dict: sd, config: 'x' } })), expected);
  // An unknown envelope name with one unambiguous candidate.
  assert.deepEqual(keysAndValues(extractStateDict({ my_weights: sd, step: 7 })), expected);
  // An explicit key overrides the preference order.
  assert.deepEqual(keysAndValues(extractStateDict({ model: sd, model_ema: ema }, { key: 'model_ema' })),
    [['conv.weight', 10], ['conv.bias', 20]]);
});

test('no state dict: the error lists the top-level keys and the fix', () => {
  const cases: Array<[unknown, RegExp]> = [
    [{ a: sd, b: ema }, /top-level keys are a \(an object\), b \(an object\).*Pass \{ key: '<name>' \}/],
    [{ epoch: 3, lr: 0.1 }, /top-level keys are epoch \(number 3\), lr \(number 0\.1\)/],
    [{}, /empty dict/],
    [[sd], /the checkpoint is an array of 1, not a dict/],
    [null, /the checkpoint is null/],
    [{ model: { w: t(1), note: 'not a tensor' } }, /no state dict/],
  ];
  for (const [checkpoint, message] of cases) {
    assert.throws(() => extractStateDict(checkpoint),
      (e: unknown) => e instanceof CheckpointError && message.test(e.message), message.source);
  }
  assert.throws(() => extractStateDict({ model: sd }, { key: 'net' }), /has no key "net"; its top-level keys are model/);
  assert.throws(() => extractStateDict({ epoch: 3 }, { key: 'epoch' }), /"epoch" holds number 3, not a mapping of names to tensors/);
});

test('stripPrefix removes module. only where present', () => {
  const m = new Map([['module.a', 1], ['module.b.module.c', 2], ['head.w', 3]]);
  assert.deepEqual([...stripPrefix(m)], [['a', 1], ['b.module.c', 2], ['head.w', 3]]);
  assert.deepEqual([...stripPrefix(m, 'head.')], [['module.a', 1], ['module.b.module.c', 2], ['w', 3]]);
  assert.throws(() => stripPrefix(new Map([['module.a', 1], ['a', 2]])),
    (e: unknown) => e instanceof CheckpointError && /"module\.a" and "a" both become "a"/.test(e.message));
});

test('renameKeys: string and RegExp rules in order, or a function that may drop keys', () => {
  const m = new Map([['blocks.0.attn.qkv.weight', 1], ['blocks.1.attn.qkv.weight', 2], ['head.fc.bias', 3]]);
  const rules: Array<[RegExp | string, string]> = [[/^blocks\.(\d+)\./, 'layer$1.'], ['attn.', 'attention.'], ['.fc', '']];
  assert.deepEqual([...renameKeys(m, rules)],
    [['layer0.attention.qkv.weight', 1], ['layer1.attention.qkv.weight', 2], ['head.bias', 3]]);
  assert.deepEqual([...renameKeys(m, (k) => (k.startsWith('head.') ? null : k.toUpperCase()))],
    [['BLOCKS.0.ATTN.QKV.WEIGHT', 1], ['BLOCKS.1.ATTN.QKV.WEIGHT', 2]]);
  assert.throws(() => renameKeys(m, [[/\d/, 'N']]), /both become "blocks\.N\.attn\.qkv\.weight"/);
  assert.throws(() => renameKeys(m, [['', 'x']]), /empty string pattern/);
  assert.throws(() => renameKeys(m, () => 7 as unknown as string), /return a string, or null/);
});
