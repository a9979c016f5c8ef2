/**
 * Runs a vicinity layer on a reference fixture and compares everything the fixture records: the
 * output, the input gradient, every parameter gradient (of sum(y ⊙ r)), and the buffers after a
 * train-mode forward. This is `vicinity verify` and how the parity tests run.
 */
import type { ReferenceModule } from '../attention/reference-builders.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Fixture } from './fixture.js';

/** What a fixture's spec builds: a module with one tensor in and one out. */
export type FixtureModule = ReferenceModule;

export interface ComparisonRow {
  name: string;
  /** ||actual − expected|| / ||expected||, or ||actual − expected|| for structurally-zero gradients. */
  error: number;
  measure: 'rel_l2' | 'abs_l2';
  tolerance: number;
  ok: boolean;
}

export interface VerifyReport {
  ok: boolean;
  rows: ComparisonRow[];
  maxRelError: number;
  table: string;
}

function relL2(actual: Tensor, expected: Tensor): number {
  return tidy(() => {
    const a = actual.double();
    const e = expected.double();
    const denominator = e.norm().item() as number;
    const numerator = a.sub(e).norm().item() as number;
    return denominator === 0 ? numerator : numerator / denominator;
  });
}

function absL2(actual: Tensor, expected: Tensor): number {
  return tidy(() => actual.double().sub(expected.double()).norm().item() as number);
}

/** Builds nothing: give it the module made from fixture.spec (see layer-kinds.ts). */
export function verifyFixture(fixture: Fixture, module: FixtureModule, options: { tolerance?: number } = {}): VerifyReport {
  const tolerance = options.tolerance ?? fixture.tolerance;
  module.loadStateDict(fixture.params, { strict: true });
  module.train(fixture.mode === 'train');
  const rows: ComparisonRow[] = [];
  const compare = (name: string, actual: Tensor | null, expected: Tensor, structurallyZero = false) => {
    if (actual === null) {
      rows.push({ name, error: Infinity, measure: 'rel_l2', tolerance, ok: false });
      return;
    }
    if (actual.shape.join() !== expected.shape.join()) {
      rows.push({ name: `${name} (shape [${actual.shape}] vs [${expected.shape}])`, error: Infinity, measure: 'rel_l2', tolerance, ok: false });
      return;
    }
    const measure = structurallyZero ? 'abs_l2' : 'rel_l2';
    const error = structurallyZero ? absL2(actual, expected) : relL2(actual, expected);
    const limit = structurallyZero ? fixture.absoluteTolerance : tolerance;
    rows.push({ name, error, measure, tolerance: limit, ok: error <= limit });
  };
  tidy(() => {
    const x = fixture.input.clone().requiresGrad_();
    const y = module.forward(x);
    compare('output', y, fixture.output);
    y.mul(fixture.cotangent).sum().backward();
    if (fixture.gradInput) compare('grad input', x.grad, fixture.gradInput);
    const params = new Map(module.namedParameters());
    for (const [name, expected] of fixture.gradParams) {
      const p = params.get(name);
      if (!p) {
        rows.push({ name: `grad ${name} (no such parameter)`, error: Infinity, measure: 'rel_l2', tolerance, ok: false });
        continue;
      }
      // A parameter that received no gradient has a zero gradient, as the fixture stores it.
      const grad = p.grad ?? p.mul(0);
      compare(`grad ${name}`, grad, expected, fixture.structurallyZeroGrads.has(name));
    }
    const state = module.stateDict();
    for (const [name, expected] of fixture.stateAfter) compare(`state ${name}`, state.get(name) ?? null, expected);
  });
  module.zeroGrad();
  const ok = rows.every((r) => r.ok);
  const maxRelError = Math.max(0, ...rows.filter((r) => r.measure === 'rel_l2').map((r) => r.error));
  return { ok, rows, maxRelError, table: formatTable(rows) };
}

export function formatTable(rows: ComparisonRow[]): string {
  const width = Math.max(10, ...rows.map((r) => r.name.length));
  const lines = [`${'tensor'.padEnd(width)}  ${'error'.padStart(10)}  measure  tolerance  result`];
  for (const r of rows) {
    lines.push(`${r.name.padEnd(width)}  ${r.error.toExponential(2).padStart(10)}  ${r.measure.padEnd(7)}  ${r.tolerance.toExponential(1).padStart(9)}  ${r.ok ? 'ok' : 'FAIL'}`);
  }
  return lines.join('\n');
}
