/**
 * One ResNet-18 training step (forward, cross-entropy, backward, SGD) in vicinity against the
 * identical network in PyTorch, in one machine run. PyTorch is the torch the addon links (the
 * backend's Python: .venv/bin/python for pip's torch 2.x, /usr/bin/python3 for Debian's 1.13;
 * src/native/build-config.ts), or VICINITY_BENCH_PYTHON.
 *
 *   node dist/bench/resnet18-step.js [--steps 10] [--warmup 2] [--rounds =steps] [--threads N]
 *     [--batch 64] [--omp-wait-policy passive|unset|active] [--openblas-threads N]
 *     [--max-wait 60] [--one-scope] [--out r.json]
 *
 * Network: CIFAR stem (3x3 conv 64, stride 1, no max-pool), BasicBlocks [2,2,2,2] of widths
 * 64/128/256/512 and strides 1/2/2/2 with 1x1 conv+BN projection shortcuts, global average pool,
 * fc to 10 classes; 32×32 input. SGD: lr 0.1, momentum 0.9, weight decay 5e-4.
 *
 * Fairness:
 * - identical network: vicinity's initial state dict and batch are exported (raw bytes + JSON)
 *   and loaded into PyTorch, and the losses of the first steps are compared;
 * - same process environment: OMP_WAIT_POLICY, GOMP_SPINCOUNT and OPENBLAS_NUM_THREADS are set
 *   before vicinity loads libtorch, and the PyTorch child inherits them; both use `--threads`
 *   intra-op threads;
 * - drift: PyTorch runs as a child process that waits on stdin, and the timed steps alternate in
 *   rounds (vicinity first in even rounds, PyTorch first in odd ones);
 * - other processes (this machine is shared): each turn waits for a quiet machine (within
 *   `--max-wait`), and every step records the CPU time other processes took meanwhile.
 * A step is timed from zeroing the grads to the loss read back, scope disposal included.
 * `--omp-wait-policy active` makes the idle side's OpenMP threads spin while the other side runs,
 * so it cannot be compared this way.
 * Diagnostics per step: user/system CPU, minor page faults, and (vicinity) V8 GC time.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { PerformanceObserver } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: opts } = parseArgs({
  options: {
    steps: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string' },
    threads: { type: 'string' },
    batch: { type: 'string', default: '64' },
    seed: { type: 'string', default: '0' },
    lr: { type: 'string', default: '0.1' },
    'omp-wait-policy': { type: 'string' },
    'openblas-threads': { type: 'string' },
    'max-wait': { type: 'string', default: '60' },
    'one-scope': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
});
const steps = Number(opts.steps);
const warmup = Number(opts.warmup);
const rounds = Math.max(1, Math.min(Number(opts.rounds ?? steps), steps));
const batch = Number(opts.batch);
const seed = Number(opts.seed);
const lr = Number(opts.lr);
/** Seconds the whole run may spend waiting for other processes to quiet down (5 s a turn at most). */
const maxWaitS = Number(opts['max-wait']);

// ---- environment: before libtorch loads, since libgomp and OpenBLAS read it once -----------------

const policy = opts['omp-wait-policy']?.toLowerCase();
if (policy !== undefined && !['passive', 'active', 'unset'].includes(policy)) {
  throw new RangeError(`--omp-wait-policy must be passive, active or unset, got '${policy}'`);
}
if (policy === 'passive' || policy === 'active') process.env.OMP_WAIT_POLICY = policy.toUpperCase();
// Without the flag vicinity sets PASSIVE with GOMP_SPINCOUNT 30000 (src/native/binding.ts);
// `passive` is PASSIVE alone. libgomp treats any other value as absent (parse_wait_policy returns
// -1, after printing "Invalid value for environment variable OMP_WAIT_POLICY"), which is how this
// process gets libgomp's unset behaviour; PyTorch's child gets the variable truly removed.
if (policy === 'unset') process.env.OMP_WAIT_POLICY = 'unset';
if (opts['openblas-threads']) process.env.OPENBLAS_NUM_THREADS = opts['openblas-threads'];

