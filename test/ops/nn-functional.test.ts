/**
 * Parity with PyTorch for src/ops/functional.ts, part 1: conv2d/conv1d (stride, padding,
 * dilation, groups, bias), conv2dSplit (several weights as one conv), max/avg/adaptive pooling,
 * batchNorm (training updates the running statistics in place; eval uses them), layerNorm,
 * groupNorm, activations (relu, gelu exact and tanh, silu, sigmoid, softplus, tanh, leakyRelu, elu,
 * hardsigmoid), softmax/logSoftmax and the losses (crossEntropy with label smoothing, class weights
 * and ignore index; nllLoss; mseLoss) — values and input gradients in float32 and float64.
 * Sampling ops: nn-sampling.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as F from '../../src/ops/functional.js';
import { ones, rand, randint, randn, tensor, zeros } from '../../src/tensor/creation.js';
import type { DType } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { opSuite, type OpCase } from '../support/parity.js';

const rn = (shape: number[], seed: number, dtype: DType = 'float32') => randn(shape, { seed, dtype });

const IMG = rn([2, 3, 7, 6], 1);
const IMG64 = rn([1, 4, 6, 5], 2, 'float64');
const G6 = rn([1, 6, 5, 5], 3);
const SEQ = rn([2, 3, 9], 4);
const W3 = rn([4, 3, 3, 3], 5);
const B4 = rn([4], 6);
const X = rn([3, 5], 7);
const X64 = rn([2, 6], 8, 'float64');
const NCHW = rn([4, 3, 5, 5], 9);
const LOGITS = rn([6, 4], 10);
const TARGET = tensor([0, 3, 1, 3, 2, 1], { dtype: 'int64' });
const CLASS_WEIGHT = tensor([0.5, 2, 1, 1.5]);
const SPATIAL = rn([2, 4, 3, 3], 11);
const SPATIAL_TARGET = randint(0, 4, [2, 3, 3], { seed: 12 });

const convs: OpCase[] = [
  { name: 'conv2d 3x3 with bias', inputs: { x: IMG, w: W3, b: B4 }, ts: ({ x, w, b }) => F.conv2d(x, w, b), py: 'F.conv2d(x, w, b)', grad: true },
  { name: 'conv2d stride 2 padding 1', inputs: { x: IMG, w: W3, b: B4 }, ts: ({ x, w, b }) => F.conv2d(x, w, b, { stride: 2, padding: 1 }),
    py: 'F.conv2d(x, w, b, stride=2, padding=1)', grad: true },
  { name: 'conv2d stride [2, 1] padding [0, 2] dilation 2, no bias', inputs: { x: IMG, w: W3 },
    ts: ({ x, w }) => F.conv2d(x, w, null, { stride: [2, 1], padding: [0, 2], dilation: 2 }),
    py: 'F.conv2d(x, w, None, stride=(2, 1), padding=(0, 2), dilation=2)', grad: true },
  { name: 'conv2d dilation [1, 2] non-square kernel', inputs: { x: IMG, w: rn([2, 3, 2, 3], 13) },
    ts: ({ x, w }) => F.conv2d(x, w, null, { dilation: [1, 2], padding: [1, 0] }), py: 'F.conv2d(x, w, dilation=(1, 2), padding=(1, 0))', grad: true },
  { name: 'conv2d groups 3', inputs: { x: G6, w: rn([6, 2, 3, 3], 14), b: rn([6], 15) }, ts: ({ x, w, b }) => F.conv2d(x, w, b, { groups: 3, padding: 1 }),
    py: 'F.conv2d(x, w, b, padding=1, groups=3)', grad: true },
  { name: 'conv2d depthwise (groups = channels)', inputs: { x: G6, w: rn([12, 1, 3, 3], 16) }, ts: ({ x, w }) => F.conv2d(x, w, null, { groups: 6, stride: 2 }),
    py: 'F.conv2d(x, w, groups=6, stride=2)', grad: true },
  { name: 'conv2d 1x1', inputs: { x: IMG, w: rn([5, 3, 1, 1], 17) }, ts: ({ x, w }) => F.conv2d(x, w), py: 'F.conv2d(x, w)', grad: true },
  { name: 'conv2d float64, every option', inputs: { x: IMG64, w: rn([6, 2, 3, 2], 18, 'float64'), b: rn([6], 19, 'float64') },
    ts: ({ x, w, b }) => F.conv2d(x, w, b, { stride: [1, 2], padding: [2, 1], dilation: [2, 1], groups: 2 }),
    py: 'F.conv2d(x, w, b, stride=(1, 2), padding=(2, 1), dilation=(2, 1), groups=2)', grad: true },
  { name: 'conv2dSplit: three 1×1 weights with biases at stride 2 (one conv, outputs concatenated)',
    inputs: { x: IMG, w1: rn([4, 3, 1, 1], 22), w2: rn([2, 3, 1, 1], 23), w3: rn([4, 3, 1, 1], 24), b1: B4, b2: rn([2], 25), b3: rn([4], 26) },
    ts: ({ x, w1, w2, w3, b1, b2, b3 }) => F.cat(F.conv2dSplit(x, [w1, w2, w3], [b1, b2, b3], { stride: 2 }), 1),
    py: 'torch.cat([F.conv2d(x, w, b, stride=2) for w, b in ((w1, b1), (w2, b2), (w3, b3))], 1)', grad: true },
  { name: 'conv2dSplit: groups 3 (one conv per weight), no biases',
    inputs: { x: G6, w1: rn([6, 2, 1, 1], 27), w2: rn([3, 2, 1, 1], 28) },
    ts: ({ x, w1, w2 }) => F.cat(F.conv2dSplit(x, [w1, w2], null, { groups: 3 }), 1),
    py: 'torch.cat([F.conv2d(x, w1, groups=3), F.conv2d(x, w2, groups=3)], 1)', grad: true },
  { name: 'conv1d stride 2 padding 1 with bias', inputs: { x: SEQ, w: rn([4, 3, 3], 20), b: B4 }, ts: ({ x, w, b }) => F.conv1d(x, w, b, { stride: 2, padding: 1 }),
    py: 'F.conv1d(x, w, b, stride=2, padding=1)', grad: true },
  { name: 'conv1d dilation 2 groups 3', inputs: { x: SEQ, w: rn([3, 1, 2], 21) }, ts: ({ x, w }) => F.conv1d(x, w, null, { dilation: 2, groups: 3 }),
    py: 'F.conv1d(x, w, dilation=2, groups=3)', grad: true },
];

const pools: OpCase[] = [
  { name: 'maxPool2d(2)', inputs: { x: IMG }, ts: ({ x }) => F.maxPool2d(x, 2), py: 'F.max_pool2d(x, 2)', grad: true },
  { name: 'maxPool2d(3, stride 2, padding 1)', inputs: { x: IMG }, ts: ({ x }) => F.maxPool2d(x, 3, { stride: 2, padding: 1 }),
    py: 'F.max_pool2d(x, 3, stride=2, padding=1)', grad: true },
  { name: 'maxPool2d([2, 3], stride [1, 2], dilation 2)', inputs: { x: IMG }, ts: ({ x }) => F.maxPool2d(x, [2, 3], { stride: [1, 2], dilation: 2 }),
    py: 'F.max_pool2d(x, (2, 3), stride=(1, 2), dilation=2)', grad: true },
  { name: 'maxPool2d ceilMode', inputs: { x: IMG }, ts: ({ x }) => F.maxPool2d(x, 2, { ceilMode: true }), py: 'F.max_pool2d(x, 2, ceil_mode=True)', grad: true },
  { name: 'avgPool2d(2)', inputs: { x: IMG }, ts: ({ x }) => F.avgPool2d(x, 2), py: 'F.avg_pool2d(x, 2)', grad: true },
  { name: 'avgPool2d(3, stride 2, padding 1) counting the padding', inputs: { x: IMG }, ts: ({ x }) => F.avgPool2d(x, 3, { stride: 2, padding: 1 }),
    py: 'F.avg_pool2d(x, 3, stride=2, padding=1)', grad: true },
  { name: 'avgPool2d countIncludePad false', inputs: { x: IMG }, ts: ({ x }) => F.avgPool2d(x, 3, { stride: 2, padding: 1, countIncludePad: false }),
    py: 'F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)', grad: true },
  { name: 'avgPool2d ceilMode, float64', inputs: { x: IMG64 }, ts: ({ x }) => F.avgPool2d(x, [2, 2], { ceilMode: true }),
    py: 'F.avg_pool2d(x, (2, 2), ceil_mode=True)', grad: true },
  { name: 'avgPool2d divisorOverride', inputs: { x: IMG }, ts: ({ x }) => F.avgPool2d(x, 2, { divisorOverride: 3 }),
    py: 'F.avg_pool2d(x, 2, divisor_override=3)', grad: true },
  { name: 'adaptiveAvgPool2d(1)', inputs: { x: IMG }, ts: ({ x }) => F.adaptiveAvgPool2d(x, 1), py: 'F.adaptive_avg_pool2d(x, 1)', grad: true },
  { name: 'adaptiveAvgPool2d([3, 4]) non-divisible', inputs: { x: IMG }, ts: ({ x }) => F.adaptiveAvgPool2d(x, [3, 4]),
    py: 'F.adaptive_avg_pool2d(x, (3, 4))', grad: true },
  { name: 'adaptiveMaxPool2d([2, 3])', inputs: { x: IMG }, ts: ({ x }) => F.adaptiveMaxPool2d(x, [2, 3]), py: 'F.adaptive_max_pool2d(x, (2, 3))', grad: true },
  { name: 'adaptiveMaxPool2d(4) float64', inputs: { x: IMG64 }, ts: ({ x }) => F.adaptiveMaxPool2d(x, 4), py: 'F.adaptive_max_pool2d(x, 4)', grad: true },
];

const norms: OpCase[] = [
  { name: 'batchNorm training updates running stats', inputs: { x: NCHW, w: rn([3], 22), b: rn([3], 23) },
    ts: ({ x, w, b }) => {
      const rm = zeros([3]);
      const rv = ones([3]);
      return [F.batchNorm(x, rm, rv, { weight: w, bias: b, training: true, momentum: 0.2 }), rm, rv];
    },
    py: 'rm = torch.zeros(3)\nrv = torch.ones(3)\nout = [F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.2), rm, rv]', grad: true },
  { name: 'batchNorm eval uses running stats', inputs: { x: NCHW, rm: rn([3], 24), rv: rand([3], { seed: 25 }).add(0.5), w: rn([3], 26), b: rn([3], 27) },
    ts: ({ x, rm, rv, w, b }) => F.batchNorm(x, rm, rv, { weight: w, bias: b, eps: 1e-3 }),
    py: 'F.batch_norm(x, rm, rv, w, b, training=False, eps=1e-3)', grad: ['x', 'w', 'b'] },
  { name: 'batchNorm training without running stats or affine, 2-D', inputs: { x: X },
    ts: ({ x }) => F.batchNorm(x, null, null, { training: true }), py: 'F.batch_norm(x, None, None, training=True)', grad: true },
  { name: 'batchNorm training float64', inputs: { x: IMG64 }, ts: ({ x }) => F.batchNorm(x, null, null, { training: true, eps: 1e-4 }),
    py: 'F.batch_norm(x, None, None, training=True, eps=1e-4)', grad: true },
  { name: 'layerNorm last dim with affine', inputs: { x: X, w: rn([5], 28), b: rn([5], 29) },
    ts: ({ x, w, b }) => F.layerNorm(x, [5], { weight: w, bias: b }), py: 'F.layer_norm(x, (5,), w, b)', grad: true },
  { name: 'layerNorm [H, W] without affine, eps', inputs: { x: IMG }, ts: ({ x }) => F.layerNorm(x, [7, 6], { eps: 1e-3 }),
    py: 'F.layer_norm(x, (7, 6), eps=1e-3)', grad: true },
  { name: 'layerNorm float64', inputs: { x: IMG64, w: rn([6, 5], 30, 'float64') }, ts: ({ x, w }) => F.layerNorm(x, [6, 5], { weight: w }),
    py: 'F.layer_norm(x, (6, 5), w)', grad: true },
  { name: 'groupNorm 2 groups with affine', inputs: { x: G6, w: rn([6], 31), b: rn([6], 32) }, ts: ({ x, w, b }) => F.groupNorm(x, 2, { weight: w, bias: b }),
    py: 'F.group_norm(x, 2, w, b)', grad: true },
  { name: 'groupNorm one group per channel', inputs: { x: IMG }, ts: ({ x }) => F.groupNorm(x, 3, { eps: 1e-2 }), py: 'F.group_norm(x, 3, eps=1e-2)', grad: true },
  { name: 'groupNorm float64', inputs: { x: IMG64 }, ts: ({ x }) => F.groupNorm(x, 2), py: 'F.group_norm(x, 2)', grad: true },
];

const activations: OpCase[] = [
  { name: 'F.relu', inputs: { x: X }, ts: ({ x }) => F.relu(x), py: 'F.relu(x)', grad: true },
  { name: 'F.gelu exact', inputs: { x: X }, ts: ({ x }) => F.gelu(x), py: 'F.gelu(x)', grad: true },
  { name: 'F.gelu tanh', inputs: { x: X }, ts: ({ x }) => F.gelu(x, { approximate: 'tanh' }), py: "F.gelu(x, approximate='tanh')", grad: true },
  { name: 'F.gelu float64', inputs: { x: X64 }, ts: ({ x }) => [F.gelu(x), F.gelu(x, { approximate: 'tanh' })],
    py: "[F.gelu(x), F.gelu(x, approximate='tanh')]", grad: true },
  { name: 'F.silu', inputs: { x: X }, ts: ({ x }) => F.silu(x), py: 'F.silu(x)', grad: true },
  { name: 'F.sigmoid', inputs: { x: X64 }, ts: ({ x }) => F.sigmoid(x), py: 'torch.sigmoid(x)', grad: true },
  { name: 'F.tanh', inputs: { x: X }, ts: ({ x }) => F.tanh(x), py: 'torch.tanh(x)', grad: true },
  { name: 'F.softplus', inputs: { x: X.mul(10) }, ts: ({ x }) => F.softplus(x), py: 'F.softplus(x)', grad: true },
  { name: 'F.softplus beta 2 threshold 1', inputs: { x: X }, ts: ({ x }) => F.softplus(x, { beta: 2, threshold: 1 }),
    py: 'F.softplus(x, beta=2, threshold=1)', grad: true },
  { name: 'F.leakyRelu default and 0.2', inputs: { x: X }, ts: ({ x }) => [F.leakyRelu(x), F.leakyRelu(x, 0.2)],
    py: '[F.leaky_relu(x), F.leaky_relu(x, 0.2)]', grad: true },
  { name: 'F.elu default and alpha 0.5', inputs: { x: X }, ts: ({ x }) => [F.elu(x), F.elu(x, 0.5)], py: '[F.elu(x), F.elu(x, 0.5)]', grad: true },
  { name: 'F.hardsigmoid', inputs: { x: X.mul(4) }, ts: ({ x }) => F.hardsigmoid(x), py: 'F.hardsigmoid(x)', grad: true },
  { name: 'F.softmax dim 1', inputs: { x: X }, ts: ({ x }) => F.softmax(x, 1), py: 'F.softmax(x, 1)', grad: true },
  { name: 'F.softmax dim 0 of 4-D', inputs: { x: IMG }, ts: ({ x }) => F.softmax(x, 0), py: 'F.softmax(x, 0)', grad: true },
  { name: 'F.softmax dtype float64', inputs: { x: X }, ts: ({ x }) => F.softmax(x, -1, { dtype: 'float64' }), py: 'F.softmax(x, -1, dtype=torch.float64)', grad: true },
  { name: 'F.softmax of large logits is stable', inputs: { x: X.mul(1000) }, ts: ({ x }) => F.softmax(x, 1), py: 'F.softmax(x, 1)', grad: true },
  { name: 'F.logSoftmax dim 1', inputs: { x: X }, ts: ({ x }) => F.logSoftmax(x, 1), py: 'F.log_softmax(x, 1)', grad: true },
  { name: 'F.logSoftmax float64 dim -1', inputs: { x: X64 }, ts: ({ x }) => F.logSoftmax(x, -1), py: 'F.log_softmax(x, -1)', grad: true },
  { name: 'Tensor.softmax / logSoftmax methods', inputs: { x: IMG }, ts: ({ x }) => [x.softmax(1), x.logSoftmax(-2)],
    py: '[x.softmax(1), x.log_softmax(-2)]', grad: true },
];

const IGNORED = tensor([0, 3, -100, 3, 2, -100], { dtype: 'int64' });
const IGNORED2 = tensor([0, 2, 1, 2, 2, 3], { dtype: 'int64' });
const PROBS = rand([6, 4], { seed: 33 }).softmax(1);

const losses: OpCase[] = [
  { name: 'crossEntropy mean', inputs: { x: LOGITS, t: TARGET }, ts: ({ x, t }) => F.crossEntropy(x, t), py: 'F.cross_entropy(x, t)', grad: ['x'] },
  { name: 'crossEntropy sum and none', inputs: { x: LOGITS, t: TARGET },
    ts: ({ x, t }) => [F.crossEntropy(x, t, { reduction: 'sum' }), F.crossEntropy(x, t, { reduction: 'none' })],
    py: "[F.cross_entropy(x, t, reduction='sum'), F.cross_entropy(x, t, reduction='none')]", grad: ['x'] },
  { name: 'crossEntropy labelSmoothing 0.1', inputs: { x: LOGITS, t: TARGET }, ts: ({ x, t }) => F.crossEntropy(x, t, { labelSmoothing: 0.1 }),
    py: 'F.cross_entropy(x, t, label_smoothing=0.1)', grad: ['x'] },
  { name: 'crossEntropy class weights', inputs: { x: LOGITS, t: TARGET, w: CLASS_WEIGHT }, ts: ({ x, t, w }) => F.crossEntropy(x, t, { weight: w }),
    py: 'F.cross_entropy(x, t, weight=w)', grad: ['x'] },
  { name: 'crossEntropy default ignoreIndex -100', inputs: { x: LOGITS, t: IGNORED }, ts: ({ x, t }) => F.crossEntropy(x, t),
    py: 'F.cross_entropy(x, t)', grad: ['x'] },
  { name: 'crossEntropy ignoreIndex 2, none', inputs: { x: LOGITS, t: IGNORED2 }, ts: ({ x, t }) => F.crossEntropy(x, t, { ignoreIndex: 2, reduction: 'none' }),
    py: "F.cross_entropy(x, t, ignore_index=2, reduction='none')", grad: ['x'] },
  { name: 'crossEntropy weights + smoothing + ignore', inputs: { x: LOGITS, t: IGNORED2, w: CLASS_WEIGHT },
    ts: ({ x, t, w }) => F.crossEntropy(x, t, { weight: w, labelSmoothing: 0.2, ignoreIndex: 2 }),
    py: 'F.cross_entropy(x, t, weight=w, label_smoothing=0.2, ignore_index=2)', grad: ['x'] },
  { name: 'crossEntropy weights + smoothing, sum, float64', inputs: { x: LOGITS.double(), t: TARGET, w: CLASS_WEIGHT.double() },
    ts: ({ x, t, w }) => F.crossEntropy(x, t, { weight: w, labelSmoothing: 0.05, reduction: 'sum' }),
    py: "F.cross_entropy(x, t, weight=w, label_smoothing=0.05, reduction='sum')", grad: ['x'] },
  { name: 'crossEntropy spatial (N, C, H, W)', inputs: { x: SPATIAL, t: SPATIAL_TARGET }, ts: ({ x, t }) => F.crossEntropy(x, t, { labelSmoothing: 0.1 }),
    py: 'F.cross_entropy(x, t, label_smoothing=0.1)', grad: ['x'] },
  { name: 'crossEntropy probability targets', inputs: { x: LOGITS, p: PROBS }, ts: ({ x, p }) => F.crossEntropy(x, p, { labelSmoothing: 0.1 }),
    py: 'F.cross_entropy(x, p, label_smoothing=0.1)', grad: ['x'] },
  { name: 'nllLoss with weights and ignoreIndex', inputs: { x: LOGITS, t: IGNORED2, w: CLASS_WEIGHT },
    ts: ({ x, t, w }) => F.nllLoss(F.logSoftmax(x, 1), t, { weight: w, ignoreIndex: 3 }),
    py: 'F.nll_loss(F.log_softmax(x, 1), t, weight=w, ignore_index=3)', grad: ['x'] },
  { name: 'nllLoss none', inputs: { x: LOGITS, t: TARGET }, ts: ({ x, t }) => F.nllLoss(x, t, { reduction: 'none' }),
    py: "F.nll_loss(x, t, reduction='none')", grad: ['x'] },
  { name: 'mseLoss mean, sum, none', inputs: { x: X, y: rn([3, 5], 34) },
    ts: ({ x, y }) => [F.mseLoss(x, y), F.mseLoss(x, y, { reduction: 'sum' }), F.mseLoss(x, y, { reduction: 'none' })],
    py: "[F.mse_loss(x, y), F.mse_loss(x, y, reduction='sum'), F.mse_loss(x, y, reduction='none')]", grad: true },
];

opSuite('conv2d, conv1d', convs);
opSuite('max, avg and adaptive pooling', pools);
opSuite('batchNorm, layerNorm, groupNorm', norms);
opSuite('activations, softmax, logSoftmax', activations);
opSuite('crossEntropy, nllLoss, mseLoss', losses);

test('conv2d and the losses report shape errors with libtorch\'s messages', () => {
  assertNoLeaks(() => {
    assert.throws(() => F.conv2d(IMG, rn([4, 2, 3, 3], 40)),
      /Given groups=1, weight of size \[4, 2, 3, 3\], expected input\[2, 3, 7, 6\] to have 2 channels, but got 3 channels instead/);
    assert.throws(() => F.conv2d(IMG, W3, null, { groups: 2 }), /groups/);
    assert.throws(() => F.crossEntropy(LOGITS, TARGET.narrow(0, 0, 5)), /Expected input batch_size \(6\) to match target batch_size \(5\)/);
    assert.throws(() => F.crossEntropy(LOGITS, tensor([0, 1, 2, 3, 4, 0], { dtype: 'int64' })), /Target 4 is out of bounds/);
    assert.throws(() => F.maxPool2d(rn([1, 1, 2, 2], 41), 3), /Output size is too small/);
  });
});
