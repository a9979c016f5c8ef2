/**
 * MultiHeadSelfAttention2d: parity with timm BottleneckAttn on its fixture and its seeded init;
 * a brute-force per-query implementation written here ([q | k | v] channel blocks, Eq. (R)
 * logits over the whole map, softmax, weighted sum) on a non-square map with bias, scalePosEmbed,
 * dimOut ≠ dim and stride 2; relPosResize 'linear' (identity at featSize, equal to a layer built
 * for the new size with resampled tables, gradcheck); float64 gradchecks; the contract and errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertGradcheck } from '../../src/autograd/gradcheck.js';
import {
  mhsa2dOptionsFromReference, MultiHeadSelfAttention2d, referenceBuilders, type MultiHeadSelfAttention2dOptions,
} from '../../src/attention/mhsa2d.js';
import { resizeRelPosTable } from '../../src/attention/rel-pos.js';
import * as F from '../../src/ops/functional.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { ShapeError } from '../../src/tensor/shape-error.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertParity, assertSeededInit, f64, maxAbs, values, withFixture } from './support.js';

const KIND = 'timm.layers.bottleneck_attn.BottleneckAttn';
const FIXTURE = 'botnet-attn-open';

/** A float64 layer with every parameter (the bias too) drawn N(0, 0.5²). */
function layer(o: MultiHeadSelfAttention2dOptions, seed = 0): MultiHeadSelfAttention2d {
  const m = new MultiHeadSelfAttention2d(o).to('float64');
  noGrad(() => m.parameters().forEach((p, i) => p.copy_(randn(p.shape, { seed: seed + i, dtype: 'float64' }).mul(0.5))));
  return m;
}

/** The output one query at a time: q, k, v are channel blocks [0, nh·dqk), [nh·dqk, 2nh·dqk), the rest. */
function bruteForce(m: MultiHeadSelfAttention2d, x: Tensor): Tensor {
  const [batch, , height, width] = x.shape;
  const { numHeads: nh, dimHeadQk: dqk, dimHeadV: dv } = m;
  const qkv = values(noGrad(() => F.conv2d(x, m.qkv.weight, m.qkv.bias)));
  const [hr, wr] = [values(m.posEmbed.heightRel), values(m.posEmbed.widthRel)];
  const at = (n: number, c: number, p: number) => qkv[(n * (2 * nh * dqk + nh * dv) + c) * height * width + p];
  const out = new Float64Array(batch * nh * dv * height * width);
  for (let n = 0; n < batch; n++) for (let h = 0; h < nh; h++) for (let i = 0; i < height * width; i++) {
    const [qy, qx] = [Math.floor(i / width), i % width];
    const logits: number[] = [];
    for (let j = 0; j < height * width; j++) {
      const [ky, kx] = [Math.floor(j / width), j % width];
      let [content, rel] = [0, 0];
      for (let c = 0; c < dqk; c++) {
        const q = at(n, h * dqk + c, i);
        content += q * at(n, nh * dqk + h * dqk + c, j);
        rel += q * (hr[(ky - qy + height - 1) * dqk + c] + wr[(kx - qx + width - 1) * dqk + c]);
      }
      logits.push(m.scalePosEmbed ? (content + rel) * m.scale : content * m.scale + rel);
    }
    const top = Math.max(...logits);
    const e = logits.map((l) => Math.exp(l - top));
    const total = e.reduce((a, v) => a + v, 0);
    for (let c = 0; c < dv; c++) {
      const acc = e.reduce((a, w, j) => a + (w / total) * at(n, 2 * nh * dqk + h * dv + c, j), 0);
      out[((n * nh + h) * dv + c) * height * width + i] = acc;
    }
  }
  const y = tensor(out, { shape: [batch, nh * dv, height, width] });
  return m.stride === 2 ? F.avgPool2d(y, 2, { stride: 2 }) : y;
}

test(`${FIXTURE}: MultiHeadSelfAttention2d = timm BottleneckAttn (output, input and parameter gradients)`, () =>
  withFixture(FIXTURE, (fixture) => assertParity(fixture, referenceBuilders, { kind: KIND, maxRelError: 1e-5 })));

test(`${FIXTURE}: manualSeed(seed) then construction draws timm's initial parameters bit for bit`, () =>
  withFixture(FIXTURE, (fixture) => assertSeededInit(fixture, referenceBuilders[KIND])));

