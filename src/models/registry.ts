/**
 * The model registry, after timm's (`timm.create_model`, `list_models`): every network by its
 * papers'/timm's snake_case name, built from one entry table per paper. The tables are listed
 * explicitly below; a name defined twice fails at load time.
 *
 *   const model = createModel('resnet50', { numClasses: 10 });
 *   listModels('resnext*');            // ['resnext101_32x4d', 'resnext50_32x4d']
 *   modelInfo('resnet50').params;      // 25_557_032
 */
import { editDistance } from '../nn/edit-distance.js';
import { knownOptions, optionNames } from '../nn/layers/validation.js';
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';
import { baselineModels } from './entries/baselines.js';
import { haloNetModels } from './entries/halonet.js';
import { laModels } from './entries/la.js';
import { lesaModels } from './entries/lesa.js';
import { lsagModels } from './entries/lsag.js';
import { sasaModels } from './entries/sasa.js';
import { timmModels } from './entries/timm.js';

/**
 * A model the registry builds: a Module mapping images to logits, with its feature pyramid.
 *
 * Shape: `forward` (B, inChannels, H, W) → (B, numClasses); `forwardFeatures` → one map
 * (B, C_i, H_i, W_i) per stage or level, shallowest first (timm's `features_only`), the last of
 * which feeds the classifier head.
 */
export interface Classifier extends Module {
  /** Width of the logits. */
  readonly numClasses: number;
  forwardFeatures(x: Tensor): Tensor[];
}

/** What `createModel` passes on to an entry's builder. */
export interface ModelOptions {
  /** Default: the entry's (1000 for ImageNet models, 10 for the small ones). */
  numClasses?: number;
  /** Default: the entry's (3, or 1 for the Fashion-MNIST models). */
  inChannels?: number;
  /** Input side or [H, W]; default the entry's. Models with `fixedInputSize` are built for it. */
  inputSize?: number | [number, number];
  /** Stochastic depth of the last block (timm's drop_path_rate); default 0. */
  dropPathRate?: number;
  /** Architecture settings the entry exposes for ablations (its `modelArgs` lists them), e.g. LA's kernelSize. */
  modelArgs?: Record<string, number>;
}

const MODEL_OPTION_NAMES = optionNames<ModelOptions>({ numClasses: 1, inChannels: 1, inputSize: 1, dropPathRate: 1, modelArgs: 1 });

/** One row of a paper's table. `params` and `macs` hold at the entry's default options. */
export interface ModelEntry {
  /** The paper (or source) and where in it: 'LA-layer Table 1; LESA Table 2'. */
  paper: string;
  /** One line for listings. */
  description: string;
  /** Default input side (square). */
  inputSize: number;
  inChannels: number;
  numClasses: number;
  /** True when the architecture depends on inputSize (a classifier or embedding sized for it). */
  fixedInputSize?: boolean;
  /** Exact parameter count at the defaults (model-specs.md §0). */
  params: number;
  /** Exact MACs of one image at the default input size (model-specs.md §0). */
  macs: number;
  /** What the paper reports, as printed: '25.5 M / 4.1 G'. */
  paperReports?: string;
  /** Name of the training recipe used for this model (resolved by the training code). */
  recipe: string;
  /** The modelArgs keys the builder reads (`vicinity sweep`'s ablations); none when absent. */
  modelArgs?: readonly string[];
  build: (options: ResolvedModelOptions) => Classifier;
}

export type ResolvedModelOptions = Required<Pick<ModelOptions, 'numClasses' | 'inChannels' | 'dropPathRate'>> & {
  inputSize: number | [number, number];
  modelArgs?: Record<string, number>;
};

/** An entry's metadata, without its builder. */
export type ModelInfo = Omit<ModelEntry, 'build'> & { name: string };

/** Thrown for a name the registry does not have; `suggestions` are the closest names. */
export class UnknownModelError extends Error {
  constructor(readonly model: string, readonly suggestions: string[]) {
    const hint = suggestions.length
      ? `did you mean ${suggestions.join(', ')}?`
      : `the registered models are ${MODEL_NAMES.join(', ')}`;
    super(`unknown model '${model}'; ${hint} (listModels(pattern) lists them, e.g. listModels('resnet*'))`);
    this.name = 'UnknownModelError';
  }
}

// ---- the tables --------------------------------------------------------------------------------

