/**
 * Every user setting of a training run in one table — TrainConfig's own keys and RecipeSettings'
 * overrides — with its flag, type, range, default and help. Everything else derives from it:
 * config-file loading and validation, the merge of defaults < file < flags, the `vicinity train`
 * flags and their help texts, and `--print-config`.
 *
 *   const file = await loadConfigFile('run.yaml');                       // validated Partial<TrainConfig>
 *   const flags = validateConfig(flagValues(command.opts()), 'command line', { flags: true });
 *   const config = mergeConfig(defaultTrainConfig(), file, flags);     // flags > file > defaults
 *
 * Config files are YAML or JSON, flat mappings of the keys below. Keys may be written camelCase
 * (`weightDecay`), snake_case (`weight_decay`, as timm's args.yaml) or kebab-case
 * (`weight-decay`, as the flags). Relative paths are taken from the current directory, like the
 * flags' (and timm's). Recipe settings left out mean "the recipe's value" (recipes.ts).
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Option, type Command } from 'commander';
import YAML from 'yaml';
import { DATASET_NAMES } from '../data/load-dataset.js';
import { parseRandAugment } from '../data/transforms/rand-augment.js';
import { listModels, UnknownModelError, modelInfo } from '../models/registry.js';
import { nearestNames } from '../nn/edit-distance.js';
import { RECIPES } from './recipes.js';
import type { RecipeSettings, TrainConfig } from './train-config.js';

/** How a setting is written and checked: numbers with bounds, a switch, free text, one of `choices`, a file path. */
export type SettingType = 'int' | 'number' | 'bool' | 'string' | 'choice' | 'path';

/** One row of the table: a TrainConfig key as the user sees it. */
export interface SettingSpec {
  key: keyof TrainConfig & string;
  /** The `vicinity train` flag: '--' + the key in kebab-case. */
  flag: string;
  type: SettingType;
  /** 'run': TrainConfig's own settings; 'recipe': RecipeSettings overrides (default: the recipe's). */
  group: 'run' | 'recipe';
  /** Bounds of int/number settings; `…Exclusive` makes the bound open. */
  min?: number;
  minExclusive?: boolean;
  max?: number;
  maxExclusive?: boolean;
  choices?: readonly string[];
  help: string;
  /** The value's name in help texts, e.g. '<name>' (default: by type, see PLACEHOLDER). */
  valueName?: string;
  /** Extra check of a well-typed value (registry names): the problem, or undefined when fine. */
  check?: (value: string) => string | undefined;
}

/** Placeholder shown after each flag in help texts. */
const PLACEHOLDER: Record<SettingType, string> = {
  int: '<n>', number: '<x>', bool: '', string: '<text>', choice: '<name>', path: '<path>',
};

/** `<n>`, or short choice lists themselves: `<cpu|cuda>` (long ones go in the help text). */
function placeholder(spec: SettingSpec): string {
  if (spec.valueName) return spec.valueName;
  return spec.choices && spec.choices.join('|').length <= 20 ? `<${spec.choices.join('|')}>` : PLACEHOLDER[spec.type];
}

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

function row(key: SettingSpec['key'], type: SettingType, group: SettingSpec['group'], help: string,
  extra: Partial<SettingSpec> = {}): SettingSpec {
  return { key, flag: `--${kebab(key)}`, type, group, help, ...extra };
}

const PROBABILITY = { min: 0, max: 1 };
const FRACTION = { min: 0, max: 1, maxExclusive: true };

