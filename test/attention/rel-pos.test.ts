/**
 * rel-pos.ts: the 2-D relative logits against a per-(query, key) loop of Eq. (R) for both
 * geometries (HaloAttn's in-window one and BottleneckAttn's whole-map one, non-square), which
 * table rows each geometry reaches, float64 gradchecks, resizeRelPosTable (identity, torch's
 * align-corners linear interpolation, the centre row for one row), the module's names, every error.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertGradcheck } from '../../src/autograd/gradcheck.js';
import {
  globalGeometry, haloGeometry, relPosLogits2d, RelPosEmbedding2d, resizeRelPosTable, type RelPosGeometry,
} from '../../src/attention/rel-pos.js';
import * as F from '../../src/ops/functional.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { tensor } from '../../src/tensor/creation.js';
import { ShapeError } from '../../src/tensor/shape-error.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { f64, maxAbs, values } from './support.js';

/** Eq. (R) one entry at a time: q·width_rel[kx − qx + offW] + q·height_rel[ky − qy + offH]. */
function bruteForce(q: Tensor, heightRel: Tensor, widthRel: Tensor, g: RelPosGeometry): Tensor {
  const [n, , d] = q.shape;
  const [qv, hv, wv] = [values(q), values(heightRel), values(widthRel)];
  const queries = g.queryHeight * g.queryWidth;
  const keys = g.keyHeight * g.keyWidth;
  const out = new Float64Array(n * queries * keys);
  const dot = (row: number[], r: number, qi: number) => {
    let s = 0;
    for (let c = 0; c < d; c++) s += qv[qi * d + c] * row[r * d + c];
    return s;
  };
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < queries; a++) {
      const [qy, qx] = [Math.floor(a / g.queryWidth), a % g.queryWidth];
      for (let b = 0; b < keys; b++) {
        const [ky, kx] = [Math.floor(b / g.keyWidth), b % g.keyWidth];
        const qi = i * queries + a;
        out[qi * keys + b] = dot(wv, kx - qx + g.widthOffset, qi) + dot(hv, ky - qy + g.heightOffset, qi);
      }
    }
  }
  return tensor(out, { shape: [n, queries, keys] });
}

test('relPosLogits2d = Eq. (R) entry by entry: halo geometry (b 3, win 5) and a non-square whole map (3×5)', () => {
  assertNoLeaks(() => {
    const halo = haloGeometry(3, 5);
    const [q1, h1, w1] = [f64([4, 9, 6], 1), f64([9, 6], 2), f64([9, 6], 3)];
    assert.ok(maxAbs(relPosLogits2d(q1, h1, w1, halo), bruteForce(q1, h1, w1, halo)) < 1e-12);
    const whole = globalGeometry(3, 5);
    const [q2, h2, w2] = [f64([2, 15, 4], 4), f64([5, 4], 5), f64([9, 4], 6)];
    const rel = relPosLogits2d(q2, h2, w2, whole);
    assert.deepEqual(rel.shape, [2, 15, 15]);
    assert.ok(maxAbs(rel, bruteForce(q2, h2, w2, whole)) < 1e-12);
  });
});

test('halo geometry never reaches table rows 0 … win − b − 1; the whole-map geometry reaches every row', () => {
  assertNoLeaks(() => {
    const rowsUsed = (g: RelPosGeometry, rows: [number, number], queries: number) => {
      const h = f64([rows[0], 4], 7).requiresGrad_();
      const w = f64([rows[1], 4], 8).requiresGrad_();
      relPosLogits2d(f64([2, queries, 4], 9), h, w, g).sum().backward();
      return [h, w].map((t) => (t.grad!.abs().sum(1).ne(0).toArray() as boolean[]).map(Number).join(''));
    };
    // b 2, halo 1: win 4, 7 rows; offsets k − q + 3 span 2 … 6.
    assert.deepEqual(rowsUsed(haloGeometry(2, 4), [7, 7], 4), ['0011111', '0011111']);
    assert.deepEqual(rowsUsed(globalGeometry(2, 3), [3, 5], 6), ['111', '11111']);
  });
});

test('relPosLogits2d gradchecks in float64 for q and both tables (both geometries)', () => {
  assertNoLeaks(() => {
    for (const [g, rows, queries] of [[haloGeometry(2, 4), [7, 7], 4], [globalGeometry(2, 3), [3, 5], 6]] as const) {
      const inputs = [f64([2, queries, 3], 10), f64([rows[0], 3], 11), f64([rows[1], 3], 12)].map((t) => t.requiresGrad_());
      const r = assertGradcheck((q, h, w) => relPosLogits2d(q, h, w, g), inputs);
      assert.ok(r.maxAbsError < 1e-7, r.report);
    }
  });
});

