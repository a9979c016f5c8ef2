/**
 * What the attention tests share: float64 inputs and comparisons, a randomized layer, a fixture read
 * and disposed around a check, parity of a layer built by a reference builder with its fixture, and
 * the seeded-init check against the fixture's initial parameters.
 *
 *   test('x = reference', () => withFixture('x-open', (f) => assertParity(f, referenceBuilders, { kind: KIND })));
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { native } from '../../src/native/binding.js';
import * as init from '../../src/nn/init.js';
import type { AnyModule } from '../../src/nn/module.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { generator, manualSeed, randn } from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { disposeFixture, readFixture, type Fixture } from '../../src/verify/fixture.js';
import { verifyFixture, type FixtureModule, type VerifyReport } from '../../src/verify/verify-fixture.js';
import { fixturesDir } from '../support/paths.js';

/** A float64 N(0, 1) tensor drawn from `seed`. */
export const f64 = (shape: number[], seed: number) => randn(shape, { seed, dtype: 'float64' });
/** A float64 tensor's values as plain numbers (a copy). */
export const values = (t: Tensor) => Array.from(t.contiguous().dataSync() as Float64Array);
/** max |a − b| over all elements. */
export const maxAbs = (a: Tensor, b: Tensor) => a.sub(b).abs().max().item() as number;

/** m in float64, every parameter (biases, norms, tables) drawn N(0, 0.5²) from `seed`: no term is trivially 0 or 1. */
export function randomized<M extends AnyModule>(m: M, seed: number): M {
  m.to('float64');
  const g = generator(seed);
  noGrad(() => { for (const p of m.parameters()) init.normal_(p, { std: 0.5, generator: g }); });
  return m;
}

/** A layer file's `referenceBuilders` entry: the reference's snake_case ctor → the layer. */
export type ReferenceBuilder = (ctor: Record<string, unknown>) => FixtureModule;

/** Reads `<fixturesDir>/<name>.safetensors`, runs the synchronous fn on it and disposes it, also when fn throws. */
export async function withFixture(name: string, fn: (fixture: Fixture) => unknown): Promise<void> {
  const fixture = await readFixture(path.join(fixturesDir, `${name}.safetensors`));
  try {
    fn(fixture);
  } finally {
    disposeFixture(fixture);
  }
}

export interface ParityOptions {
  /** The fixture's `spec.kind` must be this. */
  kind?: string;
  /** A bound on report.maxRelError below the fixture's own tolerance (which report.ok checks). */
  maxRelError?: number;
  /** Assertions on the built module before it is verified (its class, its state-dict keys). */
  check?: (module: FixtureModule) => void;
}

/**
 * Builds the fixture's module with `builders[spec.kind](spec.ctor)`, compares its output and every
 * gradient with the fixture (verifyFixture), disposes it, and asserts report.ok and maxRelError.
 */
export function assertParity(fixture: Fixture, builders: Record<string, ReferenceBuilder>, o: ParityOptions = {}): VerifyReport {
  if (o.kind !== undefined) assert.equal(fixture.spec.kind, o.kind);
  const module = builders[fixture.spec.kind](fixture.spec.ctor);
  let report: VerifyReport;
  try {
    o.check?.(module);
    report = verifyFixture(fixture, module);
  } finally {
    module.dispose();
  }
  const message = `${path.basename(fixture.file)}: max rel error ${report.maxRelError.toExponential(2)}\n${report.table}`;
  assert.ok(report.ok, message);
  if (o.maxRelError !== undefined) assert.ok(report.maxRelError < o.maxRelError, message);
  return report;
}

/**
 * manualSeed(the fixture's seed), then `build` must draw the reference's initial parameters bit for
 * bit — on the libtorch the fixture was written with (its `torch_version`). Another libtorch draws
 * the same random stream but rounds some transforms differently (2.13's erfinv, used by
 * truncNormal_, differs from 1.13's by 1 ulp in ~20% of elements): there, within a few ulps.
 */
export function assertSeededInit(fixture: Fixture, build: ReferenceBuilder): void {
  manualSeed(fixture.json.seed as number);
  const m = build(fixture.spec.ctor);
  const majorMinor = (v: unknown) => String(v).split('.').slice(0, 2).join('.');
  const sameTorch = majorMinor(fixture.json.torch_version) === majorMinor(native.buildInfo().torchVersion);
  for (const [key, value] of m.stateDict()) {
    const expected = fixture.params.get(key)!;
    assert.ok(sameTorch ? value.equal(expected) : value.allclose(expected, { rtol: 4 * 2 ** -23, atol: 0 }), key);
  }
  m.dispose();
}
