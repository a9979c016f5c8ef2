/**
 * DistributedDataParallel through real processes on 127.0.0.1 (Gloo): 2 ranks × batch 32 train
 * the same weights as 1 process × batch 64 (issue 13's acceptance, to 1e-5 relative, 20 steps),
 * also with gradient accumulation under noSync, which must leave gradients local, and with a
 * BatchNorm layer converted to SyncBatchNorm (weights and running statistics).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, rankEnv, runNode } from './support.js';

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ddp-worker.js');
const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-ddp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

type Weights = { worldSize: number; weights: Record<string, number[]> };
const read = (file: string): Weights => JSON.parse(readFileSync(file, 'utf8')) as Weights;

async function twoRanks(out: string, extra: string[] = []): Promise<string[]> {
  // Each rank of a 2-rank job: batch 32, 20 steps.
  const port = await freePort();
  const runs = [0, 1].map((r) => runNode([worker, out, '32', '20', ...extra], rankEnv(r, 2, port)).done);
  const results = await Promise.all(runs);
  for (const [r, res] of results.entries()) assert.equal(res.code, 0, `rank ${r} failed:\n${res.stderr}`);
  return results.map((res) => res.stdout);
}

function maxRelativeDifference(a: Weights, b: Weights): number {
  let worst = 0;
  for (const [name, x] of Object.entries(a.weights)) {
    const y = b.weights[name];
    assert.equal(y.length, x.length, name);
    const scale = Math.max(...x.map(Math.abs));
    const diff = Math.max(...x.map((v, i) => Math.abs(v - y[i])));
    worst = Math.max(worst, diff / scale);
  }
  return worst;
}

const single = (async () => {
  const out = path.join(dir, 'single.json');
  const res = await runNode([worker, out, '64', '20']).done;
  assert.equal(res.code, 0, res.stderr);
  return read(out);
})();

test('2 processes × batch 32 train the weights of 1 process × batch 64 (20 steps, 1e-5 relative)', async () => {
  const out = path.join(dir, 'ddp.json');
  await twoRanks(out);
  const reference = await single;
  const ddp = read(out);
  assert.equal(ddp.worldSize, 2);
  const rel = maxRelativeDifference(reference, ddp);
  assert.ok(rel < 1e-5, `max relative difference ${rel}`);
  // Not the initial weights: training moved them (the check above compares trained models).
  assert.ok(Object.values(ddp.weights).flat().every(Number.isFinite));
});

test('gradient accumulation with noSync: local gradients inside, the same weights after', async () => {
  const out = path.join(dir, 'accumulate.json');
  const stdouts = await twoRanks(out, ['accumulate']);
  for (const s of stdouts) assert.match(s, /nosync-local true/);
  const rel = maxRelativeDifference(await single, read(out));
  assert.ok(rel < 1e-5, `max relative difference ${rel}`);
});

test('SyncBatchNorm: 2 processes × batch 32 match 1 process × batch 64 with plain BatchNorm', async () => {
  const reference = path.join(dir, 'single-bn.json');
  const res = await runNode([worker, reference, '64', '20', 'syncbn']).done;
  assert.equal(res.code, 0, res.stderr);
  const out = path.join(dir, 'syncbn.json');
  const stdouts = await twoRanks(out, ['syncbn']);
  assert.match(stdouts[0], /converted 1/);
  const ddp = read(out);
  assert.ok('1.running_mean' in ddp.weights && '1.running_var' in ddp.weights);
  const rel = maxRelativeDifference(read(reference), ddp);
  assert.ok(rel < 1e-5, `max relative difference ${rel}`);
});
