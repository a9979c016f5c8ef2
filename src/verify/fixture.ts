/**
 * Reference-layer fixtures (docs/design/reference-layers.md §8; provenance in
 * test/fixtures/README.md): a safetensors file of
 * `param.<state-dict name>`, `input.x`, `output.y`, `cotangent.r`, `grad.input.x`,
 * `grad.param.<name>` (and `state_after.<buffer>` for train-mode fixtures), with a JSON beside it
 * naming the reference class (`spec.kind`), its constructor arguments (`spec.ctor`), the mode and
 * the tolerance.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { readStateDictFile, rawToTensor } from '../checkpoint/tensor-io.js';
import { packageRoot } from '../package-root.js';
import type { Tensor } from '../tensor/tensor.js';

export interface FixtureSpec {
  kind: string;
  ctor: Record<string, unknown>;
}

export interface Fixture {
  file: string;
  spec: FixtureSpec;
  mode: 'train' | 'eval';
  /** Relative L2 tolerance the fixture suggests. */
  tolerance: number;
  /** Parameter gradients that are zero in exact arithmetic: compared absolutely. */
  structurallyZeroGrads: Set<string>;
  /** The absolute L2 tolerance for those (`abs_l2_for_those`). */
  absoluteTolerance: number;
  /** State dict of the reference before the forward pass (parameters and buffers). */
  params: Map<string, Tensor>;
  input: Tensor;
  output: Tensor;
  cotangent: Tensor;
  gradInput: Tensor | null;
  gradParams: Map<string, Tensor>;
  /** Buffers after the forward pass (train-mode fixtures: running statistics). */
  stateAfter: Map<string, Tensor>;
  /** The whole JSON, for anything else it records (conventions, description). */
  json: Record<string, unknown>;
}

export class FixtureError extends Error {
  override name = 'FixtureError';
}

/**
 * The fixtures that ship with vicinity (the repository's and the npm package's `test/fixtures/`):
 * the one place that knows where they live, for the tests and for `vicinity verify <name>`.
 */
export const bundledFixturesDir: string = path.join(packageRoot, 'test', 'fixtures');

/** Names (without `.safetensors`) of the bundled fixtures, sorted. */
export function bundledFixtureNames(): string[] {
  if (!existsSync(bundledFixturesDir)) return [];
  return readdirSync(bundledFixturesDir).filter((f) => f.endsWith('.safetensors')).map((f) => f.slice(0, -'.safetensors'.length)).sort();
}

/**
 * A fixture argument as a user types it: an existing file path, or the name of a bundled fixture
 * (`halo-attn-open`, with or without `.safetensors`). Throws FixtureError naming both ways.
 */
export function resolveFixturePath(arg: string): string {
  if (existsSync(arg)) return path.resolve(arg);
  const name = path.basename(arg).replace(/\.safetensors$/, '');
  if (!arg.includes('/') && !arg.includes('\\') && bundledFixtureNames().includes(name)) {
    return path.join(bundledFixturesDir, `${name}.safetensors`);
  }
  const known = bundledFixtureNames();
  throw new FixtureError(`${arg}: no such file, and not the name of a bundled fixture` +
    (known.length ? ` (bundled, in ${bundledFixturesDir}: ${known.join(', ')})` : ''));
}

function byPrefix(tensors: Map<string, Tensor>, prefix: string): Map<string, Tensor> {
  const out = new Map<string, Tensor>();
  for (const [name, t] of tensors) if (name.startsWith(prefix)) out.set(name.slice(prefix.length), t);
  return out;
}

/** Reads `<name>.safetensors` and `<name>.json` into CPU tensors (the caller disposes them). */
export async function readFixture(file: string): Promise<Fixture> {
  const jsonFile = file.replace(/\.safetensors$/, '.json');
  if (!file.endsWith('.safetensors')) throw new FixtureError(`${file}: a fixture is a .safetensors file with a .json beside it`);
  if (!existsSync(jsonFile)) throw new FixtureError(`${file}: its description ${jsonFile} is missing`);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(readFileSync(jsonFile, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new FixtureError(`${jsonFile} is not valid JSON: ${(e as Error).message}`);
  }
  const spec = json.spec as FixtureSpec | undefined;
  if (!spec || typeof spec.kind !== 'string' || typeof spec.ctor !== 'object') {
    throw new FixtureError(`${jsonFile}: expected spec.kind (string) and spec.ctor (object)`);
  }
  const raw = await readStateDictFile(file);
  const tensors = new Map<string, Tensor>();
  for (const [name, t] of raw) tensors.set(name, rawToTensor(t));
  const required = (name: string): Tensor => {
    const t = tensors.get(name);
    if (!t) throw new FixtureError(`${file} has no '${name}' tensor`);
    return t;
  };
  const suggested = (json.suggested_tolerance ?? {}) as { rel_l2?: number; structurally_zero_grads?: string[]; abs_l2_for_those?: number };
  const tolerance = suggested.rel_l2 ?? 1e-5;
  // Gradients that are exactly zero in exact arithmetic hold only round-off: relative error is
  // meaningless there, so they are compared by absolute L2 norm.
  const zeroGrads = suggested.structurally_zero_grads ?? (json.structurally_zero_grads as string[] | undefined) ?? [];
  return {
    file,
    spec,
    mode: json.mode === 'train' ? 'train' : 'eval',
    tolerance,
    structurallyZeroGrads: new Set(zeroGrads),
    absoluteTolerance: suggested.abs_l2_for_those ?? 1e-6,
    params: byPrefix(tensors, 'param.'),
    input: required('input.x'),
    output: required('output.y'),
    cotangent: required('cotangent.r'),
    gradInput: tensors.get('grad.input.x') ?? null,
    gradParams: byPrefix(tensors, 'grad.param.'),
    stateAfter: byPrefix(tensors, 'state_after.'),
    json,
  };
}

export function disposeFixture(f: Fixture): void {
  for (const t of [f.input, f.output, f.cotangent, f.gradInput, ...f.params.values(), ...f.gradParams.values(), ...f.stateAfter.values()]) {
    t?.dispose();
  }
}