/** The table, in the order help texts and `--print-config` list it. */
export const TRAIN_SETTINGS: readonly SettingSpec[] = [
  // ---- what, on what, where ----
  row('model', 'string', 'run', 'registry name (vicinity list-models)', { check: checkModel, valueName: '<name>' }),
  row('dataset', 'choice', 'run', 'dataset to train and test on', { choices: DATASET_NAMES }),
  row('dataRoot', 'path', 'run', 'dataset directory (needed by mnist, cifar10, cifar100, imagefolder)'),
  row('dataSource', 'choice', 'run', "fashion-mnist: 'auto' (full if installed, else the bundled subset), 'full' or 'subset'",
    { choices: ['auto', 'full', 'subset'] }),
  row('recipe', 'string', 'run', "training recipe (default: the model's, see vicinity list-models)", { check: checkRecipe, valueName: '<name>' }),
  row('trainLimit', 'int', 'run', 'use only the first n training images (smoke runs); 0 = all', { min: 0 }),
  row('evalBatchSize', 'int', 'run', 'batch size of evaluation', { min: 1 }),
  row('workers', 'int', 'run', 'worker threads decoding and augmenting images; 0 = the main thread', { min: 0 }),
  row('seed', 'int', 'run', 'seed of initialisation, data order and augmentation', { min: 0 }),
  row('out', 'path', 'run', 'run directory: checkpoints, metrics.jsonl, summary.csv, config.json'),
  row('resume', 'path', 'run', 'continue exactly from a run directory or its state file'),
  // ---- fine-tuning (fine-tune.ts) ----
  row('pretrained', 'path', 'run', 'start from these weights (.safetensors, .pth, a timm train.py checkpoint): loaded strictly, then a new classifier'),
  row('pretrainedEma', 'bool', 'run', "take the EMA weights of the --pretrained checkpoint (timm's state_dict_ema)"),
  row('numClasses', 'int', 'run', "classifier outputs (default: the dataset's classes; not fewer)", { min: 1 }),
  row('freeze', 'int', 'run', 'with --pretrained: freeze the stem and the first n stages; 0 = none', { min: 0 }),
  row('inputSize', 'int', 'run', "train and test at this image side (e.g. a model trained at another resolution); default the model's", { min: 8 }),
  row('device', 'choice', 'run', 'where the model runs', { choices: ['cpu', 'cuda'] }),
  row('progress', 'choice', 'run', "'auto': a progress bar on a terminal, plain lines otherwise",
    { choices: ['auto', 'bar', 'plain', 'none'] }),
  // ---- recipe overrides ----
  row('epochs', 'int', 'recipe', 'training epochs', { min: 1 }),
  row('batchSize', 'int', 'recipe', 'training images per step', { min: 1 }),
  row('optimizer', 'choice', 'recipe', 'optimizer', { choices: ['sgd', 'adamw'] }),
  row('lr', 'number', 'recipe', 'peak learning rate (after warm-up)', { min: 0, minExclusive: true }),
  row('momentum', 'number', 'recipe', 'SGD momentum, or AdamW beta1', FRACTION),
  row('nesterov', 'bool', 'recipe', 'Nesterov momentum (SGD)'),
  row('beta2', 'number', 'recipe', 'AdamW beta2', FRACTION),
  row('eps', 'number', 'recipe', 'AdamW epsilon', { min: 0, minExclusive: true }),
  row('weightDecay', 'number', 'recipe', 'weight decay (not on norms and biases)', { min: 0 }),
  row('schedule', 'choice', 'recipe', 'learning-rate schedule, per step', { choices: ['cosine', 'step', 'constant'] }),
  row('warmupEpochs', 'number', 'recipe', 'linear warm-up length in epochs (fractions allowed)', { min: 0 }),
  row('warmupLr', 'number', 'recipe', 'learning rate at the start of the warm-up', { min: 0 }),
  row('minLr', 'number', 'recipe', 'cosine floor', { min: 0 }),
  row('stepEpochs', 'number', 'recipe', "'step' schedule: epochs between decays", { min: 0, minExclusive: true }),
  row('stepGamma', 'number', 'recipe', "'step' schedule: factor of each decay", { min: 0, minExclusive: true, max: 1 }),
  row('labelSmoothing', 'number', 'recipe', 'label smoothing', FRACTION),
  row('clipGrad', 'number', 'recipe', 'max global gradient norm; 0 = no clipping', { min: 0 }),
  row('mixup', 'number', 'recipe', 'mixup Beta alpha; 0 = off', { min: 0 }),
  row('cutmix', 'number', 'recipe', 'CutMix Beta alpha; 0 = off', { min: 0 }),
  row('randAugment', 'string', 'recipe', "timm RandAugment string, e.g. 'rand-m9-mstd0.5-inc1'; '' = off", { check: checkRandAugment, valueName: '<config>' }),
  row('randomErasing', 'number', 'recipe', 'random-erasing probability; 0 = off', FRACTION),
  row('hflip', 'number', 'recipe', 'horizontal-flip probability', PROBABILITY),
  row('cropPadding', 'int', 'recipe', 'random crop after zero padding by this many pixels; 0 = off', { min: 0 }),
  row('dropPath', 'number', 'recipe', 'stochastic depth rate (timm drop_path_rate)', FRACTION),
  row('emaDecay', 'number', 'recipe', 'EMA of the weights with this decay, e.g. 0.9998; 0 = off', FRACTION),
];

