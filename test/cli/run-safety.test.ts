/**
 * Runs that cannot be lost, and messages that do not mislead: each of issue 10's section-2 faults
 * met the way a user meets it, through the `vicinity` process (exit codes, stderr, the files left
 * in the run directory).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import pngjs from 'pngjs';
import { writeSafetensors } from '../../src/checkpoint/safetensors.js';
import { tensorToRaw } from '../../src/checkpoint/tensor-io.js';
import { createModel } from '../../src/models/registry.js';
import { repoRoot } from '../support/paths.js';
import { cli, runAll, runInterrupted, type Ran } from '../support/tiny-run.js';

const run = async (...args: string[]) => (await runAll([{ args }]))[0];

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vicinity-safety-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** The smallest real run: 256 subset images, one epoch of 4 steps. */
const SMOKE = ['--model', 'small_convnet', '--dataset', 'fashion-mnist', '--data-source', 'subset', '--epochs', '1',
  '--train-limit', '256', '--batch-size', '64', '--workers', '0', '--progress', 'none'];

/** A clean CLI error: exit 1, one `vicinity:` line on stderr matching `message`, no stack trace, nothing on stdout. */
function assertCleanError(r: Ran, message: RegExp): void {
  const what = `${(r.args ?? []).join(' ')}:\n${r.stdout}${r.stderr}`;
  assert.equal(r.status, 1, what);
  assert.match(r.stderr, /^vicinity: /, what);
  assert.match(r.stderr, message, what);
  assert.doesNotMatch(r.stderr, /\n\s+at /, `a stack trace: ${what}`);
  assert.equal(r.stdout, '', what);
}