const v = await import('../src/index.js');
const torchPython = (await import('../src/native/build-config.js')).torchPython(process.env.VICINITY_BENCH_PYTHON);
type Tensor = InstanceType<typeof v.Tensor>;
const threads = Number(opts.threads ?? os.availableParallelism());
v.setNumThreads(threads);
const childEnv: NodeJS.ProcessEnv = { ...process.env };
if (policy === 'unset') delete childEnv.OMP_WAIT_POLICY;

// ---- the vicinity network ---------------------------------------------------------------------

const nn = await import('../src/nn/index.js');
const optim = await import('../src/optim/index.js');

/** torchvision's BasicBlock: two 3x3 conv+BN, a 1x1 conv+BN projection when the shape changes. */
class BasicBlock extends nn.Module {
  readonly conv1: InstanceType<typeof nn.Conv2d>;
  readonly bn1: InstanceType<typeof nn.BatchNorm2d>;
  readonly conv2: InstanceType<typeof nn.Conv2d>;
  readonly bn2: InstanceType<typeof nn.BatchNorm2d>;
  readonly downsample: InstanceType<typeof nn.Sequential> | null;

  constructor(inPlanes: number, planes: number, stride: number) {
    super();
    this.conv1 = this.register('conv1', conv(inPlanes, planes, 3, stride));
    this.bn1 = this.register('bn1', new nn.BatchNorm2d({ numFeatures: planes }));
    this.conv2 = this.register('conv2', conv(planes, planes, 3, 1));
    this.bn2 = this.register('bn2', new nn.BatchNorm2d({ numFeatures: planes }));
    this.downsample = stride !== 1 || inPlanes !== planes
      ? this.register('downsample', new nn.Sequential(conv(inPlanes, planes, 1, stride), new nn.BatchNorm2d({ numFeatures: planes })))
      : null;
  }

  forward(x: Tensor): Tensor {
    const out = this.bn2.forward(this.conv2.forward(v.F.relu(this.bn1.forward(this.conv1.forward(x)))));
    return v.F.relu(out.add(this.downsample ? this.downsample.forward(x) : x));
  }
}

function conv(inChannels: number, outChannels: number, kernelSize: number, stride: number) {
  return new nn.Conv2d({ inChannels, outChannels, kernelSize, stride, padding: (kernelSize - 1) / 2, bias: false });
}

/** ResNet-18 with the CIFAR stem: 3x3 conv 64 stride 1, no max-pool. */
class ResNet18Cifar extends nn.Module {
  readonly conv1 = this.register('conv1', conv(3, 64, 3, 1));
  readonly bn1 = this.register('bn1', new nn.BatchNorm2d({ numFeatures: 64 }));
  readonly stages: InstanceType<typeof nn.Sequential>[] = [];
  readonly avgpool = this.register('avgpool', new nn.AdaptiveAvgPool2d({ outputSize: 1 }));
  readonly fc: InstanceType<typeof nn.Linear>;

  constructor(numClasses: number) {
    super();
    let inPlanes = 64;
    for (const [i, [planes, stride]] of [[64, 1], [128, 2], [256, 2], [512, 2]].entries()) {
      this.stages.push(this.register(`layer${i + 1}`, new nn.Sequential(new BasicBlock(inPlanes, planes, stride), new BasicBlock(planes, planes, 1))));
      inPlanes = planes;
    }
    this.fc = this.register('fc', new nn.Linear({ inFeatures: 512, outFeatures: numClasses }));
  }

  forward(x: Tensor): Tensor {
    let h = v.F.relu(this.bn1.forward(this.conv1.forward(x)));
    for (const stage of this.stages) h = stage.forward(h);
    return this.fc.forward(this.avgpool.forward(h).flatten(1));
  }
}

v.manualSeed(seed);
const model = v.tidy(() => new ResNet18Cifar(10));
model.train();
const optimizer = new optim.SGD(model.parameters(), { lr, momentum: 0.9, weightDecay: 5e-4 });
const x = v.randn([batch, 3, 32, 32], { seed: seed + 1 }).keep();
const y = v.randint(0, 10, [batch], { seed: seed + 2 }).keep();

/**
 * Forward and loss run in their own tidy (the library's training loop does the same), so the
 * forward intermediates' wrappers are disposed before backward and only what autograd saved stays
 * alive, freed as backward goes — as in PyTorch, where refcounting does it. `--one-scope` keeps
 * every intermediate until the step's scope ends instead (docs/benchmarks.md, "Memory retention").
 */
