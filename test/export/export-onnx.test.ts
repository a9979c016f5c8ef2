/**
 * ONNX export checked in the runtime that loads it: every model family, exported at one batch
 * size, runs in onnxruntime-node at other batch sizes and matches vicinity's forward to 1e-4.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { createRequire } from 'node:module';
import { exportOnnx, exportOnnxFile, ONNX_OPSET } from '../../src/export/export-onnx.js';
import { readModelHeader } from '../../src/export/onnx-proto.js';
import { ExportError } from '../../src/export/trace.js';
import { createModel, modelInfo } from '../../src/models/registry.js';
import { Module } from '../../src/nn/module.js';
import * as aten from '../../src/ops/generated/ops.gen.js';
import { manualSeed, randn } from '../../src/tensor/creation.js';
import { memory } from '../../src/tensor/memory.js';
import type { Tensor } from '../../src/tensor/tensor.js';
import { repoRoot } from '../support/paths.js';
import { laOffsetShare, onnxParity, perturb } from './support.js';

/**
 * One model per family (the ImageNet sizes share their layers and are exported the same way);
 * [name, side] runs a model that takes any input size at a smaller one, to keep the test fast.
 */
const FAMILIES: (string | [string, number])[] = [
  'small_convnet', 'resnet_nano', 'resnet18_cifar',
  'la_resnet_nano', 'la_resnet_nano_normalized', 'la_resnet_nano_s2',
  'lesa_resnet_nano', 'lsag_nano', 'halonet_nano', 'na_resnet_nano', 'sasa_resnet_nano',
  // timm's ByobNet family: halo blocks with SE, BoTNet MHSA, ECA + grouped convs, at 64 px
  ['sehalonet33ts', 64], ['botnet26t_256', 64], ['eca_halonext26ts', 64],
];

/** onnxruntime-web ships the decoder generated from onnx.proto: an independent reader of our bytes. */
function decodeWithOnnxSchema(bytes: Uint8Array): {
  irVersion: number; opsetImport: { domain: string; version: number }[];
  graph: { node: { opType: string; domain: string }[]; input: { name: string; type: { tensorType: { shape: { dim: { dimValue?: number; dimParam?: string }[] } } } }[]; initializer: { name: string }[] };
  metadataProps: { key: string; value: string }[];
} {
  const require = createRequire(import.meta.url);
  const file = path.join(repoRoot, 'node_modules/onnxruntime-web/lib/onnxjs/ort-schema/protobuf/onnx.js');
  const { onnx } = require(file) as { onnx: { ModelProto: { decode(b: Uint8Array): unknown; toObject(m: unknown, o: object): unknown } } };
  return onnx.ModelProto.toObject(onnx.ModelProto.decode(bytes), { longs: Number, defaults: true }) as ReturnType<typeof decodeWithOnnxSchema>;
}

for (const entry of FAMILIES) {
  const [name, inputSize] = typeof entry === 'string' ? [entry, undefined] : entry;
  test(`${name}: onnxruntime equals vicinity to 1e-4 at batch 1 and 5 (traced at 2 and 3)`, async (t) => {
    const info = modelInfo(name);
    manualSeed(0);   // the same initial weights every run
    const side = inputSize ?? info.inputSize;
    const model = createModel(name, { inputSize: side });
    try {
      perturb(model);
      model.eval();
      const out = exportOnnx(model, { inChannels: info.inChannels, inputSize: side, metadata: { model: name } });
      assert.deepEqual(out.inputShape, ['batch', info.inChannels, side, side]);
      assert.deepEqual(out.outputShape, ['batch', info.numClasses]);
      if (name.startsWith('la_')) {
        // the offset sampling is exercised: most keys are moved by the predicted offsets
        const x = randn([2, info.inChannels, side, side], { seed: 5 });
        const share = laOffsetShare(model, x);
        assert.ok(share > 0.4, `only ${(100 * share).toFixed(0)}% of LA offsets are non-zero; the parity would not test sampling`);
        assert.ok((out.opCounts.GatherElements ?? 0) > 0, `LA sampling should gather: ${JSON.stringify(out.opCounts)}`);
        x.dispose();
      }
      for (const batch of [1, 5]) {
        const x = randn([batch, info.inChannels, side, side], { seed: 10 + batch });
        const r = await onnxParity(out.bytes, model, x);
        x.dispose();
        assert.deepEqual(r.dims, [batch, info.numClasses]);
        assert.ok(r.maxAbs > 0.05, `logits too small to compare (${r.maxAbs})`);
        t.diagnostic(`batch ${batch}: max |onnx − vicinity| ${r.maxDiff.toExponential(2)}, max |logit| ${r.maxAbs.toFixed(3)}, ${out.nodes} nodes`);
        assert.ok(r.maxDiff <= 1e-4, `${name} batch ${batch}: max |onnx − vicinity| = ${r.maxDiff.toExponential(2)} (logits up to ${r.maxAbs.toFixed(3)})`);
      }
    } finally {
      model.dispose();
    }
  });
}

