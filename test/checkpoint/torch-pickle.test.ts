import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { CheckpointError, type RawTensor, toFlatArray } from '../../src/checkpoint/raw-tensor.js';
import { serializeSafetensors } from '../../src/checkpoint/safetensors.js';
import { extractStateDict, stripPrefix } from '../../src/checkpoint/state-dict-keys.js';
import { parseTorchCheckpoint, readTorchCheckpoint } from '../../src/checkpoint/torch-pickle.js';
import { PYTHON } from '../support/parity.js';

/**
 * PyTorch (the torch the addon links, test/support/parity.ts) is the oracle: it writes every checkpoint below with torch.save and records
 * what each tensor holds as Python sees it — dtype, shape and its contiguous bytes.
 */
const GENERATE = String.raw`
import collections, json, os, pickle, sys, zipfile, torch
out = sys.argv[1]; P = lambda n: os.path.join(out, n)
g = torch.Generator().manual_seed(0)
w = torch.randn(4, 6, generator=g)
sd = collections.OrderedDict()
sd['f32'] = torch.randn(3, 4, generator=g)
sd['f64'] = torch.randn(5, generator=g, dtype=torch.float64)
sd['i64'] = torch.tensor([0, -1, 2**62, -2**63, 2**63 - 1], dtype=torch.int64)
sd['bf16'] = torch.randn(2, 3, generator=g).to(torch.bfloat16)
sd['f16'] = torch.randn(2, 3, generator=g).half()
sd['bool'] = torch.tensor([True, False, True])
sd['i32'] = torch.tensor([-5, 2**31 - 1], dtype=torch.int32)
sd['i16'] = torch.tensor([-300, 300], dtype=torch.int16)
sd['i8'] = torch.tensor([-128, 127], dtype=torch.int8)
sd['u8'] = torch.tensor([0, 255], dtype=torch.uint8)
sd['transposed'] = w.t()
sd['slice'] = w[1:3, 2:5]
sd['row'] = w[2]
sd['expanded'] = torch.arange(3.).expand(2, 3)
sd['channels_last'] = torch.randn(1, 2, 3, 3, generator=g).to(memory_format=torch.channels_last)
sd['scalar'] = torch.tensor(2.5)
sd['empty'] = torch.zeros(0, 3)
sd['tied.a'] = w
sd['tied.b'] = w
sd['param'] = torch.nn.Parameter(torch.randn(2, 2, generator=g))
torch.save(sd, P('sd.pth'))

net = torch.nn.Sequential(torch.nn.Conv2d(2, 3, 3), torch.nn.BatchNorm2d(3))
opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
net(torch.randn(2, 2, 5, 5, generator=g)).sum().backward(); opt.step()
msd = net.state_dict()
torch.save({'net': msd, 'epoch': 3, 'best_acc': 91.5, 'big': 2**60, 'optimizer': opt.state_dict()}, P('nested.pth'))
torch.save({'state_dict': collections.OrderedDict(('module.' + k, v) for k, v in msd.items())}, P('ddp.pth'))
torch.save(sd, P('legacy.pth'), _use_new_zipfile_serialization=False)

def rezip(src, dst, transform):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, 'w', zipfile.ZIP_DEFLATED) as zout:
        for name, data in transform([(i.filename, zin.read(i.filename)) for i in zin.infolist()]):
            zout.writestr(name, data)
rezip(P('sd.pth'), P('deflated.pth'), lambda entries: entries)

be = collections.OrderedDict(x=torch.tensor([1.0, -2.5, 3.25]), n=torch.tensor([1, -2], dtype=torch.int64))
torch.save(be, P('be.pth'))
def to_big(entries):
    width = {'be/data/0': 4, 'be/data/1': 8}
    swap = lambda d, k: b''.join(d[i:i + k][::-1] for i in range(0, len(d), k))
    # torch >= 2.1 writes a 'little' byteorder record itself: replace it.
    return [(n, swap(d, width[n]) if n in width else d) for n, d in entries if n != 'be/byteorder'] + [('be/byteorder', b'big')]
rezip(P('be.pth'), P('big.pth'), to_big)

class Evil:
    def __reduce__(self): return (os.system, ('touch ' + P('pwned'),))
with zipfile.ZipFile(P('evil.pth'), 'w') as z:
    z.writestr('evil/data.pkl', pickle.dumps(collections.OrderedDict(w=Evil()), protocol=2))
    z.writestr('evil/version', '3\n')
torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), P('script.pt'))

def describe(t):
    t = t.detach().contiguous()
    return [str(t.dtype)[6:], list(t.shape), t.reshape(-1).view(torch.uint8).numpy().tobytes().hex()]
print(json.dumps({'sd': {k: describe(v) for k, v in sd.items()}, 'net': {k: describe(v) for k, v in msd.items()},
                  'big': {k: describe(v) for k, v in be.items()},
                  'momentum': [describe(opt.state_dict()['state'][i]['momentum_buffer']) for i in range(4)]}))
`;