const BY_KEY: ReadonlyMap<string, SettingSpec> = new Map(TRAIN_SETTINGS.map((s) => [s.key, s]));

/** Old spellings of flags, kept working; hidden from help. */
const FLAG_ALIASES: Readonly<Record<string, { flag: string; key: SettingSpec['key'] }>> = {
  data: { flag: '--data', key: 'dataSource' },
};

/** timm argument names that mean one of our keys: offered as "did you mean", never applied silently. */
const TIMM_NAMES: Readonly<Record<string, SettingSpec['key']>> = {
  opt: 'optimizer', sched: 'schedule', smoothing: 'labelSmoothing', reprob: 'randomErasing', aa: 'randAugment',
  drop_path_rate: 'dropPath', model_ema_decay: 'emaDecay', decay_epochs: 'stepEpochs', decay_rate: 'stepGamma',
  opt_eps: 'eps', data_dir: 'dataRoot', output: 'out',
};

// ---- defaults --------------------------------------------------------------------------------------

/** TrainConfig's defaults: everything but `out` (derived from model and dataset by mergeConfig). */
export type TrainDefaults = Omit<TrainConfig, 'out'> & { out?: string };

/** The defaults of the run settings; recipe settings stay unset (the recipe decides). */
export function defaultTrainConfig(): TrainDefaults {
  return {
    model: 'la_resnet_nano_s2',
    dataset: 'fashion-mnist',
    dataSource: 'auto',
    trainLimit: 0,
    evalBatchSize: 500,
    // One core stays with the training loop; more than 2 decoders rarely pay on small images.
    workers: Math.max(0, Math.min(2, os.availableParallelism() - 1)),
    seed: 0,
    device: 'cpu',
    progress: 'auto',
  };
}

/** `runs/<model>-<dataset>`, the run directory when none is given. */
export function defaultOutDir(config: Pick<TrainConfig, 'model' | 'dataset'>): string {
  return path.join('runs', `${config.model}-${config.dataset}`);
}

/**
 * Layers the settings: flags override the file, which overrides the defaults. Unset (undefined)
 * values never override. `out` defaults to `runs/<model>-<dataset>` of the merged model and dataset.
 */
export function mergeConfig(defaults: TrainDefaults, file: Partial<TrainConfig> = {}, flags: Partial<TrainConfig> = {}): TrainConfig {
  const merged: Record<string, unknown> = { ...defaults };
  for (const layer of [file, flags]) {
    for (const [key, value] of Object.entries(layer)) if (value !== undefined) merged[key] = value;
  }
  const config = merged as unknown as TrainConfig;
  if (config.out === undefined) config.out = defaultOutDir(config);
  return config;
}

// ---- validation ------------------------------------------------------------------------------------

