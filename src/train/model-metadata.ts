/**
 * A checkpoint's model metadata — timm's `pretrained_cfg` — in one place: the trainer writes it
 * into every weights file it saves, and `eval`, `predict` and `explain` read it back to rebuild the
 * model and its evaluation transform without flags.
 *
 * Stored in the safetensors metadata (string values only) as:
 *
 *   vicinity.pretrained_cfg  JSON of {@link PretrainedCfg}: timm's keys (architecture, num_classes,
 *                            label_names, input_size [C, H, W], mean, std, interpolation, crop_pct,
 *                            crop_mode) plus model_args (createModel's options) and dataset
 *   model, dataset, numClasses, inChannels, inputSize ('HxW')
 *                            the flat keys of earlier vicinity versions, still written so that
 *                            older readers keep working, and read (as a partial config) from
 *                            files that predate the JSON key
 *
 * A file without metadata (a PyTorch .pth, another tool's safetensors) gives an empty partial
 * config; {@link resolvePretrainedCfg} fills it from flags and names the first field that neither
 * supplies, with the flag that supplies it.
 */
import { constants } from 'node:fs';
import { access, readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { readSafetensors } from '../checkpoint/safetensors.js';
import { datasetStats, isDatasetName } from '../data/load-dataset.js';
import type { TransformSpec } from '../data/transforms/spec.js';
import { createModel, modelInfo, type Classifier, type ModelOptions } from '../models/registry.js';
import { evalTransform } from './input-pipeline.js';

/** The metadata key holding the JSON config. */
export const PRETRAINED_CFG_KEY = 'vicinity.pretrained_cfg';

export type Interpolation = 'bilinear' | 'bicubic' | 'nearest';

/**
 * timm's pretrained_cfg, as vicinity records it. `crop_mode` 'center' resizes the shorter side to
 * size / crop_pct and centre-crops; 'squash' resizes the whole image to the input size (crop_pct 1),
 * the small-image path of input-pipeline.ts.
 */
export interface PretrainedCfg {
  /** Registry name (createModel). */
  architecture: string;
  /** createModel's options the weights were built with. */
  model_args: ModelOptions;
  num_classes: number;
  /** One name per class index. */
  label_names: string[];
  /** [channels, height, width]. */
  input_size: [number, number, number];
  mean: number[];
  std: number[];
  interpolation: Interpolation;
  crop_pct: number;
  crop_mode: 'center' | 'squash';
  /** The dataset the weights were trained on (informational; absent for imported weights). */
  dataset?: string;
}

/** The fields a file or the flags may leave out (model_args and dataset have defaults). */
const REQUIRED: readonly (keyof PretrainedCfg)[] = [
  'architecture', 'num_classes', 'label_names', 'input_size', 'mean', 'std', 'interpolation', 'crop_pct', 'crop_mode',
];

/** The flag (of predict/explain/eval) that supplies each field, for error messages. */
const FLAG_FOR: Partial<Record<keyof PretrainedCfg, string>> = {
  architecture: '--model <name>',
  num_classes: '--num-classes <n> (or --classes / --dataset)',
  label_names: '--classes <a,b,...> (or --dataset <name>, whose class names are known)',
  input_size: '--input-size <n> and --in-channels <n> (or --dataset)',
  mean: '--mean <m,...> (or --dataset <name>)',
  std: '--std <s,...> (or --dataset <name>)',
};

/** What a training run knows about its model and data. */
export interface RunModelFacts {
  model: string;
  dataset: string;
  classes: string[];
  inChannels: 1 | 3;
  inputSize: [number, number];
  dropPathRate?: number;
  /** createModel's modelArgs (architecture settings of an ablation). */
  modelArgs?: Record<string, number>;
}

/** The config of a model trained by vicinity: its eval transform is the trainer's (input-pipeline.ts). */
export function pretrainedCfgForRun(facts: RunModelFacts): PretrainedCfg {
  const spec = evalTransform(facts.dataset, facts.inputSize, facts.inChannels);
  const [h, w] = facts.inputSize;
  return {
    architecture: facts.model,
    model_args: {
      numClasses: facts.classes.length, inChannels: facts.inChannels, inputSize: h === w ? h : [h, w],
      ...(facts.dropPathRate ? { dropPathRate: facts.dropPathRate } : {}),
      ...(facts.modelArgs && Object.keys(facts.modelArgs).length ? { modelArgs: { ...facts.modelArgs } } : {}),
    },
    num_classes: facts.classes.length,
    label_names: [...facts.classes],
    input_size: [facts.inChannels, h, w],
    mean: spec.mean, std: spec.std,
    interpolation: spec.interpolation ?? 'bilinear',
    crop_pct: spec.centerCropPct ?? 1,
    crop_mode: spec.centerCropPct === undefined ? 'squash' : 'center',
    dataset: facts.dataset,
  };
}

/** The safetensors metadata entries of a config (JSON key plus the legacy flat keys). */
export function encodePretrainedCfg(cfg: PretrainedCfg): Record<string, string> {
  return {
    [PRETRAINED_CFG_KEY]: JSON.stringify(cfg),
    model: cfg.architecture, dataset: cfg.dataset ?? '', numClasses: String(cfg.num_classes),
    inChannels: String(cfg.input_size[0]), inputSize: `${cfg.input_size[1]}x${cfg.input_size[2]}`,
  };
}

/** A checkpoint's metadata entries, or {} for files that have none (anything but .safetensors). */
export async function readCheckpointMetadata(file: string): Promise<Record<string, string>> {
  try {
    await access(file, constants.R_OK);
  } catch (e) {
    throw new Error(`cannot read checkpoint ${file} (${(e as NodeJS.ErrnoException).code}); ` +
      'vicinity train writes <out>/last.safetensors and <out>/best.safetensors');
  }
  if ((await stat(file)).isDirectory()) {
    const inside = (await readdir(file)).filter((f) => /\.(safetensors|pth|pt)$/.test(f) && !f.endsWith('.state.safetensors')).sort();
    throw new Error(`${file} is a directory; pass a checkpoint file in it` +
      (inside.length ? `: ${inside.map((f) => path.join(file, f)).join(', ')}` : ' (it holds none: vicinity train writes best.safetensors and last.safetensors)'));
  }
  if (!file.endsWith('.safetensors')) return {};
  return (await readSafetensors(file)).metadata;
}

/** '28', '28x28', '[28, 28]' → [28, 28]; undefined when absent or unreadable. */
export function parseInputSize(text: string | undefined): [number, number] | undefined {
  if (text === undefined) return undefined;
  const sides = (text.match(/\d+/g) ?? []).map(Number);
  if (sides.length === 1) return [sides[0], sides[0]];
  if (sides.length === 2) return [sides[0], sides[1]];
  return undefined;
}

function positiveInt(text: string | undefined): number | undefined {
  const n = Number(text);
  return text !== undefined && text !== '' && Number.isInteger(n) && n > 0 ? n : undefined;
}

/**
 * The partial config a file's metadata entries hold: the JSON config when present, else what the
 * legacy flat keys say (architecture, dataset, num_classes, input_size; mean/std and the crop
 * follow from the dataset as the trainer used them).
 *
 * Errors: an Error naming the file when the JSON key is present but not a valid config.
 */
export function decodePretrainedCfg(meta: Record<string, string>, file = 'checkpoint'): Partial<PretrainedCfg> {
  const text = meta[PRETRAINED_CFG_KEY];
  if (text !== undefined) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new Error(`${file}: metadata '${PRETRAINED_CFG_KEY}' is not valid JSON (${(e as Error).message}); ` +
        'the file is corrupt: re-save it, or pass the model settings as flags with a metadata-free copy');
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      throw new Error(`${file}: metadata '${PRETRAINED_CFG_KEY}' is not a JSON object`);
    }
    return parsed as Partial<PretrainedCfg>;
  }
  const out: Partial<PretrainedCfg> = {};
  if (meta.model) out.architecture = meta.model;
  if (meta.dataset) out.dataset = meta.dataset;
  const numClasses = positiveInt(meta.numClasses);
  if (numClasses !== undefined) out.num_classes = numClasses;
  const size = parseInputSize(meta.inputSize);
  const channels = positiveInt(meta.inChannels);
  if (size && channels !== undefined) out.input_size = [channels, size[0], size[1]];
  return out;
}