// halonet_h1 is one network in both the slides' table and timm's (8,100,056 parameters, the same
// MACs); the registry builds timm's, whose state-dict keys are timm's, so that timm checkpoints load.
// haloNetModels.halonet_h1 (vicinity's ResNet keys) stays available to code that imports the table.
const { halonet_h1: _slidesH1, ...haloNetTable } = haloNetModels;

const TABLES: Record<string, Record<string, ModelEntry>> = {
  baselines: baselineModels,
  la: laModels,
  lesa: lesaModels,
  halonet: haloNetTable,
  lsag: lsagModels,
  sasa: sasaModels,
  timm: timmModels,
};

const MODELS: ReadonlyMap<string, ModelEntry> = mergeTables(TABLES);
// Natural order, as timm lists: resnet18 < resnet50 < resnet101.
const MODEL_NAMES = [...MODELS.keys()].sort((a, b) => a.localeCompare(b, 'en', { numeric: true }));

function mergeTables(tables: Record<string, Record<string, ModelEntry>>): Map<string, ModelEntry> {
  const out = new Map<string, ModelEntry>();
  const origin = new Map<string, string>();
  for (const [table, entries] of Object.entries(tables)) {
    for (const [name, entry] of Object.entries(entries)) {
      if (out.has(name)) {
        throw new Error(`model registry: '${name}' is defined in both the ${origin.get(name)} and the ${table} tables; rename one`);
      }
      out.set(name, entry);
      origin.set(name, table);
    }
  }
  return out;
}

// ---- lookup ------------------------------------------------------------------------------------

function entryOf(name: string): ModelEntry {
  const entry = MODELS.get(name);
  if (!entry) throw new UnknownModelError(name, closeMatches(name, MODEL_NAMES));
  return entry;
}

/**
 * Builds a registered model with fresh weights (each builder's own initialisation).
 *
 * Errors: UnknownModelError (with the closest names) for an unknown name; TypeError for an
 * unknown option or modelArgs key (naming the nearest), RangeError for values the builder cannot
 * take (the rule of nn/layers/validation.ts).
 */
export function createModel(name: string, options: ModelOptions = {}): Classifier {
  const entry = entryOf(name);
  knownOptions('createModel', options, MODEL_OPTION_NAMES);
  const args = options.modelArgs ?? {};
  const unknown = Object.keys(args).filter((k) => !(entry.modelArgs ?? []).includes(k));
  if (unknown.length) {
    if (!entry.modelArgs?.length) throw new TypeError(`createModel: ${name} takes no modelArgs, got ${unknown.join(', ')}`);
    knownOptions(`createModel: ${name} modelArgs`, args, entry.modelArgs);
  }
  return entry.build({
    ...(Object.keys(args).length ? { modelArgs: { ...args } } : {}),
    numClasses: options.numClasses ?? entry.numClasses,
    inChannels: options.inChannels ?? entry.inChannels,
    inputSize: options.inputSize ?? entry.inputSize,
    dropPathRate: options.dropPathRate ?? 0,
  });
}

/** Registered names matching a glob (`*`, `?`, `[abc]`; case-insensitive) in natural order; all without one. */
export function listModels(pattern?: string | string[]): string[] {
  if (pattern === undefined) return [...MODEL_NAMES];
  const patterns = (Array.isArray(pattern) ? pattern : [pattern]).map(globToRegExp);
  return MODEL_NAMES.filter((name) => patterns.some((re) => re.test(name)));
}

/** The metadata of a registered model: paper and table, default input, parameter and MAC targets, recipe. */
export function modelInfo(name: string): ModelInfo {
  const { build: _build, ...info } = entryOf(name);
  return { name, ...info };
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[' && glob.indexOf(']', i + 1) > i + 1) {
      const end = glob.indexOf(']', i + 1);
      const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
      re += body.startsWith('!') ? `[^${body.slice(1)}]` : `[${body}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\\]]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'i');
}

/** Up to five names near `query`: sharing a substring with it, or within a small edit distance. */
function closeMatches(query: string, names: string[]): string[] {
  const q = query.toLowerCase();
  const limit = Math.max(2, Math.floor(q.length / 3));
  return names
    .map((name) => ({ name, d: editDistance(q, name.toLowerCase()), sub: name.includes(q) || (q.length >= 3 && q.includes(name)) }))
    .filter((m) => m.sub || m.d <= limit)
    .sort((a, b) => a.d - b.d || a.name.localeCompare(b.name))
    .slice(0, 5)
    .map((m) => m.name);
}

