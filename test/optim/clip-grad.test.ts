/**
 * clipGradNorm and clipGradValue against torch.nn.utils.clip_grad_norm_ and clip_grad_value_
 * (PyTorch 1.13): the returned total norm and the clipped gradients, for several norm types,
 * dtypes, clipping and non-clipping maxNorms, and parameters without a gradient. One Python
 * process for all cases.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { parameter } from '../../src/nn/parameter.js';
import { clipGradNorm, clipGradValue } from '../../src/optim/clip-grad.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { DType, Tensor } from '../../src/tensor/tensor.js';
import { assertNoLeaks } from '../support/leaks.js';
import { assertClose, expected } from '../support/parity.js';
import { torchCaseSuite } from './trajectory.js';

const SHAPES = [[4, 3], [7], [2, 2, 2]];

interface Case {
  name: string;
  dtype?: DType;
  /** maxNorm for clipGradNorm, or clipValue for clipGradValue. */
  max: number;
  normType?: number | 'inf';
  /** Use clipGradValue instead of clipGradNorm. */
  byValue?: boolean;
  /** Indices of the parameters whose grad is null. */
  withoutGrad?: number[];
  /** Scales the random gradients. */
  scale?: number;
}

const CASES: Case[] = [
  { name: 'L2, clipping', max: 1 },
  { name: 'L2, not clipping (coefficient clamped to 1)', max: 100 },
  { name: 'L2, float64', dtype: 'float64', max: 0.5 },
  { name: 'L1', max: 2, normType: 1 },
  { name: 'L3, float64', dtype: 'float64', max: 1.5, normType: 3 },
  { name: 'max-norm', max: 0.25, normType: 'inf' },
  { name: 'max-norm, float64, not clipping', dtype: 'float64', max: 50, normType: 'inf' },
  { name: 'L2 with parameters without a gradient', max: 0.3, withoutGrad: [1] },
  { name: 'L2, large gradients', max: 5, scale: 1e4 },
  { name: 'by value', max: 0.5, byValue: true },
  { name: 'by value, float64, one parameter without a gradient', dtype: 'float64', max: 0.1, byValue: true, withoutGrad: [0] },
];

function gradsOf(c: Case, index: number): Record<string, Tensor> {
  return Object.fromEntries(SHAPES.map((shape, i) =>
    [`g${i}`, randn(shape, { dtype: c.dtype ?? 'float32', seed: 50 * index + i }).mul(c.scale ?? 1)]));
}

const PYTHON = `
ps = [torch.zeros(g.shape, dtype=g.dtype, requires_grad=True) for g in [g0, g1, g2]]
for i, (p, g) in enumerate(zip(ps, [g0, g1, g2])):
    p.grad = None if i in without_grad else g.clone()
if by_value:
    torch.nn.utils.clip_grad_value_(ps, max_value)
    out = {}
else:
    out = {'total': torch.nn.utils.clip_grad_norm_(ps, max_value, norm_type)}
for i, p in enumerate(ps):
    if p.grad is not None: out['g%d' % i] = p.grad
`;

/** Runs a case here: the returned total (if by norm) and the parameters with their clipped grads. */
function runCase(c: Case, grads: Record<string, Tensor>): { total?: number; ps: Tensor[] } {
  const ps = SHAPES.map((shape, i) => {
    const p = parameter(grads[`g${i}`].mul(0));
    if (!c.withoutGrad?.includes(i)) p.grad = grads[`g${i}`].clone();
    return p;
  });
  if (c.byValue) {
    clipGradValue(ps, c.max);
    return { ps };
  }
  return { total: clipGradNorm(ps, c.max, { normType: c.normType ?? 2 }), ps };
}

torchCaseSuite('clipGradNorm / clipGradValue = torch.nn.utils.clip_grad_norm_ / clip_grad_value_', CASES, gradsOf, (c) => ({
  params: { max_value: c.max, norm_type: String(c.normType ?? 2), by_value: c.byValue ?? false, without_grad: c.withoutGrad ?? [] },
  code: PYTHON,
}), (c, grads, results) => {
  const { total, ps } = runCase(c, grads);
  if (!c.byValue) {
    // The total is a tensor of the gradients' dtype in PyTorch: equal as a number, bit for bit.
    const e = expected(results, c.name, 'out.total');
    assert.equal(total, e.data[0], `total norm ${total} != PyTorch's ${e.data[0]}`);
  }
  ps.forEach((p, j) => {
    if (c.withoutGrad?.includes(j)) assert.equal(p.grad, null, `p${j} has no gradient to clip`);
    else assertClose(p.grad!, expected(results, c.name, `out.g${j}`), { label: `${c.name} grad ${j}`, rtol: 0, atol: 0 });
    p.dispose();
  });
});

describe('clipGradNorm edge cases', () => {
  test('no gradients at all: returns 0 and changes nothing', () => {
    const p = parameter(tensor([1, 2]));
    assert.equal(clipGradNorm([p], 1), 0);
    assert.equal(p.grad, null);
  });

  test('a single tensor is accepted in place of a list', () => {
    const p = parameter(tensor([0, 0]));
    p.grad = tensor([3, 4]);
    assert.equal(clipGradNorm(p, 1), 5);
    assertClose(p.grad, [3 / (5 + 1e-6), 4 / (5 + 1e-6)], { rtol: 1e-6 });
  });

  test('non-finite totals: scaled anyway, or an error with errorIfNonfinite', () => {
    const p = parameter(tensor([0, 0]));
    p.grad = tensor([Infinity, 1]);
    assert.throws(() => clipGradNorm([p], 1, { errorIfNonfinite: true }),
      /the total norm of order 2 of the gradients is Infinity.*errorIfNonfinite: false/);
    assert.equal(p.grad.dataSync()[1], 1, 'an error leaves the gradients untouched');
    assert.equal(clipGradNorm([p], 1), Infinity);
    assert.equal(p.grad.dataSync()[1], 0, 'PyTorch multiplies by 1/(inf + 1e-6) = 0');
  });

  test('invalid maxNorm, clipValue or normType', () => {
    const p = parameter(tensor([1]));
    assert.throws(() => clipGradNorm([p], -1), /clipGradNorm: maxNorm must be ≥ 0, got -1/);
    assert.throws(() => clipGradNorm([p], 1, { normType: NaN }), /normType must be a number or 'inf', got NaN/);
    assert.throws(() => clipGradValue([p], -0.5), /clipGradValue: clipValue must be ≥ 0, got -0.5/);
  });

  test('leaks no tensor', () => {
    const ps = [parameter(randn([3, 3], { seed: 3 })), parameter(randn([3], { seed: 4 }))];
    tidy(() => ps.forEach((p) => (p.grad = p.mul(10))));
    assertNoLeaks(() => {
      clipGradNorm(ps, 1);
      clipGradNorm(ps, 1, { normType: 'inf' });
      clipGradValue(ps, 0.1);
    });
    ps.forEach((p) => p.dispose());
  });
});
