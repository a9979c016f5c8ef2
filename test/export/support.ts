/**
 * Helpers for the export tests: weights that make every path matter, and running an exported
 * model in onnxruntime-node next to vicinity's own forward.
 */
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { LALayer } from '../../src/attention/la-layer.js';
import type { Module } from '../../src/nn/module.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { rand, randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/**
 * Fresh models have running mean 0 and variance 1 and zero-initialised offset predictors, which
 * would leave batch norm and LA's offset sampling untested: give every batch norm random
 * statistics and affine terms, and every LA offset predictor weights that move keys by pixels.
 */
export function perturb(model: Module, seed = 1): void {
  let s = seed;
  const state = model.stateDict();
  const next = new Map<string, Tensor>();
  tidy(() => {
    for (const [key, t] of state) {
      if (!t.dtype.startsWith('float')) continue;
      const base = key.slice(0, key.lastIndexOf('.') + 1);
      const isNorm = state.has(`${base}running_var`);
      if (key.endsWith('running_mean')) next.set(key, randn(t.shape, { seed: s++ }).mul(0.2).keep());
      else if (key.endsWith('running_var')) next.set(key, rand(t.shape, { seed: s++ }).mul(0.5).add(0.75).keep());
      else if (isNorm && key.endsWith('weight')) next.set(key, rand(t.shape, { seed: s++ }).mul(0.5).add(0.75).keep());
      else if (isNorm && key.endsWith('bias')) next.set(key, randn(t.shape, { seed: s++ }).mul(0.2).keep());
    }
    for (const [name, m] of model.namedModules()) {
      if (!(m instanceof LALayer)) continue;
      const key = `${name}.offset.2.weight`;
      const w = state.get(key);
      assert.ok(w, `perturb: ${key} not found (LALayer's offset predictor was renamed?)`);
      next.set(key, randn(w.shape, { seed: s++ }).mul(8).keep());
    }
  });
  noGrad(() => model.loadStateDict(next, { strict: false }));
  for (const t of next.values()) t.dispose();
}

/** The share of LA sampling offsets that are not zero, over every LALayer the model runs on x. */
export function laOffsetShare(model: Module & { forward(x: Tensor): Tensor }, x: Tensor): number {
  let nonZero = 0;
  let total = 0;
  const layers = [...model.modules()].filter((m): m is LALayer => m instanceof LALayer);
  const originals = layers.map((l) => l.forward);
  layers.forEach((layer, i) => {
    (layer as { forward: LALayer['forward'] }).forward = (input, options) => {
      const offsets = layer.sample(input).offsets.dataSync();
      total += offsets.length;
      nonZero += offsets.filter((v) => v !== 0).length;
      return originals[i].call(layer, input, options);
    };
  });
  try {
    noGrad(() => tidy(() => model.forward(x)));
  } finally {
    layers.forEach((layer) => delete (layer as { forward?: unknown }).forward);
  }
  return total ? nonZero / total : 0;
}

export interface Parity {
  maxDiff: number;
  maxAbs: number;
  dims: readonly number[];
}

/** Runs `bytes` in onnxruntime-node on x and compares with the model's own eval forward. */
export async function onnxParity(bytes: Uint8Array, model: Module & { forward(x: Tensor): Tensor }, x: Tensor,
  names = { input: 'input', output: 'logits' }): Promise<Parity> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const ref = noGrad(() => tidy(() => model.forward(x).dataSync() as Float32Array));
    const out = await session.run({ [names.input]: new ort.Tensor('float32', x.dataSync() as Float32Array, x.shape) });
    const y = out[names.output].data as Float32Array;
    assert.equal(y.length, ref.length, 'output sizes differ');
    let maxDiff = 0;
    let maxAbs = 0;
    for (let i = 0; i < y.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(y[i] - ref[i]));
      maxAbs = Math.max(maxAbs, Math.abs(ref[i]));
    }
    return { maxDiff, maxAbs, dims: out[names.output].dims };
  } finally {
    await session.release();
  }
}