test('1. train into a directory that holds a run refuses (naming --resume and --overwrite); --overwrite replaces it', async () => {
  const out = path.join(tmp, 'again');
  const first = await run('train', ...SMOKE, '--out', out);
  assert.equal(first.status, 0, first.stderr);
  const metrics = readFileSync(path.join(out, 'metrics.jsonl'), 'utf8');
  const again = await run('train', ...SMOKE, '--out', out);
  assertCleanError(again, new RegExp(`${out} already holds a run \\(.*last\\.state\\.safetensors.*\\); continue it with ` +
    `--resume ${out}, replace it with --overwrite, or choose another directory with --out`));
  assert.equal(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8'), metrics, 'the refused run changed metrics.jsonl');
  const replaced = await run('train', ...SMOKE, '--out', out, '--overwrite', '--progress', 'plain');
  assert.equal(replaced.status, 0, replaced.stderr);
  assert.match(replaced.stderr, /note: --overwrite: removed the earlier run's .*metrics\.jsonl/);
  assert.ok(!existsSync(path.join(out, '.vicinity.lock')), 'the lock outlived the run');
});

test('2, 3. thread and worker counts: one rule, a clean vicinity: error, also before --help', async () => {
  const cores = os.availableParallelism();
  const range = (min: number) => `must be an integer from ${min} to ${4 * cores} \\(4 per core; this machine has ${cores}\\)`;
  const ran = await runAll([
    { args: ['train', ...SMOKE, '--workers', '1000', '--out', path.join(tmp, 'w')] },
    { args: ['eval', 'x.safetensors', '--workers', '1000'] },
    { args: ['bench', 'small_convnet', '--num-threads', '100000'] },
    ...['-1', '5000', 'abc', '0'].map((value) => ({ args: ['--help'], env: { VICINITY_NUM_THREADS: value } })),
    { args: ['list-models'], env: { VICINITY_NUM_THREADS: '1' } },
  ]);
  assertCleanError(ran[0], new RegExp(`--workers ${range(0)}, got '1000'`));
  assertCleanError(ran[1], new RegExp(`--workers ${range(0)}, got '1000'`));
  assertCleanError(ran[2], new RegExp(`--num-threads ${range(1)}, got '100000'`));
  for (const [i, value] of ['-1', '5000', 'abc', '0'].entries()) {
    assertCleanError(ran[3 + i], new RegExp(`^vicinity: VICINITY_NUM_THREADS ${range(1)}, got '${value}'\\n$`));
  }
  assert.equal(ran[7].status, 0, ran[7].stderr);
});

test('4. --resume refuses run-defining settings that differ, and takes only what the user gave', async () => {
  const out = path.join(tmp, 'resume');
  const first = await run('train', ...SMOKE, '--epochs', '2', '--out', out, '--progress', 'plain');
  assert.equal(first.status, 0, first.stderr);
  const [conflict, same] = await runAll([
    { args: ['train', '--resume', out, '--lr', '0.5', '--model', 'resnet_nano', '--progress', 'none'] },
    { args: ['train', '--resume', out, '--epochs', '3', '--progress', 'plain'] },
  ]);
  assertCleanError(conflict, /cannot resume the run of small_convnet on fashion-mnist from .* with different settings: model resnet_nano \(the run's: small_convnet\), lr 0\.5 \(the run's: 0\.\d+\)/);
  assert.equal(same.status, 0, same.stderr);
  assert.match(same.stderr, /resume: epochs 2 → 3/);
  // The defaults the user never gave (model, dataset, workers, …) are neither compared nor listed.
  assert.doesNotMatch(same.stderr, /ignoring|model=|la_resnet_nano_s2/);
});

test('5. a diverged run stops with an error, exit 1, and writes no non-finite checkpoint; eval refuses NaN outputs', async () => {
  const out = path.join(tmp, 'diverged');
  // The recipe's batch size: two steps whose loss stays finite while the weights blow up.
  const args = SMOKE.filter((a, i) => a !== '--batch-size' && SMOKE[i - 1] !== '--batch-size');
  const r = await run('train', ...args, '--lr', '1e30', '--out', out);
  assertCleanError(r, /the run diverged in epoch 1: .*not finite.*; no checkpoint was written\. Lower lr/);
  assert.ok(!existsSync(path.join(out, 'best.safetensors')), 'a non-finite best.safetensors was saved');
  assert.ok(!existsSync(path.join(out, 'last.safetensors')));
  // A checkpoint whose weights are NaN: eval reports it instead of scoring chance-level accuracy.
  const nan = path.join(tmp, 'nan.safetensors');
  const model = createModel('small_convnet');
  const weights = new Map([...model.stateDict()].map(([name, t]) => {
    const raw = tensorToRaw(t);
    if (raw.dtype === 'float32') new Float32Array(raw.data.buffer, raw.data.byteOffset, raw.data.byteLength / 4).fill(NaN);
    return [name, raw] as const;
  }));
  model.dispose();
  await writeSafetensors(nan, weights, { model: 'small_convnet', dataset: 'fashion-mnist', numClasses: '10', inChannels: '1', inputSize: '28x28' });
  const e = await run('eval', nan, '--data-source', 'subset');
  assertCleanError(e, /nan\.safetensors: the model's outputs are not finite \(NaN or ±Inf\) on 2000 of 2000 test images/);
});

test('6. SIGTERM checkpoints the run and exits with 143', async () => {
  const out = path.join(tmp, 'terminated');
  const { status, stdout, stderr } = await runInterrupted(['train', ...SMOKE.slice(0, -2), '--progress', 'plain',
    '--epochs', '3', '--batch-size', '16', '--out', out], 'SIGTERM', /step \d+\/16/);
  assert.equal(status, 143, stdout + stderr);
  assert.match(stderr, /SIGTERM: stopping after this step and writing a checkpoint/);
  assert.match(stdout, new RegExp(`interrupted after \\d+ steps .*continue with: vicinity train --resume ${out}`));
  assert.ok(existsSync(path.join(out, 'last.state.safetensors')));
});

/** A tiny ImageFolder of `classes` classes, one 8×8 PNG each, in split layout. */
function imageFolder(root: string, classes: number): void {
  for (const split of ['train', 'val']) {
    for (let c = 0; c < classes; c++) {
      const dir = path.join(root, split, `c${c}`);
      mkdirSync(dir, { recursive: true });
      const png = new pngjs.PNG({ width: 8, height: 8 });
      png.data.fill(40 * c);
      writeFileSync(path.join(dir, 'a.png'), pngjs.PNG.sync.write(png));
    }
  }
}

test('10. messages that name the problem and the fix', async () => {
  const out = path.join(tmp, 'messages');
  const first = await run('train', ...SMOKE, '--out', out);
  assert.equal(first.status, 0, first.stderr);
  const corrupt = path.join(tmp, 'corrupt.pth');
  writeFileSync(corrupt, Buffer.from('PK\x03\x04 this is not a zip archive at all'));
  const folder = path.join(tmp, 'three-classes');
  imageFolder(folder, 3);
  const ran = await runAll([
    { args: ['eval', corrupt, '--model', 'small_convnet', '--data-source', 'subset'] },
    { args: ['eval', path.join(out, 'last.safetensors'), '--dataset', 'imagefolder', '--data-root', folder] },
    { args: ['list-models', '[[['] },
    { args: ['list-models', 'zzz*'] },
    { args: ['info', 'resnet5'] },
    { args: ['bench', 'resnet5'] },
    { args: ['eval', out] },
    { args: ['train', '--seed', '9007199254740993', '--print-config'] },
  ]);
  assertCleanError(ran[0], new RegExp(`^vicinity: ${corrupt} is not a readable checkpoint: `));
  assert.doesNotMatch(ran[0].stderr, /does not fit|check --model/);
  assertCleanError(ran[1], /was trained for 10 classes \(on fashion-mnist\), but imagefolder has 3; evaluate it on a dataset with 10 classes \(--dataset fashion-mnist\)/);
  assertCleanError(ran[2], /^vicinity: '\[\[\[' is not a valid model pattern/);
  assertCleanError(ran[3], /^vicinity: no model matches 'zzz\*'; the registered models are /);
  for (const r of [ran[4], ran[5]]) {
    assertCleanError(r, /unknown model 'resnet5'; did you mean resnet50.*\(vicinity list-models lists them/);
    assert.doesNotMatch(r.stderr, /listModels\(/);
  }
  assertCleanError(ran[6], new RegExp(`${out} is a directory; pass a checkpoint file in it: ${path.join(out, 'best.safetensors')}, ` +
    `${path.join(out, 'last.safetensors')}`));
  assertCleanError(ran[7], /--seed must be an integer in \[0, 9007199254740991\], got '9007199254740993'/);
});