/** Thrown for invalid settings; `problems` holds one line per problem. */
export class ConfigError extends Error {
  constructor(readonly source: string, readonly problems: string[]) {
    super(problems.length === 1
      ? `${source}: ${problems[0]}`
      : `${source} has ${problems.length} problems:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface ValidateOptions {
  /**
   * Values come from the command line: strings are converted to the setting's type, and
   * problems name the flag (`--epochs`) instead of the key.
   */
  flags?: boolean;
}

/**
 * Checks a mapping of settings (a parsed config file, or flag values) against the table and
 * returns it typed, with keys normalised to camelCase. Throws one ConfigError listing every
 * problem: unknown keys (with the nearest names), wrong types, values out of range, unknown
 * choices, models or recipes, and keys given twice in different spellings.
 */
export function validateConfig(raw: unknown, sourceLabel: string, options: ValidateOptions = {}): Partial<TrainConfig> {
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(sourceLabel, [`the settings must be a mapping of key: value, got ${describeType(raw)}`]);
  }
  const problems: string[] = [];
  const out: Record<string, unknown> = {};
  const spelledAs = new Map<string, string>();
  for (const [given, value] of Object.entries(raw as Record<string, unknown>)) {
    if (value === undefined) continue;
    const alias = options.flags ? FLAG_ALIASES[given] : undefined;
    const key = alias?.key ?? camel(given);
    const spec = BY_KEY.get(key);
    if (!spec) {
      problems.push(unknownKeyProblem(given, options.flags ?? false));
      continue;
    }
    const label = options.flags ? alias?.flag ?? spec.flag : key;
    const spelling = options.flags ? label : given;
    if (spelledAs.has(key)) {
      problems.push(`${options.flags ? spec.flag : key} is given twice, as ${spelledAs.get(key)} and as ${spelling}; keep one`);
      continue;
    }
    spelledAs.set(key, spelling);
    const result = options.flags ? checkFlagValue(spec, value) : checkValue(spec, value);
    // Type and range problems read '--epochs must be …'; a check's own sentence follows a colon.
    if (typeof result === 'string') problems.push(`${label} ${result}`);
    else if ('problem' in result) problems.push(`${label}: ${result.problem}`);
    else out[key] = result.value;
  }
  if (problems.length) throw new ConfigError(sourceLabel, problems);
  return out as Partial<TrainConfig>;
}

/** camelCase of a snake_case or kebab-case key (camelCase stays as it is). */
function camel(key: string): string {
  return key.replace(/[-_]+([a-zA-Z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** The converted value, what it must be (a predicate: 'must be …'), or a check's own sentence. */
type Checked = { value: unknown } | string | { problem: string };

/** A value from a config file: it must already have the setting's type. */
function checkValue(spec: SettingSpec, value: unknown): Checked {
  const want = expectation(spec);
  const wrongType = (hint = '') => `must be ${want}, got ${formatValue(value)} (${describeType(value)}${hint})`;
  switch (spec.type) {
    case 'int':
    case 'number':
      if (typeof value !== 'number') {
        const numeric = typeof value === 'string' && parseNumber(value) !== undefined;
        return wrongType(numeric ? `; write ${value.trim()} without quotes` : '');
      }
      return checkRange(spec, value, formatValue(value));
    case 'bool':
      return typeof value === 'boolean' ? { value } : wrongType();
    default:
      if (typeof value !== 'string') return wrongType(typeof value === 'number' ? `; quote it: '${value}'` : '');
      return checkString(spec, value, formatValue(value));
  }
}

/** A value from the command line: a string (or a boolean for switches) converted to the type. */
function checkFlagValue(spec: SettingSpec, value: unknown): Checked {
  if (typeof value !== 'string') return spec.type === 'bool' && typeof value === 'boolean' ? { value } : checkValue(spec, value);
  const shown = `'${value}'`;
  switch (spec.type) {
    case 'int':
    case 'number': {
      const n = parseNumber(value);
      return n === undefined ? `must be ${expectation(spec)}, got ${shown}` : checkRange(spec, n, shown);
    }
    case 'bool':
      if (value === 'true' || value === 'false') return { value: value === 'true' };
      return `must be true or false, got ${shown}`;
    default:
      return checkString(spec, value, shown);
  }
}

function checkRange(spec: SettingSpec, n: number, shown: string): Checked {
  const ok = Number.isFinite(n) && (spec.type !== 'int' || Number.isInteger(n)) &&
    (spec.min === undefined || (spec.minExclusive ? n > spec.min : n >= spec.min)) &&
    (spec.max === undefined || (spec.maxExclusive ? n < spec.max : n <= spec.max));
  return ok ? { value: n } : `must be ${expectation(spec)}, got ${shown}`;
}

function checkString(spec: SettingSpec, s: string, shown: string): Checked {
  if (spec.type === 'choice' && !spec.choices?.includes(s)) return `must be ${orList(spec.choices ?? [])}, got ${shown}`;
  if (spec.type === 'path' && s.trim() === '') return `must be ${expectation(spec)}, got ${shown}`;
  const problem = spec.check?.(s);
  return problem === undefined ? { value: s } : { problem };
}

/** Decimal numbers only: Number() would also take '', ' ', '0x10' and 'Infinity'. */
function parseNumber(s: string): number | undefined {
  return /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(s) ? Number(s) : undefined;
}

/** What a setting must be, in words: 'a positive integer', 'a number in [0, 1)', 'auto, full or subset'. */
export function expectation(spec: SettingSpec): string {
  switch (spec.type) {
    case 'bool': return 'true or false';
    case 'choice': return orList(spec.choices ?? []);
    case 'string': return 'a string';
    case 'path': return 'a non-empty path';
    default: return numberExpectation(spec);
  }
}

function numberExpectation(spec: SettingSpec): string {
  const noun = spec.type === 'int' ? 'integer' : 'number';
  const { min, max } = spec;
  if (min === 0 && max === undefined) return spec.minExclusive ? `a positive ${noun}` : `a non-negative ${noun}`;
  if (min === 1 && max === undefined && noun === 'integer' && !spec.minExclusive) return 'a positive integer';
  if (min !== undefined && max !== undefined) {
    return `a ${noun} in ${spec.minExclusive ? '(' : '['}${min}, ${max}${spec.maxExclusive ? ')' : ']'}`;
  }
  if (min !== undefined) return `a ${noun} ${spec.minExclusive ? '>' : '≥'} ${min}`;
  if (max !== undefined) return `a ${noun} ${spec.maxExclusive ? '<' : '≤'} ${max}`;
  return `a finite ${noun}`;
}

function orList(items: readonly string[]): string {
  return items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} or ${items[items.length - 1]}`;
}

function formatValue(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value);
  return JSON.stringify(value) ?? String(value);
}

function describeType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'a mapping' : `a ${typeof value}`;
}

