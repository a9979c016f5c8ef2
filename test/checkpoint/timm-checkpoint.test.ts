import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { addSafeGlobals, getSafeGlobals, PickledObject } from '../../src/checkpoint/pickle.js';
import { CheckpointError } from '../../src/checkpoint/raw-tensor.js';
import { loadPretrained } from '../../src/checkpoint/tensor-io.js';
import { readTorchCheckpoint } from '../../src/checkpoint/torch-pickle.js';
import { Linear } from '../../src/nn/index.js';

/**
 * PyTorch writes checkpoints the way timm's train.py (CheckpointSaver) does: epoch, arch,
 * state_dict, optimizer, version, args (an argparse.Namespace), state_dict_ema, metric, amp scaler.
 */
const GENERATE = String.raw`
import argparse, collections, json, os, pickle, sys, zipfile, torch
out = sys.argv[1]; P = lambda n: os.path.join(out, n)
torch.manual_seed(0)
model = torch.nn.Linear(3, 2)
ema = torch.nn.Linear(3, 2)
opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
model(torch.randn(4, 3)).sum().backward(); opt.step()
args = argparse.Namespace(model='halonet26t', lr=0.1, epochs=300, mean=(0.485, 0.456, 0.406), aa='rand-m9-mstd0.5',
                          model_ema=True, model_ema_decay=0.9998, input_size=None, smoothing=0.1)
state = {'epoch': 12, 'arch': 'halonet26t', 'state_dict': model.state_dict(), 'optimizer': opt.state_dict(),
         'version': 2, 'args': args, 'state_dict_ema': ema.state_dict(), 'metric': 79.5,
         'amp_scaler': {'scale': 65536.0, 'growth_factor': 2.0, '_growth_tracker': 10}}
torch.save(state, P('timm.pth.tar'))

class Cfg:
    def __init__(self): self.depth = 26
state2 = dict(state); state2['cfg'] = Cfg()
torch.save(state2, P('custom.pth'))

class Evil:
    def __reduce__(self): return (os.system, ('touch ' + P('pwned'),))
state3 = dict(state); state3['args'] = Evil()
torch.save(state3, P('evil.pth'))
state4 = dict(state); del state4['state_dict_ema']
torch.save(state4, P('no-ema.pth'))
print(json.dumps({'w': model.weight.detach().reshape(-1).tolist(), 'ema': ema.weight.detach().reshape(-1).tolist()}))
`;

const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-timm-ckpt-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string): string => path.join(dir, name);

let oracle: { w: number[]; ema: number[] } | undefined;
let skip: string | false = false;
try {
  oracle = JSON.parse(execFileSync('/usr/bin/python3', ['-c', GENERATE, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }));
} catch (err) {
  const text = String((err as { stderr?: unknown }).stderr ?? err);
  if (/No module named 'torch'|ENOENT/.test(text + String(err))) skip = 'needs /usr/bin/python3 with PyTorch';
  else throw err;
}

const close = (a: ArrayLike<number | bigint>, b: number[]) => Array.from(a).every((v, i) => Math.abs(Number(v) - b[i]) < 1e-7);

test('a timm train.py checkpoint loads: args as an argparse.Namespace of data, optimizer, metric, scaler', { skip }, async () => {
  const ckpt = await readTorchCheckpoint(file('timm.pth.tar')) as Record<string, unknown>;
  assert.deepEqual(Object.keys(ckpt), ['epoch', 'arch', 'state_dict', 'optimizer', 'version', 'args', 'state_dict_ema', 'metric', 'amp_scaler']);
  assert.equal(ckpt.epoch, 12);
  const args = ckpt.args as PickledObject;
  assert.ok(args instanceof PickledObject);
  assert.equal(args.className, 'argparse.Namespace');
  assert.deepEqual(args.attributes, {
    model: 'halonet26t', lr: 0.1, epochs: 300, mean: [0.485, 0.456, 0.406], aa: 'rand-m9-mstd0.5',
    model_ema: true, model_ema_decay: 0.9998, input_size: null, smoothing: 0.1,
  });
  assert.deepEqual(ckpt.amp_scaler, { scale: 65536, growth_factor: 2, _growth_tracker: 10 });
});

test('loadPretrained takes state_dict by default and state_dict_ema with { ema: true }, strictly', { skip }, async () => {
  const model = new Linear({ inFeatures: 3, outFeatures: 2 });
  await loadPretrained(model, file('timm.pth.tar'));
  assert.ok(close(model.weight.dataSync(), oracle!.w));
  await loadPretrained(model, file('timm.pth.tar'), { ema: true });
  assert.ok(close(model.weight.dataSync(), oracle!.ema));
  await loadPretrained(model, file('timm.pth.tar'), { stateDictKey: 'state_dict' });
  assert.ok(close(model.weight.dataSync(), oracle!.w));
  model.dispose();
});

test('a custom class is refused with the fix, and loads as data once allowed (per call or globally)', { skip }, async () => {
  await assert.rejects(readTorchCheckpoint(file('custom.pth')), (e: unknown) =>
    e instanceof CheckpointError && /refers to __main__\.Cfg/.test(e.message) && /addSafeGlobals\(\['__main__\.Cfg'\]\)/.test(e.message));
  const ckpt = await readTorchCheckpoint(file('custom.pth'), { safeGlobals: ['__main__.Cfg'] }) as Record<string, unknown>;
  assert.deepEqual((ckpt.cfg as PickledObject).attributes, { depth: 26 });
  assert.ok(!getSafeGlobals().includes('__main__.Cfg'));
  addSafeGlobals(['__main__.Cfg']);
  assert.ok(getSafeGlobals().includes('__main__.Cfg'));
  assert.deepEqual(((await readTorchCheckpoint(file('custom.pth')) as Record<string, PickledObject>).cfg).attributes, { depth: 26 });
  assert.throws(() => addSafeGlobals(['not a name']), TypeError);
});

test('os.system inside a timm checkpoint is still refused and nothing runs', { skip }, async () => {
  await assert.rejects(readTorchCheckpoint(file('evil.pth')), (e: unknown) =>
    e instanceof CheckpointError && /refers to posix\.system, which vicinity does not load/.test(e.message));
  assert.ok(!existsSync(file('pwned')));
});

test('{ ema: true } on a checkpoint without EMA weights names the keys it has', { skip }, async () => {
  const model = new Linear({ inFeatures: 3, outFeatures: 2 });
  await assert.rejects(loadPretrained(model, file('no-ema.pth'), { ema: true }), (e: unknown) =>
    e instanceof CheckpointError && /holds no EMA weights/.test(e.message) && /its keys: epoch, arch, state_dict/.test(e.message));
  model.dispose();
});
