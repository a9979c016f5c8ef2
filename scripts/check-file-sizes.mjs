// style.md "Sizes": a TypeScript file holds at most 600 lines (generated code excluded).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

const LIMIT = 600;
const roots = ['src', 'test', 'tools', 'bench'];
const offenders = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const file = path.join(dir, name);
    if (statSync(file).isDirectory()) walk(file);
    else if (file.endsWith('.ts') && !file.endsWith('.gen.ts')) {
      const lines = readFileSync(file, 'utf8').split('\n').length;
      if (lines > LIMIT) offenders.push(`${file}: ${lines} lines`);
    }
  }
}
for (const r of roots) {
  try {
    walk(r);
  } catch {}
}
if (offenders.length) {
  console.error(`files over ${LIMIT} lines (split them by concept):\n  ${offenders.join('\n  ')}`);
  process.exit(1);
}