/** Flags that stand in for (or override) metadata fields. */
export interface CfgOverrides {
  model?: string;
  /** A dataset name: its class names (when known without a root), mean/std and channels. */
  dataset?: string;
  /** Class names, in index order. */
  classes?: string[];
  numClasses?: number;
  inputSize?: number;
  inChannels?: number;
  mean?: number[];
  std?: number[];
  interpolation?: Interpolation;
  cropPct?: number;
}

/**
 * The complete config of a checkpoint: flags first, then its metadata, then what a dataset name
 * implies (mean/std, and the trainer's crop for the input size).
 *
 * Errors: an Error naming the first missing field and the flag that supplies it, or an
 * inconsistency (class names vs num_classes, mean/std length vs channels).
 */
export function resolvePretrainedCfg(file: string, stored: Partial<PretrainedCfg>, flags: CfgOverrides = {}): PretrainedCfg {
  const cfg: Partial<PretrainedCfg> = { ...stored };
  if (flags.model) cfg.architecture = flags.model;
  if (flags.dataset) cfg.dataset = flags.dataset;
  if (flags.classes) cfg.label_names = flags.classes;
  if (flags.numClasses) cfg.num_classes = flags.numClasses;
  if (cfg.num_classes === undefined && cfg.label_names) cfg.num_classes = cfg.label_names.length;
  if (cfg.architecture) modelInfo(cfg.architecture);   // an unknown name fails here, with the nearest names
  const channels = flags.inChannels ?? cfg.input_size?.[0] ??
    (cfg.dataset && isDatasetName(cfg.dataset) ? datasetStats(cfg.dataset).channels : undefined) ??
    (cfg.architecture ? modelInfo(cfg.architecture).inChannels : undefined);
  if (flags.inputSize) cfg.input_size = [channels ?? 3, flags.inputSize, flags.inputSize];
  else if (cfg.input_size && flags.inChannels) cfg.input_size = [flags.inChannels, cfg.input_size[1], cfg.input_size[2]];
  if (!cfg.input_size && cfg.architecture && channels !== undefined) {
    const side = modelInfo(cfg.architecture).inputSize;
    cfg.input_size = [channels, side, side];
  }
  if (cfg.dataset && isDatasetName(cfg.dataset) && cfg.input_size && (cfg.mean === undefined || flags.dataset)) {
    const [c, h, w] = cfg.input_size;
    const fromData = pretrainedCfgForRun({ model: cfg.architecture ?? '', dataset: cfg.dataset, classes: [], inChannels: c as 1 | 3, inputSize: [h, w] });
    cfg.mean ??= fromData.mean;
    cfg.std ??= fromData.std;
    cfg.interpolation ??= fromData.interpolation;
    cfg.crop_pct ??= fromData.crop_pct;
    cfg.crop_mode ??= fromData.crop_mode;
  }
  if (flags.mean) cfg.mean = flags.mean;
  if (flags.std) cfg.std = flags.std;
  if (flags.interpolation) cfg.interpolation = flags.interpolation;
  if (flags.cropPct !== undefined) {
    cfg.crop_pct = flags.cropPct;
    cfg.crop_mode = 'center';
  }
  cfg.interpolation ??= 'bilinear';
  if (cfg.crop_pct === undefined && cfg.input_size) {
    const small = Math.max(cfg.input_size[1], cfg.input_size[2]) <= 64;
    cfg.crop_pct = small ? 1 : 0.875;
    cfg.crop_mode = small ? 'squash' : 'center';
  }
  cfg.crop_mode ??= (cfg.crop_pct ?? 1) >= 1 ? 'squash' : 'center';
  if (cfg.label_names === undefined && cfg.num_classes !== undefined && flags.numClasses !== undefined) {
    cfg.label_names = Array.from({ length: cfg.num_classes }, (_, i) => `class ${i}`);
  }
  cfg.model_args ??= {};
  for (const field of REQUIRED) {
    if (cfg[field] === undefined) {
      throw new Error(`${file} has no '${field}' in its metadata (checkpoints written by vicinity train record it); ` +
        `pass ${FLAG_FOR[field] ?? `the ${field} flag`}`);
    }
  }
  return checkCfg(file, cfg as PretrainedCfg);
}

