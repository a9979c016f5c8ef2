/**
 * Checks a mapping of settings (a parsed config file, or flag values) against the settings table
 * (settings.ts): unknown keys with the nearest names, wrong types, values out of range, unknown
 * choices, models or recipes, keys given twice in different spellings — one ConfigError listing
 * every problem. Config-file keys may be camelCase, snake_case (timm's args.yaml) or kebab-case.
 */
import { BY_KEY, FLAG_ALIASES, TIMM_NAMES, TRAIN_SETTINGS, type SettingSpec } from './settings.js';
import { nearest, orList } from './setting-checks.js';
import type { TrainConfig } from './train-config.js';

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
  if (spec.expect) return spec.expect;
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
    return `${noun === 'integer' ? 'an' : 'a'} ${noun} in ${spec.minExclusive ? '(' : '['}${min}, ${max}${spec.maxExclusive ? ')' : ']'}`;
  }
  if (min !== undefined) return `${noun === 'integer' ? 'an' : 'a'} ${noun} ${spec.minExclusive ? '>' : '≥'} ${min}`;
  if (max !== undefined) return `${noun === 'integer' ? 'an' : 'a'} ${noun} ${spec.maxExclusive ? '<' : '≤'} ${max}`;
  return `a finite ${noun}`;
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

function unknownKeyProblem(given: string, fromFlags: boolean): string {
  const timm = TIMM_NAMES[given] ?? TIMM_NAMES[given.replace(/-/g, '_')];
  const near = nearest(camel(given), TRAIN_SETTINGS.map((s) => s.key));
  const show = (key: string) => (fromFlags ? BY_KEY.get(key)?.flag ?? key : key);
  const what = fromFlags ? `unknown option '${given}'` : `unknown setting '${given}'`;
  if (timm) return `${what}; did you mean ${show(timm)} (timm's ${given})?`;
  if (near.length) return `${what}; did you mean ${orList(near.map(show))}?`;
  return `${what}; the settings are ${TRAIN_SETTINGS.map((s) => s.key).join(', ')}`;
}
