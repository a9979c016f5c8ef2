/**
 * `vicinity export <checkpoint|model> <out.onnx>`: an ONNX model (opset 17, standard ops, dynamic
 * batch) of a trained checkpoint, or of a registered model with fresh weights.
 *
 * A checkpoint's model, class count, channels and input size come from its pretrained_cfg
 * (train/model-metadata.ts, as predict and eval read it; flags override, and are needed for files
 * without metadata); its weights load strictly. The checkpoint's metadata is copied into the ONNX
 * model's metadata_props, with what a runtime needs as plain keys: model, numClasses, inChannels,
 * inputSize, and when known the normalisation (mean, std as JSON) and class names (classes, JSON).
 */
import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import { loadPretrained } from '../checkpoint/tensor-io.js';
import { FASHION_MNIST_CLASSES, MNIST_CLASSES } from '../data/fashion-mnist.js';
import { datasetStats, isDatasetName } from '../data/load-dataset.js';
import { exportOnnxFile, type OnnxExport } from '../export/export-onnx.js';
import { createModel, modelInfo, type Classifier } from '../models/registry.js';
import { decodePretrainedCfg, readCheckpointMetadata } from '../train/model-metadata.js';
import { StateDictError } from '../nn/module.js';

export interface ExportCommandOptions {
  /** Registry name; default the checkpoint's `model` metadata. */
  model?: string;
  numClasses?: number;
  inChannels?: number;
  inputSize?: number;
  json?: boolean;
}

export interface ExportReport {
  source: string;
  out: string;
  model: string;
  /** 'checkpoint' or 'fresh' (a registry name: newly initialised weights). */
  weights: 'checkpoint' | 'fresh';
  opset: number;
  nodes: number;
  initializers: number;
  bytes: number;
  inputShape: (number | string)[];
  outputShape: (number | string)[];
  opCounts: Record<string, number>;
  metadata: Record<string, string>;
}

const CHECKPOINT_SUFFIXES = ['.safetensors', '.pth', '.pt', '.bin', '.ckpt'];

function looksLikeFile(source: string): boolean {
  return existsSync(source) || CHECKPOINT_SUFFIXES.some((s) => source.endsWith(s)) || source.includes('/');
}

/** Class names of datasets whose classes are fixed (the others are read from their files). */
function knownClasses(dataset: string, numClasses: number): string[] | undefined {
  const table = dataset === 'fashion-mnist' ? FASHION_MNIST_CLASSES : dataset === 'mnist' ? MNIST_CLASSES : undefined;
  return table && table.length === numClasses ? [...table] : undefined;
}

/**
 * The model to export, its shape and the metadata for metadata_props. The checkpoint's config is
 * read with the one reader of checkpoint metadata (train/model-metadata.ts: the pretrained_cfg,
 * or the legacy flat keys); flags override it, the registry fills the rest.
 */
