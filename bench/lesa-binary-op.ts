/**
 * The fused LESA binary-term op `vicinity::lesa_binary` (native/kernels/lesa_binary.cc) alone, at
 * the shapes the layer benchmark and lesa_resnet_nano give it: forward (no autograd) and forward +
 * backward, in training mode (batch statistics) or eval mode, wall ms, the
 * median of `repeats` after one warm-up. Random inputs: time does not depend on their values.
 *
 *   node dist/bench/lesa-binary-op.js [--repeats 5] [--eval] [--only L196] [--loop SECONDS]
 *
 * --loop runs the first selected case's forward + backward for that many seconds (for `perf record`).
 * Results: docs/benchmarks.md, "LESA binary term: fused kernel".
 */
import { parseArgs } from 'node:util';
import { timeSteps } from '../src/analysis/step-timer.js';
import * as aten from '../src/ops/generated/ops.gen.js';
import { noGrad } from '../src/tensor/autograd.js';
import { ones, randn, zeros } from '../src/tensor/creation.js';
import { getNumThreads } from '../src/tensor/memory.js';
import { tidy } from '../src/tensor/scope.js';
import type { Tensor } from '../src/tensor/tensor.js';

const { values: opts } = parseArgs({
  options: {
    repeats: { type: 'string', default: '5' },
    eval: { type: 'boolean', default: false },
    only: { type: 'string' },
    loop: { type: 'string' },
  },
});
const repeats = Number(opts.repeats);
const batchStats = !opts.eval;

/** N batch, g heads, qk and vp channels per head, L positions. */
interface Case { name: string; N: number; g: number; qk: number; vp: number; L: number }
const cases: Case[] = [
  { name: 'L196 (C64 14x14 g8, batch 8)', N: 8, g: 8, qk: 4, vp: 8, L: 196 },
  { name: 'L784 (C64 28x28 g8, batch 8)', N: 8, g: 8, qk: 4, vp: 8, L: 784 },
  { name: 'L49 qk4 (nano layer3.1, batch 128)', N: 128, g: 8, qk: 4, vp: 8, L: 49 },
  { name: 'L49 qk8 (nano layer4, batch 128)', N: 128, g: 8, qk: 8, vp: 16, L: 49 },
  { name: 'L196 qk16 (C256 14x14 g8, batch 8)', N: 8, g: 8, qk: 16, vp: 32, L: 196 },
].filter((c) => !opts.only || c.name.includes(opts.only));

/** Median of `repeats` timed calls after one warm-up, by the one step timer. */
async function timed(fn: () => void): Promise<number> {
  return (await timeSteps(fn, { warmup: 1, steps: repeats })).medianMs;
}

function inputs(c: Case): Tensor[] {
  const C = 2 * c.qk + c.vp;
  const qkv = randn([c.N, c.g, C, c.L], { seed: 1 }).requiresGrad_();        // (N, g, 2qk + vp, L)
  const rel = randn([C, 2 * c.L - 1], { seed: 2 }).mul(c.vp ** -0.5).detach().requiresGrad_();  // (2qk + vp, 2L − 1)
  const weight = ones([3 * c.g]).requiresGrad_();
  const bias = zeros([3 * c.g]).requiresGrad_();
  return [qkv, rel, weight, bias, zeros([3 * c.g]), ones([3 * c.g])];
}

console.log(`vicinity::lesa_binary, ${batchStats ? 'training (batch statistics)' : 'eval'}, ${getNumThreads()} threads, float32, ms`);
for (const c of cases) {
  const [qkv, rel, weight, bias, mean, variance] = inputs(c);
  const call = () => aten.vicinity_lesa_binary(qkv, rel, weight, bias, mean, variance, c.qk, batchStats, 1e-5)[0];
  const leaves = [qkv, rel, weight, bias];
  const step = () => tidy(() => {
    call().sum().backward();
    for (const t of leaves) t.grad?.zero_();
  });
  if (opts.loop) {
    const end = performance.now() + 1000 * Number(opts.loop);
    while (performance.now() < end) step();
    break;
  }
  const forward = await timed(() => noGrad(() => tidy(() => { call().sum().item(); })));
  const both = await timed(step);
  console.log(`${c.name}: forward ${forward.toFixed(1)}, forward + backward ${both.toFixed(1)}`);
}
