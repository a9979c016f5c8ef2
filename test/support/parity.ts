/**
 * PyTorch as the test oracle (style.md, "Tests assert oracle values").
 *
 * runTorch() runs ONE Python process (PYTHON below: the torch the addon links, or $VICINITY_TEST_PYTHON)
 * over a batch of cases, because each start costs ~1.5 s. Tensors travel through a temp dir as raw
 * little-endian .bin files plus a JSON manifest of dtype and shape; bfloat16 and float16 travel as
 * float32, bool as uint8. Each case's Python code sees its inputs and params as local variables,
 * plus `torch`, `F` (torch.nn.functional) and `np`, and assigns `out`: a tensor, a number, or a
 * tuple/list/dict of them (named tuples such as torch.max's flatten by field name). Results come
 * back as Map<case, Map<key, Expected>> with keys `out`, `out.0`, `out.values`, ... A case whose
 * Python raised has its traceback in torchErrors(results) and fails only where it is read.
 *
 * With `grad: [names]`, those inputs become leaves that require grad; Python draws a cotangent
 * per differentiable output (`cot`, `cot.0`, ... from a seeded generator) and returns the input
 * gradients of Σ out ⊙ cot as `grad.<name>` (absent when the input is unused). opSuite() builds
 * node:test suites from such cases, doing the same on the TypeScript side with the same cotangent.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { before, describe, test } from 'node:test';
import { torchPython } from '../../src/native/build-config.js';
import { tensor } from '../../src/tensor/creation.js';
import { Tensor, type DType } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from './leaks.js';

export type ExpectedData = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array;

/** A tensor computed by PyTorch: its dtype name as vicinity spells it, shape and values. */
export interface Expected {
  dtype: string;
  shape: number[];
  data: ExpectedData;
  /** True when Python produced a number rather than a tensor. */
  scalar?: boolean;
}

export interface TorchCase {
  name: string;
  inputs?: Record<string, Tensor>;
  /** JSON values bound as Python locals (sizes, flags, strings). */
  params?: Record<string, unknown>;
  /** Python statements assigning `out`; a single expression without `out =` is wrapped. */
  code: string;
  /** Inputs to differentiate with respect to; see the file header. */
  grad?: string[];
}

/** Outputs by case name, then by key. */
export type TorchResults = Map<string, Map<string, Expected>>;

// Python's traceback per failed case, kept beside each results map so callers can still declare
// `let results: TorchResults = new Map()`.
const caseErrors = new WeakMap<TorchResults, Map<string, string>>();

/** The tracebacks of the cases whose Python raised (empty when all ran). */
export function torchErrors(results: TorchResults): Map<string, string> {
  let errors = caseErrors.get(results);
  if (!errors) caseErrors.set(results, (errors = new Map()));
  return errors;
}

/**
 * The oracle's Python, for every test that runs PyTorch: VICINITY_TEST_PYTHON, else the Python of
 * the torch the loaded addon was built against (.venv/bin/python for pip's torch, /usr/bin/python3
 * for Debian's libtorch-dev, whose python3-torch loads the same libtorch_cpu.so; see
 * src/native/build-config.ts), else /usr/bin/python3.
 */
export const PYTHON = torchPython(process.env.VICINITY_TEST_PYTHON);

const NUMPY_DTYPE: Record<string, string> = {
  float32: 'float32', float64: 'float64', bfloat16: 'float32', float16: 'float32', int64: 'int64', int32: 'int32',
  int16: 'int16', int8: 'int8', uint8: 'uint8', bool: 'uint8',
};