const forwardTidy = !opts['one-scope'];
const lossOf = () => v.F.crossEntropy(model.forward(x), y);

function step(): number {
  return v.tidy(() => {
    optimizer.zeroGrad();
    const loss = forwardTidy ? v.tidy(lossOf) : lossOf();
    loss.backward();
    optimizer.step();
    return loss.item() as number;
  });
}

// ---- export the initial state and the batch for PyTorch ----------------------------------------

function exportState(dir: string): void {
  const entries: [string, Tensor][] = [...model.stateDict(), ['input', x], ['target', y]];
  const manifest: Record<string, { dtype: string; shape: number[]; offset: number; bytes: number }> = {};
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [name, t] of entries) {
    const data = t.contiguous().dataSync();
    const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    manifest[name] = { dtype: t.dtype, shape: t.shape, offset, bytes: bytes.length };
    chunks.push(bytes);
    offset += bytes.length;
  }
  writeFileSync(path.join(dir, 'data.bin'), Buffer.concat(chunks));
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
}

// ---- the PyTorch child ------------------------------------------------------------------------

/**
 * Per step: wall seconds, the loss before the update, CPU seconds other processes used meanwhile,
 * and this process's user and system CPU seconds and minor page faults.
 */
interface RunReply { times: number[]; losses: number[]; foreign: number[]; userS: number[]; sysS: number[]; minorFaults: number[] }
const emptyReply = (): RunReply => ({ times: [], losses: [], foreign: [], userS: [], sysS: [], minorFaults: [] });

class PyTorchSide {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;

  constructor(stateDir: string) {
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../bench/resnet18_step.py');
    this.child = spawn(torchPython, [script, '--state', stateDir, '--threads', String(threads), '--lr', String(lr)], {
      env: childEnv, stdio: ['pipe', 'pipe', 'pipe'],
    });
    this.child.stderr.on('data', (d: Buffer) => process.stderr.write(`[pytorch] ${d}`));
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  async next<T>(): Promise<T> {
    const { value, done } = await this.lines.next();
    if (done) throw new Error('resnet18-step: the PyTorch process exited early (see [pytorch] lines above)');
    return JSON.parse(value) as T;
  }

  run(n: number): Promise<RunReply> {
    this.child.stdin.write(JSON.stringify({ cmd: 'run', steps: n }) + '\n');
    return this.next<RunReply>();
  }

  close(): void {
    this.child.stdin.end(JSON.stringify({ cmd: 'exit' }) + '\n');
  }
}

let clockTicks = 100;
/** CPU seconds the whole machine has spent busy (/proc/stat: all but idle and iowait). */
function machineBusyS(): number {
  const fields = readFileSync('/proc/stat', 'latin1').slice(0, 200).split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return (fields.reduce((a, b) => a + b, 0) - fields[3] - fields[4]) / clockTicks;
}
const ownCpuS = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

// V8 garbage collections (the external-memory accounting of tensors triggers mark-compacts) and
// the timed vicinity steps, on one clock; summed up at the end, since GC entries arrive late.
const gcEntries: { start: number; duration: number }[] = [];
const gcObserver = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcEntries.push({ start: e.startTime, duration: e.duration });
});
gcObserver.observe({ entryTypes: ['gc'] });
const timedWindows: [number, number][] = [];
let timing = false;

function runVicinity(n: number): RunReply {
  const reply = emptyReply();
  for (let i = 0; i < n; i++) {
    const [busy0, own0, r0, t0] = [machineBusyS(), ownCpuS(), process.resourceUsage(), performance.now()];
    reply.losses.push(step());
    reply.times.push((performance.now() - t0) / 1e3);
    if (timing) timedWindows.push([t0, performance.now()]);
    const r1 = process.resourceUsage();
    reply.foreign.push(Math.max(0, machineBusyS() - busy0 - (ownCpuS() - own0)));
    reply.userS.push((r1.userCPUTime - r0.userCPUTime) / 1e6);
    reply.sysS.push((r1.systemCPUTime - r0.systemCPUTime) / 1e6);
    reply.minorFaults.push(r1.minorPageFault - r0.minorPageFault);
  }
  return reply;
}