function checkModel(name: string): string | undefined {
  try {
    modelInfo(name);
    return undefined;
  } catch (e) {
    if (!(e instanceof UnknownModelError)) throw e;
    const hint = e.suggestions.length ? `did you mean ${orList(e.suggestions)}?` : `the models are ${listModels().join(', ')}`;
    return `unknown model '${name}'; ${hint} (vicinity list-models lists them)`;
  }
}

function checkRecipe(name: string): string | undefined {
  if (Object.hasOwn(RECIPES, name)) return undefined;
  const names = Object.keys(RECIPES);
  const near = nearest(name, names);
  return `unknown recipe '${name}'; ${near.length ? `did you mean ${orList(near)}?` : `the recipes are ${names.join(', ')}`}`;
}

/** RandAugment strings are 'rand' then '-' separated options (timm rand_augment_transform); the pipeline parses the rest. */
function checkRandAugment(s: string): string | undefined {
  if (s === '') return undefined;
  try {
    parseRandAugment(s);   // the parser the loader's workers use, so a bad string fails here, not there
    return undefined;
  } catch (e) {
    return `${e instanceof Error ? e.message : String(e)}; or '' for none`;
  }
}

function unknownKeyProblem(given: string, fromFlags: boolean): string {
  const timm = TIMM_NAMES[given] ?? TIMM_NAMES[given.replace(/-/g, '_')];
  const near = nearest(camel(given), TRAIN_SETTINGS.map((s) => s.key));
  const show = (key: string) => (fromFlags ? BY_KEY.get(key)?.flag ?? key : key);
  const what = fromFlags ? `unknown option '${given}'` : `unknown setting '${given}'`;
  if (timm) return `${what}; did you mean ${show(timm)} (timm's ${given})?`;
  if (near.length) return `${what}; did you mean ${orList(near.map(show))}?`;
  return `${what}; the settings are ${TRAIN_SETTINGS.map((s) => s.key).join(', ')}`;
}

/** Up to three names within a small edit distance of `query` (case and separators ignored). */
export function nearest(query: string, names: readonly string[]): string[] {
  return nearestNames(query, names);
}

// ---- config files ----------------------------------------------------------------------------------

/**
 * Reads a YAML or JSON config file and validates it (errors are labelled with the file's path).
 * JSON is chosen by a `.json` extension, or by content starting with `{` for other names; YAML
 * otherwise. Syntax errors report `file:line:column`.
 */
export async function loadConfigFile(file: string): Promise<Partial<TrainConfig>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new ConfigError(file, [`cannot read the config file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`]);
  }
  return validateConfig(parseConfigText(text, file), file);
}