const RUNNER = String.raw`
import json, os, sys, traceback
import numpy as np
import torch
import torch.nn.functional as F
root = sys.argv[1]
manifest = json.load(open(os.path.join(root, 'manifest.json')))
NP = ${JSON.stringify(NUMPY_DTYPE)}
TORCH = {'float32': torch.float32, 'float64': torch.float64, 'bfloat16': torch.bfloat16, 'float16': torch.float16,
         'int64': torch.int64, 'int32': torch.int32, 'int16': torch.int16, 'int8': torch.int8, 'uint8': torch.uint8,
         'bool': torch.bool}
NAME = {v: k for k, v in TORCH.items()}
def load(meta):
    a = np.fromfile(os.path.join(root, meta['file']), dtype=NP[meta['dtype']]).reshape(meta['shape'])
    return torch.from_numpy(a.copy()).to(TORCH[meta['dtype']])
def flatten(value, key, into):
    if isinstance(value, torch.Tensor):
        into[key] = value
    elif isinstance(value, (bool, int, float)):
        into[key] = value
    elif isinstance(value, dict):
        for k, v in value.items(): flatten(v, key + '.' + str(k), into)
    elif isinstance(value, (tuple, list)):
        fields = getattr(type(value), '__match_args__', None) or getattr(value, '_fields', None)
        for i, v in enumerate(value): flatten(v, key + '.' + str(fields[i] if fields else i), into)
    else:
        raise TypeError('out' + key[3:] + ': cannot return ' + type(value).__name__)
results = {}
counter = [0]
def save(value):
    scalar = not isinstance(value, torch.Tensor)
    if scalar:
        value = torch.tensor(value, dtype=torch.bool if isinstance(value, bool) else torch.int64 if isinstance(value, int) else torch.float64)
    t = value.detach().cpu().contiguous()
    dtype = NAME[t.dtype]
    if dtype in ('bfloat16', 'float16'): t = t.float()
    if dtype == 'bool': t = t.to(torch.uint8)
    counter[0] += 1
    file = 'out%d.bin' % counter[0]
    t.numpy().astype(NP[dtype]).tofile(os.path.join(root, file))
    return {'dtype': dtype, 'shape': list(t.shape), 'file': file, 'scalar': scalar}
for index, case in enumerate(manifest['cases']):
    try:
        env = {'torch': torch, 'F': F, 'np': np}
        env.update(case['params'])
        for name, meta in case['inputs'].items(): env[name] = load(meta)
        for name in case['grad']: env[name] = env[name].detach().requires_grad_()
        exec(case['code'], env)
        outs = {}
        flatten(env['out'], 'out', outs)
        entry = {k: save(v) for k, v in outs.items()}
        if case['grad']:
            g = torch.Generator().manual_seed(1000 + index)
            diff = [(k, v) for k, v in outs.items() if isinstance(v, torch.Tensor) and v.requires_grad]
            cots = [torch.randn(v.shape, generator=g, dtype=v.dtype) for _, v in diff]
            for (k, _), c in zip(diff, cots): entry['cot' + k[3:]] = save(c)
            wrt = [env[n] for n in case['grad']]
            grads = torch.autograd.grad([v for _, v in diff], wrt, cots, allow_unused=True) if diff else [None] * len(wrt)
            for n, gr in zip(case['grad'], grads):
                if gr is not None: entry['grad.' + n] = save(gr)
        results[case['name']] = entry
    except Exception:
        results[case['name']] = {'__error__': traceback.format_exc()}
json.dump(results, open(os.path.join(root, 'results.json'), 'w'))
`;

function wrapCode(code: string): string {
  const trimmed = code.trim();
  return !trimmed.includes('\n') && !/^out\s*=[^=]/.test(trimmed) ? `out = (${trimmed})` : trimmed;
}

