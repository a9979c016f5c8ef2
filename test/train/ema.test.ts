/**
 * ModelEma: the average follows decay·e + (1 − decay)·m per update (checked against the same
 * arithmetic done by hand in float32), starts from the model's values, copies buffers (or averages
 * them on request), runs in eval mode without gradients, and round-trips through its state dict.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { BatchNorm2d, Conv2d, Linear, Sequential } from '../../src/nn/index.js';
import type { Module } from '../../src/nn/module.js';
import { tensor } from '../../src/tensor/creation.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { tidy } from '../../src/tensor/scope.js';
import { ModelEma } from '../../src/train/ema.js';

const f32 = Math.fround;

function linear(values: number[]): Linear {
  const layer = new Linear({ inFeatures: 2, outFeatures: 1 });
  noGrad(() => {
    layer.weight.copy_(tensor([values.slice(0, 2)]));
    layer.bias!.copy_(tensor([values[2]]));
  });
  return layer;
}

function values(m: Module): number[] {
  return tidy(() => m.parameters().flatMap((p) => Array.from(p.dataSync() as Float32Array)));
}

test('the average is decay·e + (1 − decay)·m after each update, from the model’s start', () => {
  const model = linear([1, -2, 0.5]);
  const ema = new ModelEma({ model, copy: linear([9, 9, 9]), decay: 0.75 });
  assert.deepEqual(values(ema.module), [1, -2, 0.5]);
  const steps = [[3, 1, -1], [0.1, 0.2, 0.3], [-4, 8, 2.5]];
  let expected = [1, -2, 0.5];
  for (const next of steps) {
    noGrad(() => {
      model.weight.copy_(tensor([next.slice(0, 2)]));
      model.bias!.copy_(tensor([next[2]]));
    });
    ema.update(model);
    // float32, in the update's order: e·d rounded, then + m·(1 − d), rounded.
    expected = expected.map((e, i) => f32(f32(e * 0.75) + f32(next[i] * f32(0.25))));
    assert.deepEqual(values(ema.module), expected);
  }
  assert.equal(ema.updates, 3);
  assert.deepEqual(values(model), [-4, 8, 2.5]);
  model.dispose();
  ema.dispose();
});

test('buffers are copied by default and averaged with averageBuffers', () => {
  const make = () => new Sequential(new Conv2d({ inChannels: 1, outChannels: 2, kernelSize: 1 }), new BatchNorm2d({ numFeatures: 2 }));
  const model = make();
  const copied = new ModelEma({ model, copy: make(), decay: 0.5 });
  const averaged = new ModelEma({ model, copy: make(), decay: 0.5, averageBuffers: true });
  noGrad(() => new Map(model.namedBuffers()).get('1.running_mean')!.copy_(tensor([4, 8])));
  const mean = (m: Module) => tidy(() => Array.from(m.stateDict().get('1.running_mean')!.dataSync() as Float32Array));
  copied.update(model);
  averaged.update(model);
  assert.deepEqual(mean(copied.module), [4, 8]);
  assert.deepEqual(mean(averaged.module), [2, 4]);
  assert.equal(copied.module.training, false);
  assert.ok(copied.module.parameters().every((p) => !p.requiresGrad));
  for (const m of [model, copied, averaged]) m.dispose();
});

test('stateDict / loadStateDict round-trip the averaged weights', () => {
  const model = linear([1, 2, 3]);
  const ema = new ModelEma({ model, copy: linear([0, 0, 0]), decay: 0.5 });
  noGrad(() => model.bias!.copy_(tensor([5])));
  ema.update(model);
  const restored = new ModelEma({ model: linear([7, 7, 7]), copy: linear([0, 0, 0]), decay: 0.5 });
  tidy(() => restored.loadStateDict(ema.stateDict()));
  assert.deepEqual(values(restored.module), [1, 2, 4]);
  for (const m of [model, ema, restored]) m.dispose();
});

test('errors: decay outside [0, 1), a copy of another architecture', () => {
  const model = linear([1, 2, 3]);
  assert.throws(() => new ModelEma({ model, copy: linear([0, 0, 0]), decay: 1 }), /decay must be in \[0, 1\), got 1/);
  const other = new Linear({ inFeatures: 3, outFeatures: 1 });
  assert.throws(() => new ModelEma({ model, copy: other, decay: 0.9 }), /weight/);
  model.dispose();
  other.dispose();
});
