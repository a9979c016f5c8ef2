import assert from 'node:assert/strict';
import test from 'node:test';
import { SmallConvNet } from '../../src/models/small-convnet.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';

test('SmallConvNet: exact parameter count and state-dict names', () => {
  const net = new SmallConvNet();
  // conv 1·32·9 + BN 2·32 + conv 32·64·9 + BN 2·64 + linear 3136·10 + 10
  assert.equal(net.numParameters(), 288 + 64 + 18_432 + 128 + 31_360 + 10);
  assert.equal(net.numParameters(), 50_282);
  assert.deepEqual([...net.stateDict().keys()].slice(0, 7), [
    'features.0.weight', 'features.1.weight', 'features.1.bias',
    'features.1.running_mean', 'features.1.running_var', 'features.1.num_batches_tracked', 'features.4.weight',
  ]);
  net.dispose();
});

test('SmallConvNet: output shape, batch 1, other input sizes, and a clear error', () => {
  const net = new SmallConvNet({ inChannels: 3, numClasses: 7, inputSize: 32 });
  tidy(() => {
    assert.deepEqual(net.forward(randn([2, 3, 32, 32], { seed: 1 })).shape, [2, 7]);
    net.eval();
    assert.deepEqual(net.forward(randn([1, 3, 32, 32], { seed: 2 })).shape, [1, 7]);
  });
  assert.throws(() => new SmallConvNet({ inputSize: 30 }), /inputSize 30 must be divisible by 4/);
  net.dispose();
});

test('SmallConvNet.forwardFeatures: each stage\'s map, the last one what the classifier reads', () => {
  const net = new SmallConvNet({ inChannels: 3, numClasses: 5, width: 8, inputSize: 16 });
  net.eval();
  assert.equal(net.numClasses, 5);
  tidy(() => {
    const x = randn([2, 3, 16, 16], { seed: 3 });
    const maps = net.forwardFeatures(x);
    assert.deepEqual(maps.map((m) => m.shape), [[2, 8, 8, 8], [2, 16, 4, 4]]);
    const viaFeatures = net.classifier.forward(maps[1]!);
    assert.deepEqual(viaFeatures.toArray(), net.forward(x).toArray());
  });
  net.dispose();
});