function writeTensor(dir: string, file: string, t: Tensor): { dtype: string; shape: number[]; file: string } {
  const data = t.contiguous().dataSync(); // bfloat16 reads back as float32, bool as uint8
  writeFileSync(path.join(dir, file), new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  return { dtype: t.dtype, shape: t.shape, file };
}

function readExpected(dir: string, meta: { dtype: string; shape: number[]; file: string; scalar: boolean }): Expected {
  const bytes = readFileSync(path.join(dir, meta.file));
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  const ctor = {
    float32: Float32Array, float64: Float64Array, int64: BigInt64Array, int32: Int32Array,
    int16: Int16Array, int8: Int8Array, uint8: Uint8Array,
  }[NUMPY_DTYPE[meta.dtype]] ?? Uint8Array;
  return { dtype: meta.dtype, shape: meta.shape, data: new ctor(buffer), scalar: meta.scalar };
}

/** Runs every case in one Python process; a case whose Python raised maps to its traceback. */
export function runTorch(cases: TorchCase[]): TorchResults {
  const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-parity-'));
  try {
    let n = 0;
    const manifest = {
      cases: cases.map((c) => ({
        name: c.name,
        code: wrapCode(c.code),
        params: c.params ?? {},
        grad: c.grad ?? [],
        inputs: Object.fromEntries(Object.entries(c.inputs ?? {}).map(([k, t]) => [k, writeTensor(dir, `in${n++}.bin`, t)])),
      })),
    };
    const names = new Set(cases.map((c) => c.name));
    if (names.size !== cases.length) throw new Error('runTorch: case names must be unique');
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
    writeFileSync(path.join(dir, 'runner.py'), RUNNER);
    const run = spawnSync(PYTHON, [path.join(dir, 'runner.py'), dir], { encoding: 'utf8', timeout: 120_000 });
    if (run.status !== 0) {
      throw new Error(`runTorch: ${PYTHON} failed (status ${run.status}, ${run.error?.message ?? ''}):\n${run.stderr}`);
    }
    const raw = JSON.parse(readFileSync(path.join(dir, 'results.json'), 'utf8')) as Record<string, Record<string, unknown>>;
    const results: TorchResults = new Map();
    for (const [name, entries] of Object.entries(raw)) {
      if (typeof entries.__error__ === 'string') {
        torchErrors(results).set(name, entries.__error__);
        continue;
      }
      const map = new Map<string, Expected>();
      for (const [k, meta] of Object.entries(entries)) map.set(k, readExpected(dir, meta as Parameters<typeof readExpected>[1]));
      results.set(name, map);
    }
    return results;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The outputs of one case; throws with Python's traceback if the case raised. */
export function caseOutputs(results: TorchResults, name: string): Map<string, Expected> {
  const error = caseErrors.get(results)?.get(name);
  if (error !== undefined) throw new Error(`PyTorch raised in case '${name}':\n${error}`);
  const outputs = results.get(name);
  if (!outputs) throw new Error(`no PyTorch results for case '${name}' (did runTorch run it?)`);
  return outputs;
}

/** One output of one case. */
export function expected(results: TorchResults, name: string, key = 'out'): Expected {
  const outputs = caseOutputs(results, name);
  const e = outputs.get(key);
  if (!e) throw new Error(`case '${name}' has no output '${key}' (it has ${[...outputs.keys()].join(', ')})`);
  return e;
}

/** An Expected as a vicinity tensor (bfloat16, float16 and bool restored). */
export function expectedTensor(e: Expected): Tensor {
  const t = tensor(e.data as Float32Array, { shape: e.shape });
  return e.dtype === 'bfloat16' || e.dtype === 'float16' || e.dtype === 'bool' ? t.to(e.dtype as DType) : t;
}

// ---- comparison -----------------------------------------------------------------------------

export interface CloseOptions {
  /** Default 1e-5 for float32 and lower precision, 1e-10 for float64; integers compare exactly. */
  rtol?: number;
  /** Default 1e-6 for float32 and lower precision, 1e-12 for float64. */
  atol?: number;
  label?: string;
  /** Compare dtypes too (default true when the expected value carries one). */
  checkDtype?: boolean;
}

const FLOATING = new Set(['float32', 'float64', 'bfloat16', 'float16']);

function toNumbers(data: ArrayLike<number | bigint>): Float64Array {
  return Float64Array.from(data as ArrayLike<number>, (v) => Number(v));
}

function flattenNested(value: unknown, out: number[], shape: number[], depth: number): void {
  if (Array.isArray(value)) {
    if (shape.length === depth) shape.push(value.length);
    for (const v of value) flattenNested(v, out, shape, depth + 1);
  } else {
    out.push(Number(value));
  }
}

function normalize(e: Expected | Tensor | number | boolean | unknown[]): { dtype?: string; shape?: number[]; values: Float64Array } {
  if (e instanceof Tensor) return { dtype: e.dtype, shape: e.shape, values: toNumbers(e.contiguous().dataSync()) };
  if (typeof e === 'number' || typeof e === 'boolean') return { values: Float64Array.of(Number(e)) };
  if (Array.isArray(e)) {
    const flat: number[] = [];
    const shape: number[] = [];
    flattenNested(e, flat, shape, 0);
    return { shape, values: Float64Array.from(flat) };
  }
  const x = e as Expected;
  return { dtype: x.scalar ? undefined : x.dtype, shape: x.shape, values: toNumbers(x.data) };
}

/**
 * Asserts `actual` matches `expected` elementwise: |a − e| ≤ atol + rtol·|e| (NaN equals NaN,
 * infinities must match), with equal shapes and dtypes. The message names the label, the max
 * abs and rel errors and the worst element.
 */
export function assertClose(actual: Tensor, expectedValue: Expected | Tensor | number | boolean | unknown[], options: CloseOptions = {}): void {
  const label = options.label ?? 'tensor';
  const exp = normalize(expectedValue);
  if (exp.shape !== undefined) {
    assert.deepEqual(actual.shape, exp.shape, `${label}: shape [${actual.shape}] != expected [${exp.shape}]`);
  }
  if (exp.dtype !== undefined && (options.checkDtype ?? true)) {
    assert.equal(actual.dtype, exp.dtype, `${label}: dtype ${actual.dtype} != expected ${exp.dtype}`);
  }
  const act = toNumbers(actual.contiguous().dataSync());
  assert.equal(act.length, exp.values.length, `${label}: ${act.length} elements != expected ${exp.values.length}`);
  const floating = FLOATING.has(actual.dtype);
  const f64 = actual.dtype === 'float64';
  const rtol = floating ? (options.rtol ?? (f64 ? 1e-10 : 1e-5)) : 0;
  const atol = floating ? (options.atol ?? (f64 ? 1e-12 : 1e-6)) : 0;
  let maxAbs = 0;
  let maxRel = 0;
  let bad = 0;
  let worst = -1;
  for (let i = 0; i < act.length; i++) {
    const a = act[i];
    const e = exp.values[i];
    if (a === e || (Number.isNaN(a) && Number.isNaN(e))) continue;
    const diff = Math.abs(a - e);
    const rel = diff / Math.abs(e);
    if (!(diff <= atol + rtol * Math.abs(e))) {
      bad++;
      if (worst < 0 || !(diff <= Math.abs(act[worst] - exp.values[worst]))) worst = i;
    }
    maxAbs = Number.isNaN(diff) ? Infinity : Math.max(maxAbs, diff);
    maxRel = Number.isNaN(rel) ? Infinity : Math.max(maxRel, rel);
  }
  if (bad > 0) {
    assert.fail(`${label}: ${bad} of ${act.length} elements differ beyond atol ${atol.toPrecision(3)} + ` +
      `rtol ${rtol.toPrecision(3)}·|expected|; ` +
      `max abs error ${maxAbs.toExponential(3)}, max rel error ${maxRel.toExponential(3)}; ` +
      `worst at flat index ${worst}: actual ${act[worst]} vs expected ${exp.values[worst]}`);
  }
}

// ---- op suites ------------------------------------------------------------------------------

export type OpResult = Tensor | number | boolean | OpResult[] | { [key: string]: OpResult };

export interface OpCase extends CloseOptions {
  name: string;
  inputs: Record<string, Tensor>;
  params?: Record<string, unknown>;
  /** The vicinity computation, given fresh copies of the inputs (leaves for `grad`). */
  ts: (inputs: Record<string, Tensor>) => OpResult;
  /** The PyTorch computation (see TorchCase.code). */
  py: string;
  /** Inputs to check gradients for: names, or true for every floating input. */
  grad?: string[] | boolean;
  /** Tolerances for the gradients (default: the forward ones ×10). */
  gradRtol?: number;
  gradAtol?: number;
}

function flattenResult(value: OpResult, key: string, into: Map<string, Tensor | number | boolean>): void {
  if (value instanceof Tensor || typeof value === 'number' || typeof value === 'boolean') {
    into.set(key, value);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => flattenResult(v, `${key}.${i}`, into));
  } else {
    for (const [k, v] of Object.entries(value)) flattenResult(v, `${key}.${k}`, into);
  }
}

function gradNames(c: OpCase): string[] {
  if (c.grad === true) return Object.keys(c.inputs).filter((k) => FLOATING.has(c.inputs[k].dtype));
  return c.grad || [];
}

/** Runs one OpCase on the vicinity side and compares outputs and gradients with PyTorch's. */
export function checkOpCase(c: OpCase, results: TorchResults): void {
  const outputs = caseOutputs(results, c.name);
  const wrt = gradNames(c);
  assertNoLeaks(() => {
    const inputs = Object.fromEntries(Object.entries(c.inputs).map(([k, t]) =>
      [k, wrt.includes(k) ? t.detach().clone().requiresGrad_() : t]));
    const produced = new Map<string, Tensor | number | boolean>();
    flattenResult(c.ts(inputs), 'out', produced);
    const keys = [...outputs.keys()].filter((k) => k === 'out' || k.startsWith('out.'));
    assert.deepEqual([...produced.keys()].sort(), keys.sort(), `${c.name}: output keys differ from PyTorch's`);
    const tolerances = { rtol: c.rtol, atol: c.atol, checkDtype: c.checkDtype };
    for (const [key, value] of produced) {
      const label = `${c.name} ${key}`;
      const e = outputs.get(key)!;
      if (value instanceof Tensor) assertClose(value, e, { ...tolerances, label });
      else assertClose(expectedTensor(e), value, { ...tolerances, label: `${label} (number)` });
    }
    if (wrt.length === 0) return;
    let loss: Tensor | null = null;
    for (const [key, value] of produced) {
      const cot = outputs.get(`cot${key.slice(3)}`);
      if (!(value instanceof Tensor) || !cot) continue;
      const term = value.mul(expectedTensor(cot)).sum();
      loss = loss === null ? term : loss.add(term);
    }
    assert.ok(loss !== null, `${c.name}: no differentiable output on the vicinity side, but PyTorch has cotangents`);
    loss.backward();
    for (const name of wrt) {
      const e = outputs.get(`grad.${name}`);
      const g = inputs[name].grad;
      const label = `${c.name} grad ${name}`;
      if (e === undefined) assert.ok(g === null || g.abs().max().item() === 0, `${label}: PyTorch has no gradient`);
      else {
        assert.ok(g !== null, `${label}: missing (PyTorch has one)`);
        const f64 = g.dtype === 'float64';
        assertClose(g, e, {
          label,
          rtol: c.gradRtol ?? (c.rtol ?? (f64 ? 1e-10 : 1e-5)) * 10,
          atol: c.gradAtol ?? (c.atol ?? (f64 ? 1e-12 : 1e-6)) * 10,
        });
      }
    }
  }, c.name);
}

// Cases of every opSuite in this process, run together in the first before() hook that fires: all
// describe() bodies of a test file run at load time, before any hook, so a file costs one Python start.
const pendingCases: OpCase[] = [];
const suiteResults: TorchResults = new Map();

function runPending(): void {
  const batch = pendingCases.splice(0);
  if (batch.length === 0) return;
  const results = runTorch(batch.map((c) => ({ name: c.name, inputs: c.inputs, params: c.params, code: c.py, grad: gradNames(c) })));
  for (const [k, v] of results) suiteResults.set(k, v);
  for (const [k, e] of torchErrors(results)) torchErrors(suiteResults).set(k, e);
}

/**
 * A node:test suite: one test per case that compares forward values and, with `grad`, input
 * gradients, and checks that the case leaks no tensor. The PyTorch side of every suite declared
 * in the file runs in a single Python process (case names must be unique across the file).
 */
export function opSuite(title: string, cases: OpCase[]): void {
  for (const c of cases) {
    if (pendingCases.some((p) => p.name === c.name) || suiteResults.has(c.name) || torchErrors(suiteResults).has(c.name)) {
      throw new Error(`opSuite: duplicate case name '${c.name}'`);
    }
  }
  pendingCases.push(...cases);
  describe(title, () => {
    before(runPending);
    for (const c of cases) test(c.name, () => checkOpCase(c, suiteResults));
  });
}
