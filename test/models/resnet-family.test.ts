import assert from 'node:assert/strict';
import test from 'node:test';
import { AvgPool2d, Conv2d, Module } from '../../src/nn/index.js';
import { resnetFamily, planResNet, Bottleneck, type ResNetFamilyOptions } from '../../src/models/resnet-family.js';
import { conv3x3Op, type SpatialOpContext, type SpatialOpFactory } from '../../src/models/spatial-ops.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { randn } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import { ShapeError } from '../../src/tensor/shape-error.js';
import type { Tensor } from '../../src/tensor/tensor.js';

/**
 * torchvision 0.14's ResNet state dict, written out from its structure
 * (torchvision/models/resnet.py): stem conv1/bn1; per block conv{i}/bn{i} (3 for Bottleneck, 2 for
 * BasicBlock) and a downsample (conv, BN) on the first block of a stage whose shape changes; fc.
 */
function torchvisionKeys(depths: number[], block: 'bottleneck' | 'basic', widthPerGroup = 64, groups = 1): [string, number[]][] {
  const bnKeys = (p: string, c: number): [string, number[]][] =>
    [['weight', [c]], ['bias', [c]], ['running_mean', [c]], ['running_var', [c]], ['num_batches_tracked', []]].map(([k, s]) => [`${p}.${k}`, s as number[]]);
  const keys: [string, number[]][] = [['conv1.weight', [64, 3, 7, 7]], ...bnKeys('bn1', 64)];
  const expansion = block === 'bottleneck' ? 4 : 1;
  let inplanes = 64;
  depths.forEach((depth, s) => {
    const planes = 64 * 2 ** s;
    const width = Math.floor(planes * (widthPerGroup / 64)) * groups;
    for (let b = 0; b < depth; b++) {
      const p = `layer${s + 1}.${b}`;
      const out = planes * expansion;
      if (block === 'bottleneck') {
        keys.push([`${p}.conv1.weight`, [width, inplanes, 1, 1]], ...bnKeys(`${p}.bn1`, width));
        keys.push([`${p}.conv2.weight`, [width, width / groups, 3, 3]], ...bnKeys(`${p}.bn2`, width));
        keys.push([`${p}.conv3.weight`, [out, width, 1, 1]], ...bnKeys(`${p}.bn3`, out));
      } else {
        keys.push([`${p}.conv1.weight`, [planes, inplanes, 3, 3]], ...bnKeys(`${p}.bn1`, planes));
        keys.push([`${p}.conv2.weight`, [planes, planes, 3, 3]], ...bnKeys(`${p}.bn2`, planes));
      }
      const stride = b === 0 && s > 0 ? 2 : 1;
      if (stride !== 1 || inplanes !== out) keys.push([`${p}.downsample.0.weight`, [out, inplanes, 1, 1]], ...bnKeys(`${p}.downsample.1`, out));
      inplanes = out;
    }
  });
  keys.push(['fc.weight', [1000, inplanes]], ['fc.bias', [1000]]);
  return keys;
}

const stateShapes = (m: Module): [string, number[]][] => Array.from(m.stateDict(), ([k, t]) => [k, t.shape]);

test('resnet50: state-dict keys, order and shapes are torchvision\'s', () => {
  const net = resnetFamily({ depths: [3, 4, 6, 3] });
  const expected = torchvisionKeys([3, 4, 6, 3], 'bottleneck');
  assert.equal(expected.length, 320);
  assert.deepEqual(stateShapes(net), expected);
  assert.equal(net.numParameters(), 25_557_032);
  net.dispose();
});

test('resnet18 and resnext50_32x4d: state dicts match torchvision\'s', () => {
  const r18 = resnetFamily({ depths: [2, 2, 2, 2], block: 'basic' });
  assert.deepEqual(stateShapes(r18), torchvisionKeys([2, 2, 2, 2], 'basic'));
  r18.dispose();
  const x50 = resnetFamily({ depths: [3, 4, 6, 3], cardinality: 32, widthPerGroup: 4 });
  assert.deepEqual(stateShapes(x50), torchvisionKeys([3, 4, 6, 3], 'bottleneck', 4, 32));
  assert.ok((x50.stages[0].at(0) as Bottleneck).conv2 instanceof Conv2d);
  x50.dispose();
});

