/**
 * Per-op call overhead: µs per call of tiny-tensor ops in vicinity against the same calls in
 * PyTorch (the torch the addon links: src/native/build-config.ts, or VICINITY_BENCH_PYTHON), in one run.
 * On 4-element tensors the kernel is ~0.1 µs, so the time is the binding: argument conversion,
 * the boxed dispatcher call, wrapping the result, and disposing it (architecture.md, "Op calls").
 *
 *   node dist/bench/op-overhead.js [--calls 100000] [--repeats 5] [--threads N] [--out file.json]
 *
 * Each case runs `repeats` times over `calls` calls; the median repeat is reported.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { aten, getNumThreads, native, scope, setNumThreads, tensor, tidy } from '../src/index.js';
import { torchPython } from '../src/native/build-config.js';

const { values: opts } = parseArgs({
  options: {
    calls: { type: 'string', default: '100000' },
    repeats: { type: 'string', default: '5' },
    threads: { type: 'string' },
    out: { type: 'string' },
  },
});
const calls = Number(opts.calls);
const repeats = Number(opts.repeats);
if (opts.threads) setNumThreads(Number(opts.threads));
const threads = getNumThreads();

/** Median over repeats of µs per call; `body(n)` makes n calls. */
function time(body: (n: number) => void): number {
  body(Math.min(calls, 10_000)); // warm up: op-id lookup, JIT
  const perCall: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    body(calls);
    perCall.push(Number(process.hrtime.bigint() - t0) / 1e3 / calls);
  }
  perCall.sort((x, y) => x - y);
  return perCall[Math.floor(perCall.length / 2)];
}

const PER_SCOPE = 100;

function vicinityCases(): Record<string, number> {
  const a = tensor([1, 2, 3, 4]).keep();
  const b = tensor([5, 6, 7, 8]).keep();
  const out: Record<string, number> = {
    // A native call that does no tensor work: the N-API crossing alone.
    'native no-op (getNumThreads)': time((n) => { for (let i = 0; i < n; i++) native.getNumThreads(); }),
    // The generated wrapper and the boxed call, disposing by hand: no scope bookkeeping.
    'aten.add_Tensor + dispose()': time((n) => { for (let i = 0; i < n; i++) aten.add_Tensor(a, b).dispose(); }),
    // What user code does: methods inside scopes, 100 ops per scope (the scope disposes them).
    'a.add(b) in scope (100 per scope)': time((n) => {
      for (let i = 0; i < n; i += PER_SCOPE) {
        using s = scope();
        for (let j = 0; j < PER_SCOPE; j++) a.add(b);
      }
    }),
    // Worst case: a scope (tidy) per op.
    'tidy(() => a.add(b)) per op': time((n) => { for (let i = 0; i < n; i++) tidy(() => { a.add(b); }); }),
    // In place: the result is the input, so nothing is wrapped or disposed.
    'a.add_(b) (in place)': time((n) => { for (let i = 0; i < n; i++) a.add_(b); }),
  };
  a.dispose();
  b.dispose();
  return out;
}

const PYTHON = String.raw`
import json, sys, time, torch
calls, repeats, threads = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
a = torch.tensor([1., 2., 3., 4.]); b = torch.tensor([5., 6., 7., 8.])
def timed(body):
    body(min(calls, 10000))
    per = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns(); body(calls); per.append((time.perf_counter_ns() - t0) / 1e3 / calls)
    return sorted(per)[len(per) // 2]
def noop(n):
    f = torch.get_num_threads
    for _ in range(n): f()
def add(n):
    f = torch.add
    for _ in range(n): f(a, b)
def method(n):
    for _ in range(n): a.add(b)
def inplace(n):
    for _ in range(n): a.add_(b)
def empty_loop(n):
    for _ in range(n): pass
print(json.dumps({
    'torch': torch.__version__,
    'native no-op (torch.get_num_threads)': timed(noop),
    'torch.add(a, b) (freed by refcount)': timed(add),
    'a.add(b)': timed(method),
    'a.add_(b) (in place)': timed(inplace),
    'empty loop iteration': timed(empty_loop),
}))
`;

function pythonCases(): Record<string, number | string> {
  const r = spawnSync(torchPython(process.env.VICINITY_BENCH_PYTHON), ['-c', PYTHON, String(calls), String(repeats), String(threads)], {
    encoding: 'utf8', env: process.env,
  });
  if (r.status !== 0) throw new Error(`op-overhead: the PyTorch side failed (status ${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, number | string>;
}

const result = {
  date: new Date().toISOString(),
  calls, repeats, threads,
  libtorch: native.buildInfo().torchVersion,
  env: { OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? null, GOMP_SPINCOUNT: process.env.GOMP_SPINCOUNT ?? null, OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS ?? null },
  vicinityUs: vicinityCases(),
  pytorchUs: pythonCases(),
};
const fmt = (v: number | string) => (typeof v === 'number' ? `${v.toFixed(3)} µs` : v);
console.log(`per-op overhead, ${calls} calls × ${repeats} repeats (median), threads ${threads}`);
for (const [side, cases] of [['vicinity', result.vicinityUs], ['pytorch', result.pytorchUs]] as const) {
  for (const [name, v] of Object.entries(cases)) console.log(`  ${side.padEnd(9)} ${name.padEnd(40)} ${fmt(v)}`);
}
if (opts.out) writeFileSync(opts.out, JSON.stringify(result, null, 2) + '\n');
