/**
 * Progress of a training epoch, on stderr (stdout is left to the final summary the CLI prints):
 *
 *   'bar'    a cli-progress bar per epoch: steps, images/s, running loss, lr, ETA; redrawn in place
 *   'plain'  a line every `every` steps (default: about ten per epoch), for logs and pipes:
 *            epoch 1/5  step 120/468  loss 0.6123  lr 0.0987  2,345 img/s  ETA 0:15
 *   'none'   nothing
 *   'auto'   'bar' when the stream is a TTY, else 'plain'
 *
 * The per-epoch summary line (formatEpochLine) goes through the trainer's log, after the bar of
 * that epoch has stopped.
 */
import cliProgress from 'cli-progress';
import type { MetricsRow } from './metrics-log.js';

export type ProgressMode = 'auto' | 'bar' | 'plain' | 'none';

export interface ProgressOptions {
  mode: ProgressMode;
  /** Total epochs of the run (for 'epoch e/E'). */
  epochs: number;
  /** Where bars and lines go; default process.stderr. */
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Plain mode: a line every this many steps; default ⌈steps per epoch / 10⌉. */
  every?: number;
  /** Clock in milliseconds (tests); default performance.now. */
  now?: () => number;
}

/** What a step reports. */
export interface StepReport {
  /** Steps of this epoch done, including the resumed-over ones. */
  done: number;
  /** Running mean training loss of the epoch. */
  loss: number;
  lr: number;
  /** Images in this step. */
  images: number;
}

/** A duration as m:ss, or h:mm:ss from an hour on. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** An lr in three significant digits, e.g. 0.0987 or 1.00e-6. */
export function formatLr(lr: number): string {
  return lr !== 0 && Math.abs(lr) < 1e-4 ? lr.toExponential(2) : String(Number(lr.toPrecision(3)));
}

/** One plain progress line. */
export function formatStepLine(r: {
  epoch: number; epochs: number; done: number; steps: number; loss: number; lr: number;
  imagesPerSecond: number; etaSeconds: number;
}): string {
  return `epoch ${r.epoch + 1}/${r.epochs}  step ${r.done}/${r.steps}  loss ${r.loss.toFixed(4)}  ` +
    `lr ${formatLr(r.lr)}  ${Math.round(r.imagesPerSecond).toLocaleString('en-US')} img/s  ETA ${formatDuration(r.etaSeconds)}`;
}

/** The one line about a finished epoch. */
export function formatEpochLine(row: MetricsRow, epochs: number): string {
  const ema = row.ema_eval_top1 !== undefined ? `  ema top-1 ${row.ema_eval_top1.toFixed(2)}%` : '';
  return `epoch ${row.epoch + 1}/${epochs}  train loss ${row.train_loss.toFixed(4)}  eval loss ${row.eval_loss.toFixed(4)}  ` +
    `top-1 ${row.eval_top1.toFixed(2)}%  top-5 ${row.eval_top5.toFixed(2)}%${ema}  lr ${formatLr(row.lr)}  ` +
    `${row.epoch_seconds.toFixed(1)} s  ${Math.round(row.images_per_second).toLocaleString('en-US')} img/s`;
}

/** Reports the steps of each epoch in the chosen mode. */
export class Progress {
  readonly mode: 'bar' | 'plain' | 'none';
  private readonly stream: NodeJS.WritableStream & { isTTY?: boolean };
  private readonly now: () => number;
  private bar: cliProgress.SingleBar | null = null;
  private epoch = 0;
  private steps = 0;
  private startDone = 0;
  private images = 0;
  private started = 0;

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.now = options.now ?? (() => performance.now());
    this.mode = options.mode === 'auto' ? (this.stream.isTTY ? 'bar' : 'plain') : options.mode;
  }

  /** Starts epoch `epoch` (0-based) of `steps` steps, `done` of them already run (a resume). */
  startEpoch(epoch: number, steps: number, done = 0): void {
    this.epoch = epoch;
    this.steps = steps;
    this.startDone = done;
    this.images = 0;
    this.started = this.now();
    if (this.mode !== 'bar') return;
    this.bar = new cliProgress.SingleBar({
      // noTTYOutput: a bar asked for explicitly also draws into a pipe or file (a line every 2 s).
      stream: this.stream, hideCursor: true, clearOnComplete: false, etaBuffer: 50, fps: 5, noTTYOutput: true,
      format: `epoch ${epoch + 1}/${this.options.epochs} |{bar}| {value}/{total} | {speed} img/s | loss {loss} | lr {lr} | ETA {eta_formatted}`,
    }, cliProgress.Presets.shades_classic);
    this.bar.start(steps, done, { speed: '-', loss: '-', lr: '-' });
  }

  /** Reports one finished step. */
  step(r: StepReport): void {
    this.images += r.images;
    if (this.mode === 'none') return;
    const seconds = (this.now() - this.started) / 1000;
    const imagesPerSecond = seconds > 0 ? this.images / seconds : 0;
    if (this.bar) {
      this.bar.update(r.done, { speed: Math.round(imagesPerSecond), loss: r.loss.toFixed(4), lr: formatLr(r.lr) });
      return;
    }
    const every = this.options.every ?? Math.max(1, Math.ceil(this.steps / 10));
    if (r.done % every !== 0 && r.done !== this.steps) return;
    const run = r.done - this.startDone;
    const etaSeconds = run > 0 ? (seconds / run) * (this.steps - r.done) : NaN;
    this.write(formatStepLine({
      epoch: this.epoch, epochs: this.options.epochs, done: r.done, steps: this.steps, loss: r.loss, lr: r.lr,
      imagesPerSecond, etaSeconds,
    }));
  }

  /** Stops the epoch's bar (so that log lines can follow). */
  endEpoch(): void {
    this.bar?.stop();
    this.bar = null;
  }

  /** Images per second over the epoch so far. */
  get imagesPerSecond(): number {
    const seconds = (this.now() - this.started) / 1000;
    return seconds > 0 ? this.images / seconds : 0;
  }

  private write(line: string): void {
    this.stream.write(`${line}\n`);
  }
}