test('the model file: opset 17, standard ops only, symbolic batch, state-dict names, metadata_props', () => {
  const model = createModel('la_resnet_nano_s2');
  try {
    const metadata = { model: 'la_resnet_nano_s2', dataset: 'fashion-mnist', epoch: '3', classes: JSON.stringify(['a', 'b']) };
    const { bytes } = exportOnnx(model, { inChannels: 1, inputSize: 28, metadata });
    const m = decodeWithOnnxSchema(bytes);
    assert.equal(m.irVersion, 8);
    assert.deepEqual(m.opsetImport.map((o) => [o.domain, o.version]), [['', ONNX_OPSET]]);
    assert.ok(ONNX_OPSET >= 17);
    assert.ok(m.graph.node.every((n) => n.domain === ''), 'every node is in the standard domain');
    assert.ok(!m.graph.node.some((n) => /vicinity|aten/i.test(n.opType)));
    assert.deepEqual(m.graph.input[0].type.tensorType.shape.dim.map((d) => d.dimParam || d.dimValue), ['batch', 1, 28, 28]);
    const names = new Set(m.graph.initializer.map((t) => t.name));
    for (const [key] of model.namedParameters()) assert.ok(names.has(key), `parameter ${key} is an initializer under its name`);
    assert.deepEqual(Object.fromEntries(m.metadataProps.map((p) => [p.key, p.value])), metadata);
    assert.deepEqual(readModelHeader(bytes), { opset: ONNX_OPSET, metadata, producerName: 'vicinity' });
  } finally {
    model.dispose();
  }
});

test('exportOnnxFile writes through a temporary file; the model keeps its mode and leaks no tensors', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-export-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const model = createModel('small_convnet');
  model.train(true);
  const before = memory().liveTensors;
  const file = path.join(dir, 'm.onnx');
  const out = await exportOnnxFile(model, file, { inChannels: 1, inputSize: 28 });
  assert.ok(memory().liveTensors <= before, 'export leaked tensors');
  assert.equal(model.training, true, 'training mode restored');
  assert.deepEqual(readdirSync(dir), ['m.onnx']);
  assert.equal(Buffer.compare(readFileSync(file), Buffer.from(out.bytes)), 0, 'the file holds the exported bytes');
  await assert.rejects(exportOnnxFile(model, path.join(dir, 'missing', 'm.onnx'), { inChannels: 1, inputSize: 28 }), /ENOENT/);
  assert.ok(!existsSync(path.join(dir, 'missing')));
  model.dispose();
});

class Cumulative extends Module {
  forward(x: Tensor): Tensor {
    return aten.cumsum(x.flatten(1), 1, null);
  }
}

class BatchBranch extends Module {
  forward(x: Tensor): Tensor {
    return x.shape[0] > 2 ? x.flatten(1).relu() : x.flatten(1).sigmoid();
  }
}

class InPlace extends Module {
  forward(x: Tensor): Tensor {
    const y = x.flatten(1).mul(2);
    aten.relu_(y);
    aten.add__Scalar(y, 1, 1);
    return y;
  }
}

test('what cannot be exported is an ExportError that names it', () => {
  assert.throws(() => exportOnnx(new Cumulative(), { inChannels: 1, inputSize: 4 }),
    (e: unknown) => e instanceof ExportError && /no ONNX form for aten::cumsum .*add its translation/.test(e.message));
  assert.throws(() => exportOnnx(new BatchBranch(), { inChannels: 1, inputSize: 4 }),
    (e: unknown) => e instanceof ExportError && /op #\d+ is aten::sigmoid at batch 2 but aten::relu at batch 3/.test(e.message));
  const model = createModel('small_convnet');
  assert.throws(() => exportOnnx(model, { inChannels: 1, inputSize: 0 }), /inputSize|input height must be a positive integer, got 0/);
  assert.throws(() => exportOnnx(model, { inChannels: 3, inputSize: 28 }), /channels|shape|size/i);
  model.to('float64');
  assert.throws(() => exportOnnx(model, { inChannels: 1, inputSize: 28 }), /parameters are float64; export float32 models/);
  model.dispose();
  // an in-place op exports as its out-of-place form, and later readers see its result
  const inPlace = new InPlace();
  const out = exportOnnx(inPlace, { inChannels: 1, inputSize: 4 });
  assert.deepEqual(out.opCounts, { Relu: 1, Add: 1, Reshape: 1, Shape: 1, Slice: 1, Concat: 1, Mul: 1, Identity: 1 });
});
