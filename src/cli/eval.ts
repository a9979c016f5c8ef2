/**
 * `vicinity eval <checkpoint>`: a trained checkpoint's loss and top-1/top-5 accuracy on a
 * dataset's test split, with the evaluation transform the trainer uses (input-pipeline.ts), and
 * its throughput. The model, dataset, sizes and eval transform come from the checkpoint's
 * pretrained_cfg (train/model-metadata.ts, written by the trainer); flags override them, and are
 * needed for files without metadata (PyTorch .pth, other tools' safetensors).
 * Weights load strictly: a missing, unexpected or mis-shaped parameter is an error naming each.
 */
import { constants } from 'node:fs';
import path from 'node:path';
import { access, readdir, stat } from 'node:fs/promises';
import { CheckpointError } from '../checkpoint/raw-tensor.js';
import { readSafetensors } from '../checkpoint/safetensors.js';
import { loadPretrained } from '../checkpoint/tensor-io.js';
import { DataLoader } from '../data/loader.js';
import type { ImageDataset } from '../data/dataset.js';
import { DATASET_NAMES, isDatasetName, loadDataset, nativeChannels, type DatasetName } from '../data/load-dataset.js';
import { modelInfo, type Classifier } from '../models/registry.js';
import { evaluate } from '../train/classifier-loop.js';
import { cliModelInfo } from './model-names.js';
import type { Device } from '../tensor/tensor.js';
import {
  createModelFromCfg, decodePretrainedCfg, evalTransformFromCfg, parseInputSize, readCheckpointMetadata, resolvePretrainedCfg, type PretrainedCfg,
} from '../train/model-metadata.js';

export interface EvalCommandOptions {
  /** Registry name; default the checkpoint's `model` metadata. */
  model?: string;
  /** Default the checkpoint's `dataset` metadata, else 'fashion-mnist'. */
  dataset?: string;
  dataRoot?: string;
  /** Fashion-MNIST: 'auto', 'full' or 'subset'. */
  dataSource?: 'auto' | 'full' | 'subset';
  /** Default 500. */
  batchSize?: number;
  /** Input side; default the checkpoint's, else the model's. */
  inputSize?: number;
  /** Loader worker threads; default 0. */
  workers?: number;
  /** Where the model runs; default 'cpu'. */
  device?: Device;
  /** Evaluate the EMA weights of a torch.save training checkpoint (timm's state_dict_ema). */
  ema?: boolean;
  json?: boolean;
}

/** What `vicinity eval` measures; top1/top5 in percent, as timm's validate.py. */
export interface EvalReport {
  checkpoint: string;
  model: string;
  dataset: string;
  split: 'test';
  count: number;
  loss: number;
  top1: number;
  top5: number;
  param_count: number;
  img_size: number;
  seconds: number;
  samples_per_sec: number;
}

/** The trainer's safetensors metadata, or {} for files that have none (model-metadata.ts). */
export const checkpointMetadata = readCheckpointMetadata;
export { parseInputSize };

function metaInt(meta: Record<string, string>, key: string): number | undefined {
  const n = Number(meta[key]);
  return meta[key] !== undefined && Number.isInteger(n) && n > 0 ? n : undefined;
}

interface EvalSetup {
  model: string;
  dataset: string;
  numClasses?: number;
  inChannels?: number;
  inputSize?: [number, number];
}

/** Model, dataset and sizes: flags first, then the checkpoint's metadata (sizes left undefined fall to the data). */
export function resolveEvalSetup(file: string, meta: Record<string, string>, options: EvalCommandOptions): EvalSetup {
  const model = options.model ?? meta.model;
  if (!model) {
    throw new Error(`${file} has no 'model' metadata (only checkpoints written by vicinity train do); ` +
      'pass --model <name> (vicinity list-models lists them)');
  }
  cliModelInfo(model); // an unknown name fails here, with the nearest names
  return {
    model, dataset: options.dataset ?? meta.dataset ?? 'fashion-mnist',
    numClasses: metaInt(meta, 'numClasses'), inChannels: metaInt(meta, 'inChannels'),
    inputSize: options.inputSize !== undefined ? [options.inputSize, options.inputSize] : parseInputSize(meta.inputSize),
  };
}

/** The trainer's rule: the dataset's image size for models that take any size, else the model's own. */
function defaultInputSize(model: string, test: ImageDataset): [number, number] {
  const info = modelInfo(model);
  return !info.fixedInputSize && test.store.kind === 'memory' ? [test.store.height, test.store.width] : [info.inputSize, info.inputSize];
}