test('forwardFeatures: ImageNet stem gives strides 4/8/16/32, CIFAR stem 1/2/4/8, odd sizes round up', () => {
  const net = resnetFamily({ depths: [1, 1, 1, 1], baseWidth: 8, numClasses: 10 });
  assert.deepEqual(net.featureInfo.map((f) => [f.module, f.channels, f.reduction]),
    [['layer1', 32, 4], ['layer2', 64, 8], ['layer3', 128, 16], ['layer4', 256, 32]]);
  tidy(() => {
    const maps = net.forwardFeatures(randn([2, 3, 64, 64], { seed: 1 }));
    assert.deepEqual(maps.map((m) => m.shape), [[2, 32, 16, 16], [2, 64, 8, 8], [2, 128, 4, 4], [2, 256, 2, 2]]);
    assert.deepEqual(net.forwardHead(maps[3]).shape, [2, 10]);
    assert.deepEqual(net.forward(randn([2, 3, 65, 47], { seed: 2 })).shape, [2, 10]);
    // 65 → 33 (conv) → 17 (pool) → 17, 9, 5, 3
    assert.deepEqual(net.forwardFeatures(randn([1, 3, 65, 47])).map((m) => m.shape.slice(2)), [[17, 12], [9, 6], [5, 3], [3, 2]]);
  });
  net.dispose();
  const cifar = resnetFamily({ depths: [1, 1, 1, 1], block: 'basic', stem: 'cifar', baseWidth: 8, numClasses: 10, inputSize: 32 });
  assert.deepEqual(cifar.featureInfo.map((f) => f.reduction), [1, 2, 4, 8]);
  tidy(() => {
    const maps = cifar.forwardFeatures(randn([2, 3, 32, 32], { seed: 3 }));
    assert.deepEqual(maps.map((m) => m.shape), [[2, 8, 32, 32], [2, 16, 16, 16], [2, 32, 8, 8], [2, 64, 4, 4]]);
  });
  cifar.dispose();
});

/** A toy attention stand-in: 1×1 conv, then average pooling for the stride (SASA's way). */
class ToyOp extends Module {
  readonly proj: Conv2d;
  readonly pool: AvgPool2d | null;
  constructor(readonly ctx: SpatialOpContext, readonly seen: { ctx: SpatialOpContext; input: number[] }[]) {
    super();
    this.proj = this.register('proj', new Conv2d({ inChannels: ctx.inChannels, outChannels: ctx.outChannels, kernelSize: 1, bias: false }));
    this.pool = ctx.stride > 1 ? this.register('pool', new AvgPool2d({ kernelSize: ctx.stride, ceilMode: true })) : null;
  }
  forward(x: Tensor): Tensor {
    this.seen.push({ ctx: this.ctx, input: x.shape });
    const y = this.proj.forward(x);
    return this.pool ? this.pool.forward(y) : y;
  }
}

function toyFactory(seen: { ctx: SpatialOpContext; input: number[] }[], keepBn2?: boolean): SpatialOpFactory {
  return Object.assign((ctx: SpatialOpContext) => new ToyOp(ctx, seen), { keepBn2, label: 'toy' });
}

