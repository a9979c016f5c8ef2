/**
 * The LA-layer's fused CPU kernel (`vicinity::la_attention`, native/kernels/la_attention.cc)
 * against the composite ATen path it replaces, and the LA models' training steps against
 * resnet_nano's (docs/benchmarks.md, "LA-layer fused kernel").
 *
 *   node dist/bench/la-layer.js [--batch 128] [--channels 32] [--size 28] [--heads 4]
 *     [--repeats 5] [--threads N] [--models resnet_nano,la_resnet_nano,la_resnet_nano_normalized]
 *     [--out r.json]
 *
 * Layer: LALayer(C → C, heads, k 3, constraint 3) on (batch, C, size, size), forward (to the
 * output read back) and backward (to x.grad read back) timed apart, for each aggregation and
 * implementation ('fused', 'composite'); the median of `repeats` after one warm-up. Models: one
 * SGD step (forward, cross-entropy, backward, step, loss read back) at 28×28×1, median of
 * `repeats` after one warm-up; models with LA-layers run once per implementation (the bench
 * wraps LALayer.prototype.forward to pass it). Each time comes with the process's CPU time over
 * the same span: at --threads 1 that is robust to other processes on a shared machine, where
 * wall time is not.
 */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  createModel, F, flushFinalizers, getNumThreads, keep, LALayer, manualSeed, optim, randint, randn, setNumThreads, tidy,
} from '../src/index.js';
import type { LAAggregation } from '../src/attention/la-layer.js';
import { withKernelMode, type KernelMode } from '../src/ops/fused.js';
import type { Tensor } from '../src/tensor/tensor.js';

const { values: opts } = parseArgs({
  options: {
    batch: { type: 'string', default: '128' },
    channels: { type: 'string', default: '32' },
    size: { type: 'string', default: '28' },
    heads: { type: 'string', default: '4' },
    repeats: { type: 'string', default: '5' },
    threads: { type: 'string' },
    models: { type: 'string', default: 'resnet_nano,la_resnet_nano,la_resnet_nano_normalized' },
    out: { type: 'string' },
  },
});
const [batch, channels, size, heads, repeats] = [opts.batch, opts.channels, opts.size, opts.heads, opts.repeats].map(Number);
if (opts.threads) setNumThreads(Number(opts.threads));

