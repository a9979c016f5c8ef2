/**
 * Layer benchmark (issue 9 item 4): each attention layer case, forward, forward + backward and
 * peak CPU memory, in vicinity and in plain PyTorch running the reference computation
 * (bench/layers.py: the unfold / gather / einsum formulations of reference-layers.md's modules)
 * in the same invocation, printed as ratios (vicinity / PyTorch; < 1 is better for vicinity).
 *
 *   node dist/bench/layers.js [--python PATH] [--repeats 3] [--only halo] [--json out.json]
 *                             [--kernels auto|composite]
 *
 * --python: the PyTorch to compare with; default TORCH_PYTHON, else the python whose torch the
 * addon was built against (its build record, src/native/build-config.ts), else python3 — the same libtorch, so the
 * ratio measures vicinity's own work. Times: the median of `repeats` after one warm-up, wall
 * clock, at the thread count both sides use (getNumThreads()). Forward runs without autograd;
 * "step" is forward + sum + backward from fresh leaves. Peak: the most CPU allocator bytes held
 * above the start during one step (vicinity: memory().peakAllocatedBytes after resetPeakMemory();
 * PyTorch: the profiler's allocator events), inputs and parameters excluded on both sides.
 * Parameters are random: time and memory do not depend on their values. --kernels composite runs
 * vicinity's layers without the fused kernels (src/ops/fused.ts), the "before" of a kernel.
 * Results: docs/benchmarks.md.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { timeSteps } from '../src/analysis/step-timer.js';
import { HaloAttention } from '../src/attention/halo-attention.js';
import { LesaBinaryAttention } from '../src/attention/lesa-binary.js';
import { LsagGlobalAttention, LsagLocalAttention } from '../src/attention/lsag-attention.js';
import { MultiHeadSelfAttention2d } from '../src/attention/mhsa2d.js';
import { NeighborhoodAttention2d } from '../src/attention/neighborhood-attention.js';
import { native } from '../src/native/binding.js';
import { setKernelMode, type KernelMode } from '../src/ops/fused.js';
import type { AnyModule } from '../src/nn/module.js';
import { torchPython } from '../src/native/build-config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { manualSeed, randn } from '../src/tensor/creation.js';
import { flushFinalizers, getNumThreads, memory, resetPeakMemory } from '../src/tensor/memory.js';
import { tidy } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const { values: opts } = parseArgs({
  options: {
    python: { type: 'string' },
    repeats: { type: 'string', default: '3' },
    only: { type: 'string' },
    json: { type: 'string' },
    kernels: { type: 'string', default: 'auto' },
  },
});
const repeats = Number(opts.repeats);
if (!Number.isInteger(repeats) || repeats < 1) throw new RangeError(`--repeats must be an integer ≥ 1, got ${opts.repeats}`);

/** A case as bench/layers.py reads it, plus how vicinity builds it. */
interface Case {
  name: string;
  kind: 'halo' | 'neighborhood' | 'lesa' | 'lsag_local' | 'lsag_global' | 'mhsa';
  batch: number;
  [option: string]: unknown;
}
type Build = () => { layer: AnyModule; inputs: number[][] };

const B = 8;
const cases: [Case, Build][] = [
  [{ name: 'halo C64 32x32 b8 h3 heads4', kind: 'halo', batch: B, dim: 64, size: 32, block: 8, halo: 3, heads: 4 },
    () => ({ layer: new HaloAttention({ dim: 64, numHeads: 4, blockSize: 8, haloSize: 3 }), inputs: [[B, 64, 32, 32]] })],
  [{ name: 'halo C64 32x32 b8 h3 heads4 stride2', kind: 'halo', batch: B, dim: 64, size: 32, block: 8, halo: 3, heads: 4, stride: 2 },
    () => ({ layer: new HaloAttention({ dim: 64, numHeads: 4, blockSize: 8, haloSize: 3, stride: 2 }), inputs: [[B, 64, 32, 32]] })],
  [{ name: 'halo C128 16x16 b8 h2 heads8', kind: 'halo', batch: B, dim: 128, size: 16, block: 8, halo: 2, heads: 8 },
    () => ({ layer: new HaloAttention({ dim: 128, numHeads: 8, blockSize: 8, haloSize: 2 }), inputs: [[B, 128, 16, 16]] })],
  [{ name: 'neighborhood C64 32x32 k7 heads4', kind: 'neighborhood', batch: B, dim: 64, size: 32, kernel: 7, heads: 4 },
    () => ({ layer: new NeighborhoodAttention2d({ dim: 64, numHeads: 4, kernelSize: 7 }), inputs: [[B, 32, 32, 64]] })],
  [{ name: 'neighborhood C64 32x32 k3 heads4', kind: 'neighborhood', batch: B, dim: 64, size: 32, kernel: 3, heads: 4 },
    () => ({ layer: new NeighborhoodAttention2d({ dim: 64, numHeads: 4, kernelSize: 3 }), inputs: [[B, 32, 32, 64]] })],
  [{ name: 'LESA binary C64 14x14 groups8', kind: 'lesa', batch: B, dim: 64, size: 14, groups: 8 },
    () => ({ layer: new LesaBinaryAttention({ inPlanes: 64, outPlanes: 64, featureSize: 14, groups: 8 }), inputs: [[B, 64, 14, 14]] })],
  [{ name: 'LESA binary C64 28x28 groups8', kind: 'lesa', batch: B, dim: 64, size: 28, groups: 8 },
    () => ({ layer: new LesaBinaryAttention({ inPlanes: 64, outPlanes: 64, featureSize: 28, groups: 8 }), inputs: [[B, 64, 28, 28]] })],
  [{ name: 'LSAG local attention D192 heads3 T18 N1024', kind: 'lsag_local', batch: B, dim: 192, heads: 3, variants: 18, tokens: 1024 },
    () => ({ layer: new LsagLocalAttention({ dim: 192, numHeads: 3, numVariants: 18, qkvBias: true, multiQuery: true }),
      inputs: [[B, 1024, 192], [18, B, 1024, 192]] })],
  [{ name: 'LSAG global attention D192 heads3 N256', kind: 'lsag_global', batch: B, dim: 192, heads: 3, tokens: 256 },
    () => ({ layer: new LsagGlobalAttention({ dim: 192, numHeads: 3, qkvBias: true, multiQuery: true }), inputs: [[B, 256, 192]] })],
  [{ name: 'BoTNet MHSA C128 16x16 heads8', kind: 'mhsa', batch: B, dim: 128, size: 16, heads: 8 },
    () => ({ layer: new MultiHeadSelfAttention2d({ dim: 128, featSize: 16, numHeads: 8 }), inputs: [[B, 128, 16, 16]] })],
];

