/**
 * `vicinity info <model>` and `vicinity models [pattern]`: a registered model's metadata, its
 * measured parameters and MACs beside the registry's targets, the per-stage breakdown and the
 * layer table; and the list of registered models.
 */
import { formatCount, formatSummary, formatTable, summarizeModel, type ModelSummary } from '../analysis/model-info.js';
import { createModel, listModels, type ModelInfo } from '../models/registry.js';
import { cliListModels, cliModelInfo } from './model-names.js';

export interface InfoCommandOptions {
  /** Input side; default the model's. */
  inputSize?: number;
  json?: boolean;
  /** Depth of the layer table; default 2 (down to `layer1.0`); below 2 it is left out (the stage table shows depth 1). */
  depth?: number;
}

export interface ModelReport {
  info: ModelInfo;
  summary: ModelSummary;
  /**
   * Measured against the registry's targets: MACs at the default input size only, parameters also
   * at other sizes unless the model is built for its input size.
   */
  checks: { name: 'params' | 'macs'; target: number; measured: number; ok: boolean }[];
}

/** Builds the model, measures it on one image and compares with its registry entry. */
export function modelReport(name: string, options: Pick<InfoCommandOptions, 'inputSize' | 'depth'> = {}): ModelReport {
  const info = cliModelInfo(name);
  const side = options.inputSize ?? info.inputSize;
  if (!Number.isInteger(side) || side < 1) throw new RangeError(`info: inputSize must be a positive integer, got ${side}`);
  const model = createModel(name, { inputSize: side });
  try {
    const summary = summarizeModel(model, [1, info.inChannels, side, side], { depth: Math.max(1, options.depth ?? 2) });
    const checks: ModelReport['checks'] = [];
    const atDefault = side === info.inputSize;
    if (atDefault || !info.fixedInputSize) {
      checks.push({ name: 'params', target: info.params, measured: summary.parameters, ok: info.params === summary.parameters });
    }
    if (atDefault) checks.push({ name: 'macs', target: info.macs, measured: summary.macs, ok: info.macs === summary.macs });
    return { info, summary, checks };
  } finally {
    model.dispose();
  }
}

/** Prints `modelReport` as text or JSON; returns the exit code (1 when a target is missed). */
export async function infoCommand(name: string, options: InfoCommandOptions = {}): Promise<number> {
  const report = modelReport(name, options);
  const ok = report.checks.every((c) => c.ok);
  if (options.json) {
    console.log(JSON.stringify({ ok, ...report }, null, 2));
    return ok ? 0 : 1;
  }
  const { info, summary } = report;
  console.log(`${info.name} — ${info.description}`);
  console.log(`paper       ${info.paper}${info.paperReports ? ` (reports ${info.paperReports})` : ''}`);
  console.log(`defaults    ${info.inChannels}×${info.inputSize}×${info.inputSize} input, ${info.numClasses} classes` +
    `${info.fixedInputSize ? ', built for its input size' : ''}; recipe ${info.recipe}`);
  for (const c of report.checks) {
    const diff = c.target ? ((c.measured - c.target) / c.target) * 100 : 0;
    console.log(`${c.name.padEnd(11)} ${c.measured.toLocaleString('en-US')} vs target ${c.target.toLocaleString('en-US')} ` +
      `(${diff >= 0 ? '+' : ''}${diff.toFixed(3)}%) ${c.ok ? 'ok' : 'MISMATCH'}`);
  }
  console.log('');
  console.log(formatSummary(summary, { layers: (options.depth ?? 2) >= 2 }));
  return ok ? 0 : 1;
}

/**
 * Prints the registered models matching `pattern` (a glob) with their targets; returns the exit code.
 * Errors: a malformed glob, or one that matches nothing.
 */
export function listModelsCommand(pattern?: string, options: { json?: boolean } = {}): number {
  const names = cliListModels(pattern);
  if (names.length === 0) {
    // An error: stderr, in the CLI's form (main.ts prints it with the vicinity: prefix, exit code 1).
    throw new Error(`no model matches '${pattern}'; the registered models are ${listModels().join(', ')}`);
  }
  const infos = names.map((n) => cliModelInfo(n));
  if (options.json) {
    console.log(JSON.stringify(infos, null, 2));
  } else {
    console.log(formatTable(['model', 'input', 'params', 'MACs', 'recipe', 'paper'],
      infos.map((i) => [i.name, `${i.inChannels}×${i.inputSize}²`, formatCount(i.params), formatCount(i.macs), i.recipe, i.paper]), 'lrrrll'));
  }
  return 0;
}
