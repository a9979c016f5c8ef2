/**
 * What `vicinity explain` draws, against independent computations: Grad-CAM of a small ConvNet and
 * a HaloAttention layer's per-query attention maps against PyTorch on the same fixed weights and
 * input (1e-5); the LA-layer's drawn sampling points against the offsets its forward used; every
 * attention family records its weights under capture, fused and composite paths alike.
 */
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import { attentionMap, laSamplingPoints, lesaGate } from '../../src/analysis/attention-maps.js';
import { gradCam } from '../../src/analysis/grad-cam.js';
import { captureAttention, disposeRecords } from '../../src/attention/attention-capture.js';
import { HaloAttention } from '../../src/attention/halo-attention.js';
import { LALayer } from '../../src/attention/la-layer.js';
import { createModel } from '../../src/models/registry.js';
import { withKernelMode } from '../../src/ops/fused.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { randn, tensor } from '../../src/tensor/creation.js';
import { tidy } from '../../src/tensor/scope.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { assertClose, expected, runTorch, torchErrors, type TorchResults } from '../support/parity.js';

/** Every parameter and buffer redrawn (running variances positive) so that no term is trivial. */
function randomize(model: { namedParameters(): Generator<[string, Tensor]>; namedBuffers(): Generator<[string, Tensor]> }, seed: number): void {
  noGrad(() => {
    let i = seed;
    for (const [, p] of model.namedParameters()) p.copy_(randn(p.shape, { seed: i++ }).mul(0.3));
    for (const [name, b] of model.namedBuffers()) {
      if (b.dtype !== 'float32') continue;
      const r = randn(b.shape, { seed: i++ }).mul(0.2);
      b.copy_(name.endsWith('running_var') ? r.abs().add(0.5) : r);
    }
  });
}

const convnet = createModel('small_convnet').eval();
randomize(convnet, 1);
const camInput = randn([2, 1, 28, 28], { seed: 99 });
const halo = new HaloAttention({ dim: 8, numHeads: 2, blockSize: 4, haloSize: 1 }).eval();
randomize(halo, 7);
const haloInput = randn([1, 8, 8, 8], { seed: 5 });
const QUERIES: [number, number][] = [[0, 0], [3, 5], [6, 2], [7, 7]];

const GRAD_CAM = String.raw`
def block(x, w, g, b, rm, rv):
    return F.max_pool2d(F.relu(F.batch_norm(F.conv2d(x, w, padding=1), rm, rv, g, b, False, 0.1, 1e-5)), 2)
x = x.clone().requires_grad_(True)
a = block(block(x, w0, g0, b0, rm0, rv0), w1, g1, b1, rm1, rv1)
logits = F.linear(a.flatten(1), fw, fb)
cls = logits.argmax(1)
score = logits.gather(1, cls[:, None]).sum()
g, = torch.autograd.grad(score, a)
raw = F.relu((g.mean((2, 3), keepdim=True) * a).sum(1))
up = F.interpolate(raw[:, None], size=x.shape[2:], mode='bilinear', align_corners=False)[:, 0]
out = {'cam': up / up.amax((1, 2), keepdim=True).clamp(min=1e-12), 'raw': raw.detach(), 'cls': cls}
`;

// timm HaloAttn's attention for single query pixels, written out per key (kv interleaved per head
// as [k_h | v_h]; keys off the map are zero vectors that still take part in the softmax).
const HALO_MAPS = String.raw`
H, W = x.shape[2], x.shape[3]
q = F.conv2d(x, qw)[0]
kv = F.conv2d(x, kvw)[0]
maps = []
for (i, j) in queries:
    by, bx = i // b, j // b
    qy, qx = i - by * b, j - bx * b
    m = torch.zeros(nh, H, W)
    for head in range(nh):
        qv = q[head * dqk:(head + 1) * dqk, i, j]
        logits, keys = [], []
        for ky in range(win):
            for kx in range(win):
                y, xx = by * b - h + ky, bx * b - h + kx
                inside = 0 <= y < H and 0 <= xx < W
                kvec = kv[head * (dqk + dv):head * (dqk + dv) + dqk, y, xx] if inside else torch.zeros(dqk)
                logits.append((qv @ kvec) * scale + qv @ (hr[ky - qy + win - 1] + wr[kx - qx + win - 1]))
                keys.append((y, xx, inside))
        p = torch.softmax(torch.stack(logits), 0)
        for t, (y, xx, inside) in enumerate(keys):
            if inside:
                m[head, y, xx] += p[t]
    maps.append(m)
out = torch.stack(maps)
`;

let results: TorchResults = new Map();
before(() => {
  const sd = convnet.stateDict();
  const get = (k: string) => sd.get(k)!;
  const bn = (i: number, p: string) => ({
    [`g${i}`]: get(`${p}.weight`), [`b${i}`]: get(`${p}.bias`), [`rm${i}`]: get(`${p}.running_mean`), [`rv${i}`]: get(`${p}.running_var`),
  });
  results = runTorch([
    {
      name: 'grad-cam', code: GRAD_CAM,
      inputs: { x: camInput, w0: get('features.0.weight'), w1: get('features.4.weight'), fw: get('classifier.1.weight'), fb: get('classifier.1.bias'), ...bn(0, 'features.1'), ...bn(1, 'features.5') },
    },
    {
      name: 'halo-maps', code: HALO_MAPS,
      inputs: { x: haloInput, qw: halo.q.weight, kvw: halo.kv.weight, hr: halo.posEmbed.heightRel, wr: halo.posEmbed.widthRel },
      params: { queries: QUERIES, b: 4, h: 1, win: 6, nh: 2, dqk: halo.dimHeadQk, dv: halo.dimHeadV, scale: halo.scale },
    },
  ]);
});

