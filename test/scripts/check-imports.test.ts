/**
 * scripts/check-imports.mjs (run by scripts/test.sh): passes on this repository, and on a small
 * tree with planted mistakes reports each one — an upward type import, a run-time cycle, a
 * package used below its layer, a directory in no layer — and allow-list entries gone stale.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { repoRoot } from '../support/paths.js';

const script = path.join(repoRoot, 'scripts/check-imports.mjs');
const run = (...args: string[]) => spawnSync(process.execPath, [script, ...args], { encoding: 'utf8', cwd: repoRoot });

test('the repository follows the layering', () => {
  const r = run();
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^imports: \d+ files follow the layering/);
});

test('planted violations are each reported with file and line', () => {
  const root = mkdtempSync(path.join(tmpdir(), 'vicinity-imports-'));
  const put = (file: string, text: string) => {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), text);
  };
  try {
    put('src/native/binding.ts', 'export const native = 1;\n');
    put('src/tensor/tensor.ts', "import { op } from '../ops/op.js';\nexport const t = op;\n");
    put('src/ops/op.ts', "import { t } from '../tensor/tensor.js';\nexport const op = () => t;\n");
    put('src/verify/kinds.ts', 'export type Kind = string;\n');
    put('src/attention/layer.ts', "import {\n  type Kind,\n} from '../verify/kinds.js';\nexport const k: Kind = 'a';\n");
    put('src/nn/fine.ts', "import type { t } from '../tensor/tensor.js';\nimport { native } from '../native/binding.js';\nexport const n = native;\nexport type T = typeof t;\n");
    put('src/models/lazy.ts', "export const load = () => import('../cli/main.js');\n");
    put('src/cli/main.ts', "import { Command } from 'commander';\nexport const c = Command;\n");
    put('src/data/flags.ts', "import { Option } from 'commander';\nexport const o = Option;\n");
    const r = spawnSync(process.execPath, [script, '--root', root], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    const lines = r.stderr.split('\n').slice(1).map((l) => l.trim()).filter(Boolean).sort();
    assert.deepEqual(lines, [
      'run-time import cycle: src/ops/op.ts <-> src/tensor/tensor.ts',
      'src/attention/layer.ts:1: imports verify (layer 6) from attention (layer 4) [type-only]',
      "src/data/flags.ts:1: imports the package 'commander', which belongs to src/cli",
      'src/models/lazy.ts:1: imports cli (layer 8) from models (layer 5)',
    ]);
    put('src/plugins/x.ts', 'export const x = 1;\n');
    const unknown = spawnSync(process.execPath, [script, '--root', root], { encoding: 'utf8' });
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /src\/plugins is in no layer of scripts\/check-imports\.mjs; add it/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