test('spatialOp swap (LESA layout): conv2 replaced in chosen blocks, names, BN2, strides and contexts right', () => {
  const seen: { ctx: SpatialOpContext; input: number[] }[] = [];
  const options: ResNetFamilyOptions = {
    depths: [2, 2, 3, 2], baseWidth: 8, numClasses: 5, inputSize: 64, stageStrides: [1, 2, 2, 1],
    spatialOp: toyFactory(seen, false),
    replace: (stage, block) => stage >= 2 && !(stage === 2 && block === 0),
  };
  const net = resnetFamily(options);
  const keys = new Set(net.stateDict().keys());
  assert.ok(keys.has('layer3.0.conv2.weight') && keys.has('layer3.0.bn2.weight'), 'block (2, 0) keeps its conv and BN2');
  for (const p of ['layer3.1', 'layer3.2', 'layer4.0', 'layer4.1']) {
    assert.ok(keys.has(`${p}.conv2.proj.weight`), `${p}.conv2 is the toy op`);
    assert.ok(!keys.has(`${p}.conv2.weight`) && !keys.has(`${p}.bn2.weight`), `${p}: no conv weight, BN2 dropped`);
  }
  assert.ok(keys.has('layer2.1.conv2.weight') && keys.has('layer4.0.downsample.0.weight'));
  assert.deepEqual(net.stateDict().get('layer4.0.downsample.0.weight')?.shape, [256, 128, 1, 1]);
  assert.deepEqual(net.featureInfo.map((f) => f.reduction), [4, 8, 16, 16]);
  noGrad(() => tidy(() => {
    net.eval();
    assert.deepEqual(net.forward(randn([2, 3, 64, 64], { seed: 4 })).shape, [2, 5]);
  }));
  assert.deepEqual(seen.map((s) => [s.ctx.stage, s.ctx.blockIndex, s.ctx.stride, s.ctx.inChannels, s.ctx.outChannels, s.ctx.groups]),
    [[2, 1, 1, 32, 32, 1], [2, 2, 1, 32, 32, 1], [3, 0, 1, 64, 64, 1], [3, 1, 1, 64, 64, 1]]);
  for (const s of seen) assert.deepEqual(s.ctx.featureSize, s.input.slice(2), 'featureSize is the input map size');
  assert.deepEqual(seen[0].ctx.featureSize, [4, 4]);
  net.dispose();

  // keepBn2 overrides the factory; a per-stage list with null keeps the conv in that stage.
  const kept = resnetFamily({ ...options, keepBn2: true, spatialOp: [null, null, toyFactory([]), conv3x3Op] });
  const k2 = new Set(kept.stateDict().keys());
  assert.ok(k2.has('layer3.1.conv2.proj.weight') && k2.has('layer3.1.bn2.weight') && k2.has('layer4.0.conv2.weight'));
  kept.dispose();
});

test('stride-2 spatial op in a bottleneck sees the pre-stride map; a wrong output shape is a ShapeError naming the block', () => {
  const seen: { ctx: SpatialOpContext; input: number[] }[] = [];
  const net = resnetFamily({ depths: [1, 1, 1, 1], baseWidth: 8, numClasses: 3, inputSize: 64, spatialOp: toyFactory(seen) });
  tidy(() => net.forward(randn([1, 3, 64, 64], { seed: 5 })));
  assert.deepEqual(seen.map((s) => [s.ctx.stride, ...s.ctx.featureSize]), [[1, 16, 16], [2, 16, 16], [2, 8, 8], [2, 4, 4]]);
  net.dispose();
  const wrong: SpatialOpFactory = (ctx) => new Conv2d({ inChannels: ctx.inChannels, outChannels: ctx.outChannels + 1, kernelSize: 1 });
  const bad = resnetFamily({ depths: [1, 1], baseWidth: 8, spatialOp: [null, wrong] });
  assert.throws(() => tidy(() => bad.forward(randn([1, 3, 32, 32]))),
    (e: Error) => e instanceof ShapeError && /layer2\.0\.conv2 \(Conv2d\).*must return \(B, 16, 4, 4\), got \[1, 17, 8, 8\]/.test(e.message));
  bad.dispose();
});

test('init as torchvision: kaiming normal fan-out convs, BN (1, 0), zeroInitResidual zeroes the last BN', () => {
  const net = resnetFamily({ depths: [1, 1, 1, 1], zeroInitResidual: true, numClasses: 10 });
  const sd = net.stateDict();
  const std = (t: Tensor) => t.std().item() as number;
  const w = sd.get('layer4.0.conv2.weight') as Tensor;          // fan out 512·9
  assert.ok(Math.abs(std(w) / Math.sqrt(2 / (512 * 9)) - 1) < 0.02, `std ${std(w)}`);
  const stem = sd.get('conv1.weight') as Tensor;                 // fan out 64·49
  assert.ok(Math.abs(std(stem) / Math.sqrt(2 / (64 * 49)) - 1) < 0.05);
  assert.equal(sd.get('layer1.0.bn1.weight')?.min().item(), 1);
  assert.equal(sd.get('layer1.0.bn1.bias')?.abs().max().item(), 0);
  for (const s of [1, 2, 3, 4]) assert.equal(sd.get(`layer${s}.0.bn3.weight`)?.abs().max().item(), 0);
  assert.ok((sd.get('fc.weight')?.abs().max().item() as number) <= 1 / Math.sqrt(2048));   // PyTorch's Linear default
  net.dispose();
  const basic = resnetFamily({ depths: [1, 1], block: 'basic', zeroInitResidual: true });
  assert.equal(basic.stateDict().get('layer2.0.bn2.weight')?.abs().max().item(), 0);
  basic.dispose();
});

