/**
 * HaloAttention: parity with timm HaloAttn on its fixtures (forward, input and parameter
 * gradients) and on its seeded init; a brute-force per-pixel implementation written here (gather
 * the window keys of the query's block, Eq. (3) logits with the same relative embedding, softmax,
 * weighted sum) for both padding modes, odd and non-divisible sizes, strided queries and the
 * average-pool path; float64 gradchecks; the contract (shapes, batch 1 vs 2, train = eval) and
 * every error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertGradcheck } from '../../src/autograd/gradcheck.js';
import {
  HaloAttention, haloAttentionOptionsFromReference, referenceBuilders, type HaloAttentionOptions,
} from '../../src/attention/halo-attention.js';
import * as F from '../../src/ops/functional.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { ShapeError } from '../../src/tensor/shape-error.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertParity, assertSeededInit, f64, maxAbs, values, withFixture } from './support.js';

const KIND = 'timm.layers.halo_attn.HaloAttn';

/** A float64 layer with every parameter (biases too) drawn N(0, 0.5²) so no term is trivially 0. */
function layer(o: HaloAttentionOptions, seed = 0): HaloAttention {
  const m = new HaloAttention(o).to('float64');
  noGrad(() => m.parameters().forEach((p, i) => p.copy_(randn(p.shape, { seed: seed + i, dtype: 'float64' }).mul(0.5))));
  return m;
}

/**
 * The layer's output computed one query pixel at a time. Query (i, j) of the (strided) query map
 * sits at pixel (i·s, j·s) in block (by, bx), at in-block (qy, qx) = (i − by·bds, j − bx·bds); its
 * keys are the window pixels (by·b − h + ky, bx·b − h + kx). Keys outside the map are skipped
 * (`mask`) or, as timm, zero k and v. Then the 2×2 average pool of the avgDown path.
 */
function bruteForce(m: HaloAttention, x: Tensor, mask: boolean): Tensor {
  const [batch, , height, width] = x.shape;
  const { numHeads: nh, dimHeadQk: dqk, dimHeadV: dv, blockSize: b, haloSize: h, winSize: win } = m;
  const [s, bds] = [m.blockStride, m.blockSizeDs];
  const [qMap, kvMap] = noGrad(() => [F.conv2d(x, m.q.weight, m.q.bias, { stride: s }), F.conv2d(x, m.kv.weight, m.kv.bias)]);
  const [hq, wq] = [qMap.shape[2], qMap.shape[3]];
  const [qv, kvv, hr, wr] = [values(qMap), values(kvMap), values(m.posEmbed.heightRel), values(m.posEmbed.widthRel)];
  const out = new Float64Array(batch * nh * dv * hq * wq);
  for (let n = 0; n < batch; n++) for (let head = 0; head < nh; head++) for (let i = 0; i < hq; i++) for (let j = 0; j < wq; j++) {
    const [by, bx] = [Math.floor((i * s) / b), Math.floor((j * s) / b)];
    const [qy, qx] = [i - by * bds, j - bx * bds];
    const qAt = (c: number) => qv[(((n * nh + head) * dqk + c) * hq + i) * wq + j];
    const kvAt = (c: number, y: number, xx: number) =>
      (y < 0 || y >= height || xx < 0 || xx >= width ? 0 : kvv[(((n * nh + head) * (dqk + dv) + c) * height + y) * width + xx]);
    const logits: number[] = [];
    const keys: [number, number][] = [];
    for (let ky = 0; ky < win; ky++) for (let kx = 0; kx < win; kx++) {
      const [y, xx] = [by * b - h + ky, bx * b - h + kx];
      if (mask && (y < 0 || y >= height || xx < 0 || xx >= width)) continue;
      let content = 0;
      let rel = 0;
      for (let c = 0; c < dqk; c++) {
        content += qAt(c) * kvAt(c, y, xx);
        rel += qAt(c) * (hr[(ky - qy + win - 1) * dqk + c] + wr[(kx - qx + win - 1) * dqk + c]);
      }
      logits.push(m.scalePosEmbed ? (content + rel) * m.scale : content * m.scale + rel);
      keys.push([y, xx]);
    }
    const top = Math.max(...logits);
    const e = logits.map((l) => Math.exp(l - top));
    const total = e.reduce((a, v) => a + v, 0);
    for (let c = 0; c < dv; c++) {
      let acc = 0;
      keys.forEach(([y, xx], t) => { acc += (e[t] / total) * kvAt(dqk + c, y, xx); });
      out[(((n * nh + head) * dv + c) * hq + i) * wq + j] = acc;
    }
  }
  const y = tensor(out, { shape: [batch, nh * dv, hq, wq] });
  return m.useAvgPool ? F.avgPool2d(y, 2, { stride: 2 }) : y;
}