// ---- statistics -------------------------------------------------------------------------------

function quantile(sorted: number[], q: number): number {
  const i = (sorted.length - 1) * q;
  const lo = Math.floor(i);
  return sorted[lo] + (sorted[Math.min(lo + 1, sorted.length - 1)] - sorted[lo]) * (i - lo);
}

function summary(times: number[]) {
  const s = [...times].sort((a, b) => a - b);
  if (s.length === 0) return { medianS: NaN, p10S: NaN, p90S: NaN, n: 0 };
  return { medianS: quantile(s, 0.5), p10S: quantile(s, 0.1), p90S: quantile(s, 0.9), n: s.length };
}

/**
 * Other engineers' processes share this machine's cores. A step is quiet when other processes
 * used under QUIET_CORES cores on average while it ran; the quiet summary uses only those.
 */
const QUIET_CORES = 0.1;
function summaries(r: RunReply) {
  const times = r.times.slice(warmup);
  const foreign = r.foreign.slice(warmup);
  const quiet = times.filter((t, i) => foreign[i] / t < QUIET_CORES);
  const median = (xs: number[]) => summary(xs).medianS;
  return {
    ...summary(times), quiet: summary(quiet), foreignCores: foreign.map((f, i) => f / times[i]),
    medianUserS: median(r.userS.slice(warmup)), medianSysS: median(r.sysS.slice(warmup)),
    medianMinorFaults: median(r.minorFaults.slice(warmup)),
  };
}

// ---- main -------------------------------------------------------------------------------------

const stateDir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-resnet18-'));
exportState(stateDir);
const py = new PyTorchSide(stateDir);
const ready = await py.next<{ torch: string; threads: number; parameters: number; parallelInfo: string; clockTicks: number }>();
clockTicks = ready.clockTicks;
const vic = emptyReply();
const pt = emptyReply();
const append = (to: RunReply, r: RunReply) => {
  for (const key of Object.keys(to) as (keyof RunReply)[]) to[key].push(...r[key]);
};

const t0 = performance.now();
let waitedS = 0;
/** Waits until other processes use under QUIET_CORES cores over 0.3 s, within the wait budget. */
async function waitQuiet(): Promise<void> {
  const start = performance.now();
  const limitMs = Math.min(5, maxWaitS - waitedS) * 1e3;
  while (limitMs > 0) {
    const [busy0, own0, w0] = [machineBusyS(), ownCpuS(), performance.now()];
    await new Promise((resolve) => setTimeout(resolve, 300));
    const cores = (machineBusyS() - busy0 - (ownCpuS() - own0)) / ((performance.now() - w0) / 1e3);
    if (cores < QUIET_CORES || performance.now() - start > limitMs) break;
  }
  waitedS += (performance.now() - start) / 1e3;
}
const vicinityTurn = async (n: number, timed = true) => {
  await waitQuiet();
  timing = timed;
  append(vic, runVicinity(n));
};
const pytorchTurn = async (n: number) => { await waitQuiet(); append(pt, await py.run(n)); };

await vicinityTurn(warmup, false);
await pytorchTurn(warmup);
for (let r = 0; r < rounds; r++) {
  const n = Math.floor(steps / rounds) + (r < steps % rounds ? 1 : 0);
  const [first, second] = r % 2 === 0 ? [vicinityTurn, pytorchTurn] : [pytorchTurn, vicinityTurn];
  await first(n);
  await second(n);
}
py.close();
await new Promise((resolve) => setTimeout(resolve, 50));
gcObserver.disconnect();
const gcMs = gcEntries
  .filter((e) => timedWindows.some(([a, b]) => e.start >= a && e.start < b))
  .reduce((sum, e) => sum + e.duration, 0);
rmSync(stateDir, { recursive: true, force: true });

