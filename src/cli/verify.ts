/**
 * `vicinity verify <fixture.safetensors>`: builds the vicinity layer that corresponds to the
 * fixture's reference class, loads its weights by name, runs its input in the recorded mode,
 * back-propagates its cotangent and prints the relative L2 error of the output, the input
 * gradient, every parameter gradient and the updated running statistics.
 */
import path from 'node:path';
import { bundledFixtureNames, bundledFixturesDir, disposeFixture, readFixture, resolveFixturePath } from '../verify/fixture.js';
import { buildReferenceLayer, referenceKinds } from '../verify/layer-kinds.js';
import { verifyFixture } from '../verify/verify-fixture.js';

export interface VerifyCommandOptions {
  tolerance?: number;
  json?: boolean;
}

export async function verify(files: string[], o: VerifyCommandOptions): Promise<number> {
  let failures = 0;
  const results: unknown[] = [];
  for (const file of files) {
    const fixture = await readFixture(resolveFixturePath(file));
    try {
      const module = buildReferenceLayer(fixture.spec);
      const report = verifyFixture(fixture, module, { tolerance: o.tolerance });
      module.dispose();
      if (!report.ok) failures++;
      if (o.json) {
        results.push({ file, kind: fixture.spec.kind, ok: report.ok, maxRelError: report.maxRelError, rows: report.rows });
      } else {
        console.log(`${path.basename(file)}  (${fixture.spec.kind}, ${fixture.mode} mode)`);
        console.log(report.table);
        console.log(report.ok ? 'ok\n' : 'FAIL\n');
      }
    } finally {
      disposeFixture(fixture);
    }
  }
  if (o.json) console.log(JSON.stringify(results, null, 2));
  return failures === 0 ? 0 : 1;
}

export function describeKinds(): string {
  return referenceKinds().join('\n');
}

/** The fixtures shipped with vicinity, for `verify --help` (provenance: their README.md). */
export function describeBundled(): string {
  const names = bundledFixtureNames();
  if (names.length === 0) return `No bundled fixtures found in ${bundledFixturesDir}.`;
  const lines: string[] = [];
  for (const n of names) {
    if (lines.length === 0 || lines[lines.length - 1]!.length + n.length > 96) lines.push(' ');
    lines[lines.length - 1] += ` ${n}`;
  }
  return `Fixtures shipped with vicinity (${bundledFixturesDir}, provenance in its README.md):\n${lines.join('\n')}`;
}