/** Parses config text as JSON or YAML (see loadConfigFile), without validating it. */
export function parseConfigText(text: string, label: string): unknown {
  const json = label.endsWith('.json') || (!/\.ya?ml$/.test(label) && text.trimStart().startsWith('{'));
  return json ? parseJson(text, label) : parseYaml(text, label);
}

function parseJson(text: string, label: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    const message = (e as Error).message;
    const at = /at position (\d+)/.exec(message);
    const where = at ? lineColumn(text, Number(at[1])) : undefined;
    const reason = message.replace(/ in JSON at position \d+.*$/s, '');
    throw new ConfigError(where ? `${label}:${where.line}:${where.col}` : label, [`JSON syntax error: ${reason}`]);
  }
}

function parseYaml(text: string, label: string): unknown {
  try {
    return YAML.parse(text);
  } catch (e) {
    if (!(e instanceof YAML.YAMLError)) throw e;
    const pos = e.linePos?.[0];
    // The library appends ' at line L, column C:' and a caret excerpt; keep the excerpt, move the place to the front.
    const [reason, excerpt = ''] = e.message.split(/ at line \d+, column \d+:\n?/);
    const place = pos ? `${label}:${pos.line}:${pos.col}` : label;
    throw new ConfigError(place, [`YAML syntax error: ${reason}${excerpt.trimEnd() ? `\n${excerpt.trimEnd()}` : ''}`]);
  }
}

function lineColumn(text: string, offset: number): { line: number; col: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, col: before[before.length - 1].length + 1 };
}

// ---- flags -----------------------------------------------------------------------------------------

/**
 * Registers every setting of the table as a flag of `command`, with the table's help; boolean
 * settings get `--x` and `--no-x`. No flag has a commander default, so an unset flag is
 * undefined and does not override the config file (defaults are listed in the help instead).
 */
export function addTrainOptions(command: Command): Command {
  const defaults = defaultTrainConfig();
  for (const spec of TRAIN_SETTINGS) {
    const heading = spec.group === 'run' ? 'Run options:' : "Recipe options (default: the recipe's value):";
    const shown = spec.key === 'out' ? 'runs/<model>-<dataset>' : defaults[spec.key as keyof TrainDefaults];
    const listed = spec.choices && placeholder(spec) === PLACEHOLDER.choice ? `: ${spec.choices.join(', ')}` : '';
    const help = `${spec.help}${listed}${spec.group === 'run' && shown !== undefined ? ` (default: ${shown})` : ''}`;
    if (spec.type === 'bool') {
      command.addOption(new Option(spec.flag, help).helpGroup(heading));
      command.addOption(new Option(`--no-${spec.flag.slice(2)}`, `set ${spec.key} to false`).helpGroup(heading));
      continue;
    }
    // Values are checked by validateConfig, not commander, so that one error lists every problem.
    command.addOption(new Option(`${spec.flag} ${placeholder(spec)}`, help).helpGroup(heading));
  }
  for (const alias of Object.values(FLAG_ALIASES)) command.addOption(new Option(`${alias.flag} <value>`).hideHelp());
  return command;
}

/** The table's flags among commander's parsed options (others, e.g. --config, are left out). */
export function flagValues(options: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(options)) {
    if (value !== undefined && (BY_KEY.has(name) || Object.hasOwn(FLAG_ALIASES, name))) out[name] = value;
  }
  return out;
}

/**
 * The config as YAML, in table order, loadable again with `--config`. Recipe settings that are
 * unset appear as comments with the recipe's value when `recipe` is given.
 */
export function formatConfigYaml(config: Partial<TrainConfig>, recipe?: { name: string; settings: Partial<RecipeSettings> }): string {
  const lines: string[] = [];
  let group = '';
  for (const spec of TRAIN_SETTINGS) {
    if (spec.group !== group) {
      group = spec.group;
      lines.push(group === 'run' ? '# run' : `# recipe${recipe ? ` ${recipe.name}` : ''}: commented values are the recipe's`);
    }
    const value = config[spec.key];
    const fromRecipe = recipe?.settings[spec.key as keyof RecipeSettings];
    if (value !== undefined) lines.push(`${spec.key}: ${YAML.stringify(value).trimEnd()}`);
    else if (fromRecipe !== undefined) lines.push(`# ${spec.key}: ${YAML.stringify(fromRecipe).trimEnd()}`);
  }
  return `${lines.join('\n')}\n`;
}