for (const name of ['halo-attn-open', 'halo-attn-avgdown-open']) {
  test(`${name}: HaloAttention = timm HaloAttn (output, input and parameter gradients)`, () =>
    withFixture(name, (fixture) => assertParity(fixture, referenceBuilders, { kind: KIND, maxRelError: 1e-5 })));

  test(`${name}: manualSeed(seed) then construction draws timm's initial parameters bit for bit`, () =>
    withFixture(name, (fixture) => assertSeededInit(fixture, referenceBuilders[KIND])));
}

test('padding none = the per-pixel brute force with unmasked zero halo keys (odd block 3, 9×6; strided 8×4)', () => {
  assertNoLeaks(() => {
    for (const [o, shape] of [
      [{ dim: 6, numHeads: 2, blockSize: 3, haloSize: 1, qkvBias: true }, [2, 6, 9, 6]],
      [{ dim: 4, dimOut: 6, numHeads: 3, dimHead: 2, blockSize: 4, haloSize: 2, stride: 2, scalePosEmbed: true }, [1, 4, 8, 4]],
    ] as const) {
      const m = layer(o as HaloAttentionOptions, 10);
      const x = f64([...shape], 11);
      assert.ok(maxAbs(m.forward(x), bruteForce(m, x, false)) < 1e-12, JSON.stringify(o));
      m.dispose();
    }
  });
});

test("padding 'mask' on 7×10 (block 4, halo 1) = the masked brute force: stride 1, strided queries, average pool", () => {
  assertNoLeaks(() => {
    const base = { dim: 4, numHeads: 2, blockSize: 4, haloSize: 1, qkvBias: true, padding: 'mask' } as const;
    const cases: [HaloAttentionOptions, number[]][] = [
      [base, [2, 4, 7, 10]],
      [{ ...base, stride: 2 }, [2, 4, 4, 5]],
      [{ ...base, stride: 2, avgDown: true, scalePosEmbed: true }, [2, 4, 3, 5]],
      [{ ...base, blockSize: 3, haloSize: 2, stride: 2 }, [1, 4, 3, 5]],
    ];
    for (const [o, outShape] of cases) {
      const m = layer(o, 20);
      const x = f64([outShape[0], 4, 7, 10], 21);
      const y = m.forward(x);
      assert.deepEqual(y.shape, outShape, JSON.stringify(o));
      const err = maxAbs(y, bruteForce(m, x, true));
      assert.ok(err < 1e-5 && err < 1e-12, `${JSON.stringify(o)}: max abs error ${err}`);
      m.dispose();
    }
  });
});

test("padding 'mask' = none on interior blocks, differs on every border block (12×12, block 4, halo 1)", () => {
  assertNoLeaks(() => {
    const none = layer({ dim: 4, numHeads: 2, blockSize: 4, haloSize: 1 }, 30);
    const masked = new HaloAttention({ dim: 4, numHeads: 2, blockSize: 4, haloSize: 1, padding: 'mask' }).to('float64');
    masked.loadStateDict(none.stateDict());
    const x = f64([2, 4, 12, 12], 31);
    const diff = none.forward(x).sub(masked.forward(x)).abs();   // (2, 4, 12, 12)
    for (let by = 0; by < 3; by++) for (let bx = 0; bx < 3; bx++) {
      const block = diff.narrow(2, 4 * by, 4).narrow(3, 4 * bx, 4).max().item() as number;
      if (by === 1 && bx === 1) assert.equal(block, 0, 'interior block');
      else assert.ok(block > 1e-3, `border block (${by}, ${bx}) differs by only ${block}`);
    }
    none.dispose();
    masked.dispose();
  });
});

