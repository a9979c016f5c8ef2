/**
 * The `vicinity` command line as a user runs it (`node dist/src/cli/main.js …`): help texts,
 * --print-config, a real train → eval round trip on the bundled Fashion-MNIST subset, Ctrl-C,
 * bench's CSV, and the `vicinity: …` errors with exit code 1.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { TRAIN_SETTINGS } from '../../src/train/settings.js';
import { repoRoot } from '../support/paths.js';
import { cli, runAll, runInterrupted, TINY_RUN } from '../support/tiny-run.js';

const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vicinity-cli-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

/** The smallest real run: 512 subset images, one epoch. */
const SMOKE = TINY_RUN;

test('--help of every command lists its flags and examples', async () => {
  const [top, train, ...others] = await runAll([['--help'], ['train', '--help'], ['eval', '--help'], ['bench', '--help']].map((args) => ({ args })));
  assert.equal(top.status, 0);
  for (const command of ['doctor', 'train', 'eval', 'bench', 'info', 'list-models', 'verify']) assert.match(top.stdout, new RegExp(`\\n  ${command} `));
  assert.equal(train.status, 0, train.stderr);
  for (const flag of ['--config', '--print-config', ...TRAIN_SETTINGS.map((s) => s.flag)]) assert.ok(train.stdout.includes(flag), `train --help lacks ${flag}`);
  assert.match(train.stdout, /Examples:\n {2}\$ vicinity train/);
  const expected: Record<string, string[]> = {
    eval: ['--model', '--dataset', '--data-root', '--data-source', '--batch-size', '--input-size', '--workers', '--device', '--json'],
    bench: ['--batch-size', '--input-size', '--steps', '--warmup', '--mode', '--csv', '--num-threads', '--device', '--json'],
  };
  for (const [i, [command, flags]] of Object.entries(expected).entries()) {
    const r = others[i];
    assert.equal(r.status, 0, r.stderr);
    for (const flag of flags) assert.ok(r.stdout.includes(flag), `${command} --help lacks ${flag}`);
    assert.match(r.stdout, new RegExp(`Examples:\\n {2}\\$ vicinity ${command} `));
  }
});

test('train --print-config prints defaults < file < flags as YAML, the recipe in comments', () => {
  const file = path.join(tmp, 'print.yaml');
  writeFileSync(file, 'model: small_convnet\nepochs: 3\nbatch_size: 64\nseed: 7\n');
  const r = run('train', '--config', file, '--epochs', '2', '--print-config');
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  for (const line of ['model: small_convnet', 'dataset: fashion-mnist', 'seed: 7', 'epochs: 2', 'batchSize: 64',
    'out: runs/small_convnet-fashion-mnist', '# recipe fashion-mnist-sgd: commented values are the recipe\'s',
    '# lr: 0.05', '# weightDecay: 0.0005']) {
    assert.ok(lines.includes(line), `missing '${line}' in:\n${r.stdout}`);
  }
});

test('train then eval: the accuracy printed, the files written, and eval reproduces it', () => {
  const out = path.join(tmp, 'run');
  const r = run('train', ...SMOKE, '--out', out);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const accuracy = /test accuracy: (\d+\.\d\d)% top-1, (\d+\.\d\d)% top-5 after 1 epoch/.exec(r.stdout);
  assert.ok(accuracy, r.stdout);
  for (const file of ['last.safetensors', 'best.safetensors', 'last.state.safetensors', 'metrics.jsonl', 'summary.csv', 'config.json']) {
    assert.ok(existsSync(path.join(out, file)), `${file} missing`);
  }
  assert.match(r.stdout, new RegExp(`checkpoint: ${path.join(out, 'last.safetensors')}\\n`));
  assert.match(r.stdout, new RegExp(`best: +${path.join(out, 'best.safetensors')} \\(${accuracy[1]}% top-1\\)\\n`));
  assert.match(r.stdout, /^test accuracy: /);   // the trainer's log and progress go to stderr
  assert.match(r.stdout, new RegExp(`metrics: +${path.join(out, 'metrics.jsonl')}\\n`));
  assert.match(r.stdout, new RegExp(`summary: +${path.join(out, 'summary.csv')}`));
  assert.equal(readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length, 1);

  const e = run('eval', path.join(out, 'last.safetensors'), '--data-source', 'subset', '--batch-size', '1000', '--json');
  assert.equal(e.status, 0, e.stderr);
  const report = JSON.parse(e.stdout) as { model: string; dataset: string; count: number; top1: number; top5: number; param_count: number };
  assert.equal(report.model, 'small_convnet');
  assert.equal(report.dataset, 'fashion-mnist');
  assert.equal(report.count, 2000);
  assert.equal(report.param_count, 50_282);
  assert.equal(report.top1.toFixed(2), accuracy[1]);
  assert.equal(report.top5.toFixed(2), accuracy[2]);

  const wrong = run('eval', path.join(out, 'last.safetensors'), '--model', 'resnet_nano', '--data-source', 'subset');
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /^vicinity: .*last\.safetensors \(it was trained as small_convnet\) does not fit resnet_nano .*missing keys: conv1\.weight/);
});