test('Grad-CAM equals PyTorch autograd on the same weights and input (1e-5)', () => {
  const errors = torchErrors(results);
  assert.equal(errors.size, 0, [...errors.values()].join('\n'));
  const r = gradCam(convnet, camInput);
  assert.equal(r.layer, 'features');
  assert.deepEqual(r.classIndex, Array.from(expected(results, 'grad-cam', 'out.cls').data as BigInt64Array, Number));
  assertClose(r.raw, expected(results, 'grad-cam', 'out.raw'), { label: 'ReLU(Σ α A)', checkDtype: false });
  assertClose(r.cam, expected(results, 'grad-cam', 'out.cam'), { label: 'cam', checkDtype: false });
  assert.throws(() => gradCam(convnet, camInput, { layer: 'nope' }), /no layer 'nope' in SmallConvNet; its stages are features, classifier/);
  for (const t of [r.cam, r.raw, r.logits]) t.dispose();
});

test('HaloAttention maps of chosen queries equal PyTorch (1e-5)', () => {
  const { records } = captureAttention(halo, () => tidy(() => noGrad(() => halo.forward(haloInput))));
  try {
    assert.deepEqual(records.map((r) => [r.module, r.type, r.kind]), [['', 'HaloAttention', 'halo']]);
    const want = expected(results, 'halo-maps');
    const maps = QUERIES.map(([y, x]) => Array.from(attentionMap(records[0], { y, x }).data));
    assertClose(tensor(maps.flat(), { shape: want.shape }), want, { label: 'halo maps', checkDtype: false });
  } finally {
    disposeRecords(records);
  }
});

test('LA-layer: the drawn sampling points are the window plus the offsets forward used; fused = composite under capture', () => {
  const la = new LALayer({ inChannels: 8, outChannels: 8, heads: 2, kernelSize: 3, constraint: 2, aggregation: 'softmax' }).eval();
  randomize(la, 3);
  const x = randn([1, 8, 6, 6], { seed: 11 });
  tidy(() => noGrad(() => {
    const fused = withKernelMode('fused', () => la.forward(x));
    const { result, records } = captureAttention(la, () => la.forward(x));
    try {
      assertClose(result, fused, { label: 'captured (composite) vs fused', rtol: 1e-5, atol: 1e-6 });
      const offsets = records.find((r) => r.kind === 'la-offsets')!;
      const used = la.sample(x).offsets;   // Δp' the composite path samples with
      assertClose(offsets.value, used, { label: 'recorded offsets', rtol: 0, atol: 0 });
      const d = Array.from(used.dataSync() as Float32Array);
      const [y, xq] = [2, 4];
      const points = laSamplingPoints(offsets, { y, x: xq }, records.find((r) => r.kind === 'la-weights'));
      assert.equal(points.length, 2 * 9);
      for (const p of points) {
        const [ky, kx] = [Math.floor(p.point / 3) - 1, (p.point % 3) - 1];
        const channel = ((p.head * 9 + p.point) * 2);   // per-point layout ((n·k + ky)·k + kx)·2 + t
        assert.equal(p.gridY, Math.fround(y + ky + d[(channel * 6 + y) * 6 + xq]));
        assert.equal(p.gridX, Math.fround(xq + kx + d[((channel + 1) * 6 + y) * 6 + xq]));
        assert.ok(Math.abs(p.gridY - (y + ky)) <= 2 && Math.abs(p.gridX - (xq + kx)) <= 2, 'Eq. (7) constraint');
      }
      const perHead = [0, 1].map((n) => points.filter((p) => p.head === n).reduce((s, p) => s + p.weight!, 0));
      for (const s of perHead) assert.ok(Math.abs(s - 1) < 1e-5, `softmax weights of a head sum to 1, got ${s}`);
    } finally {
      disposeRecords(records);
    }
  }));
});

test('every attention family records its weights; maps are distributions', () => {
  const cases: [string, number, string[]][] = [
    ['halonet_nano', 32, ['halo']], ['sasa_resnet_nano', 32, ['sasa']], ['na_resnet_nano', 32, ['neighborhood']],
    ['lesa_resnet_nano', 32, ['lesa-binary', 'lesa-gate']], ['la_resnet_nano', 32, ['la-offsets', 'la-weights']],
    ['lsag_nano', 32, ['lsag-local', 'lsag-global']],
  ];
  for (const [name, size, kinds] of cases) {
    const model = createModel(name, { numClasses: 10, inChannels: 3, inputSize: size }).eval();
    const { records } = captureAttention(model, () => tidy(() => noGrad(() => model.forward(randn([1, 3, size, size], { seed: 1 })))));
    try {
      const seen = new Set(records.map((r) => r.kind));
      for (const k of kinds) assert.ok(seen.has(k as never), `${name}: no ${k} record (got ${[...seen]})`);
      for (const r of records) {
        assert.ok(r.module !== '' && r.type !== 'unknown', `${name}: record without its module`);
        if (['halo', 'sasa', 'neighborhood', 'mhsa', 'lesa-binary', 'lsag-global'].includes(r.kind)) {
          const m = attentionMap(r, { y: 0, x: 0 });
          for (let h = 0; h < m.heads; h++) {
            const s = m.data.subarray(h * m.height * m.width, (h + 1) * m.height * m.width).reduce((a, v) => a + v, 0);
            assert.ok(s > 0 && s <= 1 + 1e-5, `${name} ${r.module}: head ${h} sums to ${s}`);
          }
        }
        if (r.kind === 'lesa-gate') {
          const g = lesaGate(r);
          assert.ok(g.min > 0 && g.max < 1 && g.mean > g.min && g.mean < g.max);
        }
      }
    } finally {
      disposeRecords(records);
      model.dispose();
    }
  }
});
