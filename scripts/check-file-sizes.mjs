// style.md "Sizes": a TypeScript file holds at most 600 lines (generated code excluded), a native
// C++ file (.cc, .h) at most 500.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const LIMITS = [
  { roots: ['src', 'test', 'tools', 'bench'], ext: ['.ts'], limit: 600 },
  { roots: ['native'], ext: ['.cc', '.h'], limit: 500 },
];
const offenders = [];
function walk(dir, rule) {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) walk(file, rule);
    else if (rule.ext.some((e) => file.endsWith(e)) && !file.endsWith('.gen.ts') && name !== 'build_config.h') {
      const lines = readFileSync(file, 'utf8').split('\n').length;
      if (lines > rule.limit) offenders.push(`${file}: ${lines} lines (limit ${rule.limit})`);
    }
  }
}
for (const rule of LIMITS) {
  for (const r of rule.roots) {
    try {
      walk(r, rule);
    } catch {}
  }
}
if (offenders.length) {
  console.error(`files over their size limit (split them by concept):\n  ${offenders.join('\n  ')}`);
  process.exit(1);
}
