/**
 * The ```ts blocks of README.md and docs/**\/*.md are what users copy: each one is type-checked
 * against the package as a user imports it (`import … from 'vicinity'`, resolved through
 * package.json "exports" to dist/src/index.d.ts, strict mode) and then run with Node, the blocks
 * of one page in order in one fresh directory (so a later block may read what an earlier one
 * wrote).
 *
 * A block that cannot run on its own says so on the line right before its fence, with a reason:
 *   <!-- doctest: typecheck-only — needs the CIFAR-10 files -->   type-checked, not run
 *   <!-- doctest: skip — shows a fragment of a loop -->           neither
 * Keep those rare: a block that compiles and runs is an example that cannot rot.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import ts from 'typescript';
import { repoRoot } from '../support/paths.js';

type Mode = 'run' | 'typecheck-only' | 'skip';
interface Block {
  /** Page, relative to the repository root. */
  page: string;
  /** Line of the opening fence (1-based). */
  line: number;
  code: string;
  mode: Mode;
  reason: string;
  /** File name of the block in the scratch project, without extension. */
  id: string;
}

const MARKER = /^<!--\s*doctest:\s*(typecheck-only|skip)\s*(?:[—–-]+\s*)?(.*?)\s*-->\s*$/;

function pages(): string[] {
  const out = ['README.md'];
  const walk = (dir: string) => {
    for (const name of readdirSync(path.join(repoRoot, dir)).sort()) {
      const rel = `${dir}/${name}`;
      if (statSync(path.join(repoRoot, rel)).isDirectory()) walk(rel);
      else if (name.endsWith('.md')) out.push(rel);
    }
  };
  walk('docs');
  return out;
}

function extract(page: string): Block[] {
  const lines = readFileSync(path.join(repoRoot, page), 'utf8').split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(\S*)\s*$/.exec(lines[i]!);
    if (!open || open[1] === '') continue;
    let end = i + 1;
    while (end < lines.length && !/^```\s*$/.test(lines[end]!)) end++;
    if (['ts', 'typescript', 'js', 'javascript', 'mts', 'tsx'].includes(open[1]!)) {
      const marker = i > 0 ? MARKER.exec(lines[i - 1]!) : null;
      blocks.push({
        page, line: i + 1, code: lines.slice(i + 1, end).join('\n'),
        mode: (marker?.[1] as Mode | undefined) ?? 'run', reason: marker?.[2] ?? '',
        id: `${page.replace(/[^A-Za-z0-9]+/g, '_')}_L${i + 1}`,
      });
    }
    i = end;
  }
  return blocks;
}

const blocks = pages().flatMap(extract);
let scratch = '';
const diagnostics = new Map<string, string[]>();

before(() => {
  scratch = mkdtempSync(path.join(tmpdir(), 'vicinity-doctest-'));
  writeFileSync(path.join(scratch, 'package.json'), JSON.stringify({ type: 'module', private: true }));
  mkdirSync(path.join(scratch, 'node_modules'));
  // The package as npm would install it: resolved by name through package.json "exports".
  symlinkSync(repoRoot, path.join(scratch, 'node_modules', 'vicinity'), 'dir');
  mkdirSync(path.join(scratch, 'src'));
  const files = blocks.filter((b) => b.mode !== 'skip').map((b) => {
    const file = path.join(scratch, 'src', `${b.id}.ts`);
    writeFileSync(file, `${b.code}\n`);
    return file;
  });
  const program = ts.createProgram(files, {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    moduleDetection: ts.ModuleDetectionKind.Force, lib: ['lib.es2022.d.ts', 'lib.esnext.disposable.d.ts'],
    strict: true, skipLibCheck: true, types: ['node'], typeRoots: [path.join(repoRoot, 'node_modules/@types')],
    outDir: path.join(scratch, 'out'), rootDir: path.join(scratch, 'src'),
  });
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const id = d.file ? path.basename(d.file.fileName, '.ts') : '(program)';
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
    if (!diagnostics.has(id)) diagnostics.set(id, []);
    diagnostics.get(id)!.push(`block line ${where}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
  }
  program.emit();
});

after(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

test('the pages have code blocks, and every marker gives a reason', () => {
  assert.ok(blocks.length >= 10, `only ${blocks.length} blocks found`);
  for (const b of blocks) {
    if (b.mode !== 'run') assert.ok(b.reason.length >= 10, `${b.page}:${b.line}: a ${b.mode} marker needs a reason`);
  }
  const skipped = blocks.filter((b) => b.mode === 'skip').length;
  assert.ok(skipped <= Math.floor(blocks.length / 5), `${skipped} of ${blocks.length} blocks skipped: make them runnable`);
});

for (const b of blocks) {
  const name = `${b.page}:${b.line} (${b.mode}${b.reason ? `: ${b.reason}` : ''})`;
  test(name, { skip: b.mode === 'skip' ? b.reason : false }, () => {
    const errors = [...(diagnostics.get(b.id) ?? []), ...(diagnostics.get('(program)') ?? [])];
    if (errors.length) assert.fail(`${b.page}:${b.line} does not type-check against 'vicinity':\n${errors.join('\n')}\n---\n${b.code}`);
    if (b.mode !== 'run') return;
    const cwd = path.join(scratch, 'run', b.page.replace(/[^A-Za-z0-9]+/g, '_'));
    mkdirSync(cwd, { recursive: true });
    const r = spawnSync(process.execPath, [path.join(scratch, 'out', `${b.id}.js`)], {
      cwd, encoding: 'utf8', timeout: 120_000,
    });
    assert.equal(r.status, 0, `${b.page}:${b.line} failed when run (status ${r.status}, signal ${r.signal}):\n${r.stderr}\n${r.stdout}`);
  });
}
