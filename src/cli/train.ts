/**
 * `vicinity train [--config run.yaml] [flags]`: one training run (trainer.ts `runTraining`) from
 * the merged settings — defaults < config file < flags (src/train/settings.ts). The trainer reports the
 * resolved run (data and counts, model and parameters, recipe and overrides), progress and a line
 * per epoch on stderr; stdout gets the final summary: test accuracy, and where the checkpoints,
 * metrics.jsonl and summary.csv are.
 *
 * Ctrl-C and SIGTERM (what docker, systemd and SLURM send): the first signal asks the run to stop
 * after the current step; it writes a checkpoint (which `--resume` continues from exactly) and the
 * command exits with 128 + the signal's number, as a shell reports a job the signal ended: 130
 * for SIGINT, 143 for SIGTERM. A second signal exits at once (same code), without a checkpoint of
 * the current epoch.
 */
import path from 'node:path';
import { formatConfigYaml, loadConfigFile } from '../train/config-file.js';
import { validateConfig } from '../train/config-validation.js';
import { defaultTrainConfig, mergeConfig } from '../train/settings.js';
import { flagValues } from './train-flags.js';
import { recipeFor } from '../train/recipes.js';
import type { TrainConfig } from '../train/train-config.js';
import { runTraining, type TrainResult } from '../train/trainer.js';
import { distTimeout, launchLocal, launchSettings } from '../distributed/launch.js';
import { isDistributedEnv, runDistributedTraining } from '../train/distributed-run.js';

/** `vicinity train`'s parsed options: the settings' flags, plus these. */
export interface TrainCommandOptions extends Record<string, unknown> {
  /** A YAML or JSON config file. */
  config?: string;
  /** Print the merged config as YAML and exit. */
  printConfig?: boolean;
}

/** Exit code of a run stopped by Ctrl-C (128 + SIGINT), as shells report it. */
export const INTERRUPTED_EXIT_CODE = 130;
/** Exit code of a run stopped by SIGTERM (128 + 15): what docker, systemd and SLURM report for a terminated job. */
export const TERMINATED_EXIT_CODE = 143;

/** The signals that stop a run with a checkpoint, and the exit code each ends with (128 + its number). */
const STOP_SIGNALS = { SIGINT: INTERRUPTED_EXIT_CODE, SIGTERM: TERMINATED_EXIT_CODE } as const;
type StopSignal = keyof typeof STOP_SIGNALS;

/** The run's settings: defaults, then the config file, then the flags; every value validated. */
export async function resolveTrainConfig(options: TrainCommandOptions): Promise<TrainConfig> {
  return (await resolveTrainSettings(options)).config;
}

/** The merged settings, and which of them the user gave (config file or flags, not defaults). */
export async function resolveTrainSettings(options: TrainCommandOptions): Promise<{ config: TrainConfig; given: Set<string> }> {
  const file = options.config ? await loadConfigFile(options.config) : {};
  const flags = validateConfig(flagValues(options), 'command line', { flags: true });
  return { config: mergeConfig(defaultTrainConfig(), file, flags), given: new Set([...Object.keys(file), ...Object.keys(flags)]) };
}

/**
 * Wires SIGINT and SIGTERM to an AbortController while `run` runs: the first signal aborts (the
 * run checkpoints and returns; `signal.reason` names the signal), a second exits the process at
 * once with 128 + its number.
 */
export async function withInterrupt<T>(run: (signal: AbortSignal) => Promise<T>, say: (line: string) => void): Promise<T> {
  const controller = new AbortController();
  const handlers = Object.keys(STOP_SIGNALS).map((name) => {
    const signal = name as StopSignal;
    const what = signal === 'SIGINT' ? 'Ctrl-C' : 'SIGTERM';
    const handler = () => {
      if (controller.signal.aborted) {
        say(`\nsecond ${what}: stopping now, without a checkpoint of the current epoch`);
        process.exit(STOP_SIGNALS[signal]);
      }
      say(`\n${what}: stopping after this step and writing a checkpoint (${what} again to quit at once)`);
      controller.abort(signal);
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  try {
    return await run(controller.signal);
  } finally {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  }
}

/** The exit code of a run `signal` stopped: 130 for SIGINT, 143 for SIGTERM. */
export function stoppedExitCode(signal: AbortSignal): number {
  return STOP_SIGNALS[signal.reason as StopSignal] ?? INTERRUPTED_EXIT_CODE;
}

/** The end of a run: accuracy and files, or how to continue an interrupted one. */
export function formatTrainResult(result: TrainResult): string {
  const lines: string[] = [];
  if (result.interrupted) {
    lines.push(`interrupted after ${result.steps} steps (${result.epochs} complete epoch(s)); ` +
      `continue with: vicinity train --resume ${result.runDir}`);
  }
  if (Number.isFinite(result.top1)) {
    const ema = result.emaTop1 !== undefined ? `, EMA ${result.emaTop1.toFixed(2)}% top-1` : '';
    lines.push(`test accuracy: ${result.top1.toFixed(2)}% top-1, ${result.top5.toFixed(2)}% top-5${ema} ` +
      `after ${result.epochs} epoch(s) in ${result.seconds.toFixed(1)} s`);
  } else {
    lines.push('test accuracy: none yet (stopped before the first epoch ended)');
  }
  lines.push(`checkpoint: ${result.checkpoint}`);
  if (Number.isFinite(result.bestTop1)) {
    lines.push(`best:       ${path.join(result.runDir, 'best.safetensors')} (${result.bestTop1.toFixed(2)}% top-1)`);
  }
  lines.push(`state:      ${result.stateFile}`, `metrics:    ${result.metricsFile}`, `summary:    ${result.summaryFile}`);
  return lines.join('\n');
}

/** Runs `vicinity train`; returns the exit code (0, or 130/143 when SIGINT/SIGTERM stopped the run). */
export async function trainCommand(options: TrainCommandOptions): Promise<number> {
  // --nproc-per-node: this process only launches and supervises the ranks (distributed/launch.ts).
  const launch = launchSettings(options, process.argv.slice(1));
  const { config, given } = await resolveTrainSettings(options);
  // Resolving the recipe here checks the settings together (e.g. warm-up longer than the run)
  // before any data is read; a resumed run takes its recipe from its state file instead.
  const recipe = config.resume ? undefined : recipeFor(config);
  if (options.printConfig) {
    process.stdout.write(formatConfigYaml(config, recipe && { name: recipe.name, settings: recipe }));
    return 0;
  }
  // As the trainer's own lines and progress: stderr, so stdout holds only the final summary.
  const note = (line: string) => process.stderr.write(`${line}\n`);
  if (launch) return launchLocal(launch);
  // Under a launcher or torchrun (WORLD_SIZE set), this process is one rank (train/distributed-run.ts).
  const distributed = isDistributedEnv();
  const quiet = distributed && process.env.RANK !== '0';
  if (options.config && config.progress !== 'none' && !quiet) note(`config: ${options.config}`);
  let stopped: AbortSignal | undefined;
  const result = await withInterrupt((signal) => {
    stopped = signal;
    return distributed
      ? runDistributedTraining(config, { signal, given, runTraining, timeoutSeconds: distTimeout(options), syncBatchNorm: options.syncBn === true })
      : runTraining(config, { signal, given });
  }, quiet ? () => undefined : note);
  if (!quiet) console.log(formatTrainResult(result));
  return result.interrupted ? stoppedExitCode(stopped!) : 0;
}