type Described = [string, number[], string];
interface Oracle { sd: Record<string, Described>; net: Record<string, Described>; big: Record<string, Described>; momentum: Described[] }

const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-torch-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = (name: string): string => path.join(dir, name);

let oracle: Oracle | undefined;
let skip: string | false = false;
try {
  oracle = JSON.parse(execFileSync(PYTHON, ['-c', GENERATE, dir], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })) as Oracle;
} catch (err) {
  const text = String((err as { stderr?: unknown }).stderr ?? err);
  // Only a missing Python/PyTorch skips; any other generator failure is a real failure.
  if (/No module named 'torch'|ENOENT/.test(text + String(err))) skip = `needs ${PYTHON} with PyTorch`;
  else throw err;
}

function assertMatches(actual: RawTensor, [dtype, shape, hex]: Described, what: string): void {
  assert.equal(actual.dtype, dtype, `${what} dtype`);
  assert.deepEqual(actual.shape, shape, `${what} shape`);
  assert.equal(Buffer.from(actual.data).toString('hex'), hex, `${what} bytes`);
}

test('state dict: every dtype, views, slices, shared storages and parameters match PyTorch', { skip }, async () => {
  const sd = await readTorchCheckpoint(file('sd.pth')) as Record<string, RawTensor>;
  assert.deepEqual(Object.keys(sd), Object.keys(oracle!.sd), 'OrderedDict order is kept');
  for (const [key, expected] of Object.entries(oracle!.sd)) assertMatches(sd[key]!, expected, key);
  // Readable spot checks on values fixed by construction.
  assert.deepEqual(toFlatArray(sd.i64!), [0n, -1n, 2n ** 62n, -(2n ** 63n), 2n ** 63n - 1n]);
  assert.deepEqual(toFlatArray(sd.expanded!), [0, 1, 2, 0, 1, 2]);
  assert.deepEqual(toFlatArray(sd.bool!), [true, false, true]);
  assert.deepEqual(toFlatArray(sd.scalar!), [2.5]);
  const w = toFlatArray(sd['tied.a']!) as number[];
  assert.deepEqual(toFlatArray(sd.row!), w.slice(12, 18));
  assert.deepEqual(toFlatArray(sd.slice!), [...w.slice(8, 11), ...w.slice(14, 17)]);
  assert.deepEqual(toFlatArray(sd['tied.b']!), w);
});

