/**
 * Locations tests need. Compiled tests run from dist/test/…, sources may run from test/…, so the
 * repository root is found by walking up to the package.json named "vicinity" rather than by a
 * fixed number of "..".
 */
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'vicinity') return dir;
    if (path.dirname(dir) === dir) {
      throw new Error(`test/support/paths: no package.json named "vicinity" above ${start}; run tests from inside the repository`);
    }
  }
}

/** The repository root (holds package.json). */
export const repoRoot = findRepoRoot(path.dirname(fileURLToPath(import.meta.url)));
/** The reference-layer fixtures (test/fixtures/, provenance in its README.md), found by src/verify. */
export { bundledFixturesDir as fixturesDir } from '../../src/verify/fixture.js';
