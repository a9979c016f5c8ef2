/**
 * `vicinity bench <models...>`: inference and training throughput on random input, after timm's
 * benchmark.py (huggingface/pytorch-image-models, `InferenceBenchmarkRunner` and
 * `TrainBenchmarkRunner`), so the CSV reads like timm's:
 *   - infer: eval mode, no autograd, a forward of one random batch per step;
 *   - train: train mode, forward + cross-entropy on random labels + backward + an SGD step
 *     (timm's `create_optimizer_v2(opt='sgd', lr=1e-4)`: momentum 0.9, Nesterov);
 *   - `samples_per_sec` = images / wall time of the timed steps, `step_time` = mean ms per step
 *     (each step timed on its own), both rounded as timm (2 and 3 decimals);
 *   - `gmacs` (one image, model-specs.md §0 conventions, 2 decimals) and `macts` (millions of
 *     outputs of conv/linear/matmul/einsum ops, fvcore's ActivationCountAnalysis convention);
 *   - `param_count` in millions (2 decimals), in the last column, where timm's `benchmark()` puts it.
 * Models may be globs (`'la_*'`), expanded by the registry's `listModels`.
 */
import { writeFile } from 'node:fs/promises';
import { countMacs } from '../analysis/macs.js';
import { formatCount, formatTable } from '../analysis/model-info.js';
import { createModel, modelInfo, type Classifier } from '../models/registry.js';
import { cliListModels, cliModelInfo } from './model-names.js';
import { timeSteps } from '../analysis/step-timer.js';
import * as F from '../ops/functional.js';
import { observeOps } from '../ops/call.js';
import { SGD } from '../optim/index.js';
import { noGrad } from '../tensor/autograd.js';
import { randint, randn } from '../tensor/creation.js';
import { getNumThreads, setNumThreads } from '../tensor/memory.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Device, Tensor } from '../tensor/tensor.js';

export type BenchMode = 'infer' | 'train' | 'both';

export interface BenchOptions {
  /** Images per step; default 256 (timm's). */
  batchSize?: number;
  /** Input side; default each model's. */
  inputSize?: number;
  /** Timed steps; default 20. */
  steps?: number;
  /** Untimed steps before them; default 5. */
  warmup?: number;
  /** Default 'both'. */
  mode?: BenchMode;
  /** Also write the rows to this CSV file. */
  csv?: string;
  /** libtorch intra-op threads for the run. */
  numThreads?: number;
  device?: Device;
  json?: boolean;
}

/** One CSV row: timm's benchmark.py columns (only the chosen mode's). */
export type BenchRow = Record<string, string | number>;

/** The CSV columns of a mode, in timm's order. */
export function benchColumns(mode: BenchMode): string[] {
  const infer = ['infer_samples_per_sec', 'infer_step_time', 'infer_batch_size', 'infer_img_size', 'infer_gmacs', 'infer_macts'];
  const train = ['train_samples_per_sec', 'train_step_time', 'train_batch_size', 'train_img_size'];
  return ['model', ...(mode === 'train' ? [] : infer), ...(mode === 'infer' ? [] : train), 'param_count'];
}