const compared = Math.min(3, vic.losses.length);
const lossRelDiff = vic.losses.slice(0, compared).map((l, i) => Math.abs(l - pt.losses[i]) / Math.abs(pt.losses[i]));
const vicStats = summaries(vic);
const ptStats = summaries(pt);
const quietRatio = vicStats.quiet.medianS / ptStats.quiet.medianS;
// Steps alternate, so step i of each side ran at nearly the same time: their ratio cancels drift.
const pairRatios = vic.times.slice(warmup).map((t, i) => t / pt.times[warmup + i]);
const pairedRatio = summary(pairRatios).medianS;
const info = v.native.buildInfo();
const result = {
  date: new Date().toISOString(),
  machine: { cpus: os.availableParallelism(), model: os.cpus()[0]?.model ?? 'unknown', node: process.version },
  versions: { vicinityLibtorch: info.torchVersion, pytorch: ready.torch },
  config: { batch, steps, warmup, rounds, threads, pytorchThreads: ready.threads, seed, lr, forwardTidy },
  env: {
    OMP_WAIT_POLICY: policy === 'unset' ? '(unset)' : (process.env.OMP_WAIT_POLICY ?? null),
    GOMP_SPINCOUNT: process.env.GOMP_SPINCOUNT ?? null,
    OPENBLAS_NUM_THREADS: process.env.OPENBLAS_NUM_THREADS ?? null,
    MALLOC_MMAP_THRESHOLD_: process.env.MALLOC_MMAP_THRESHOLD_ ?? null,
    MALLOC_TRIM_THRESHOLD_: process.env.MALLOC_TRIM_THRESHOLD_ ?? null,
    blasThreads: v.native.buildInfo().blasThreads,
  },
  parameters: { vicinity: model.numParameters(), pytorch: ready.parameters },
  firstLosses: { vicinity: vic.losses.slice(0, compared), pytorch: pt.losses.slice(0, compared), relDiff: lossRelDiff },
  vicinity: { ...vicStats, steps: vic },
  pytorch: { ...ptStats, steps: pt },
  ratio: vicStats.medianS / ptStats.medianS,
  quietRatio: Number.isFinite(quietRatio) ? quietRatio : null,
  pairedRatio,
  vicinityGcMsPerStep: gcMs / steps,
  liveTensorsAfter: v.memory().liveTensors,
  wallS: (performance.now() - t0) / 1e3,
  waitedForQuietS: waitedS,
};

const ms = (s: number) => `${(s * 1e3).toFixed(1)} ms`;
console.log(`ResNet-18 step, batch ${batch}, ${threads} threads, OMP_WAIT_POLICY=${result.env.OMP_WAIT_POLICY}, ` +
  `GOMP_SPINCOUNT=${result.env.GOMP_SPINCOUNT ?? '(unset)'}, ` +
  `${forwardTidy ? 'forward in its own tidy, ' : ''}` +
  `${steps} timed steps (+${warmup} warm-up) in ${rounds} alternating rounds`);
for (const [name, s] of [['vicinity', vicStats], ['pytorch', ptStats]] as const) {
  console.log(`  ${name.padEnd(9)} median ${ms(s.medianS)}  p10 ${ms(s.p10S)}  p90 ${ms(s.p90S)}  ` +
    `(quiet steps: ${s.quiet.n}/${s.n}, median ${ms(s.quiet.medianS)}); per step: user ${s.medianUserS.toFixed(2)} s, ` +
    `sys ${s.medianSysS.toFixed(2)} s, ${s.medianMinorFaults} minor faults`);
}
console.log(`  vicinity: V8 GC ${result.vicinityGcMsPerStep.toFixed(1)} ms per step`);
console.log(`  ratio vicinity/pytorch ${result.ratio.toFixed(3)} (quiet steps: ${quietRatio.toFixed(3)}; ` +
  `median of alternating pairs: ${pairedRatio.toFixed(3)})`);
console.log(`  first losses ${vic.losses.slice(0, compared).map((l) => l.toFixed(6))} ` +
  `vs ${pt.losses.slice(0, compared).map((l) => l.toFixed(6))} (max rel diff ${Math.max(...lossRelDiff).toExponential(1)})`);
if (opts.out) writeFileSync(opts.out, JSON.stringify(result, null, 2) + '\n');
if (result.parameters.vicinity !== result.parameters.pytorch || !(lossRelDiff[0] < 1e-4)) {
  console.error('resnet18-step: the two networks differ (parameter count or first-step loss); the timing is not a comparison');
  process.exitCode = 1;
}