/** Wall and process CPU milliseconds of one call. */
interface Span { wall: number; cpu: number }

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function median(xs: number[]): number {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function medianSpan(spans: Span[]): Span {
  return { wall: median(spans.map((s) => s.wall)), cpu: median(spans.map((s) => s.cpu)) };
}

/** One layer forward + backward, timed apart; returns the spans and the output (kept) for comparison. */
function layerStep(la: LALayer, x: Tensor, implementation: KernelMode): { forward: Span; backward: Span; y: Tensor } {
  return tidy(() => {
    const [t0, c0] = [performance.now(), cpuMs()];
    const y = withKernelMode(implementation, () => la.forward(x));
    y.sum().item();
    const [t1, c1] = [performance.now(), cpuMs()];
    y.sum().backward();
    x.grad?.sum().item();
    const [t2, c2] = [performance.now(), cpuMs()];
    return { forward: { wall: t1 - t0, cpu: c1 - c0 }, backward: { wall: t2 - t1, cpu: c2 - c1 }, y: keep(y.detach()) };
  });
}

async function benchLayer(aggregation: Exclude<LAAggregation, 'literal'>) {
  manualSeed(0);
  const la = new LALayer({ inChannels: channels, outChannels: channels, heads, constraint: 3, aggregation });
  const x = keep(randn([batch, channels, size, size], { seed: 1 }).requiresGrad_());
  const result = {} as Record<'fused' | 'composite', { forward: Span; backward: Span }>;
  const outputs: Tensor[] = [];
  for (const implementation of ['fused', 'composite'] as const) {
    const forward: Span[] = [];
    const backward: Span[] = [];
    for (let i = 0; i <= repeats; i++) {
      const step = layerStep(la, x, implementation);
      if (i > 0) forward.push(step.forward), backward.push(step.backward);
      if (i === repeats) outputs.push(step.y);
      else step.y.dispose();
      x.grad?.zero_();
      la.zeroGrad();
      await flushFinalizers();
    }
    result[implementation] = { forward: medianSpan(forward), backward: medianSpan(backward) };
  }
  const difference = tidy(() => (outputs[0].sub(outputs[1]).abs().max().item() as number) / (outputs[1].abs().max().item() as number));
  outputs.forEach((t) => t.dispose());
  x.dispose();
  la.dispose();
  return { ...result, maxRelativeDifference: difference };
}

/** Runs fn with every LALayer forced to `implementation` (undefined: the default 'auto'). */
async function withImplementation<T>(implementation: KernelMode | undefined, fn: () => Promise<T>): Promise<T> {
  return implementation ? withKernelMode(implementation, fn) : fn();
}

async function benchModel(name: string): Promise<Span & { parameters: number }> {
  manualSeed(0);
  const model = createModel(name);
  const optimizer = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
  const x = keep(randn([batch, 1, 28, 28], { seed: 2 }));
  const labels = keep(randint(0, 10, [batch], { seed: 3 }));
  const spans: Span[] = [];
  for (let i = 0; i <= repeats; i++) {
    const [t0, c0] = [performance.now(), cpuMs()];
    tidy(() => {
      const loss = tidy(() => F.crossEntropy(model.forward(x) as Tensor, labels));
      optimizer.zeroGrad();
      loss.backward();
      optimizer.step();
      loss.item();
    });
    await flushFinalizers();
    if (i > 0) spans.push({ wall: performance.now() - t0, cpu: cpuMs() - c0 });
  }
  const parameters = model.numParameters();
  x.dispose();
  labels.dispose();
  model.dispose();
  return { ...medianSpan(spans), parameters };
}

const fmt = (s: Span) => `${s.wall.toFixed(0).padStart(6)} ms (cpu ${s.cpu.toFixed(0).padStart(5)})`;
const result = {
  date: new Date().toISOString(),
  threads: getNumThreads(),
  layer: { batch, channels, size, heads, kernelSize: 3, constraint: 3 },
  layers: {} as Record<string, Awaited<ReturnType<typeof benchLayer>>>,
  models: {} as Record<string, Awaited<ReturnType<typeof benchModel>>>,
};
console.log(`LALayer(${channels} → ${channels}, heads ${heads}) on (${batch}, ${channels}, ${size}, ${size}), threads ${result.threads}, median of ${repeats}`);
for (const aggregation of ['normalized', 'softmax'] as const) {
  const r = await benchLayer(aggregation);
  result.layers[aggregation] = r;
  for (const implementation of ['fused', 'composite'] as const) {
    console.log(`  ${aggregation.padEnd(10)} ${implementation.padEnd(9)} forward ${fmt(r[implementation].forward)}  backward ${fmt(r[implementation].backward)}`);
  }
  console.log(`  ${aggregation.padEnd(10)} max |fused − composite| / max |composite| = ${r.maxRelativeDifference.toExponential(2)}`);
}
for (const name of (opts.models ?? '').split(',').filter(Boolean)) {
  const probe = createModel(name);
  const hasLA = [...probe.modules()].some((m) => m instanceof LALayer);
  probe.dispose();
  for (const implementation of hasLA ? (['fused', 'composite'] as const) : [undefined]) {
    const r = await withImplementation(implementation, () => benchModel(name));
    const label = implementation ? `${name} (${implementation})` : name;
    result.models[label] = r;
    console.log(`  ${label.padEnd(36)} step ${fmt(r)}  (${r.parameters} parameters, batch ${batch})`);
  }
}
if (opts.out) writeFileSync(opts.out, JSON.stringify(result, null, 2) + '\n');