/** Registered names for each argument: an exact name, or a glob that must match at least one. */
export function expandModelNames(patterns: string[]): string[] {
  const names: string[] = [];
  for (const pattern of patterns) {
    if (/[*?[]/.test(pattern)) {
      const matched = cliListModels(pattern);
      if (matched.length === 0) throw new Error(`no model matches '${pattern}'; vicinity list-models lists the registered ones`);
      names.push(...matched);
    } else {
      names.push(cliModelInfo(pattern).name); // throws UnknownModelNameError with the nearest names
    }
  }
  return [...new Set(names)];
}

const round = (x: number, digits: number) => Number(x.toFixed(digits));

interface Timing {
  samplesPerSec: number;
  stepTimeMs: number;
}

/** timm's numbers from the one step timer (analysis/step-timer.ts): samples/s over the wall time, the mean step time. */
async function timeBenchSteps(step: () => void, counts: { warmup: number; steps: number }, batchSize: number,
  untimed?: () => void): Promise<Timing> {
  const t = await timeSteps(step, counts, untimed);
  return { samplesPerSec: round((counts.steps * batchSize) / t.wallSeconds, 2), stepTimeMs: round(t.meanMs, 3) };
}

/** Reading one value waits for the queued CUDA kernels (timm: torch.cuda.synchronize); CPU ops are synchronous. */
function sync(t: Tensor): void {
  t.flatten().narrow(0, 0, 1).item();
}

const ACTIVATION_OPS = new Set(['aten::conv1d', 'aten::conv2d', 'aten::linear', 'aten::matmul', 'aten::bmm', 'aten::addmm', 'aten::einsum']);

/** fvcore's activation count of one image: elements output by conv, linear, matmul and einsum ops. */
export function countActivations(model: Classifier, input: number[], device: Device = 'cpu'): number {
  let count = 0;
  const training = model.training;
  model.eval();
  try {
    noGrad(() => tidy(() => {
      const x = randn(input, { device, seed: 0 });
      observeOps((op, _args, result) => {
        if (ACTIVATION_OPS.has(op) && result && typeof (result as Tensor).numel === 'number') count += (result as Tensor).numel;
      }, () => model.forward(x));
    }));
  } finally {
    model.train(training);
  }
  return count;
}

async function benchInfer(model: Classifier, shape: number[], options: Required<Pick<BenchOptions, 'warmup' | 'steps'>>, device: Device): Promise<BenchRow> {
  model.eval();
  const x = keep(randn(shape, { device, seed: 0 }));
  try {
    const t = await timeBenchSteps(() => noGrad(() => {
      const y = model.forward(x);
      if (device !== 'cpu') sync(y);
    }), options, shape[0]);
    const activations = countActivations(model, [1, ...shape.slice(1)], device);
    return {
      infer_samples_per_sec: t.samplesPerSec, infer_step_time: t.stepTimeMs, infer_batch_size: shape[0],
      // A placeholder keeping timm's column order; benchModel fills in the count.
      infer_img_size: shape[3], infer_gmacs: 0, infer_macts: round(activations / 1e6, 2),
    };
  } finally {
    x.dispose();
  }
}

async function benchTrain(model: Classifier, shape: number[], numClasses: number,
  options: Required<Pick<BenchOptions, 'warmup' | 'steps'>>, device: Device): Promise<BenchRow> {
  model.train();
  const x = keep(randn(shape, { device, seed: 0 }));
  const optimizer = new SGD(model.parameters(), { lr: 1e-4, momentum: 0.9, nesterov: true });
  const first = model.parameters()[0];
  let draw = 0;
  try {
    const t = await timeBenchSteps(() => {
      const target = randint(0, numClasses, [shape[0]], { device, seed: draw++ });
      const loss = tidy(() => F.crossEntropy(model.forward(x), target));
      loss.backward();
      optimizer.step();
      if (device !== 'cpu') sync(first);
    }, options, shape[0], () => optimizer.zeroGrad());
    return { train_samples_per_sec: t.samplesPerSec, train_step_time: t.stepTimeMs, train_batch_size: shape[0], train_img_size: shape[3] };
  } finally {
    optimizer.dispose();
    x.dispose();
  }
}

/** One model's results: the CSV row (`benchColumns(mode)`) and the exact MACs of one image (0 in 'train' mode). */
export interface BenchResult {
  row: BenchRow;
  macs: number;
}

/** Benchmarks one registered model. */
export async function benchModel(name: string, options: BenchOptions = {}): Promise<BenchResult> {
  const info = modelInfo(name);
  const side = options.inputSize ?? info.inputSize;
  const batchSize = options.batchSize ?? 256;
  const mode = options.mode ?? 'both';
  const device = options.device ?? 'cpu';
  const counts = { warmup: options.warmup ?? 5, steps: options.steps ?? 20 };
  const shape = [batchSize, info.inChannels, side, side];
  const model = createModel(name, { inputSize: side });
  if (device !== 'cpu') model.to(device);
  try {
    const row: BenchRow = { model: name };
    let macs = 0;
    if (mode !== 'train') {
      macs = countMacs(model, [1, ...shape.slice(1)]).total;
      Object.assign(row, await benchInfer(model, shape, counts, device), { infer_gmacs: round(macs / 1e9, 2) });
    }
    if (mode !== 'infer') Object.assign(row, await benchTrain(model, shape, info.numClasses, counts, device));
    row.param_count = round(model.numParameters() / 1e6, 2);
    return { row, macs };
  } finally {
    model.dispose();
  }
}

/** CSV text (RFC 4180 quoting) of rows under `columns`. */
export function toCsv(columns: string[], rows: BenchRow[]): string {
  const cell = (v: string | number | undefined) => {
    const s = v === undefined ? '' : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns.join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\n') + '\n';
}

/** The human table: throughput, step times, and the model's size (exact MACs, not timm's rounded GMACs). */
export function formatBenchTable(results: BenchResult[], mode: BenchMode): string {
  const header = ['model', 'batch', 'size'];
  if (mode !== 'train') header.push('infer img/s', 'infer ms/step', 'MACs');
  if (mode !== 'infer') header.push('train img/s', 'train ms/step');
  header.push('params');
  const body = results.map(({ row: r, macs }) => {
    const cells = [String(r.model), String(r.infer_batch_size ?? r.train_batch_size), String(r.infer_img_size ?? r.train_img_size)];
    if (mode !== 'train') cells.push(Number(r.infer_samples_per_sec).toFixed(1), Number(r.infer_step_time).toFixed(2), formatCount(macs));
    if (mode !== 'infer') cells.push(Number(r.train_samples_per_sec).toFixed(1), Number(r.train_step_time).toFixed(2));
    cells.push(`${Number(r.param_count).toFixed(2)} M`);
    return cells;
  });
  return formatTable(header, body);
}

/** Runs `vicinity bench`; returns the exit code. */
export async function benchCommand(patterns: string[], options: BenchOptions = {}): Promise<number> {
  const names = expandModelNames(patterns);
  const mode = options.mode ?? 'both';
  if (options.numThreads !== undefined) setNumThreads(options.numThreads);
  const results: BenchResult[] = [];
  if (!options.json) {
    console.log(`benchmarking ${names.length} model(s): ${mode}, batch ${options.batchSize ?? 256}, ` +
      `${options.warmup ?? 5} warm-up + ${options.steps ?? 20} timed steps, ${getNumThreads()} thread(s), ${options.device ?? 'cpu'}`);
  }
  for (const name of names) {
    results.push(await benchModel(name, options));
    if (!options.json) console.log(`  ${name} done`);
  }
  const columns = benchColumns(mode);
  const rows = results.map((r) => r.row);
  if (options.csv) await writeFile(options.csv, toCsv(columns, rows));
  if (options.json) console.log(JSON.stringify(rows, null, 2));
  else {
    console.log(`\n${formatBenchTable(results, mode)}`);
    if (options.csv) console.log(`\nCSV (timm benchmark.py columns): ${options.csv}`);
  }
  return 0;
}