test('shapes, parameter names and sizes, batch 1 = batch 2 per sample, train = eval', () => {
  assertNoLeaks(() => {
    const m = new HaloAttention({ dim: 16, dimOut: 24, numHeads: 3, blockSize: 2, haloSize: 1, qkvBias: true }).to('float64');
    // dqk = makeDivisible(24) / 3 = 8, dv = 8, win 4 → tables (7, 8).
    assert.deepEqual([...m.stateDict()].map(([k, t]) => `${k} [${t.shape}]`), [
      'q.weight [24,16,1,1]', 'q.bias [24]', 'kv.weight [48,16,1,1]', 'kv.bias [48]',
      'pos_embed.height_rel [7,8]', 'pos_embed.width_rel [7,8]',
    ]);
    const x = f64([2, 16, 4, 6], 40);
    const y = m.forward(x);
    assert.deepEqual(y.shape, [2, 24, 4, 6]);
    assert.ok(maxAbs(y.narrow(0, 1, 1), m.forward(x.narrow(0, 1, 1))) < 1e-12);
    assert.ok(m.eval().forward(x).equal(y));
    const defaults = new HaloAttention({ dim: 16 });
    assert.deepEqual([defaults.numHeads, defaults.dimHeadQk, defaults.dimHeadV, defaults.blockSize, defaults.haloSize],
      [8, 2, 2, 8, 3]);
    const strided = new HaloAttention({ dim: 8, stride: 2, blockSize: 4, haloSize: 1, numHeads: 2 });
    assert.deepEqual([strided.blockStride, strided.blockSizeDs, strided.useAvgPool], [2, 2, false]);
    const pooled = new HaloAttention({ dim: 8, stride: 2, blockSize: 3, haloSize: 1, numHeads: 2 });
    assert.deepEqual([pooled.blockStride, pooled.blockSizeDs, pooled.useAvgPool], [1, 3, true]);
    for (const l of [m, defaults, strided, pooled]) l.dispose();
  });
});

test('gradchecks in float64 for the input and every parameter: padding none, mask (odd 3×5), mask strided and pooled', () => {
  assertNoLeaks(() => {
    const cases: [HaloAttentionOptions, number[]][] = [
      [{ dim: 2, numHeads: 2, dimHead: 2, blockSize: 2, haloSize: 1 }, [1, 2, 4, 4]],
      [{ dim: 2, numHeads: 2, dimHead: 2, blockSize: 2, haloSize: 1, qkvBias: true, scalePosEmbed: true, padding: 'mask' }, [2, 2, 3, 5]],
      [{ dim: 2, numHeads: 1, dimHead: 2, blockSize: 2, haloSize: 1, stride: 2, qkvBias: true, padding: 'mask' }, [1, 2, 5, 3]],
      [{ dim: 2, numHeads: 1, dimHead: 2, blockSize: 2, haloSize: 1, stride: 2, avgDown: true, padding: 'mask' }, [1, 2, 5, 4]],
    ];
    for (const [o, shape] of cases) {
      const m = layer(o, 50);
      const w = m.weights();
      const named = [w.qWeight, w.qBias, w.kvWeight, w.kvBias, w.heightRel, w.widthRel];
      const present = named.filter((t): t is Tensor => t !== null).map((t) => t.detach().clone().requiresGrad_());
      const x = f64(shape, 51).requiresGrad_();
      const r = assertGradcheck((input, ...p) => {
        const [qWeight, qBias, kvWeight, kvBias, heightRel, widthRel] = o.qkvBias ? p : [p[0], null, p[1], null, p[2], p[3]];
        return m.attend(input, { qWeight, qBias, kvWeight, kvBias, heightRel, widthRel });
      }, [x, ...present]);
      assert.ok(r.maxAbsError < 1e-6, `${JSON.stringify(o)}\n${r.report}`);
      m.dispose();
    }
  });
});

test('forward and backward leave no tensor behind', () => {
  const m = new HaloAttention({ dim: 4, numHeads: 2, blockSize: 2, haloSize: 1, padding: 'mask' });
  assertNoLeaks(() => {
    const x = randn([1, 4, 3, 5], { seed: 60 }).requiresGrad_();
    m.forward(x).sum().backward();
    m.zeroGrad();
  });
  m.dispose();
});

