/**
 * PyTorch as the test oracle for test/nn: tensors go to a temp dir as raw little-endian float64
 * files plus a JSON manifest, one Python run (the oracle's Python, test/support/parity.ts) computes the
 * reference and writes its tensors back the same way. Each Python start costs ~1 s, so a test
 * file batches all its cases into one run in a before() hook.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { DType } from '../../src/tensor/tensor.js';
import { Tensor } from '../../src/tensor/tensor.js';
import { PYTHON } from '../support/parity.js';

/** The oracle's Python (test/support/parity.ts): the torch the addon links. */
export { PYTHON };

/** A tensor stored in the oracle's dir: float64 data, the original dtype to restore. */
export interface TensorEntry {
  file: string;
  shape: number[];
  dtype: DType;
}

/** Values read back from the oracle. */
export interface Values {
  data: Float64Array;
  shape: number[];
}

/**
 * Python prelude shared by every oracle script: `load(entry)`, `save(tensor)`, `MANIFEST`,
 * `finish(result)`; `torch`, `nn` and `math` are imported.
 */
const PRELUDE = `
import json, math, os, sys
import torch
import torch.nn as nn
torch.set_num_threads(1)
DIR = sys.argv[1]
MANIFEST = json.load(open(os.path.join(DIR, 'manifest.json')))
_count = [0]
def load(e):
    raw = open(os.path.join(DIR, e['file']), 'rb').read()
    t = torch.frombuffer(bytearray(raw), dtype=torch.float64) if raw else torch.zeros(0, dtype=torch.float64)
    return t.reshape(e['shape']).to(getattr(torch, e['dtype']))
def save(t):
    _count[0] += 1
    name = 'py%d.bin' % _count[0]
    t = t.detach().to(torch.float64).contiguous()
    open(os.path.join(DIR, name), 'wb').write(t.numpy().tobytes())
    return {'file': name, 'shape': list(t.shape), 'dtype': 'float64'}
def finish(result):
    json.dump(result, open(os.path.join(DIR, 'result.json'), 'w'))
`;

export class PyTorchOracle {
  readonly dir: string;
  private count = 0;

  constructor(prefix: string) {
    this.dir = mkdtempSync(path.join(tmpdir(), prefix));
  }

  /** Writes a tensor (any dtype; stored as float64) and returns its manifest entry. */
  write(t: Tensor): TensorEntry {
    const data = tidy(() => t.detach().to('float64').contiguous().dataSync()) as Float64Array;
    const file = `ts${++this.count}.bin`;
    writeFileSync(path.join(this.dir, file), Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    return { file, shape: t.shape, dtype: t.dtype };
  }

  /** Reads an entry written by either side. */
  read(entry: TensorEntry): Values {
    const raw = readFileSync(path.join(this.dir, entry.file));
    const copy = new Float64Array(raw.byteLength / 8);
    new Uint8Array(copy.buffer).set(raw);
    return { data: copy, shape: entry.shape };
  }

  /** Reads an entry as a tensor of its recorded dtype. */
  readTensor(entry: TensorEntry): Tensor {
    return tensor(this.read(entry).data, { shape: entry.shape, dtype: entry.dtype });
  }

  /** Runs `body` (Python, after the prelude) on `manifest`; returns what it passed to finish(). */
  run<T>(body: string, manifest: unknown): T {
    writeFileSync(path.join(this.dir, 'manifest.json'), JSON.stringify(manifest));
    execFileSync(PYTHON, ['-c', PRELUDE + body, this.dir], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 60_000 });
    return JSON.parse(readFileSync(path.join(this.dir, 'result.json'), 'utf8')) as T;
  }

  dispose(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A tensor's values as float64. */
export function valuesOf(t: Tensor): Values {
  const data = tidy(() => t.detach().to('float64').contiguous().dataSync()) as Float64Array;
  return { data: Float64Array.from(data), shape: t.shape };
}

/**
 * max |actual − expected| / max |expected|: the worst error relative to the reference's scale,
 * so elements near zero neither pass nor fail spuriously. Shapes must match exactly.
 */
export function maxRelError(actual: Values | Tensor, expected: Values | Tensor): number {
  const a = actual instanceof Tensor ? valuesOf(actual) : actual;
  const e = expected instanceof Tensor ? valuesOf(expected) : expected;
  if (a.shape.join(',') !== e.shape.join(',')) {
    throw new Error(`shape mismatch: actual [${a.shape}] vs expected [${e.shape}]`);
  }
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < e.data.length; i++) {
    diff = Math.max(diff, Math.abs(a.data[i] - e.data[i]));
    scale = Math.max(scale, Math.abs(e.data[i]));
  }
  return scale === 0 ? diff : diff / scale;
}

/** Sample mean and (biased) standard deviation of a tensor's values. */
export function moments(t: Tensor): { mean: number; std: number; min: number; max: number } {
  const { data } = valuesOf(t);
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (const v of data) {
    sum += v;
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const mean = sum / data.length;
  let sq = 0;
  for (const v of data) sq += (v - mean) ** 2;
  return { mean, std: Math.sqrt(sq / data.length), min, max };
}