interface Result {
  name: string;
  forward: number;
  step: number;
  peakBytes: number;
}

/** The Python whose torch the addon links (src/native/build-config.ts), unless --python or TORCH_PYTHON name one. */
function pythonPath(): string {
  return torchPython(opts.python ?? process.env.TORCH_PYTHON);
}

/** Median of `repeats` timed calls after one warm-up, by the one step timer. */
async function timed(fn: () => void): Promise<number> {
  return (await timeSteps(fn, { warmup: 1, steps: repeats })).medianMs / 1000;
}

async function benchVicinity(c: Case, build: Build): Promise<Result> {
  manualSeed(0);
  const { layer, inputs: shapes } = build();
  const inputs = shapes.map((s, i) => randn(s, { seed: i + 1 }).requiresGrad_());
  const forward = (xs: Tensor[]) => (layer as unknown as { forward(...x: Tensor[]): Tensor }).forward(...xs);
  const leaves = [...inputs, ...layer.parameters()];
  const step = () => tidy(() => {
    forward(inputs).sum().backward();
    for (const t of leaves) t.grad?.dispose();
    layer.zeroGrad();
    for (const t of inputs) t.grad?.zero_();
  });
  const result = {
    name: c.name,
    forward: await timed(() => noGrad(() => tidy(() => { forward(inputs).sum().item(); }))),
    step: await timed(step),
    peakBytes: 0,
  };
  await flushFinalizers();
  resetPeakMemory();
  const base = memory().allocatedBytes;
  step();
  result.peakBytes = memory().peakAllocatedBytes - base;
  inputs.forEach((t) => t.dispose());
  layer.dispose();
  return result;
}

function benchPyTorch(python: string, selected: Case[], threads: number): { torch: string; results: Result[] } {
  const run = spawnSync(python, [path.join(root, 'bench/layers.py'), '--threads', String(threads), '--repeats', String(repeats)],
    { input: JSON.stringify(selected), encoding: 'utf8', maxBuffer: 1 << 26 });
  if (run.status !== 0) throw new Error(`${python} bench/layers.py failed (exit ${run.status}):\n${run.stderr}`);
  return JSON.parse(run.stdout) as { torch: string; results: Result[] };
}

const kernels = setKernelMode(opts.kernels as KernelMode) && opts.kernels;
const selected = cases.filter(([c]) => !opts.only || c.name.includes(opts.only));
const threads = getNumThreads();
const python = pythonPath();
const info = native.buildInfo();
console.log(`layers: batch ${B}, float32, ${threads} threads, median of ${repeats}; vicinity on libtorch ` +
  `${info.torchVersion} (kernel mode ${kernels}), PyTorch from ${python}`);
const mine: Result[] = [];
for (const [c, build] of selected) mine.push(await benchVicinity(c, build));
const theirs = benchPyTorch(python, selected.map(([c]) => c), threads);
console.log(`PyTorch ${theirs.torch}\n`);
const ms = (s: number) => (s * 1000).toFixed(1).padStart(7);
const mb = (b: number) => (b / 2 ** 20).toFixed(1).padStart(7);
const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : '–').padStart(5);
console.log(`${'case'.padEnd(44)} ${'fwd ms'.padStart(15)} ratio ${'fwd+bwd ms'.padStart(15)} ratio ${'peak MiB'.padStart(15)} ratio`);
const rows = mine.map((m, i) => {
  const t = theirs.results[i];
  console.log(`${m.name.padEnd(44)} ${ms(m.forward)} ${ms(t.forward)} ${ratio(m.forward, t.forward)} ` +
    `${ms(m.step)} ${ms(t.step)} ${ratio(m.step, t.step)} ${mb(m.peakBytes)} ${mb(t.peakBytes)} ${ratio(m.peakBytes, t.peakBytes)}`);
  return { name: m.name, vicinity: m, pytorch: t };
});
console.log('\n(each pair: vicinity, PyTorch; ratio = vicinity / PyTorch)');
if (opts.json) writeFileSync(opts.json, JSON.stringify({ threads, repeats, torch: theirs.torch, rows }, null, 2));
