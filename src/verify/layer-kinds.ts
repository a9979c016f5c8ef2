/**
 * Which vicinity layer reproduces which reference class: the fixture's `spec.kind` → a builder
 * taking the reference's constructor arguments (`spec.ctor`, snake_case as in Python).
 */
import { referenceBuilders as halo } from '../attention/halo-attention.js';
import { referenceBuilders as laLayer } from '../attention/la-layer.js';
import { referenceBuilders as lesa } from '../attention/lesa.js';
import { referenceBuilders as lsag } from '../attention/lsag-stage.js';
import { referenceBuilders as mhsa } from '../attention/mhsa2d.js';
import { referenceBuilders as natten } from '../attention/neighborhood-attention.js';
import { referenceBuilders as sasa } from '../attention/sasa.js';
import type { FixtureSpec } from './fixture.js';
import type { ReferenceBuilders } from '../attention/reference-builders.js';
import type { FixtureModule } from './verify-fixture.js';

const BUILDERS: ReferenceBuilders = {
  ...halo, ...mhsa, ...natten, ...sasa, ...lesa, ...lsag, ...laLayer,
};

export function referenceKinds(): string[] {
  return Object.keys(BUILDERS).sort();
}

export function buildReferenceLayer(spec: FixtureSpec): FixtureModule {
  const build = BUILDERS[spec.kind];
  if (!build) {
    throw new Error(`no vicinity layer reproduces reference class '${spec.kind}'; known: ${referenceKinds().join(', ')}`);
  }
  return build(spec.ctor);
}
