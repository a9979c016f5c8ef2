/**
 * `vicinity sweep <ablation>`: one of the papers' ablations as one command. Every setting trains
 * the same model with the same recipe, data, seed and budget (--epochs, --train-limit), differing
 * only in the architecture settings (createModel's modelArgs, recorded in each checkpoint's
 * pretrained_cfg so predict/explain/report rebuild the variant); then <out>/sweep.csv compares
 * them and <out>/report.html shows the comparison (`vicinity report <out>` rebuilds it).
 *
 *   la-kernel      LA-layer kernel size k (LA-layer §4, ablation of k; model la_resnet_nano_s2)
 *   la-constraint  LA-layer offset constraint L of Eq. (7) (LA-layer §4; la_resnet_nano_s2)
 *   halo-block     HaloNet block size b and halo h (HaloNet's block/halo ablation; halonet_nano)
 *   lsag-shifts    LSAG number of shifted variants T = numShifts + 1 (LSAG §3.1, §4.1 "#Shifting"; lsag_nano):
 *                  0 (unshifted only), 4, 8 (the horizontal/vertical shifts, the paper's T = 9), 17 (all, T = 18)
 *
 * Each run is a full `vicinity train` run directory under <out>/<setting>.
 */
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { modelInfo } from '../models/registry.js';
import { defaultTrainConfig, mergeConfig } from '../train/settings.js';
import type { TrainConfig } from '../train/train-config.js';
import { runTraining } from '../train/trainer.js';
import { buildSweepReport } from './report.js';

export interface Ablation {
  model: string;
  paper: string;
  settings: Record<string, number>[];
  /**
   * The recipe of every setting when not the model's own: lsag_nano's own is the paper's
   * 'lsag-adamw' (300 epochs, 5 warm-up epochs, DeiT augmentation), so its sweep trains with
   * 'fashion-mnist-sgd' like the other nano sweeps and docs/results.md.
   */
  recipe?: string;
}

export const ABLATIONS: Readonly<Record<string, Ablation>> = {
  'la-kernel': {
    model: 'la_resnet_nano_s2', paper: 'LA-layer: kernel size k of the deformed window',
    settings: [{ kernelSize: 3 }, { kernelSize: 5 }, { kernelSize: 7 }],
  },
  'la-constraint': {
    model: 'la_resnet_nano_s2', paper: 'LA-layer: offset constraint L of Eq. (7)',
    settings: [{ constraint: 1 }, { constraint: 2 }, { constraint: 3 }, { constraint: 5 }],
  },
  'halo-block': {
    model: 'halonet_nano', paper: 'HaloNet: block size b and halo h',
    settings: [{ blockSize: 4, haloSize: 1 }, { blockSize: 4, haloSize: 2 }, { blockSize: 4, haloSize: 3 }, { blockSize: 2, haloSize: 1 }],
  },
  'lsag-shifts': {
    model: 'lsag_nano', paper: 'LSAG: number of shifted variants T (§3.1; §4.1 Table 6 #Shifting)', recipe: 'fashion-mnist-sgd',
    settings: [{ numShifts: 0 }, { numShifts: 4 }, { numShifts: 8 }, { numShifts: 17 }],
  },
};

export interface SweepOptions {
  /** Run on another model whose entry takes the same modelArgs. */
  model?: string;
  /** Train every setting with this recipe instead of the ablation's (default: its `recipe`, else the model's). */
  recipe?: string;
  epochs?: number;
  trainLimit?: number;
  dataset?: string;
  dataSource?: 'auto' | 'full' | 'subset';
  dataRoot?: string;
  seed?: number;
  workers?: number;
  device?: 'cpu' | 'cuda';
  /** Default runs/sweep-<ablation>. */
  out?: string;
  /** Run only the settings at these 0-based positions (comma-separated), e.g. to split a sweep over machines. */
  only?: string;
}

/** 'kernelSize=5,constraint=3' for a setting; the run's directory name. */
export function settingName(setting: Record<string, number>): string {
  return Object.entries(setting).map(([k, v]) => `${k}=${v}`).join(',');
}

