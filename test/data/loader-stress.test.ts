/**
 * The DataLoader's worker-death handling under stress (issue: an iteration's promise stayed
 * pending forever when a worker died at the wrong moment, and the process exited silently).
 *
 * A child process repeats the scenario ROUNDS times while a busy thread loads the CPU: start an
 * epoch, take a batch, kill a worker at one of several moments (while it works, after it went
 * idle, after its thread has had time to stop, or right before close()), then drain and close.
 * Every round must end with the loader's own error (or a clean close), and the child must print
 * its tally and exit 0: a promise left pending shows up as exit code 13 (unsettled top-level
 * await) or a timeout, never as a silent pass.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import test from 'node:test';
import { pathToFileURL } from 'node:url';
import { repoRoot } from '../support/paths.js';

const ROUNDS = Number(process.env.LOADER_STRESS_ROUNDS ?? 200);
const MOMENTS = 4;

const loaderUrl = pathToFileURL(path.join(repoRoot, 'dist/src/data/loader.js')).href;

const SCRIPT = `
import { Worker } from 'node:worker_threads';
import { DataLoader } from ${JSON.stringify(loaderUrl)};
// CPU load beside the scenario: a thread that spins until the process ends.
const burner = process.env.LOADER_STRESS_BURN ? new Worker('for (;;) {}', { eval: true }) : null;
burner?.unref();
const side = 2;
const dataset = { name: 'x', split: 'train', root: '.', classes: ['a'], labels: new Int32Array(12), count: 12,
  store: { kind: 'memory', pixels: new Uint8Array(12 * side * side), height: side, width: side, channels: 1 } };
const transform = { size: [side, side], channels: 1, mean: [0], std: [1], train: false };
const tally = { rejected: 0, closed: 0 };
const dispose = (b) => { b.images.dispose(); b.labels.dispose(); };
for (let round = 0; round < ${ROUNDS}; round++) {
  const moment = round % ${MOMENTS};
  const loader = new DataLoader({ dataset, transform, batchSize: 1, shuffle: false, seed: 0, workers: 1, prefetch: 2 });
  const iterator = loader.epoch(0)[Symbol.asyncIterator]();
  dispose((await iterator.next()).value);
  const victim = (await loader.pool).slots[0].worker;
  if (moment === 1) await new Promise((resolve) => setTimeout(resolve, 1));   // the worker goes idle
  void victim.terminate();   // not awaited: the loader alone must notice
  if (moment === 2) { const until = Date.now() + 2; while (Date.now() < until); }   // its thread stops meanwhile
  if (moment === 3) {
    await loader.close();
    tally.closed++;
    continue;
  }
  try {
    for (;;) { const r = await iterator.next(); if (r.done) break; dispose(r.value); }
    throw new Error('round ' + round + ': the epoch completed although its only worker was killed');
  } catch (e) {
    if (!/worker 1 of 1 exited unexpectedly/.test(e.message)) throw e;
    tally.rejected++;
  }
  await loader.close();
}
console.log(JSON.stringify(tally));
`;

test(`worker death at ${MOMENTS} moments, ${ROUNDS} times under CPU load: always a clear error, never a pending promise`, () => {
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(child.signal, null, `the scenario hung (killed by ${child.signal}):\n${child.stderr}`);
  assert.equal(child.status, 0, `exit code ${child.status} (13: a promise never settled):\n${child.stdout}${child.stderr}`);
  assert.deepEqual(JSON.parse(child.stdout), { rejected: ROUNDS * (MOMENTS - 1) / MOMENTS, closed: ROUNDS / MOMENTS });
});