async function resolveSource(source: string, options: ExportCommandOptions): Promise<{
  model: Classifier; name: string; weights: ExportReport['weights']; inChannels: number; inputSize: [number, number]; metadata: Record<string, string>;
}> {
  const isFile = looksLikeFile(source);
  const meta = isFile ? await readCheckpointMetadata(source) : {};
  const stored = decodePretrainedCfg(meta, source);
  const name = options.model ?? (isFile ? stored.architecture : source);
  if (!name) {
    throw new Error(`${source} has no model name in its metadata (only checkpoints written by vicinity train have one); ` +
      'pass --model <name> (vicinity list-models lists them)');
  }
  const info = modelInfo(name);   // an unknown name fails here, with the nearest names
  const numClasses = options.numClasses ?? stored.num_classes ?? info.numClasses;
  const inChannels = options.inChannels ?? stored.input_size?.[0] ?? info.inChannels;
  const inputSize: [number, number] = options.inputSize !== undefined ? [options.inputSize, options.inputSize]
    : stored.input_size ? [stored.input_size[1], stored.input_size[2]] : [info.inputSize, info.inputSize];
  // the builder options the weights were made with (a sweep's kernel size, …), when the model is the file's
  const modelArgs = stored.architecture === name ? stored.model_args ?? {} : {};
  const model = createModel(name, {
    ...modelArgs, numClasses, inChannels, inputSize: inputSize[0] === inputSize[1] ? inputSize[0] : inputSize,
  });
  if (isFile) {
    try {
      await loadPretrained(model, source);
    } catch (e) {
      model.dispose();
      if (!(e instanceof StateDictError)) throw e;   // unreadable files say so themselves
      const origin = stored.architecture && stored.architecture !== name ? ` (it was trained as ${stored.architecture})` : '';
      throw new Error(`${source}${origin} does not fit ${name} built for ${numClasses} classes, ${inChannels} input channel(s) and ` +
        `${inputSize.join('×')} input: ${(e as Error).message}; check --model, --num-classes, --in-channels and --input-size`);
    }
  }
  const metadata: Record<string, string> = {
    ...meta, model: name, numClasses: String(numClasses), inChannels: String(inChannels), inputSize: `${inputSize[0]}x${inputSize[1]}`,
    weights: isFile ? basename(source) : 'fresh initialisation',
  };
  // what a runtime needs to feed the model and name its outputs, as plain keys
  const dataset = stored.dataset;
  const stats = stored.mean && stored.std && stored.mean.length === inChannels ? { mean: stored.mean, std: stored.std }
    : dataset && isDatasetName(dataset) && (inChannels === 1 || inChannels === 3) ? datasetStats(dataset, inChannels) : undefined;
  if (stats) {
    metadata.mean = JSON.stringify(stats.mean);
    metadata.std = JSON.stringify(stats.std);
  }
  const classes = stored.label_names?.length === numClasses ? stored.label_names : dataset ? knownClasses(dataset, numClasses) : undefined;
  if (classes) metadata.classes = JSON.stringify(classes);
  return { model, name, weights: isFile ? 'checkpoint' : 'fresh', inChannels, inputSize, metadata };
}

/** Exports and reports; the work of `vicinity export`. */
export async function exportCheckpoint(source: string, out: string, options: ExportCommandOptions = {}): Promise<ExportReport> {
  if (!out.endsWith('.onnx')) throw new Error(`output file ${out} should end in .onnx`);
  const { model, name, weights, inChannels, inputSize, metadata } = await resolveSource(source, options);
  let result: OnnxExport;
  try {
    result = await exportOnnxFile(model, out, { inChannels, inputSize, metadata });
  } finally {
    model.dispose();
  }
  return {
    source, out, model: name, weights, opset: result.opset, nodes: result.nodes, initializers: result.initializers,
    bytes: result.bytes.byteLength, inputShape: result.inputShape, outputShape: result.outputShape, opCounts: result.opCounts, metadata,
  };
}

/** Runs `vicinity export`; returns the exit code. */
export async function exportCommand(source: string, out: string, options: ExportCommandOptions = {}): Promise<number> {
  const r = await exportCheckpoint(source, out, options);
  if (options.json) {
    console.log(JSON.stringify(r, null, 2));
    return 0;
  }
  if (r.weights === 'fresh') console.error(`note: ${r.model} is exported with freshly initialised weights; pass a checkpoint to export trained ones`);
  const ops = Object.entries(r.opCounts).sort((a, b) => b[1] - a[1]).map(([op, n]) => `${op} ${n}`).join(', ');
  console.log(`${r.out}: ${r.model}, ONNX opset ${r.opset}, ${(r.bytes / 1e6).toFixed(2)} MB`);
  console.log(`input ${r.inputShape.join('×')} → output ${r.outputShape.join('×')}; ${r.nodes} nodes (${ops}), ${r.initializers} initializers`);
  console.log(`metadata: ${Object.keys(r.metadata).join(', ')}`);
  return 0;
}
