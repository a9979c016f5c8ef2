/**
 * Every reference fixture in test/fixtures passes `vicinity verify` (forward, every
 * gradient, running statistics) within its suggested tolerance, through the CLI's own code path.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { disposeFixture, readFixture } from '../../src/verify/fixture.js';
import { buildReferenceLayer } from '../../src/verify/layer-kinds.js';
import { verifyFixture } from '../../src/verify/verify-fixture.js';
import { fixturesDir, repoRoot } from '../support/paths.js';

const files = readdirSync(fixturesDir).filter((f) => f.endsWith('.safetensors')).sort();

test('the fixture set is there, each with its description', () => {
  assert.equal(files.length, 20, `${files.length} fixtures in ${fixturesDir}`);
  const all = readdirSync(fixturesDir);
  for (const f of files) assert.ok(all.includes(f.replace(/\.safetensors$/, '.json')), `${f} has no .json`);
});

for (const name of files) {
  test(`verify ${name}`, async () => {
    const fixture = await readFixture(path.join(fixturesDir, name));
    try {
      const module = buildReferenceLayer(fixture.spec);
      const report = verifyFixture(fixture, module);
      module.dispose();
      assert.ok(report.ok, `${name}\n${report.table}`);
    } finally {
      disposeFixture(fixture);
    }
  });
}

test('the verify command prints a table and exits 0 on a passing fixture, 1 when the tolerance is too tight', () => {
  const cli = path.join(repoRoot, 'dist/src/cli/main.js');
  const fixture = path.join(fixturesDir, 'halo-attn-open.safetensors');
  const ok = spawnSync(process.execPath, [cli, 'verify', fixture], { encoding: 'utf8' });
  assert.equal(ok.status, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /grad pos_embed\.height_rel\s+\d\.\d\de-\d+\s+rel_l2/);
  const strict = spawnSync(process.execPath, [cli, 'verify', '--tolerance', '1e-12', fixture], { encoding: 'utf8' });
  assert.equal(strict.status, 1);
  assert.match(strict.stdout, /FAIL/);
});

test('verify takes a bundled fixture by name from any directory, and names the bundled ones for a bad argument', () => {
  const cli = path.join(repoRoot, 'dist/src/cli/main.js');
  const cwd = mkdtempSync(path.join(tmpdir(), 'vicinity-verify-'));
  try {
    const ok = spawnSync(process.execPath, [cli, 'verify', 'sasa-open', '--json'], { encoding: 'utf8', cwd });
    assert.equal(ok.status, 0, ok.stdout + ok.stderr);
    const [result] = JSON.parse(ok.stdout) as { file: string; kind: string; ok: boolean }[];
    assert.deepEqual([result!.kind, result!.ok], ['attention.AttentionConv', true]);
    const bad = spawnSync(process.execPath, [cli, 'verify', 'sasa-opn'], { encoding: 'utf8', cwd });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /^vicinity: sasa-opn: no such file, and not the name of a bundled fixture \(bundled, in .*test[\\/]fixtures: botnet-attn-open, .*sasa-open\)/);
    const help = spawnSync(process.execPath, [cli, 'verify', '--help'], { encoding: 'utf8', cwd });
    assert.match(help.stdout, /\$ vicinity verify halo-attn-open /);
    assert.match(help.stdout, /la-layer-zerooffsets-open/);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
});
