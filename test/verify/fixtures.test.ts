/**
 * Every reference fixture in ../shared/fixtures passes `vicinity verify` (forward, every
 * gradient, running statistics) within its suggested tolerance, through the CLI's own code path.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { disposeFixture, readFixture } from '../../src/verify/fixture.js';
import { buildReferenceLayer } from '../../src/verify/layer-kinds.js';
import { verifyFixture } from '../../src/verify/verify-fixture.js';
import { fixturesDir, repoRoot } from '../support/paths.js';

const files = readdirSync(fixturesDir).filter((f) => f.endsWith('.safetensors')).sort();

test('the fixture set is there', () => {
  assert.ok(files.length >= 20, `only ${files.length} fixtures in ${fixturesDir}`);
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