function checkCfg(file: string, cfg: PretrainedCfg): PretrainedCfg {
  const [c] = cfg.input_size;
  if (cfg.label_names.length !== cfg.num_classes) {
    throw new Error(`${file}: ${cfg.label_names.length} class names for ${cfg.num_classes} classes; ` +
      'pass one name per class with --classes');
  }
  if (c !== 1 && c !== 3) throw new Error(`${file}: input_size has ${c} channels; vicinity reads images as 1 or 3 channels`);
  for (const key of ['mean', 'std'] as const) {
    if (cfg[key].length !== 1 && cfg[key].length !== c) {
      throw new Error(`${file}: ${key} has ${cfg[key].length} values for ${c} channels; pass --${key} with 1 or ${c} values`);
    }
  }
  return cfg;
}

/** The model a config describes, built with its options (weights not loaded). */
export function createModelFromCfg(cfg: PretrainedCfg): Classifier {
  const [channels, h, w] = cfg.input_size;
  return createModel(cfg.architecture, {
    ...cfg.model_args, numClasses: cfg.num_classes, inChannels: channels, inputSize: h === w ? h : [h, w],
  });
}

/** The evaluation transform a config describes (the same one `vicinity eval` applies). */
export function evalTransformFromCfg(cfg: PretrainedCfg): TransformSpec {
  const [channels, h, w] = cfg.input_size;
  const spec: TransformSpec = {
    size: [h, w], channels: channels as 1 | 3, mean: [...cfg.mean], std: [...cfg.std], train: false,
    interpolation: cfg.interpolation,
  };
  if (cfg.crop_mode === 'center') spec.centerCropPct = cfg.crop_pct;
  return spec;
}
