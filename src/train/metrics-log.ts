/**
 * The per-epoch record of a run, in two files of its directory:
 *
 *   metrics.jsonl  one JSON object per epoch: every MetricsRow field
 *   summary.csv    timm's summary (timm/utils/summary.py, update_summary): the columns
 *                  epoch, train_loss, eval_loss, eval_top1, eval_top5, lr, in that order, with
 *                  ema_eval_loss, ema_eval_top1, ema_eval_top5 before lr when an EMA is kept (as
 *                  update_summary_v2 writes them). Numbers are written as Python's repr writes
 *                  floats (csv.DictWriter), epochs as integers.
 *
 * As in timm, `epoch` is the 0-based index of the epoch and top-1/top-5 are percentages.
 * Resuming rewrites both files from the rows the train state holds, so a crash between writing a
 * row and the checkpoint never leaves a duplicate or a gap.
 */
import { appendFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/** One epoch's results. */
export interface MetricsRow {
  /** 0-based epoch index (timm's). */
  epoch: number;
  /** Mean training loss over the epoch's images. */
  train_loss: number;
  eval_loss: number;
  /** Percent. */
  eval_top1: number;
  eval_top5: number;
  /** The EMA model's evaluation, when an EMA is kept. */
  ema_eval_loss?: number;
  ema_eval_top1?: number;
  ema_eval_top5?: number;
  /** Mean lr of the param groups after the epoch's last step (timm's summary lr). */
  lr: number;
  /** Optimizer steps so far. */
  step: number;
  /** Training wall time of the epoch (resumed epochs: the part run since the resume), seconds. */
  epoch_seconds: number;
  /** Training images per second over that time. */
  images_per_second: number;
  /** Processes of a data-parallel run (absent for one process). */
  world_size?: number;
}

/** summary.csv's columns, timm's order. */
export function summaryColumns(ema: boolean): (keyof MetricsRow)[] {
  const ema3: (keyof MetricsRow)[] = ema ? ['ema_eval_loss', 'ema_eval_top1', 'ema_eval_top5'] : [];
  return ['epoch', 'train_loss', 'eval_loss', 'eval_top1', 'eval_top5', ...ema3, 'lr'];
}

/**
 * A float as Python's repr writes it: the shortest digits that round-trip, fixed notation for
 * exponents −4 ≤ e < 16 (with '.0' for whole numbers), else d.ddde±XX.
 */
export function pythonFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  const [mantissa, exponentText] = x.toExponential().split('e');
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    return `${mantissa}e${exponent < 0 ? '-' : '+'}${String(Math.abs(exponent)).padStart(2, '0')}`;
  }
  const digits = mantissa.replace('-', '').replace('.', '');
  const sign = x < 0 ? '-' : '';
  if (exponent < 0) return `${sign}0.${'0'.repeat(-exponent - 1)}${digits}`;
  const whole = digits.slice(0, exponent + 1).padEnd(exponent + 1, '0');
  const fraction = digits.slice(exponent + 1);
  return `${sign}${whole}.${fraction || '0'}`;
}

/** One summary.csv line (no newline) for a row. */
export function summaryLine(row: MetricsRow, ema: boolean): string {
  return summaryColumns(ema).map((key) => {
    const value = row[key] as number;
    return key === 'epoch' || key === 'step' ? String(value) : pythonFloat(value);
  }).join(',');
}

/** Appends rows to metrics.jsonl and summary.csv in a run directory. */
export class MetricsLog {
  readonly metricsFile: string;
  readonly summaryFile: string;

  /** `ema`: whether rows carry the EMA columns (fixed for the run). */
  constructor(readonly runDir: string, readonly ema: boolean) {
    this.metricsFile = path.join(runDir, 'metrics.jsonl');
    this.summaryFile = path.join(runDir, 'summary.csv');
  }

  /** Rewrites both files to hold exactly `rows` (a new run: none), each atomically. */
  async reset(rows: readonly MetricsRow[]): Promise<void> {
    const header = summaryColumns(this.ema).join(',');
    const csv = [header, ...rows.map((r) => summaryLine(r, this.ema))].join('\n') + '\n';
    const jsonl = rows.map((r) => `${JSON.stringify(r)}\n`).join('');
    await replaceFile(this.summaryFile, csv);
    await replaceFile(this.metricsFile, jsonl);
  }

  /** Appends one epoch's row to both files. */
  async append(row: MetricsRow): Promise<void> {
    await appendFile(this.metricsFile, `${JSON.stringify(row)}\n`);
    await appendFile(this.summaryFile, `${summaryLine(row, this.ema)}\n`);
  }
}

async function replaceFile(file: string, text: string): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, text);
  await rename(temp, file);
}
