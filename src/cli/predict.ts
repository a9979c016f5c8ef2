/**
 * `vicinity predict <checkpoint> <image|dir...>`: the top-k classes of each image, with the class
 * names and probabilities, as a table or JSON. Images of any size go through the checkpoint's eval
 * transform (its pretrained_cfg: resize or resize-and-centre-crop, then mean/std); directories are
 * searched recursively and run in batches.
 */
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import type { Device } from '../tensor/tensor.js';
import type { CfgOverrides } from '../train/model-metadata.js';
import { listImages, loadCheckpointModel, readImageBatch, type CheckpointModel } from './checkpoint-model.js';

export interface PredictOptions extends CfgOverrides {
  /** Classes listed per image; default 5 (at most the number of classes). */
  topK?: number;
  /** Images per forward pass; default 64. */
  batchSize?: number;
  device?: Device;
  json?: boolean;
}

/** One image's top-k, most probable first; probabilities from the softmax of the logits. */
export interface Prediction {
  file: string;
  top: { index: number; label: string; probability: number }[];
}

/** Runs the model on every file, `batchSize` at a time. */
export async function predictFiles(loaded: CheckpointModel, files: string[], options: { topK?: number; batchSize?: number } = {}): Promise<Prediction[]> {
  const { model, cfg, transform, device } = loaded;
  const k = Math.min(options.topK ?? 5, cfg.num_classes);
  const batchSize = options.batchSize ?? 64;
  const out: Prediction[] = [];
  for (let start = 0; start < files.length; start += batchSize) {
    const chunk = files.slice(start, start + batchSize);
    const batch = await readImageBatch(chunk, transform, device);
    const [probs, indices] = noGrad(() => tidy(() => {
      const logits = model.forward(batch);
      if (logits.shape.length !== 2 || logits.shape[1] !== cfg.num_classes) {
        throw new Error(`${cfg.architecture} returned logits of shape [${logits.shape}], expected [N, ${cfg.num_classes}]`);
      }
      const { values, indices: idx } = logits.softmax(1).topk(k, 1);
      return [Array.from(values.float().cpu().dataSync() as Float32Array), Array.from(idx.cpu().dataSync() as BigInt64Array, Number)];
    }));
    batch.dispose();
    for (const [i, file] of chunk.entries()) {
      out.push({
        file,
        top: Array.from({ length: k }, (_, j) => {
          const index = indices[i * k + j];
          return { index, label: cfg.label_names[index], probability: probs[i * k + j] };
        }),
      });
    }
  }
  return out;
}

/** Runs `vicinity predict`; returns the exit code. */
export async function predictCommand(checkpoint: string, inputs: string[], options: PredictOptions = {}): Promise<number> {
  const files = await listImages(inputs);
  const loaded = await loadCheckpointModel(checkpoint, options, options.device ?? 'cpu');
  try {
    const predictions = await predictFiles(loaded, files, options);
    if (options.json) {
      console.log(JSON.stringify({ checkpoint, model: loaded.cfg.architecture, predictions }, null, 2));
      return 0;
    }
    // Columns padded to their widest cell.
    const rows = predictions.map((p) => [p.file, ...p.top.map((t) => `${t.label} ${(100 * t.probability).toFixed(1)}%`)]);
    const k = predictions[0]?.top.length ?? 0;
    const header = ['image', ...Array.from({ length: k }, (_, j) => `top-${j + 1}`)];
    const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)));
    for (const r of [header, ...rows]) console.log(r.map((cell, c) => cell.padEnd(widths[c])).join('  ').trimEnd());
    return 0;
  } finally {
    loaded.model.dispose();
  }
}