test('resizeRelPosTable: the same size is the identity, bit for bit', () => {
  assertNoLeaks(() => {
    const table = f64([7, 5], 13);
    assert.ok(resizeRelPosTable(table, 7).equal(table));
  });
});

test('resizeRelPosTable = torch linear interpolation with align_corners=True, up and down', () => {
  assertNoLeaks(() => {
    const table = f64([7, 3], 14);
    for (const rows of [2, 3, 5, 11, 15]) {
      const expected = F.interpolate(table.t().reshape([1, 3, 7, 1]), { size: [rows, 1], mode: 'bilinear', alignCorners: true })
        .reshape([3, rows]).t();                                   // (rows, 3)
      assert.ok(maxAbs(resizeRelPosTable(table, rows), expected) < 1e-12, `rows ${rows}`);
    }
  });
});

test('resizeRelPosTable keeps offset 0 on offset 0; one row is the centre row; one-row tables broadcast', () => {
  assertNoLeaks(() => {
    const table = f64([7, 3], 15);
    assert.ok(maxAbs(resizeRelPosTable(table, 11).narrow(0, 5, 1), table.narrow(0, 3, 1)) < 1e-15);
    assert.ok(resizeRelPosTable(table, 1).equal(table.narrow(0, 3, 1)));
    const single = f64([1, 3], 16);
    assert.ok(resizeRelPosTable(single, 5).equal(single.expand([5, 3])));
  });
});

test('resizeRelPosTable gradchecks in float64', () => {
  assertNoLeaks(() => {
    const r = assertGradcheck((t) => resizeRelPosTable(t, 9), [f64([5, 2], 17).requiresGrad_()]);
    assert.ok(r.maxAbsError < 1e-7, r.report);
  });
});

test('RelPosEmbedding2d registers height_rel and width_rel and computes relPosLogits2d', () => {
  assertNoLeaks(() => {
    const embed = new RelPosEmbedding2d({ heightRows: 5, widthRows: 9, dimHead: 4 }).to('float64');
    assert.deepEqual([...embed.stateDict()].map(([k, t]) => [k, t.shape]), [['height_rel', [5, 4]], ['width_rel', [9, 4]]]);
    const q = f64([2, 15, 4], 18);
    const g = globalGeometry(3, 5);
    assert.ok(embed.forward(q, g).equal(relPosLogits2d(q, embed.heightRel, embed.widthRel, g)));
    const std = noGrad(() => embed.widthRel.std().item() as number);
    assert.ok(std > 0.2 && std < 1, `width_rel std ${std}, drawn N(0, 0.5²)`);
    embed.dispose();
  });
});

test('errors name the constraint and the values', () => {
  assertNoLeaks(() => {
    const [h, w] = [f64([7, 3], 19), f64([7, 3], 20)];
    const g = haloGeometry(2, 4);
    assert.throws(() => relPosLogits2d(f64([2, 5, 3], 21), h, w, g), (e: Error) =>
      e instanceof ShapeError && /q must be \(N, 2·2, d\) for a 2×2 query grid, got \[2,5,3\]/.test(e.message));
    assert.throws(() => relPosLogits2d(f64([2, 4, 2], 22), h, w, g), (e: Error) =>
      e instanceof ShapeError && /height_rel must be \(rows, 2\) to match q's last dim 2, got \[7,3\]/.test(e.message));
    assert.throws(() => relPosLogits2d(f64([2, 4, 3], 23), h, f64([5, 3], 24), g),
      /RangeError: relPosLogits2d: width_rel has 5 rows but the geometry indexes rows 2 … 6/);
    assert.throws(() => resizeRelPosTable(h, 0), /RangeError: resizeRelPosTable: rows must be ≥ 1, got 0/);
    assert.throws(() => resizeRelPosTable(f64([7], 25), 3), (e: Error) =>
      e instanceof ShapeError && /the table must be \(rows ≥ 1, d\), got \[7\]/.test(e.message));
    assert.throws(() => new RelPosEmbedding2d({ heightRows: 0, widthRows: 3, dimHead: 2 }),
      /RangeError: RelPosEmbedding2d: heightRows must be ≥ 1, got 0/);
  });
});
