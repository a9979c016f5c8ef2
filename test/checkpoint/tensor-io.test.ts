/**
 * Checkpoints end to end: a Module's weights through safetensors and through a PyTorch .pth file
 * written by torch.save, with PyTorch's outputs as the oracle.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CheckpointError } from '../../src/checkpoint/raw-tensor.js';
import { loadPretrained, loadStateDictFile, loadWeights, rawToTensor, saveSafetensors, tensorToRaw } from '../../src/checkpoint/tensor-io.js';
import { SmallConvNet } from '../../src/models/small-convnet.js';
import { StateDictError } from '../../src/nn/module.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { tidy } from '../../src/tensor/scope.js';
import { PYTHON as ORACLE_PYTHON } from '../support/parity.js';

let dir: string;

// The same network as SmallConvNet in PyTorch, saved DataParallel-style inside {'net': sd}, with
// its output on a fixed input.
const PYTHON = String.raw`
import sys, torch, torch.nn as nn
d = sys.argv[1]
torch.manual_seed(0)
def stage(i, o): return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(*stage(1, 32), *stage(32, 64))
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 10))
    def forward(self, x): return self.classifier(self.features(x))
net = Net()
for m in net.modules():
    if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.5, 0.5); m.running_var.uniform_(0.5, 1.5); m.weight.data.uniform_(0.5, 1.5)
net.eval()
x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28).div(1568).sub(0.5)
with torch.no_grad(): y = net(x)
sd = {'module.' + k: v for k, v in net.state_dict().items()}
torch.save({'net': sd, 'epoch': 7}, d + '/net.pth')
y.numpy().astype('<f4').tofile(d + '/y.bin')
`;

before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-tensor-io-'));
  execFileSync(ORACLE_PYTHON, ['-c', PYTHON, dir], { stdio: ['ignore', 'ignore', 'inherit'] });
});

after(() => rmSync(dir, { recursive: true, force: true }));

function input(): ReturnType<typeof tensor> {
  const values = Float32Array.from({ length: 2 * 28 * 28 }, (_, i) => i / 1568 - 0.5);
  return tensor(values, { shape: [2, 1, 28, 28] });
}

test('a torch.save checkpoint loads by name and reproduces PyTorch outputs', async () => {
  const model = new SmallConvNet().eval();
  const report = await loadWeights(model, path.join(dir, 'net.pth'), { stripPrefix: 'module.' });
  assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
  const bytes = readFileSync(path.join(dir, 'y.bin'));
  const expected = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  assert.equal(expected.length, 20);
  const actual = tidy(() => noGrad(() => model.forward(input()).dataSync())) as Float32Array;
  let maxError = 0;
  for (let i = 0; i < expected.length; i++) maxError = Math.max(maxError, Math.abs(actual[i] - expected[i]));
  assert.ok(maxError < 1e-5, `max abs error ${maxError}`);
  model.dispose();
});

test('safetensors round trip restores every weight and buffer bit for bit', async () => {
  const source = new SmallConvNet();
  const file = path.join(dir, 'small.safetensors');
  await saveSafetensors(file, source, { format: 'pt' });
  const target = new SmallConvNet();
  await loadWeights(target, file);
  const a = source.stateDict();
  const b = target.stateDict();
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [key, t] of a) assert.ok(t.equal(b.get(key)!), `${key} differs`);
  for (const t of [...a.values(), ...b.values()]) t.dispose();
  source.dispose();
  target.dispose();
});

test('bfloat16, int64 and bool tensors keep their bits through safetensors', async () => {
  const file = path.join(dir, 'dtypes.safetensors');
  const tensors = {
    b: randn([3, 5], { seed: 1 }).to('bfloat16'),
    i: tensor(new BigInt64Array([-(2n ** 40n), 0n, 7n])),
    m: tensor([true, false, true]),
  };
  await saveSafetensors(file, tensors);
  const loaded = await loadStateDictFile(file);
  for (const [name, t] of Object.entries(tensors)) {
    const back = loaded.get(name)!;
    assert.equal(back.dtype, t.dtype, name);
    assert.ok(back.equal(t), `${name} changed`);
  }
  assert.deepEqual(tensorToRaw(tensors.b).data.byteLength, 30);
  const again = rawToTensor(tensorToRaw(tensors.b));
  assert.ok(again.equal(tensors.b));
});

test('strict loading reports missing, unexpected and mis-shaped keys; non-strict loads the rest', async () => {
  const file = path.join(dir, 'partial.safetensors');
  const model = new SmallConvNet();
  const sd = model.stateDict();
  sd.delete('classifier.1.bias');
  sd.set('extra.weight', randn([2]));
  sd.set('features.0.weight', randn([8, 1, 3, 3]));
  await saveSafetensors(file, sd);
  await assert.rejects(loadWeights(model, file), (e: unknown) => {
    assert.ok(e instanceof StateDictError);
    assert.deepEqual(e.report.missing, ['classifier.1.bias']);
    assert.deepEqual(e.report.unexpected, ['extra.weight']);
    assert.deepEqual(e.report.mismatched, [{ key: 'features.0.weight', expected: [32, 1, 3, 3], got: [8, 1, 3, 3] }]);
    assert.match(e.message, /missing keys: classifier\.1\.bias; unexpected keys: extra\.weight; shape mismatches: features\.0\.weight/);
    return true;
  });
  const report = await loadWeights(model, file, { strict: false });
  assert.equal(report.missing.length, 1);
  assert.ok(model.stateDict().get('classifier.1.weight')!.equal(sd.get('classifier.1.weight')!));
  model.dispose();
});

test('corrupt and foreign files give a CheckpointError naming the file', async () => {
  const truncated = path.join(dir, 'truncated.pth');
  writeFileSync(truncated, readFileSync(path.join(dir, 'net.pth')).subarray(0, 1000));
  await assert.rejects(loadStateDictFile(truncated), CheckpointError);
  const text = path.join(dir, 'notes.pth');
  writeFileSync(text, 'not a checkpoint');
  await assert.rejects(loadStateDictFile(text), (e: unknown) => e instanceof CheckpointError && /notes\.pth/.test(e.message));
  await assert.rejects(loadStateDictFile(path.join(dir, 'missing.safetensors')), /cannot read checkpoint/);
});

test('loadPretrained strips a DataParallel prefix by itself and reads nested .pth checkpoints', async () => {
  const model = new SmallConvNet().eval();
  const report = await loadPretrained(model, path.join(dir, 'net.pth'));
  assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
  const wrong = new SmallConvNet({ numClasses: 7 });
  await assert.rejects(loadPretrained(wrong, path.join(dir, 'net.pth')),
    /shape mismatches: classifier\.1\.weight expected \[7,3136\] got \[10,3136\], classifier\.1\.bias expected \[7\] got \[10\]/);
  model.dispose();
  wrong.dispose();
});