test('nested checkpoint: epoch, floats, big ints and the optimizer come through; extractStateDict finds "net"', { skip }, () => {
  const ck = parseTorchCheckpoint(readFileSync(file('nested.pth'))) as Record<string, unknown>;
  assert.equal(ck.epoch, 3);
  assert.equal(ck.best_acc, 91.5);
  assert.equal(ck.big, 2n ** 60n);
  const net = extractStateDict(ck);
  assert.deepEqual([...net.keys()], Object.keys(oracle!.net));
  for (const [key, expected] of Object.entries(oracle!.net)) assertMatches(net.get(key)!, expected, key);
  // Optimizer state is keyed by parameter index: integer keys give a Map.
  const optimizer = ck.optimizer as { state: Map<number, { momentum_buffer: RawTensor }>; param_groups: Array<Record<string, unknown>> };
  assert.ok(optimizer.state instanceof Map);
  assert.deepEqual([...optimizer.state.keys()], [0, 1, 2, 3]);
  oracle!.momentum.forEach((m, i) => assertMatches(optimizer.state.get(i)!.momentum_buffer, m, `momentum ${i}`));
  assert.equal(optimizer.param_groups[0]!.lr, 0.1);
  assert.deepEqual(optimizer.param_groups[0]!.params, [0, 1, 2, 3]);
});

test('DataParallel checkpoint: state_dict envelope and module. prefix', { skip }, async () => {
  const sd = stripPrefix(extractStateDict(await readTorchCheckpoint(file('ddp.pth'))));
  assert.deepEqual([...sd.keys()], Object.keys(oracle!.net));
  for (const [key, expected] of Object.entries(oracle!.net)) assertMatches(sd.get(key)!, expected, key);
});

test('deflated archives and big-endian byte order read the same values', { skip }, async () => {
  const sd = await readTorchCheckpoint(readFileSync(file('deflated.pth'))) as Record<string, RawTensor>;
  for (const [key, expected] of Object.entries(oracle!.sd)) assertMatches(sd[key]!, expected, `deflated ${key}`);
  const big = await readTorchCheckpoint(file('big.pth')) as Record<string, RawTensor>;
  for (const [key, expected] of Object.entries(oracle!.big)) assertMatches(big[key]!, expected, `big-endian ${key}`);
  assert.deepEqual(toFlatArray(big.x!), [1, -2.5, 3.25]);
});

test('a checkpoint that calls os.system is refused and nothing runs', { skip }, async () => {
  await assert.rejects(readTorchCheckpoint(file('evil.pth')), (e: unknown) =>
    e instanceof CheckpointError && /checkpoint refers to posix\.system, which vicinity does not load/.test(e.message) &&
    e.message.includes(file('evil.pth')));
  assert.ok(!existsSync(file('pwned')));
});

test('other formats are rejected with the fix', { skip }, async () => {
  await assert.rejects(readTorchCheckpoint(file('legacy.pth')),
    /saved with _use_new_zipfile_serialization=False; re-save it with torch\.save\(obj, f\)/);
  await assert.rejects(readTorchCheckpoint(file('script.pt')), /TorchScript archive \(torch\.jit\.save\)/);
  const st = serializeSafetensors({ a: { dtype: 'uint8', shape: [1], data: Uint8Array.of(1) } });
  assert.throws(() => parseTorchCheckpoint(st), /safetensors file.*readSafetensors/);
  assert.throws(() => parseTorchCheckpoint(new TextEncoder().encode('hello world')), /not a torch\.save checkpoint/);
  assert.throws(() => parseTorchCheckpoint(Uint8Array.of(0x80, 2, 0x4e, 0x2e)), /plain pickle/);
});

test('truncated or corrupted checkpoints are CheckpointErrors, never crashes', { skip }, () => {
  const bytes = new Uint8Array(readFileSync(file('nested.pth')));
  const step = Math.max(1, Math.floor(bytes.byteLength / 300));
  for (let cut = 0; cut < bytes.byteLength; cut += step) {
    assert.throws(() => parseTorchCheckpoint(bytes.subarray(0, cut)), CheckpointError, `cut at ${cut}`);
  }
  // Flipped bytes anywhere: CRC-32 and structure checks catch them, or the value is unchanged.
  for (let i = 0; i < bytes.byteLength; i += 7) {
    const copy = bytes.slice();
    copy[i] ^= 0x5a;
    try { parseTorchCheckpoint(copy); } catch (err) { assert.ok(err instanceof CheckpointError, `byte ${i}: ${String(err)}`); }
  }
});
