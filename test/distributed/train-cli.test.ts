/**
 * `vicinity train --nproc-per-node 2` as a user runs it: one summary, rank 0's files with the world
 * size in metrics.jsonl, Ctrl-C to the launcher stopping both ranks with one checkpoint,
 * --resume continuing the distributed run to the end, and a rank killed mid-epoch making the
 * other exit with an error naming it while the last checkpoint stays intact.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { repoRoot } from '../support/paths.js';
import { freePort, runNode } from './support.js';

const cli = path.join(repoRoot, 'dist/src/cli/main.js');
const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-dist-cli-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const RUN = ['--model', 'small_convnet', '--dataset', 'fashion-mnist', '--data-source', 'subset', '--workers', '0',
  '--batch-size', '16', '--nproc-per-node', '2', '--dist-timeout', '30'];

const rows = (out: string) => readFileSync(path.join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);

test('two local ranks: one summary, rank 0 writes, the first metrics record names the world size', async () => {
  const out = path.join(dir, 'run');
  const port = await freePort();
  const r = await runNode([cli, 'train', ...RUN, '--epochs', '1', '--train-limit', '256', '--progress', 'none',
    '--master-port', String(port), '--out', out]).done;
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.match(/test accuracy: /g)?.length, 1, r.stdout);
  assert.match(r.stderr, /launch: 2 process\(es\) on this node .* world size 2/);
  const [first] = rows(out);
  assert.equal(first.world_size, 2);
  assert.equal(first.step, 8);  // 256 images / (2 ranks × 16)
  const config = JSON.parse(readFileSync(path.join(out, 'config.json'), 'utf8')) as { stepsPerEpoch: number };
  assert.equal(config.stepsPerEpoch, 8);
});

test('Ctrl-C to the launcher stops both ranks after the same step with one checkpoint; --resume finishes the run', async () => {
  const out = path.join(dir, 'interrupted');
  const port = await freePort();
  const { child, done } = runNode([cli, 'train', ...RUN, '--epochs', '2', '--train-limit', '1024', '--progress', 'plain',
    '--master-port', String(port), '--out', out]);
  let seen = '';
  await new Promise<void>((resolve) => child.stderr!.on('data', (d) => {
    seen += d;
    if (/step 8\/32/.test(seen)) resolve();
  }));
  child.kill('SIGINT');
  const r = await done;
  assert.equal(r.code, 130, r.stderr);
  assert.equal(r.stdout.match(/interrupted after \d+ steps/g)?.length, 1, r.stdout);
  assert.ok(existsSync(path.join(out, 'last.state.safetensors')));
  const resumed = await runNode([cli, 'train', '--resume', out, '--nproc-per-node', '2', '--master-port', String(await freePort()),
    '--progress', 'none']).done;
  assert.equal(resumed.code, 0, resumed.stderr);
  const all = rows(out);
  assert.deepEqual(all.map((row) => row.epoch), [0, 1]);
  assert.equal(all[1].step, 64);
  assert.ok(all.every((row) => row.world_size === 2));
});

/** The launcher's child running rank `rank` (Linux: its environment in /proc). */
function rankPid(launcher: number, rank: number): number | null {
  const children = execFileSync('ps', ['-o', 'pid=', '--ppid', String(launcher)], { encoding: 'utf8' }).trim().split(/\s+/).map(Number);
  for (const pid of children) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`RANK=${rank}`)) return pid;
    } catch {
      // exited meanwhile
    }
  }
  return null;
}

test('a rank killed mid-epoch: the other exits non-zero naming it within the timeout; the checkpoint stays', async () => {
  const out = path.join(dir, 'killed');
  const port = await freePort();
  const timeout = 20;
  const { child, done } = runNode([cli, 'train', ...RUN, '--epochs', '2', '--train-limit', '1024', '--progress', 'plain',
    '--dist-timeout', String(timeout), '--master-port', String(port), '--out', out]);
  let seen = '';
  await new Promise<void>((resolve) => child.stderr!.on('data', (d) => {
    seen += d;
    if (/epoch 2\/2 {2}step 8\/32/.test(seen)) resolve();  // mid-epoch 2, after epoch 1's checkpoint
  }));
  const victim = rankPid(child.pid!, 1);
  assert.ok(victim, 'rank 1 not found');
  const before = readFileSync(path.join(out, 'last.state.safetensors'));
  const killedAt = Date.now();
  process.kill(victim, 'SIGKILL');
  const r = await done;
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /launch: rank 1 was killed by SIGKILL/);
  // The collective that notices depends on timing: backward's gradient all-reduce ('training step'),
  // the all-reduce after each step that agrees on stopping ('allReduce') or a broadcast (seen once
  // under full-suite load); each names rank 1.
  assert.match(r.stderr, /rank 0 of 2: (training step|allReduce|broadcast) failed: rank 1 stopped responding/);
  assert.ok(Date.now() - killedAt < timeout * 1000, `took ${Date.now() - killedAt} ms`);
  assert.deepEqual(readFileSync(path.join(out, 'last.state.safetensors')), before);
  assert.deepEqual(rows(out).map((row) => row.epoch), [0]);
});
