/**
 * A checkpoint as `predict` and `explain` meet it: its pretrained_cfg (train/model-metadata.ts)
 * completed from flags, the model built from it with the weights loaded strictly, and images read
 * through the config's evaluation transform into a batch tensor.
 */
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { decodeImageFile } from '../data/image-decode.js';
import { isImageFileName } from '../data/image-folder.js';
import { createRng } from '../data/rng.js';
import { applyTransforms } from '../data/transforms/pipeline.js';
import type { TransformSpec } from '../data/transforms/spec.js';
import type { Classifier } from '../models/registry.js';
import { tensor } from '../tensor/creation.js';
import type { Device, Tensor } from '../tensor/tensor.js';
import {
  decodePretrainedCfg, evalTransformFromCfg, readCheckpointMetadata, resolvePretrainedCfg, type CfgOverrides, type PretrainedCfg,
} from '../train/model-metadata.js';
import { loadModel } from './eval.js';

/** A loaded checkpoint: the model (eval mode, on its device), its config and eval transform. */
export interface CheckpointModel {
  model: Classifier;
  cfg: PretrainedCfg;
  transform: TransformSpec;
  device: Device;
}

/** Reads a checkpoint's config (flags filling what it lacks) and loads its weights, strictly. */
export async function loadCheckpointModel(file: string, flags: CfgOverrides = {}, device: Device = 'cpu'): Promise<CheckpointModel> {
  const meta = await readCheckpointMetadata(file);
  const cfg = resolvePretrainedCfg(file, decodePretrainedCfg(meta, file), flags);
  const model = await loadModel(file, cfg, meta.model);
  model.eval();
  if (device !== 'cpu') model.to({ device });
  return { model, cfg, transform: evalTransformFromCfg(cfg), device };
}

/**
 * The image files the arguments name: files as given, directories searched recursively (sorted by
 * path, so the order is stable).
 *
 * Errors: an Error naming an argument that does not exist, a file that is not a .png/.jpg/.jpeg,
 * or inputs that hold no images at all.
 */
export async function listImages(inputs: string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = (await readdir(dir, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      else if (e.isFile() && isImageFileName(e.name)) out.push(full);
    }
  };
  for (const input of inputs) {
    const info = await stat(input).catch((e: NodeJS.ErrnoException) => {
      throw new Error(`cannot read ${input} (${e.code}); pass image files (.png, .jpg, .jpeg) or directories holding them`);
    });
    if (info.isDirectory()) await walk(input);
    else if (isImageFileName(input)) out.push(input);
    else throw new Error(`${input} is not a .png, .jpg or .jpeg image`);
  }
  if (out.length === 0) throw new Error(`no .png, .jpg or .jpeg images in ${inputs.join(', ')}`);
  return out;
}

/** Decodes image files and applies the eval transform: a (N, C, H, W) float32 tensor on `device`. */
export async function readImageBatch(files: string[], transform: TransformSpec, device: Device = 'cpu'): Promise<Tensor> {
  const [h, w] = transform.size;
  const per = transform.channels * h * w;
  const data = new Float32Array(files.length * per);
  const rng = createRng(0);   // unused by the deterministic eval path; applyTransforms takes one
  for (const [i, file] of files.entries()) {
    applyTransforms(await decodeImageFile(file, transform.channels), transform, rng, data, i * per);
  }
  const batch = tensor(data, { shape: [files.length, transform.channels, h, w] });
  if (device === 'cpu') return batch;
  const moved = batch.to({ device });
  batch.dispose();
  return moved;
}
