/**
 * Faults (issue 13): a rank that is killed or hangs mid-epoch makes the survivor exit non-zero,
 * within the timeout, with an error naming the rank.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort, rankEnv, runNode } from './support.js';

const worker = path.join(path.dirname(fileURLToPath(import.meta.url)), 'ddp-worker.js');
const dir = mkdtempSync(path.join(tmpdir(), 'vicinity-faults-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('a killed rank: the survivor exits non-zero naming it, within the timeout', async () => {
  const port = await freePort();
  const timeout = 20;
  const env = { TEST_TIMEOUT: String(timeout) };
  const ranks = [0, 1].map((r) => runNode([worker, path.join(dir, 'w.json'), '32', '100000'], { ...env, ...rankEnv(r, 2, port) }));
  const victim = ranks[1].child;
  await new Promise<void>((resolve) => {
    let seen = '';
    victim.stdout!.on('data', (d) => {
      seen += d;
      if (seen.includes('step 5\n')) resolve();
    });
  });
  const killedAt = Date.now();
  victim.kill('SIGKILL');
  const survivor = await ranks[0].done;
  assert.notEqual(survivor.code, 0);
  assert.match(survivor.stderr, /rank 0 of 2: .*failed: rank 1 stopped responding/);
  assert.ok(Date.now() - killedAt < timeout * 1000, `the survivor took ${Date.now() - killedAt} ms`);
});

test('a hung rank: the survivor times out and names it', async () => {
  const port = await freePort();
  const timeout = 4;
  const env = { TEST_TIMEOUT: String(timeout) };
  const ranks = [0, 1].map((r) => runNode([worker, path.join(dir, 'h.json'), '32', '100000', 'hang-after=3'], { ...env, ...rankEnv(r, 2, port) }));
  const survivor = await ranks[0].done;
  ranks[1].child.kill('SIGKILL');
  assert.notEqual(survivor.code, 0);
  assert.match(survivor.stderr, /rank 0 of 2: .*failed: rank 1 stopped responding/);
  // The timeout, plus at most the 5 s the survivor waits for the others' reports, plus start-up.
  assert.ok(survivor.ms < (timeout + 5 + 10) * 1000, `the survivor took ${survivor.ms} ms`);
});