test('dropPathRate: timm\'s linear per-block schedule, no state-dict keys, identity in eval', () => {
  const plan = planResNet({ depths: [1, 2, 1], baseWidth: 8, dropPathRate: 0.3 });
  assert.deepEqual(plan.stages.flat().map((b) => b.dropPath ?? 0).map((p) => +p.toFixed(6)), [0, 0.1, 0.2, 0.3]);
  const net = resnetFamily({ depths: [1, 2, 1], baseWidth: 8, dropPathRate: 0.3, numClasses: 4 });
  const plain = resnetFamily({ depths: [1, 2, 1], baseWidth: 8, numClasses: 4 });
  assert.deepEqual([...net.stateDict().keys()], [...plain.stateDict().keys()]);
  assert.ok([...net.namedModules()].some(([n]) => n === 'layer3.0.drop_path'));
  tidy(() => {
    assert.deepEqual(net.forward(randn([4, 3, 32, 32], { seed: 6 })).shape, [4, 4]);
    net.eval();
    const x = randn([2, 3, 32, 32], { seed: 7 });
    plain.loadStateDict(net.stateDict());
    plain.eval();
    assert.ok(net.forward(x).allclose(plain.forward(x)));
  });
  net.dispose();
  plain.dispose();
});

test('HaloNet-style options: fractional expansion, own spatial widths, identity shortcut, head conv, SiLU', () => {
  const net = resnetFamily({
    depths: [1, 1], widths: [16, 32], expansion: 0.5, spatialOutWidths: [32, 64], headChannels: 40,
    activation: 'silu', stemWidth: 8, numClasses: 6, inputSize: 32,
  });
  const sd = net.stateDict();
  assert.deepEqual(sd.get('layer1.0.conv1.weight')?.shape, [16, 8, 1, 1]);
  assert.deepEqual(sd.get('layer1.0.conv2.weight')?.shape, [32, 16, 3, 3]);
  assert.deepEqual(sd.get('layer1.0.conv3.weight')?.shape, [8, 32, 1, 1]);
  assert.ok(!sd.has('layer1.0.downsample.0.weight'), '8 → 8 channels at stride 1: identity shortcut');
  assert.deepEqual(sd.get('layer2.0.downsample.0.weight')?.shape, [16, 8, 1, 1]);
  assert.deepEqual(sd.get('head_conv.0.weight')?.shape, [40, 16, 1, 1]);
  assert.deepEqual(sd.get('fc.weight')?.shape, [6, 40]);
  assert.equal(net.numFeatures, 40);
  tidy(() => assert.deepEqual(net.forward(randn([2, 3, 32, 32], { seed: 8 })).shape, [2, 6]));
  net.dispose();
  const headless = resnetFamily({ depths: [1], numClasses: 0, stem: { stride: 2, build: ({ inChannels, outChannels }) => new Conv2d({ inChannels, outChannels, kernelSize: 3, stride: 2, padding: 1 }) } });
  assert.ok(headless.stateDict().has('stem.weight') && !headless.stateDict().has('fc.weight'));
  assert.deepEqual(headless.featureInfo[0].reduction, 2);
  tidy(() => assert.deepEqual(headless.forward(randn([1, 3, 16, 16])).shape, [1, 256]));
  headless.dispose();
});

test('option errors name the option, the values and the fix', () => {
  assert.throws(() => planResNet({ depths: [] }), /depths must list the blocks per stage/);
  assert.throws(() => planResNet({ depths: [3, 4, 6, 3], stageStrides: [1, 2, 2] }), /stageStrides needs one entry per stage \(4, from depths\), got \[1,2,2\]/);
  assert.throws(() => planResNet({ depths: [2, 2], block: 'basic', cardinality: 32 }), /basic blocks support cardinality 1 .* use block: 'bottleneck'/);
  assert.throws(() => planResNet({ depths: [1], widths: [3], expansion: 0.5 }), /widths\[0\] 3 × expansion 0.5 = 1.5 is not a positive integer/);
  assert.throws(() => planResNet({ depths: [1.5] }), /TypeError: resnetFamily: depths\[0\] must be an integer, got 1.5/);
  assert.throws(() => planResNet({ depths: [1], dropPathRate: 1 }), /dropPathRate must be in \[0, 1\), got 1/);
  assert.throws(() => planResNet({ depths: [1], stem: 'tiny' as never }), /stem must be 'imagenet', 'cifar' or \{ build, stride \}/);
});
