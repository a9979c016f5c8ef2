/**
 * The fused window softmax attention op `vicinity::window_softmax_attention`
 * (native/kernels/window_softmax.cc) alone, at the shapes na_resnet_nano gives it (128 images × 8
 * heads, k 7, clamped windows, rpb bias): forward (no autograd) and forward + backward, wall ms, the
 * median of `repeats` after one warm-up. Random inputs: time does not depend on their values.
 *
 *   node dist/bench/window-softmax-op.js [--repeats 5] [--only 28x28]
 *
 * Results: docs/benchmarks.md, "Window softmax attention: query rows as vector lanes".
 */
import { parseArgs } from 'node:util';
import { timeSteps } from '../src/analysis/step-timer.js';
import { windowStarts } from '../src/attention/window-gather.js';
import * as aten from '../src/ops/generated/ops.gen.js';
import { noGrad } from '../src/tensor/autograd.js';
import { randn } from '../src/tensor/creation.js';
import { getNumThreads } from '../src/tensor/memory.js';
import { tidy } from '../src/tensor/scope.js';

const { values: opts } = parseArgs({ options: { repeats: { type: 'string', default: '5' }, only: { type: 'string' } } });
const repeats = Number(opts.repeats);
const [heads, k] = [8, 7];
/** (N = images·heads, H, W, C per head) of na_resnet_nano's four stages. */
const shapes = [[1024, 28, 28, 4], [1024, 28, 28, 8], [1024, 14, 14, 16], [1024, 7, 7, 32]]
  .filter(([, h, w]) => !opts.only || `${h}x${w}`.includes(opts.only));

console.log(`vicinity::window_softmax_attention, k ${k}, rpb, ${getNumThreads()} threads, float32, ms`);
for (const [n, h, w, c] of shapes) {
  const starts = windowStarts(h, w, { kernelSize: k, placement: 'clamped' });
  const [q, key, value] = [1, 2, 3].map((seed) => randn([n, h, w, c], { seed }).requiresGrad_());
  const bias = randn([heads, h, w, k * k], { seed: 4 }).requiresGrad_();
  const call = () => aten.vicinity_window_softmax_attention(q, key, value, starts.rows, starts.cols, bias, null, k, 1);
  const step = () => tidy(() => {
    call().sum().backward();
    for (const t of [q, key, value, bias]) t.grad = null;
  });
  const forward = (await timeSteps(() => noGrad(() => tidy(() => { call().sum().item(); })), { warmup: 1, steps: repeats })).medianMs;
  const both = (await timeSteps(step, { warmup: 1, steps: repeats })).medianMs;
  console.log(`(${n}, ${h}, ${w}, ${c}): forward ${forward.toFixed(1)}, forward + backward ${both.toFixed(1)}`);
}
