/**
 * Finding and renaming the weights inside a loaded checkpoint.
 * Training scripts wrap the state dict in all sorts of envelopes — {'state_dict': sd} (timm,
 * Lightning), {'model': sd, 'optimizer': …} (DeiT, Swin), {'net': sd, 'epoch': n} (CIFAR repos),
 * often beside an EMA copy — and DataParallel prefixes every key with 'module.'. These helpers
 * undo that so loaders can match keys against a model's own names.
 */
import { CheckpointError, type RawTensor, describe, isRawTensor } from './raw-tensor.js';

/**
 * Envelope keys to look under, most preferred first. Live weights win over EMA copies: a checkpoint
 * holding both 'model' and 'model_ema' yields 'model'.
 */
export const STATE_DICT_KEYS: readonly string[] = [
  'state_dict', 'model_state_dict', 'model', 'net', 'network', 'module', 'weights', 'params',
  'state_dict_ema', 'model_ema', 'ema', 'params_ema',
];

export interface ExtractStateDictOptions {
  /** Take the state dict from this top-level key instead of searching. */
  key?: string;
}

/**
 * The name → tensor mapping inside `checkpoint` (as returned by readTorchCheckpoint or a
 * safetensors Map): the checkpoint itself when it is already flat, else the first of
 * STATE_DICT_KEYS found (searching up to three envelopes deep), else the only top-level value
 * that is a state dict.
 * Errors: CheckpointError listing the top-level keys when no state dict can be found, or naming the
 * entry that is not a tensor.
 */
export function extractStateDict(checkpoint: unknown, options: ExtractStateDictOptions = {}): Map<string, RawTensor> {
  if (options.key !== undefined) {
    const top = entriesOf(checkpoint);
    const found = top?.find(([k]) => k === options.key);
    if (found === undefined) {
      throw new CheckpointError(`extractStateDict: checkpoint has no key ${JSON.stringify(options.key)}; ${topLevelSummary(checkpoint)}`);
    }
    const sd = asStateDict(found[1]);
    if (sd === null) {
      throw new CheckpointError(`extractStateDict: ${JSON.stringify(options.key)} holds ${describe(found[1])}, ` +
        'not a mapping of names to tensors');
    }
    return sd;
  }
  const sd = search(checkpoint, 0);
  if (sd !== null) return sd;
  throw new CheckpointError(`extractStateDict: found no state dict (a mapping of names to tensors) in the checkpoint; ` +
    `${topLevelSummary(checkpoint)}. Pass { key: '<name>' } to pick one, or re-save with torch.save(model.state_dict(), path)`);
}

function search(value: unknown, depth: number): Map<string, RawTensor> | null {
  const flat = asStateDict(value);
  if (flat !== null) return flat;
  const entries = entriesOf(value);
  if (entries === null || depth >= 3) return null;
  const byKey = new Map(entries);
  for (const key of STATE_DICT_KEYS) {
    if (!byKey.has(key)) continue;
    const found = search(byKey.get(key), depth + 1);
    if (found !== null) return found;
  }
  // Unknown envelope names: accept a single unambiguous state dict among the values.
  const candidates = entries.map(([, v]) => asStateDict(v)).filter((sd) => sd !== null);
  return candidates.length === 1 ? candidates[0]! : null;
}

/** A non-empty mapping whose keys are strings and whose values are all tensors, else null. */
function asStateDict(value: unknown): Map<string, RawTensor> | null {
  const entries = entriesOf(value);
  if (entries === null || entries.length === 0) return null;
  const out = new Map<string, RawTensor>();
  for (const [k, v] of entries) {
    if (typeof k !== 'string' || !isRawTensor(v)) return null;
    out.set(k, v);
  }
  return out;
}

function entriesOf(value: unknown): Array<[unknown, unknown]> | null {
  if (value instanceof Map) return [...value.entries()];
  if (typeof value !== 'object' || value === null || Array.isArray(value) || isRawTensor(value)) return null;
  if (ArrayBuffer.isView(value) || value instanceof Set) return null;
  return Object.entries(value);
}

function topLevelSummary(checkpoint: unknown): string {
  const entries = entriesOf(checkpoint);
  if (entries === null) return `the checkpoint is ${describe(checkpoint)}, not a dict`;
  if (entries.length === 0) return 'the checkpoint is an empty dict';
  const shown = entries.slice(0, 12).map(([k, v]) => `${String(k)} (${describe(v)})`);
  return `its top-level keys are ${shown.join(', ')}${entries.length > 12 ? `, … ${entries.length - 12} more` : ''}`;
}

/**
 * Removes `prefix` from every key that starts with it (keys without it are kept as they are), e.g.
 * the 'module.' that nn.DataParallel / DistributedDataParallel add.
 * Errors: CheckpointError when stripping makes two keys collide.
 */
export function stripPrefix<T>(stateDict: ReadonlyMap<string, T>, prefix = 'module.'): Map<string, T> {
  return renameKeys(stateDict, (k) => (k.startsWith(prefix) ? k.slice(prefix.length) : k));
}

export type RenameRules = ReadonlyArray<readonly [RegExp | string, string]> | ((key: string) => string | null);

/**
 * Renames keys, keeping entry order.
 * - Rules array: every rule is applied in turn to each key; a string pattern replaces every
 *   occurrence, a RegExp behaves like String.prototype.replace (so `$1` works and the `g` flag
 *   decides whether all matches are replaced).
 * - Function: returns the new key, or null to drop the entry.
 * Errors: CheckpointError when two keys end up with the same name.
 */
export function renameKeys<T>(stateDict: ReadonlyMap<string, T>, rules: RenameRules): Map<string, T> {
  if (typeof rules !== 'function' && rules.some(([pattern]) => pattern === '')) {
    throw new CheckpointError('renameKeys: an empty string pattern matches everywhere; use a RegExp such as /^/ to add a prefix');
  }
  const rename = typeof rules === 'function' ? rules : (key: string): string =>
    rules.reduce((k, [pattern, replacement]) =>
      typeof pattern === 'string' ? k.split(pattern).join(replacement) : k.replace(pattern, replacement), key);
  const out = new Map<string, T>();
  const origin = new Map<string, string>();
  for (const [key, value] of stateDict) {
    const renamed = rename(key);
    if (renamed === null) continue;
    if (typeof renamed !== 'string') {
      throw new CheckpointError(`renameKeys: the rename function returned ${describe(renamed)} for ${JSON.stringify(key)}; ` +
        'return a string, or null to drop the key');
    }
    const previous = origin.get(renamed);
    if (previous !== undefined) {
      throw new CheckpointError(`renameKeys: ${JSON.stringify(previous)} and ${JSON.stringify(key)} both become ` +
        `${JSON.stringify(renamed)}; adjust the rules so every key stays unique`);
    }
    origin.set(renamed, key);
    out.set(renamed, value);
  }
  return out;
}