/** Runs the sweep; returns the CSV rows written. */
export async function runSweep(ablation: string, o: SweepOptions = {}, log: (line: string) => void = () => {}): Promise<Record<string, string>[]> {
  const spec = ABLATIONS[ablation];
  if (!spec) throw new Error(`unknown ablation '${ablation}'; the ablations are ${Object.keys(ABLATIONS).join(', ')}`);
  const model = o.model ?? spec.model;
  const takes = modelInfo(model).modelArgs ?? [];
  const needs = [...new Set(spec.settings.flatMap((s) => Object.keys(s)))];
  const missing = needs.filter((k) => !takes.includes(k));
  if (missing.length) throw new Error(`${model} does not take ${missing.join(', ')} (its modelArgs: ${takes.join(', ') || 'none'}); ${ablation} runs on ${spec.model}`);
  const out = o.out ?? path.join('runs', `sweep-${ablation}`);
  const picked = o.only === undefined ? spec.settings.map((_, i) => i) : o.only.split(',').map(Number);
  for (const i of picked) {
    if (!(Number.isInteger(i) && i >= 0 && i < spec.settings.length)) {
      throw new Error(`--only ${o.only}: settings are numbered 0..${spec.settings.length - 1} (${spec.settings.map(settingName).join('; ')})`);
    }
  }
  await mkdir(out, { recursive: true });
  const rows: Record<string, string>[] = [];
  for (const i of picked) {
    const setting = spec.settings[i];
    const name = settingName(setting);
    const flags: Partial<TrainConfig> = {
      model, recipe: o.recipe ?? spec.recipe, dataset: o.dataset, dataSource: o.dataSource, dataRoot: o.dataRoot, trainLimit: o.trainLimit, seed: o.seed,
      workers: o.workers, device: o.device, epochs: o.epochs, progress: 'none', out: path.join(out, name.replace(/[=,]/g, '_')),
    };
    const config = mergeConfig(defaultTrainConfig(), {}, flags);
    log(`sweep ${ablation}: ${name} (${picked.indexOf(i) + 1}/${picked.length}) → ${config.out}`);
    const result = await runTraining(config, { modelArgs: setting, log: () => {} });
    const runConfig = JSON.parse(await readFile(path.join(config.out, 'config.json'), 'utf8')) as { model: { parameters: number }; data: { train: number }; recipe: { name: string; epochs: number } };
    rows.push({
      setting: name, model, ...Object.fromEntries(needs.map((k) => [k, String(setting[k] ?? '')])),
      params: String(runConfig.model.parameters), recipe: runConfig.recipe.name, epochs: String(result.epochs), train_images: String(runConfig.data.train),
      top1: result.top1.toFixed(2), top5: result.top5.toFixed(2), best_top1: result.bestTop1.toFixed(2), eval_loss: result.evalLoss.toFixed(4),
      train_seconds: result.seconds.toFixed(1), run: path.basename(config.out),
    });
    log(`  top-1 ${result.top1.toFixed(2)}%  (${result.seconds.toFixed(1)} s)`);
  }
  const columns = Object.keys(rows[0]);
  const csv = [columns.join(','), ...rows.map((r) => columns.map((c) => r[c]).join(','))].join('\n') + '\n';
  await writeFile(path.join(out, 'sweep.csv.tmp'), csv);
  await rename(path.join(out, 'sweep.csv.tmp'), path.join(out, 'sweep.csv'));
  const html = await buildSweepReport(out, `${ablation} on ${model}: ${spec.paper}`);
  await writeFile(path.join(out, 'report.html.tmp'), html);
  await rename(path.join(out, 'report.html.tmp'), path.join(out, 'report.html'));
  return rows;
}

/** Runs `vicinity sweep`; returns the exit code. */
export async function sweepCommand(ablation: string, o: SweepOptions): Promise<number> {
  const out = o.out ?? path.join('runs', `sweep-${ablation}`);
  const rows = await runSweep(ablation, { ...o, out }, (line) => process.stderr.write(`${line}\n`));
  const width = Math.max(...rows.map((r) => r.setting.length), 7);
  console.log(`${'setting'.padEnd(width)}  params      top-1   top-5   seconds`);
  for (const r of rows) {
    console.log(`${r.setting.padEnd(width)}  ${r.params.padStart(9)}  ${r.top1.padStart(6)}  ${r.top5.padStart(6)}  ${r.train_seconds.padStart(7)}`);
  }
  console.log(`csv: ${path.join(out, 'sweep.csv')}\nreport: ${path.join(out, 'report.html')}`);
  return 0;
}
