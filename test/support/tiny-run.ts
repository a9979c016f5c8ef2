/**
 * A tiny real training run through the CLI (small_convnet, one epoch of 512 bundled Fashion-MNIST
 * subset images, a few seconds), for the tests of the commands that read a run: predict, explain,
 * report. Also the `vicinity` runner those tests use.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './paths.js';

export const cli = path.join(repoRoot, 'dist/src/cli/main.js');

export interface Ran {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `vicinity …` to completion. */
export function vicinity(...args: string[]): Ran {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The smallest real run's flags: 512 subset images, one epoch. */
export const TINY_RUN = ['--model', 'small_convnet', '--dataset', 'fashion-mnist', '--data-source', 'subset', '--epochs', '1',
  '--train-limit', '512', '--workers', '0', '--progress', 'none'];

/** Trains the tiny run into `out` (extra flags appended); throws with the output when it fails. */
export function tinyRun(out: string, ...extra: string[]): { out: string; checkpoint: string } {
  const r = vicinity('train', ...TINY_RUN, '--out', out, ...extra);
  if (r.status !== 0) throw new Error(`vicinity train failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return { out, checkpoint: path.join(out, 'last.safetensors') };
}