test('Ctrl-C checkpoints the run and exits with 130', async () => {
  const out = path.join(tmp, 'interrupted');
  const { status, stdout, stderr } = await runInterrupted(['train', ...SMOKE.slice(0, -2), '--progress', 'plain',
    '--epochs', '3', '--batch-size', '16', '--out', out], 'SIGINT', /step \d+\/32/);
  assert.equal(status, 130, stdout + stderr);
  assert.match(stderr, /Ctrl-C: stopping after this step and writing a checkpoint/);
  assert.match(stdout, new RegExp(`interrupted after \\d+ steps \\(0 complete epoch\\(s\\)\\); continue with: vicinity train --resume ${out}`));
  assert.ok(existsSync(path.join(out, 'last.state.safetensors')));
});

test('bench writes timm benchmark.py columns', () => {
  const csv = path.join(tmp, 'bench.csv');
  const r = run('bench', 'small_convnet', '--steps', '2', '--warmup', '1', '--batch-size', '8', '--csv', csv);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /small_convnet +8 +28 +[\d.]+ +[\d.]+ +3\.870 M +[\d.]+ +[\d.]+ +0\.05 M/);
  const [header, row, end] = readFileSync(csv, 'utf8').split('\n');
  assert.equal(header, 'model,infer_samples_per_sec,infer_step_time,infer_batch_size,infer_img_size,infer_gmacs,infer_macts,' +
    'train_samples_per_sec,train_step_time,train_batch_size,train_img_size,param_count');
  const cells = row.split(',');
  assert.deepEqual([cells[0], cells[3], cells[4], cells[5], cells[9], cells[10], cells[11]], ['small_convnet', '8', '28', '0', '8', '28', '0.05']);
  assert.ok(Number(cells[1]) > 0 && Number(cells[7]) > 0, row);
  assert.equal(end, '');
});

test('errors: exit 1 with a vicinity: message naming the problem', async () => {
  const cases: [string[], RegExp][] = [
    [['train', '--epoch', '3'], /^vicinity: unknown option '--epoch'\n\(Did you mean --epochs\?\)/],
    [['train', '--epochs', '0', '--lr', 'x'], /^vicinity: command line has 2 problems:\n {2}- --epochs must be a positive integer, got '0'\n {2}- --lr must be a positive number, got 'x'/],
    [['train', '--model', 'resnet5'], /^vicinity: command line: --model: unknown model 'resnet5'; did you mean resnet50/],
    [['bench', 'resnet5', '--steps', '1'], /^vicinity: unknown model 'resnet5'; did you mean resnet50/],
    [['bench', 'small_convnet', '--mode', 'fast'], /^vicinity: --mode must be infer, train or both, got 'fast'/],
  ];
  const bad = path.join(tmp, 'bad.yaml');
  writeFileSync(bad, 'epochs: -2\nsmoothing: 0.1\n');
  cases.push([['train', '--config', bad], new RegExp(`^vicinity: ${bad} has 2 problems:\\n {2}- epochs must be a positive integer, got -2\\n` +
    " {2}- unknown setting 'smoothing'; did you mean labelSmoothing \\(timm's smoothing\\)\\?")]);
  const broken = path.join(tmp, 'broken.yaml');
  writeFileSync(broken, 'epochs: 1\n  lr: 0.1\n');
  cases.push([['train', '--config', broken], new RegExp(`^vicinity: ${broken}:1:\\d+: YAML syntax error: `)]);
  const ran = await runAll(cases.map(([args]) => ({ args })));
  for (const [i, [args, message]] of cases.entries()) {
    assert.equal(ran[i].status, 1, `${args.join(' ')}: ${ran[i].stdout}${ran[i].stderr}`);
    assert.match(ran[i].stderr, message, args.join(' '));
  }
});
