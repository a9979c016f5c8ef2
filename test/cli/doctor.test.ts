/** `vicinity doctor` and the CLI's argument errors, run as a user would. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import test from 'node:test';
import { repoRoot } from '../support/paths.js';

const cli = path.join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('doctor reports libtorch, threads, BLAS, CUDA and the build, and passes its checks', () => {
  const r = run('doctor', '--json');
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout) as { ok: boolean; facts: Record<string, unknown>; checks: { name: string; ok: boolean }[] };
  assert.equal(report.ok, true);
  for (const key of ['libtorch', 'libtorchSource', 'cxx11Abi', 'intraOpThreads', 'blasThreads', 'cuda', 'addon']) {
    assert.ok(key in report.facts, `missing fact ${key}`);
  }
  assert.deepEqual(report.checks.map((c) => c.name), ['addon', 'build config', 'compute', 'threads']);
  // Which backend, as a person says it: "default: pip torch 2.13.0 in .venv", "debian: Debian libtorch-dev 1.13.1".
  const backend = process.env.VICINITY_BACKEND || 'default';
  assert.match(String(report.facts.backend), new RegExp(`^${backend}: (pip torch 2\\.\\d+\\.\\d+ in \\.venv|Debian libtorch-dev 1\\.13\\.\\d+|.*torch)`));
});

test('the OpenMP wait policy: PASSIVE with a 30,000-iteration spin unless the user set either variable', () => {
  const policy = (env: Record<string, string>) => {
    const clean = { ...process.env };
    delete clean.OMP_WAIT_POLICY;
    delete clean.GOMP_SPINCOUNT;
    const r = spawnSync(process.execPath, [cli, 'doctor', '--json'], { encoding: 'utf8', env: { ...clean, ...env } });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    return (JSON.parse(r.stdout) as { facts: { ompWaitPolicy: string } }).facts.ompWaitPolicy;
  };
  assert.equal(policy({}), 'PASSIVE, GOMP_SPINCOUNT 30000');
  assert.equal(policy({ GOMP_SPINCOUNT: '5000' }), 'PASSIVE, GOMP_SPINCOUNT 5000');
  assert.equal(policy({ OMP_WAIT_POLICY: 'PASSIVE' }), 'PASSIVE, GOMP_SPINCOUNT (unset)');
  assert.equal(policy({ OMP_WAIT_POLICY: 'ACTIVE' }), 'ACTIVE, GOMP_SPINCOUNT (unset)');
});

test('doctor rejects an unknown VICINITY_BACKEND, naming the choices', () => {
  const r = spawnSync(process.execPath, [cli, 'doctor'], { encoding: 'utf8', env: { ...process.env, VICINITY_BACKEND: 'torch3' } });
  assert.notEqual(r.status, 0);
  assert.match(r.stdout + r.stderr, /VICINITY_BACKEND=torch3 is not a backend; use default \(unset\), venv or debian/);
});

test('train rejects bad flags with a message naming the flag', () => {
  const r = run('train', '--epochs', '0');
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /--epochs must be a positive integer, got '0'/);
  const d = run('train', '--data', 'cifar');
  assert.notEqual(d.status, 0);
  assert.match(d.stderr, /--data must be auto, full or subset, got 'cifar'/);
});

test('--help lists the commands', () => {
  const r = run('--help');
  assert.equal(r.status, 0);
  assert.match(r.stdout, /doctor/);
  assert.match(r.stdout, /train/);
});