test('= the per-query brute force: non-square 3×5, bias, dimOut ≠ dim, scalePosEmbed, stride 2 (odd sizes floor)', () => {
  assertNoLeaks(() => {
    const cases: [MultiHeadSelfAttention2dOptions, number[]][] = [
      [{ dim: 4, dimOut: 6, numHeads: 3, featSize: [3, 5], qkvBias: true }, [2, 6, 3, 5]],
      [{ dim: 4, numHeads: 2, dimHead: 3, featSize: [3, 5], scalePosEmbed: true, stride: 2 }, [1, 4, 1, 2]],
    ];
    for (const [o, outShape] of cases) {
      const m = layer(o, 10);
      const x = f64([outShape[0], 4, 3, 5], 11);
      const y = m.forward(x);
      assert.deepEqual(y.shape, outShape);
      assert.ok(maxAbs(y, bruteForce(m, x)) < 1e-12, JSON.stringify(o));
      m.dispose();
    }
  });
});

test('sizes: dqk rounds the total q/k width (dimOut 12, 3 heads → dqk 5); names; batch 1 = batch 2; train = eval', () => {
  assertNoLeaks(() => {
    const m = new MultiHeadSelfAttention2d({ dim: 8, dimOut: 12, numHeads: 3, featSize: 4, qkvBias: true }).to('float64');
    assert.deepEqual([m.dimHeadQk, m.dimHeadV, m.featSize], [5, 4, [4, 4]]);
    assert.deepEqual([...m.stateDict()].map(([k, t]) => `${k} [${t.shape}]`), [
      'qkv.weight [42,8,1,1]', 'qkv.bias [42]', 'pos_embed.height_rel [7,5]', 'pos_embed.width_rel [7,5]',
    ]);
    const x = f64([2, 8, 4, 4], 20);
    const y = m.forward(x);
    assert.deepEqual(y.shape, [2, 12, 4, 4]);
    assert.ok(maxAbs(y.narrow(0, 1, 1), m.forward(x.narrow(0, 1, 1))) < 1e-12);
    assert.ok(m.eval().forward(x).equal(y));
    const defaults = new MultiHeadSelfAttention2d({ dim: 16, featSize: [2, 3] });
    assert.deepEqual([defaults.numHeads, defaults.dimHeadQk, defaults.stride, defaults.relPosResize], [4, 4, 1, 'none']);
    m.dispose();
    defaults.dispose();
  });
});

test("relPosResize 'linear': identity at featSize; another size = a layer built for it with resampled tables", () => {
  assertNoLeaks(() => {
    const o = { dim: 4, numHeads: 2, featSize: [4, 3] as [number, number], qkvBias: true };
    const fixed = layer(o, 30);
    const resizing = new MultiHeadSelfAttention2d({ ...o, relPosResize: 'linear' }).to('float64');
    resizing.loadStateDict(fixed.stateDict());
    const x = f64([2, 4, 4, 3], 31);
    assert.ok(resizing.forward(x).equal(fixed.forward(x)));
    for (const [h, w] of [[6, 2], [2, 5], [1, 1]]) {
      const other = new MultiHeadSelfAttention2d({ ...o, featSize: [h, w] }).to('float64');
      noGrad(() => {
        other.qkv.weight.copy_(fixed.qkv.weight);
        other.qkv.bias!.copy_(fixed.qkv.bias!);
        other.posEmbed.heightRel.copy_(resizeRelPosTable(fixed.posEmbed.heightRel, 2 * h - 1));
        other.posEmbed.widthRel.copy_(resizeRelPosTable(fixed.posEmbed.widthRel, 2 * w - 1));
      });
      const xs = f64([2, 4, h, w], 32);
      const y = resizing.forward(xs);
      assert.deepEqual(y.shape, [2, 4, h, w]);
      assert.ok(maxAbs(y, other.forward(xs)) < 1e-12, `${h}×${w}`);
      other.dispose();
    }
    fixed.dispose();
    resizing.dispose();
  });
});

test('gradchecks in float64 for the input and every parameter: at featSize (bias, scalePosEmbed, stride 2) and resized', () => {
  assertNoLeaks(() => {
    const cases: [MultiHeadSelfAttention2dOptions, number[]][] = [
      [{ dim: 2, numHeads: 2, dimHead: 2, featSize: [2, 3], qkvBias: true }, [2, 2, 2, 3]],
      [{ dim: 2, numHeads: 1, dimHead: 2, featSize: [3, 3], scalePosEmbed: true, stride: 2 }, [1, 2, 3, 3]],
      [{ dim: 2, numHeads: 1, dimHead: 2, featSize: [3, 2], qkvBias: true, relPosResize: 'linear' }, [1, 2, 2, 4]],
    ];
    for (const [o, shape] of cases) {
      const m = layer(o, 40);
      const w = m.weights();
      const params = [w.qkvWeight, w.qkvBias, w.heightRel, w.widthRel]
        .filter((t): t is Tensor => t !== null).map((t) => t.detach().clone().requiresGrad_());
      const r = assertGradcheck((input, ...p) => {
        const [qkvWeight, qkvBias, heightRel, widthRel] = o.qkvBias ? p : [p[0], null, p[1], p[2]];
        return m.attend(input, { qkvWeight, qkvBias, heightRel, widthRel });
      }, [f64(shape, 41).requiresGrad_(), ...params]);
      assert.ok(r.maxAbsError < 1e-6, `${JSON.stringify(o)}\n${r.report}`);
      m.dispose();
    }
  });
});