test('invalid inputs throw ShapeError naming the sizes and the fix', () => {
  const m = new HaloAttention({ dim: 4, numHeads: 2, blockSize: 4, haloSize: 1 });
  assertNoLeaks(() => {
    assert.throws(() => m.forward(randn([1, 4, 7, 8])), (e: Error) => e instanceof ShapeError &&
      /height 7 is not a multiple of blockSize 4; pass \{ padding: 'mask' \} to accept any size/.test(e.message));
    assert.throws(() => m.forward(randn([1, 4, 8, 10])), /ShapeError: HaloAttention: width 10 is not a multiple of blockSize 4/);
    assert.throws(() => m.forward(randn([1, 3, 8, 8])), (e: Error) => e instanceof ShapeError &&
      /expected input \(B, dim=4, H, W\), got shape \[1, 3, 8, 8\]/.test(e.message));
    assert.throws(() => m.forward(randn([4, 8, 8])), /ShapeError: HaloAttention: expected input \(B, dim=4, H, W\), got shape \[4, 8, 8\]/);
    const pooled = new HaloAttention({ dim: 4, numHeads: 2, blockSize: 3, haloSize: 1, stride: 2, padding: 'mask' });
    assert.throws(() => pooled.forward(randn([1, 4, 1, 5])), /ShapeError: HaloAttention: stride 2 by average pooling needs H, W ≥ 2, got 1×5/);
    pooled.dispose();
  });
  m.dispose();
});

test('invalid configurations throw RangeError/TypeError naming the option and the value', () => {
  const build = (o: Partial<HaloAttentionOptions>) => () => new HaloAttention({ dim: 8, numHeads: 2, ...o });
  assert.throws(build({ dimOut: 9 }), /RangeError: HaloAttention: dimOut \(9\) must be divisible by numHeads \(2\)/);
  assert.throws(build({ stride: 3 }), /RangeError: HaloAttention: stride must be 1 or 2 \(as timm HaloAttn\), got 3/);
  assert.throws(build({ stride: 0 }), /RangeError: HaloAttention: stride must be ≥ 1, got 0/);
  assert.throws(build({ blockSize: 0 }), /RangeError: HaloAttention: blockSize must be ≥ 1, got 0/);
  assert.throws(build({ haloSize: -1 }), /RangeError: HaloAttention: haloSize must be ≥ 0, got -1/);
  assert.throws(build({ haloSize: 1.5 }), /TypeError: HaloAttention: haloSize must be an integer, got 1.5/);
  assert.throws(build({ qkRatio: 0 }), /RangeError: HaloAttention: qkRatio must be a positive finite number, got 0/);
  assert.throws(build({ dimHead: 0 }), /RangeError: HaloAttention: dimHead must be ≥ 1, got 0/);
  assert.throws(build({ numHeads: 16, dimOut: 16, qkRatio: 0.25 }), /RangeError: HaloAttention: the q\/k width per head is makeDivisible\(16·0.25\) \/ 16 < 1; pass dimHead/);
  assert.throws(build({ padding: 'zeros' as never }), /RangeError: HaloAttention: padding must be one of 'none', 'mask', got "zeros"/);
  assert.throws(build({ qkvBias: 1 as never }), /TypeError: HaloAttention: qkvBias must be true or false, got 1/);
});

test('referenceBuilders maps timm snake_case arguments; None and unused feat_size are skipped; unknown ones throw', () => {
  assert.deepEqual(haloAttentionOptionsFromReference({
    dim: 8, dim_out: null, feat_size: [8, 8], stride: 2, num_heads: 2, dim_head: 0, block_size: 4, halo_size: 1,
    qk_ratio: 0.5, qkv_bias: true, avg_down: true, scale_pos_embed: true,
  }), { dim: 8, stride: 2, numHeads: 2, blockSize: 4, haloSize: 1, qkRatio: 0.5, qkvBias: true, avgDown: true, scalePosEmbed: true });
  assert.throws(() => referenceBuilders[KIND]({ dim: 8, window: 3 }), /TypeError: HaloAttention: unknown timm HaloAttn argument 'window'/);
  const m = referenceBuilders[KIND]({ dim: 8, num_heads: 2, block_size: 4, halo_size: 1 });
  assert.ok(m instanceof HaloAttention);
  m.dispose();
});
