/**
 * Export of single layers and of ATen ops no registered model uses yet (timm's ByobNet blocks,
 * BoTNet's attention, other families to come): each exported module runs in onnxruntime-node at
 * batch 1 and 4 and equals vicinity's forward to 1e-4.
 */
import assert from 'node:assert/strict';
import test from 'node:test';
import { MultiHeadSelfAttention2d } from '../../src/attention/mhsa2d.js';
import { HaloAttention } from '../../src/attention/halo-attention.js';
import { exportOnnx } from '../../src/export/export-onnx.js';
import { GroupNorm } from '../../src/nn/layers/group-norm.js';
import { Module } from '../../src/nn/module.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { onnxParity } from './support.js';

type Forwardable = Module & { forward(x: Tensor): Tensor };

/** Activations, SE/ECA-style gates and resampling, as timm's blocks use them. */
class ActivationsAndGates extends Module {
  forward(x: Tensor): Tensor {
    const [, C] = x.shape;
    const se = aten.hardsigmoid(aten.mean_dim(x, [2, 3], true));                         // (B, C, 1, 1)
    const eca = aten.sigmoid(aten.adaptive_avg_pool2d(x, [1, 1]).flatten(1).reshape([-1, 1, C]))
      .reshape([-1, C, 1, 1]);                                                            // (B, C, 1, 1)
    let y = aten.silu(x).mul(se).add(aten.gelu(x, 'tanh').mul(eca));
    y = aten.leaky_relu(y, 0.1).add(aten.elu(y, 0.5, 1, 1)).add(aten.softplus(y, 2, 5));
    y = aten.clamp(y, -1.5, 2).add(aten.rsqrt(aten.exp(y).add(1)));
    return aten.log_softmax_int(aten.amax(y, [2, 3], false), 1, null);                    // (B, C)
  }
}

/** Shape and indexing ops: padding modes, rolls, flips, tiles, shuffles, resizes, splits. */
class ShapesAndResampling extends Module {
  forward(x: Tensor): Tensor {
    const circular = aten.pad(x, [1, 2, 2, 1], 'circular', null);                         // (B, C, H+3, W+3)
    const reflect = aten.pad(x, [1, 1, 1, 1], 'reflect', null);                           // (B, C, H+2, W+2)
    const rolled = aten.flip(aten.roll(x, [1, -2], [2, 3]), [3]);
    const shuffled = aten.pixel_shuffle(aten.pixel_unshuffle(x, 2), 2);                   // x, reordered twice
    const near = aten.upsample_nearest2d_vec(x, [x.shape[2] * 2, x.shape[3] * 2], null);
    const bilinear = aten.upsample_bilinear2d_vec(x, [x.shape[2] * 2, x.shape[3] * 2], false, null);
    const [a, b] = aten.chunk(aten.cat([near, bilinear], 1), 2, 1);
    const pooled = aten.max_pool2d(a.add(b), 2, 2, 0, 1, false);                          // (B, C, H, W)
    const tiled = aten.repeat(aten.tril(x, 0), [1, 1, 1, 1]);
    const mix = pooled.add(rolled).add(shuffled).add(tiled).add(aten.narrow(circular, 2, 1, x.shape[2]).narrow(3, 2, x.shape[3]))
      .add(aten.slice_Tensor(reflect, 2, 1, -1, 1).narrow(3, 1, x.shape[3]));
    const moved = aten.movedim_int(mix, 1, 3);                                            // (B, H, W, C)
    const masked = aten.masked_fill_Scalar(moved, aten.ne_Scalar(aten.div_Tensor_mode(moved, moved.add(3), 'floor'), 0), -1);
    return aten.sum_dim_IntList(aten.where_self(masked.gt(0), masked, aten.pow_Tensor_Scalar(masked, 2)), [1, 2], false, null);
  }
}

const CASES: [string, () => Forwardable, [number, number, number]][] = [
  ['MultiHeadSelfAttention2d (BoTNet)', () => new MultiHeadSelfAttention2d({ dim: 16, featSize: 8, numHeads: 4 }), [16, 8, 8]],
  ['MultiHeadSelfAttention2d stride 2, scaled positions', () => new MultiHeadSelfAttention2d({ dim: 16, dimOut: 32, featSize: 8, numHeads: 4, stride: 2, scalePosEmbed: true }), [16, 8, 8]],
  ['HaloAttention', () => new HaloAttention({ dim: 16, numHeads: 2, blockSize: 4, haloSize: 1 }), [16, 8, 8]],
  ['GroupNorm', () => new GroupNorm({ numGroups: 4, numChannels: 16 }), [16, 5, 7]],
  ['activations and gates', () => new ActivationsAndGates(), [8, 6, 6]],
  ['shapes and resampling', () => new ShapesAndResampling(), [4, 6, 8]],
];

for (const [name, make, shape] of CASES) {
  test(`${name}: onnxruntime equals vicinity to 1e-4`, async () => {
    manualSeed(0);
    const layer = make();
    layer.eval();
    const out = exportOnnx(layer, { inChannels: shape[0], inputSize: [shape[1], shape[2]] });
    for (const batch of [1, 4]) {
      const x = randn([batch, ...shape], { seed: 20 + batch });
      const r = await onnxParity(out.bytes, layer, x);
      x.dispose();
      assert.equal(r.dims[0], batch);
      assert.ok(r.maxAbs > 0.05, `outputs too small to compare (${r.maxAbs})`);
      assert.ok(r.maxDiff <= 1e-4, `${name} batch ${batch}: max |onnx − vicinity| ${r.maxDiff.toExponential(2)}`);
    }
    layer.dispose();
  });
}