test('forward and backward leave no tensor behind', () => {
  const m = new MultiHeadSelfAttention2d({ dim: 4, numHeads: 2, featSize: 3, relPosResize: 'linear' });
  assertNoLeaks(() => {
    m.forward(randn([1, 4, 4, 2], { seed: 50 }).requiresGrad_()).sum().backward();
    m.zeroGrad();
  });
  m.dispose();
});

test('invalid inputs throw ShapeError naming featSize and the fix', () => {
  const m = new MultiHeadSelfAttention2d({ dim: 4, numHeads: 2, featSize: [8, 8] });
  const strided = new MultiHeadSelfAttention2d({ dim: 4, numHeads: 2, featSize: 4, stride: 2, relPosResize: 'linear' });
  assertNoLeaks(() => {
    assert.throws(() => m.forward(randn([1, 4, 6, 8])), (e: Error) => e instanceof ShapeError &&
      /the input is 6×8 but featSize is \[8, 8\] \(the relative tables have 15 and 15 rows\); build with featSize: \[6, 8\] or pass \{ relPosResize: 'linear' \}/.test(e.message));
    assert.throws(() => m.forward(randn([1, 5, 8, 8])), (e: Error) => e instanceof ShapeError &&
      /expected input \(B, dim=4, H, W\), got shape \[1, 5, 8, 8\]/.test(e.message));
    assert.throws(() => m.forward(randn([4, 8, 8])), /ShapeError: MultiHeadSelfAttention2d: expected input/);
    assert.throws(() => strided.forward(randn([1, 4, 1, 3])), /ShapeError: MultiHeadSelfAttention2d: stride 2 \(2×2 average pool\) needs H, W ≥ 2, got 1×3/);
  });
  m.dispose();
  strided.dispose();
});

test('invalid configurations throw RangeError/TypeError naming the option and the value', () => {
  const build = (o: Partial<MultiHeadSelfAttention2dOptions>) => () => new MultiHeadSelfAttention2d({ dim: 8, numHeads: 2, featSize: 4, ...o });
  assert.throws(build({ featSize: undefined }), /TypeError: MultiHeadSelfAttention2d: featSize \(the input's \[H, W\]\) is required/);
  assert.throws(build({ featSize: [4, 0] }), /RangeError: MultiHeadSelfAttention2d: featSize\[1\] must be ≥ 1, got 0/);
  assert.throws(build({ featSize: [4, 4, 4] as never }), /TypeError: MultiHeadSelfAttention2d: featSize must be a number or 2 numbers/);
  assert.throws(build({ dimOut: 9 }), /RangeError: MultiHeadSelfAttention2d: dimOut \(9\) must be divisible by numHeads \(2\)/);
  assert.throws(build({ stride: 3 }), /RangeError: MultiHeadSelfAttention2d: stride must be 1 or 2, got 3/);
  assert.throws(build({ qkRatio: -1 }), /RangeError: MultiHeadSelfAttention2d: qkRatio must be a positive finite number, got -1/);
  assert.throws(build({ dimHead: 0 }), /RangeError: MultiHeadSelfAttention2d: dimHead must be ≥ 1, got 0/);
  assert.throws(build({ numHeads: 16, dimOut: 16, qkRatio: 0.25 }), /the q\/k width per head is makeDivisible\(16·0.25\) \/ 16 < 1; pass dimHead/);
  assert.throws(build({ relPosResize: 'bilinear' as never }), /RangeError: MultiHeadSelfAttention2d: relPosResize must be one of 'none', 'linear', got "bilinear"/);
  assert.throws(build({ scalePosEmbed: 'no' as never }), /TypeError: MultiHeadSelfAttention2d: scalePosEmbed must be true or false, got no/);
});

test('referenceBuilders maps timm snake_case arguments; None is skipped; unknown ones throw', () => {
  assert.deepEqual(mhsa2dOptionsFromReference({
    dim: 8, dim_out: 0, feat_size: [4, 6], stride: 2, num_heads: 2, dim_head: null, qk_ratio: 0.5, qkv_bias: true,
    scale_pos_embed: true,
  }), { dim: 8, featSize: [4, 6], stride: 2, numHeads: 2, qkRatio: 0.5, qkvBias: true, scalePosEmbed: true });
  assert.throws(() => referenceBuilders[KIND]({ dim: 8, feat_size: 4, block_size: 3 }),
    /TypeError: MultiHeadSelfAttention2d: unknown timm BottleneckAttn argument 'block_size'/);
  const m = referenceBuilders[KIND]({ dim: 8, num_heads: 2, feat_size: 4 });
  assert.ok(m instanceof MultiHeadSelfAttention2d);
  m.dispose();
});
