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
import { createTimmModel, timmModels } from '../models/entries/timm.js';
import type { FixtureSpec } from './fixture.js';
import type { ReferenceBuilders } from '../attention/reference-builders.js';
import type { FixtureModule } from './verify-fixture.js';

const BUILDERS: ReferenceBuilders = {
  ...halo, ...mhsa, ...natten, ...sasa, ...lesa, ...lsag, ...laLayer,
};

/** Whole models: `timm.models.<name>` with spec.ctor = timm.create_model's keyword arguments. */
const TIMM_MODEL_PREFIX = 'timm.models.';

export function referenceKinds(): string[] {
  return [...Object.keys(BUILDERS), ...Object.keys(timmModels).map((n) => TIMM_MODEL_PREFIX + n)].sort();
}

export function buildReferenceLayer(spec: FixtureSpec): FixtureModule {
  if (spec.kind.startsWith(TIMM_MODEL_PREFIX)) return createTimmModel(spec.kind.slice(TIMM_MODEL_PREFIX.length), spec.ctor);
  const build = BUILDERS[spec.kind];
  if (!build) {
    throw new Error(`no vicinity layer reproduces reference class '${spec.kind}'; known: ${referenceKinds().join(', ')}`);
  }
  return build(spec.ctor);
}
