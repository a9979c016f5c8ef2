// Import direction (style.md "Layout", docs/adding-an-operator.md): code in src/ imports only
// downwards through the layers below, never upwards, and has no run-time import cycle.
//
//   native -> tensor/ops -> nn -> optim | checkpoint | data -> attention | distributed -> models
//          -> analysis | verify | export (tools that inspect or translate the layers and models)
//          -> train -> cli -> index.ts
//
// A file may import its own layer (its own directory; tensor, ops and autograd form one layer) and
// any layer to its left. Layers written side by side (optim | checkpoint | data) do not import
// each other. Type-only imports count: a type a layer needs lives in or below it. Test, bench and
// tool code sits above everything and is not checked; src/ never imports them.
//
// Usage: node scripts/check-imports.mjs [--root <repository>] [--graph]
//   exit 1 and a list of violations on failure; --root checks another tree (the checker's test).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/** Each entry is one layer; its directories (under src/) may import each other. */
const LAYERS = [
  { level: 0, dirs: ['native', 'package-root.ts'] },
  { level: 1, dirs: ['tensor', 'ops', 'autograd'] },
  { level: 2, dirs: ['nn'] },
  { level: 3, dirs: ['optim'] },
  { level: 3, dirs: ['checkpoint'] },
  { level: 3, dirs: ['data'] },
  { level: 4, dirs: ['attention'] },
  { level: 4, dirs: ['distributed'] },
  { level: 5, dirs: ['models'] },
  { level: 6, dirs: ['analysis'] },
  { level: 6, dirs: ['verify'] },
  { level: 6, dirs: ['export'] },
  { level: 7, dirs: ['train'] },
  { level: 8, dirs: ['cli'] },
  { level: 9, dirs: ['index.ts'] },
];

/** npm packages that belong to one layer and may be imported only there (or above). */
const PACKAGE_LAYER = { commander: 'cli' };

/**
 * Known violations that other branches remove. Each entry names the import exactly and says who
 * fixes it; delete the entry together with the import. An entry that no longer matches an import
 * fails the check, so the list cannot go stale.
 */
const ALLOWED = [
];

const rootArg = process.argv.indexOf('--root');
const root = rootArg > 0 ? path.resolve(process.argv[rootArg + 1]) : path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const srcDir = path.join(root, 'src');

function layerOf(file) {
  const rel = path.relative(srcDir, file).split(path.sep);
  if (rel[0] === '..') return null;  // outside src/
  const layer = LAYERS.find((l) => l.dirs.includes(rel[0]));
  if (!layer) {
    console.error(`${path.relative(root, file)}: src/${rel[0]} is in no layer of scripts/check-imports.mjs; add it`);
    process.exit(1);
  }
  return layer;
}

function walk(dir, out = []) {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) walk(file, out);
    else if (file.endsWith('.ts') && !file.endsWith('.d.ts')) out.push(file);
  }
  return out;
}

/** Every import of a file: { spec, typeOnly, line }. Dynamic import() counts as a run-time import. */
function importsOf(file) {
  const text = readFileSync(file, 'utf8');
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false, ts.ScriptKind.TS);
  const out = [];
  const line = (node) => sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      let typeOnly = false;
      if (ts.isImportDeclaration(node)) {
        const clause = node.importClause;
        if (clause) {
          const named = clause.namedBindings;
          typeOnly = clause.isTypeOnly || (!clause.name && named !== undefined && ts.isNamedImports(named) &&
            named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly));
        }
      } else {
        typeOnly = node.isTypeOnly || (node.exportClause !== undefined && ts.isNamedExports(node.exportClause) &&
          node.exportClause.elements.length > 0 && node.exportClause.elements.every((e) => e.isTypeOnly));
      }
      out.push({ spec: node.moduleSpecifier.text, typeOnly, line: line(node) });
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments.length === 1 && ts.isStringLiteralLike(node.arguments[0])) {
      out.push({ spec: node.arguments[0].text, typeOnly: false, line: line(node) });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument) && ts.isStringLiteral(node.argument.literal)) {
      out.push({ spec: node.argument.literal.text, typeOnly: true, line: line(node) });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

function resolve(from, spec) {
  const target = path.resolve(path.dirname(from), spec);
  return target.replace(/\.js$/, '.ts');
}

const files = walk(srcDir);
const violations = [];
const usedAllowances = new Set();
const runtimeEdges = new Map();  // file -> Set(file)
const rel = (f) => path.relative(root, f).split(path.sep).join('/');

for (const file of files) {
  const from = layerOf(file);
  runtimeEdges.set(file, new Set());
  for (const { spec, typeOnly, line } of importsOf(file)) {
    if (spec.startsWith('node:')) continue;
    let key;
    let problem = null;
    if (spec.startsWith('.')) {
      const target = resolve(file, spec);
      key = `${rel(file)} -> ${rel(target)}`;
      const to = layerOf(target);
      if (to === null) problem = `imports ${rel(target)}, which is outside src/`;
      else if (to !== from && to.level >= from.level) {
        problem = `imports ${to.dirs[0]} (layer ${to.level}) from ${from.dirs[0]} (layer ${from.level})${typeOnly ? ' [type-only]' : ''}`;
      }
      if (!typeOnly) runtimeEdges.get(file).add(target);
    } else {
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      key = `${rel(file)} -> ${pkg}`;
      const home = PACKAGE_LAYER[pkg];
      const homeLayer = home && LAYERS.find((l) => l.dirs.includes(home));
      if (homeLayer && from.level < homeLayer.level) problem = `imports the package '${pkg}', which belongs to src/${home}`;
    }
    if (problem === null) continue;
    if (ALLOWED.includes(key)) usedAllowances.add(key);
    else violations.push(`${rel(file)}:${line}: ${problem}`);
  }
}

// Run-time cycles between files (Tarjan's strongly connected components).
const index = new Map();
const low = new Map();
const stack = [];
const onStack = new Set();
const cycles = [];
let counter = 0;
function strongConnect(v) {
  index.set(v, counter);
  low.set(v, counter++);
  stack.push(v);
  onStack.add(v);
  for (const w of runtimeEdges.get(v) ?? []) {
    if (!runtimeEdges.has(w)) continue;
    if (!index.has(w)) {
      strongConnect(w);
      low.set(v, Math.min(low.get(v), low.get(w)));
    } else if (onStack.has(w)) {
      low.set(v, Math.min(low.get(v), index.get(w)));
    }
  }
  if (low.get(v) === index.get(v)) {
    const component = [];
    let w;
    do {
      w = stack.pop();
      onStack.delete(w);
      component.push(rel(w));
    } while (w !== v);
    if (component.length > 1) cycles.push(component.sort());
  }
}
for (const f of files) if (!index.has(f)) strongConnect(f);
for (const c of cycles) violations.push(`run-time import cycle: ${c.join(' <-> ')}`);

for (const a of ALLOWED) {
  if (!usedAllowances.has(a)) violations.push(`allow-list entry '${a}' matches no import any more: delete it from scripts/check-imports.mjs`);
}

if (process.argv.includes('--graph')) {
  for (const [f, targets] of runtimeEdges) for (const t of targets) console.log(`${rel(f)} -> ${rel(t)}`);
}
if (violations.length) {
  console.error(`imports against the layering (scripts/check-imports.mjs; see docs/adding-an-operator.md):\n  ${violations.join('\n  ')}`);
  process.exit(1);
}
console.log(`imports: ${files.length} files follow the layering${ALLOWED.length ? ` (${ALLOWED.length} allowed exceptions, listed in scripts/check-imports.mjs)` : ''}`);
