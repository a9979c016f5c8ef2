/**
 * A model's summary: parameters, MACs (model-specs.md §0, through macs.ts), a per-stage breakdown
 * (every top-level child: its parameters, and the MACs of the ops that ran inside it) and a layer
 * table (name, type, parameters, MACs, output shape), like torchinfo's summary.
 *
 *   const s = summarizeModel(createModel('resnet50'), [1, 3, 224, 224]);
 *   console.log(formatSummary(s, { depth: 2 }));
 */
import type { AnyModule, Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { countMacs, type ModuleMacs } from './macs.js';

export interface SummaryRow {
  /** Dotted module name ('layer1.0.conv2'). */
  name: string;
  /** The module's class. */
  type: string;
  /** Parameters of the module and its descendants. */
  parameters: number;
  /** Headline MACs of the ops that ran while its forward ran, its children's included. */
  macs: number;
  /** MACs outside the headline (sampling), likewise. */
  other: number;
  /** Its first output's shape; null when its forward did not run or returned no tensor. */
  outputShape: number[] | number[][] | null;
}

export interface ModelSummary {
  type: string;
  parameters: number;
  trainableParameters: number;
  macs: number;
  otherMacs: number;
  byOp: Record<string, number>;
  otherByOp: Record<string, number>;
  inputShape: number[];
  outputShape: number[] | number[][] | null;
  /** One row per top-level child, plus '(own)' for ops the model's own forward runs directly. */
  stages: SummaryRow[];
  /** Every module below the model (depth first), down to `depth`. */
  layers: (SummaryRow & { depth: number })[];
}

/**
 * Summarises `model` on one forward pass of `input` (a tensor or a shape; use batch 1 for
 * per-image MACs). `depth` limits the layer table (1: top-level children only; default all).
 */
export function summarizeModel(model: Module, input: Tensor | number[], options: { depth?: number } = {}): ModelSummary {
  const depthLimit = options.depth ?? Infinity;
  const count = countMacs(model, input, { perModule: true });
  const perModule = count.perModule as Map<string, ModuleMacs>;
  const params = parametersPerModule(model);
  const row = (name: string, m: AnyModule): SummaryRow => {
    const seen = perModule.get(name);
    return {
      name, type: m.constructor.name, parameters: params.get(name) ?? 0,
      macs: seen?.macs ?? 0, other: seen?.other ?? 0, outputShape: seen?.outputShape ?? null,
    };
  };
  const stages = Array.from(model.namedChildren(), ([name, m]) => row(name, m));
  const ownMacs = count.total - stages.reduce((n, s) => n + s.macs, 0);
  const ownOther = count.other - stages.reduce((n, s) => n + s.other, 0);
  if (ownMacs > 0 || ownOther > 0) {
    stages.push({ name: '(own)', type: model.constructor.name, parameters: ownParameters(model), macs: ownMacs, other: ownOther, outputShape: null });
  }
  const layers: ModelSummary['layers'] = [];
  for (const [name, m] of model.namedModules()) {
    const depth = name === '' ? 0 : name.split('.').length;
    if (depth >= 1 && depth <= depthLimit) layers.push({ ...row(name, m), depth });
  }
  return {
    type: model.constructor.name,
    parameters: model.numParameters(),
    trainableParameters: model.numParameters({ trainableOnly: true }),
    macs: count.total, otherMacs: count.other, byOp: count.byOp, otherByOp: count.otherByOp,
    inputShape: count.inputShape, outputShape: perModule.get('')?.outputShape ?? null,
    stages, layers,
  };
}

/** Parameter elements per module name ('' = the model), descendants included. */
export function parametersPerModule(model: Module): Map<string, number> {
  const out = new Map<string, number>();
  for (const [name, p] of model.namedParameters()) {
    const parts = name.split('.');
    for (let i = 0; i < parts.length; i++) {
      const prefix = parts.slice(0, i).join('.');
      out.set(prefix, (out.get(prefix) ?? 0) + p.numel);
    }
  }
  return out;
}

function ownParameters(model: Module): number {
  let n = 0;
  for (const [name, p] of model.namedParameters()) if (!name.includes('.')) n += p.numel;
  return n;
}

/** 25557032 → '25.557 M', 4089184256 → '4.089 G', 512 → '512'. */
export function formatCount(n: number): string {
  if (Math.abs(n) >= 1e9) return `${(n / 1e9).toFixed(3)} G`;
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(3)} M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)} k`;
  return String(n);
}

const shapeText = (s: SummaryRow['outputShape']) =>
  s === null ? '-' : Array.isArray(s[0]) ? (s as number[][]).map((x) => `[${x.join(', ')}]`).join(' ') : `[${(s as number[]).join(', ')}]`;

/**
 * A plain-text table; `align` has one letter per column, 'l' or 'r' (default: the first column
 * left, the rest right).
 */
export function formatTable(header: string[], rows: string[][], align = 'l' + 'r'.repeat(Math.max(0, header.length - 1))): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (align[i] === 'r' ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The summary as text: totals, the per-stage table and (unless `layers: false`) the layer table. */
export function formatSummary(s: ModelSummary, options: { layers?: boolean } = {}): string {
  const lines = [
    `${s.type}: input [${s.inputShape.join(', ')}] → ${shapeText(s.outputShape)}`,
    `parameters  ${s.parameters.toLocaleString('en-US')} (${formatCount(s.parameters)}), trainable ${s.trainableParameters.toLocaleString('en-US')}`,
    `MACs        ${s.macs.toLocaleString('en-US')} (${formatCount(s.macs)})` +
      (s.otherMacs ? `, other (sampling) ${s.otherMacs.toLocaleString('en-US')} (${formatCount(s.otherMacs)})` : ''),
    `by op       ${Object.entries(s.byOp).map(([op, n]) => `${op} ${formatCount(n)}`).join(', ') || '-'}`,
    '',
    formatTable(['stage', 'type', 'params', 'MACs', 'output'],
      s.stages.map((r) => [r.name, r.type, formatCount(r.parameters), formatCount(r.macs), shapeText(r.outputShape)]), 'llrrl'),
  ];
  if (options.layers ?? true) {
    lines.push('', formatTable(['layer', 'type', 'params', 'MACs', 'output'],
      s.layers.map((r) => [`${'  '.repeat(r.depth - 1)}${r.name}`, r.type, formatCount(r.parameters), formatCount(r.macs), shapeText(r.outputShape)]),
      'llrrl'));
  }
  return lines.join('\n');
}
