/**
 * The repository stands alone: nothing in it points at a directory beside the checkout or at a
 * path of one machine, every relative link of the docs resolves, and the package ships what
 * the docs and `--help` refer to (docs/, the reference fixtures).
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import test from 'node:test';
import { repoRoot } from '../support/paths.js';

const SCANNED = ['src', 'test', 'docs', 'README.md', 'bench', 'scripts', 'tools', '.ci'];
// Built from parts so that this file does not match itself.
const FORBIDDEN = [new RegExp(['\\.\\.', 'shared'].join('/')), new RegExp(['', 'work', ''].join('/')), new RegExp(['', 'home', '[a-z]'].join('/'))];

function files(rel: string): string[] {
  const full = path.join(repoRoot, rel);
  if (!existsSync(full)) return [];
  if (!statSync(full).isDirectory()) return [rel];
  return readdirSync(full).sort().flatMap((name) => files(`${rel}/${name}`));
}

test('no file names a directory beside the repository or an absolute machine path', () => {
  const hits: string[] = [];
  for (const rel of SCANNED.flatMap(files)) {
    if (rel.endsWith('.safetensors') || rel.endsWith('.gz')) continue;
    const lines = readFileSync(path.join(repoRoot, rel), 'utf8').split('\n');
    lines.forEach((line, i) => {
      if (FORBIDDEN.some((re) => re.test(line))) hits.push(`${rel}:${i + 1}: ${line.trim().slice(0, 120)}`);
    });
  }
  assert.deepEqual(hits, []);
});

test('every relative link in README.md and docs/ points at a file of the repository', () => {
  const broken: string[] = [];
  for (const page of ['README.md', ...files('docs').filter((f) => f.endsWith('.md')), 'test/fixtures/README.md']) {
    const text = readFileSync(path.join(repoRoot, page), 'utf8');
    for (const m of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1]!.split('#')[0]!;
      if (target === '' || /^[a-z]+:/.test(target)) continue;
      if (!existsSync(path.resolve(path.dirname(path.join(repoRoot, page)), target))) broken.push(`${page}: ${m[1]}`);
    }
  }
  assert.deepEqual(broken, []);
});

test('the package ships docs/ and the reference fixtures that --help and the docs refer to', () => {
  const packed = JSON.parse(execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoRoot, encoding: 'utf8' })) as
    { files: { path: string }[] }[];
  const paths = new Set(packed[0]!.files.map((f) => f.path));
  for (const doc of files('docs')) assert.ok(paths.has(doc), `${doc} is not in the package`);
  const fixtures = files('test/fixtures');
  assert.ok(fixtures.length >= 41);
  for (const f of fixtures) assert.ok(paths.has(f), `${f} is not in the package`);
  const help = spawnSync(process.execPath, [path.join(repoRoot, 'dist/src/cli/main.js'), '--help'], { encoding: 'utf8' });
  const doc = /Documentation: (\S+)/.exec(help.stdout)?.[1];
  assert.ok(doc && existsSync(doc), `--help names ${doc}`);
  assert.equal(path.relative(repoRoot, doc), path.join('docs', 'cli.md'));
});
