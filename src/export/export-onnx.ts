/**
 * ONNX export of vicinity's classifiers: `exportOnnx(model, { inChannels, inputSize })` returns
 * the bytes of an ONNX model (opset 17, standard domain only, dynamic batch) whose output equals
 * the model's forward in eval mode; `exportOnnxFile` writes them (temp file, then rename).
 *
 * How: the forward is recorded as ATen op calls at two batch sizes (trace.ts), each call is
 * translated to standard ONNX ops (aten-nn.ts, aten-tensor.ts), parameters and buffers become
 * initializers under their state-dict names, and the model's metadata goes to metadata_props.
 * Fused kernels (native/kernels: vicinity::la_attention, window_qk/av) have no standard-op form,
 * so export switches the layers to their composite ATen path for the trace (withKernelMode
 * below); any other `vicinity::` op met in the trace is an error naming it.
 */
import { readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { withKernelMode } from '../ops/fused.js';
import type { Module } from '../nn/module.js';
import { packageRoot } from '../package-root.js';
import { randn } from '../tensor/creation.js';
import { keep } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { NN_OPS } from './aten-nn.js';
import { TENSOR_OPS } from './aten-tensor.js';
import { CallView, GraphBuilder, onnxDType, pruneGraph, type OpTranslation } from './graph.js';
import { encodeModel } from './onnx-proto.js';
import { ExportError, fitTraces, recordForward, tensorIds, type Trace } from './trace.js';

/** The opset the exporter writes: 17 has LayerNormalization and GridSample (16+). */
export const ONNX_OPSET = 17;

export interface ExportOnnxOptions {
  /** Image channels; default 3. */
  inChannels?: number;
  /** Input side or [H, W] the graph is traced at (spatial sizes are fixed in the graph). Required. */
  inputSize: number | [number, number];
  /** String metadata for the model's metadata_props (a checkpoint's, the model name, …). */
  metadata?: Record<string, string>;
  /** Graph input and output names; default 'input' and 'logits'. */
  inputName?: string;
  outputName?: string;
  /** Graph name; default 'vicinity'. */
  graphName?: string;
  /** The two batch sizes traced to find batch-dependent sizes; default [2, 3]. */
  traceBatches?: [number, number];
}

export interface OnnxExport {
  bytes: Uint8Array;
  /** Node count per ONNX op type. */
  opCounts: Record<string, number>;
  nodes: number;
  initializers: number;
  opset: number;
  inputShape: (number | string)[];
  outputShape: (number | string)[];
}

/** Every ATen op the exporter translates. */
export const ONNX_TRANSLATIONS: Readonly<Record<string, OpTranslation>> = { ...NN_OPS, ...TENSOR_OPS };

function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
}

type Forwardable = Module & { forward(x: Tensor): unknown };

function traceAt(model: Forwardable, batch: number, shape: number[]): Trace {
  const p = model.parameters()[0];
  const x = keep(randn([batch, ...shape], { seed: 1000 + batch, dtype: p?.dtype, device: p?.device as 'cpu' }));
  try {
    return recordForward(model, x);
  } finally {
    x.dispose();
  }
}

function checkModel(model: Module): void {
  for (const p of model.parameters()) {
    if (p.device !== 'cpu') throw new ExportError(`export: parameters are on ${p.device}; move the model to the CPU first (model.to('cpu'))`);
    if (p.dtype !== 'float32') throw new ExportError(`export: parameters are ${p.dtype}; export float32 models (model.to('float32'))`);
  }
}