/** Builds the model for the data and loads the checkpoint into it, strictly. */
export async function loadModel(file: string, cfg: PretrainedCfg, trainedAs: string | undefined, ema = false): Promise<Classifier> {
  const name = cfg.architecture;
  const [inChannels, h, w] = cfg.input_size;
  const { num_classes: numClasses } = cfg;
  const inputSize = [h, w];
  const model = createModelFromCfg(cfg);
  try {
    await loadPretrained(model, file, { ema });
  } catch (e) {
    model.dispose();
    if (e instanceof CheckpointError) {
      // The file itself is unreadable: no flag would make it fit.
      throw new Error(`${file} is not a readable checkpoint: ${e.message}`, { cause: e });
    }
    const origin = trainedAs && trainedAs !== name ? ` (it was trained as ${trainedAs})` : '';
    throw new Error(`${file}${origin} does not fit ${name} built for ${numClasses} classes, ${inChannels} input channel(s) and ` +
      `${inputSize.join('×')} input: ${(e as Error).message}; check --model, --dataset and --input-size`);
  }
  return model;
}

/** Evaluates a checkpoint on the test split; the report of `vicinity eval`. */
export async function evalCheckpoint(file: string, options: EvalCommandOptions = {}): Promise<EvalReport> {
  const meta = await readCheckpointMetadata(file);
  const stored = decodePretrainedCfg(meta, file);
  const setup = resolveEvalSetup(file, meta, options);
  const dataset = checkDatasetName(setup.dataset);
  const channels = (setup.inChannels ?? nativeChannels(dataset)) as 1 | 3;
  const test = await loadDataset({
    name: dataset, root: options.dataRoot, split: 'test', channels,
    source: dataset === 'fashion-mnist' ? options.dataSource : undefined,
  });
  if (setup.numClasses !== undefined && setup.numClasses !== test.classes.length) {
    throw new Error(`${file} was trained for ${setup.numClasses} classes${meta.dataset ? ` (on ${meta.dataset})` : ''}, but ` +
      `${dataset} has ${test.classes.length}; evaluate it on a dataset with ${setup.numClasses} classes` +
      (meta.dataset && meta.dataset !== dataset ? ` (--dataset ${meta.dataset})` : ''));
  }
  const inputSize = setup.inputSize ?? defaultInputSize(setup.model, test);
  // The checkpoint's pretrained_cfg, completed from the flags and the test split (model-metadata.ts).
  const cfg = resolvePretrainedCfg(file, stored, {
    model: setup.model, dataset: options.dataset ?? (stored.mean ? undefined : dataset), inChannels: channels,
    inputSize: options.inputSize ?? (stored.input_size ? undefined : inputSize[0]),
    classes: stored.label_names ?? (setup.numClasses === undefined || setup.numClasses === test.classes.length ? test.classes : undefined),
    numClasses: setup.numClasses,
  });
  const model = await loadModel(file, cfg, meta.model, options.ema);
  if (options.device && options.device !== 'cpu') model.to({ device: options.device });
  const loader = new DataLoader({
    dataset: test, transform: evalTransformFromCfg(cfg),
    batchSize: options.batchSize ?? 500, shuffle: false, seed: 0, workers: options.workers ?? 0,
  });
  try {
    const started = performance.now();
    const r = await evaluate(model, loader.epoch(0), { device: options.device });
    const seconds = (performance.now() - started) / 1000;
    if (r.nonFinite > 0) {
      throw new Error(`${file}: the model's outputs are not finite (NaN or ±Inf) on ${r.nonFinite} of ${r.count} test ` +
        'images, so no accuracy can be given; the weights are diverged or corrupt (evaluate an earlier checkpoint)');
    }
    return {
      checkpoint: file, model: setup.model, dataset, split: 'test', count: r.count,
      loss: r.loss, top1: 100 * r.top1, top5: 100 * r.top5, param_count: model.numParameters(),
      img_size: cfg.input_size[2], seconds, samples_per_sec: r.count / seconds,
    };
  } finally {
    await loader.close();
    model.dispose();
  }
}

function checkDatasetName(name: string): DatasetName {
  if (isDatasetName(name)) return name;
  throw new Error(`unknown dataset '${name}'; the datasets are ${DATASET_NAMES.join(', ')}`);
}

/** Runs `vicinity eval`; returns the exit code. */
export async function evalCommand(file: string, options: EvalCommandOptions = {}): Promise<number> {
  const r = await evalCheckpoint(file, options);
  if (options.json) {
    console.log(JSON.stringify(r, null, 2));
    return 0;
  }
  console.log(`${r.model} (${r.param_count.toLocaleString('en-US')} parameters) from ${r.checkpoint}`);
  console.log(`${r.dataset} test: ${r.count.toLocaleString('en-US')} images at ${r.img_size} px`);
  console.log(`test loss ${r.loss.toFixed(4)}  top-1 ${r.top1.toFixed(2)}%  top-5 ${r.top5.toFixed(2)}%  ` +
    `(${r.seconds.toFixed(1)} s, ${r.samples_per_sec.toFixed(0)} images/s)`);
  return 0;
}
