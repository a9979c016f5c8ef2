/**
 * A tiny real training run through the CLI (small_convnet, one epoch of 512 bundled Fashion-MNIST
 * subset images, a few seconds), for the tests of the commands that read a run: predict, explain,
 * report. Also the `vicinity` runners the CLI tests use: to completion, several at once, and
 * interrupted by a signal.
 */
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot } from './paths.js';

export const cli = path.join(repoRoot, 'dist/src/cli/main.js');

export interface Ran {
  args?: string[];
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `vicinity …` to completion. */
export function vicinity(...args: string[]): Ran {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs commands at once (most of each one's second is spent loading libtorch, not on the CPU). */
export function runAll(commands: { args: string[]; env?: Record<string, string> }[]): Promise<Ran[]> {
  return Promise.all(commands.map(({ args, env }) => new Promise<Ran>((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d; });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('close', (status) => resolve({ args, status, stdout, stderr }));
  })));
}

/** Starts `vicinity …args` and sends `signal` once, when its stderr first matches `when`; resolves at its exit. */
export function runInterrupted(args: string[], signal: NodeJS.Signals, when: RegExp): Promise<Ran> {
  const child = spawn(process.execPath, [cli, ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => { stdout += d; });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
    if (when.test(stderr) && !child.killed) child.kill(signal);
  });
  return new Promise<Ran>((resolve) => child.on('close', (status) => resolve({ args, status, stdout, stderr })));
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