/** Translates the fitted trace into nodes and initializers. */
function buildGraph(trace: Trace, inputName: string, outputName: string): GraphBuilder {
  const g = new GraphBuilder(trace, inputName);
  for (const call of trace.calls) {
    // A concatenation of parameters (F.conv2dSplit's projection weights) stays a Concat node, so
    // that every parameter remains an initializer under its state-dict name.
    const joinsParameters = call.op === 'aten::cat' && tensorIds(call.args).some((id) => trace.values[id].kind === 'parameter');
    const needed = call.batchDependent || call.outputs.some((o) => trace.values[o].dynamic) || joinsParameters;
    if (!needed) continue;   // constant-folded: its results become initializers where used
    // an in-place op (relu_, add_.Tensor) computes what its out-of-place form does; trace.ts
    // already points later readers of its first argument at its result
    const translate = ONNX_TRANSLATIONS[call.op] ?? ONNX_TRANSLATIONS[call.op.replace(/_(\.|$)/, '$1')];
    if (!translate) {
      const hint = call.op.startsWith('vicinity::')
        ? 'a fused kernel with no standard-op form; give its layer a composite path chosen through useFused (src/ops/fused.ts)'
        : 'add its translation to src/export/aten-nn.ts or aten-tensor.ts';
      throw new ExportError(`export: no ONNX form for ${call.op} (${hint})`);
    }
    translate(g, new CallView(g, call));
  }
  const last = g.valueName(trace.output);
  g.op('Identity', [last], {}, outputName);
  return g;
}

/** The ONNX bytes of `model` (put in eval mode for the trace; its modes are restored). */
export function exportOnnx(model: Module, options: ExportOnnxOptions): OnnxExport {
  const forwardable = model as Forwardable;
  if (typeof forwardable.forward !== 'function') throw new ExportError('exportOnnx: the model has no forward(x) method');
  checkModel(model);
  const [h, w] = typeof options.inputSize === 'number' ? [options.inputSize, options.inputSize] : options.inputSize;
  const channels = options.inChannels ?? 3;
  for (const [name, v] of [['inChannels', channels], ['input height', h], ['input width', w]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`exportOnnx: ${name} must be a positive integer, got ${String(v)}`);
  }
  const [b1, b2] = options.traceBatches ?? [2, 3];
  const inputName = options.inputName ?? 'input';
  const outputName = options.outputName ?? 'logits';
  const modes = Array.from(model.modules(), (m) => [m, m.training] as const);
  let trace: Trace;
  try {
    model.train(false);
    trace = withKernelMode('composite', () => fitTraces(traceAt(forwardable, b1, [channels, h, w]), traceAt(forwardable, b2, [channels, h, w])));
  } finally {
    for (const [m, training] of modes) m.training = training;
  }
  const g = buildGraph(trace, inputName, outputName);
  const { nodes, initializers } = pruneGraph(g.nodes, g.initializers, [outputName]);
  const out = trace.values[trace.output];
  const dims = (shape: typeof out.shape) => shape.map((d) => (typeof d === 'number' ? d : d.a === 1 && d.c === 0 ? 'batch' : `${d.a}*batch+${d.c}`));
  const inputShape = ['batch', channels, h, w];
  const outputShape = dims(out.shape);
  const metadata = { ...(options.metadata ?? {}) };
  const bytes = encodeModel({
    graphName: options.graphName ?? 'vicinity', nodes, initializers, opset: ONNX_OPSET,
    producerName: 'vicinity', producerVersion: packageVersion(),
    inputs: [{ name: inputName, dtype: onnxDType(trace.values[trace.input].dtype), shape: inputShape }],
    outputs: [{ name: outputName, dtype: onnxDType(out.dtype), shape: outputShape }],
    metadata,
  });
  const opCounts: Record<string, number> = {};
  for (const n of nodes) opCounts[n.opType] = (opCounts[n.opType] ?? 0) + 1;
  return { bytes, opCounts, nodes: nodes.length, initializers: initializers.length, opset: ONNX_OPSET, inputShape, outputShape };
}

/** exportOnnx, written to `file` through a temporary file and a rename (never half-written). */
export async function exportOnnxFile(model: Module, file: string, options: ExportOnnxOptions): Promise<OnnxExport> {
  const result = exportOnnx(model, options);
  const temp = `${file}.${process.pid}.tmp`;
  try {
    await writeFile(temp, result.bytes);
    await rename(temp, file);
  } catch (e) {
    await rm(temp, { force: true });
    throw e;
  }
  return result;
}
