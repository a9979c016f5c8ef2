/**
 * Checks shared by the layers: constructor options (names, integers, ranges, tuples, divisibility,
 * reference-argument mapping) and the cheap forward-time input checks that turn libtorch's generic
 * shape errors into messages naming the layer, the expected layout and the actual shape.
 *
 * One error type per kind of mistake, for every layer, block and model builder:
 * - TypeError: the options are malformed — an option name the layer does not have (the message
 *   names the nearest valid ones), a required option missing, or a value of the wrong kind (a
 *   string for a number, 1.5 for an integer, 0 for a boolean, a tuple of the wrong length).
 * - RangeError: a value of the right kind that the layer cannot take — below a minimum, outside
 *   [min, max], not finite, not divisible, even where it must be odd, not one of the allowed
 *   choices, or at odds with another option.
 * - ShapeError: an input tensor whose shape does not fit the layer (at forward time).
 * So callers can tell a misspelt config from an impossible one, and a misbuilt model from a misfed one.
 */
import { ShapeError } from '../../tensor/shape-error.js';
import type { Tensor } from '../../tensor/tensor.js';
import { nearestNames } from '../edit-distance.js';

export { ShapeError };

/** Throws unless `value` is an integer ≥ `min`; returns it. */
export function integerAtLeast(layer: string, name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) {
    throw new TypeError(`${layer}: ${name} must be an integer, got ${String(value)}`);
  }
  if (value < min) throw new RangeError(`${layer}: ${name} must be ≥ ${min}, got ${value}`);
  return value;
}

/**
 * Expands `value` (a number or an n-tuple) to an n-tuple of integers ≥ `min`, as PyTorch's
 * `_pair`/`_single` do; the error names the element that fails.
 */
export function sizeTuple(layer: string, name: string, value: unknown, n: number, min: number): number[] {
  const values = typeof value === 'number' ? new Array<number>(n).fill(value) : value;
  if (!Array.isArray(values) || values.length !== n) {
    throw new TypeError(`${layer}: ${name} must be a number or ${n} numbers, got ${JSON.stringify(value)}`);
  }
  return values.map((v, i) => integerAtLeast(layer, n === 1 ? name : `${name}[${i}]`, v, min));
}

/** Throws unless `value` is a finite number in [min, max]; returns it. */
export function numberInRange(layer: string, name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(`${layer}: ${name} must be a number, got ${String(value)}`);
  }
  if (value < min || value > max) throw new RangeError(`${layer}: ${name} must be in [${min}, ${max}], got ${value}`);
  return value;
}

/** Throws unless `value` is a finite number; returns it. */
export function finiteNumber(layer: string, name: string, value: unknown): number {
  if (typeof value !== 'number') throw new TypeError(`${layer}: ${name} must be a number, got ${JSON.stringify(value)}`);
  if (!Number.isFinite(value)) {
    throw new RangeError(`${layer}: ${name} must be a finite number, got ${String(value)}`);
  }
  return value;
}

/** Throws unless `value` is a positive number (e.g. eps); returns it. */
export function positiveNumber(layer: string, name: string, value: unknown): number {
  if (typeof value !== 'number') throw new TypeError(`${layer}: ${name} must be a number, got ${JSON.stringify(value)}`);
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${layer}: ${name} must be a positive finite number, got ${String(value)}`);
  }
  return value;
}

/** Throws unless `value` is one of `allowed`; returns it. */
export function oneOf<T extends string>(layer: string, name: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string') {
    throw new TypeError(`${layer}: ${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`);
  }
  if (!allowed.includes(value as T)) {
    throw new RangeError(`${layer}: ${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Throws unless `value` is a boolean (catches e.g. `bias: 0` or a misspelt option value). */
export function booleanOption(layer: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${layer}: ${name} must be true or false, got ${String(value)}`);
  return value;
}

/** Throws a RangeError unless `divisor` divides `value`, e.g. divisibleBy(layer, 'dim', 96, 'numHeads', 5). */
export function divisibleBy(layer: string, name: string, value: number, divisorName: string, divisor: number, fix?: string): void {
  if (value % divisor !== 0) {
    throw new RangeError(`${layer}: ${name} (${value}) must be divisible by ${divisorName} (${divisor})${fix ? `; ${fix}` : ''}`);
  }
}

/** Throws a RangeError unless `value` is odd (a window with a centre pixel); returns it. */
export function oddInteger(layer: string, name: string, value: number, why = 'the window must have a centre'): number {
  if (value % 2 !== 1) throw new RangeError(`${layer}: ${name} must be odd (${why}), got ${value}`);
  return value;
}

/**
 * Throws a TypeError unless `options` is a plain object whose keys are all in `known`; the message
 * names the nearest valid option for each unknown one (`num_heads` → `numHeads`), so a typo or a
 * reference's snake_case name is never silently ignored.
 */
export function knownOptions(layer: string, options: unknown, known: readonly string[]): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new TypeError(`${layer}: options must be an object, got ${JSON.stringify(options) ?? String(options)}`);
  }
  const unknown = Object.keys(options).filter((key) => !known.includes(key));
  if (unknown.length === 0) return;
  const each = unknown.map((key) => {
    const near = nearestNames(key, known, 1);
    return near.length ? `'${key}' (did you mean '${near[0]}'?)` : `'${key}'`;
  });
  throw new TypeError(`${layer}: unknown option${unknown.length > 1 ? 's' : ''} ${each.join(', ')}; ` +
    `the options are ${known.join(', ')}`);
}

/**
 * Maps a reference implementation's constructor arguments (`spec.ctor` of a fixture, snake_case
 * as the reference spells them) to this layer's options: `table` gives each reference argument's
 * option name, or null for an argument the reference accepts but does not use. A null value means
 * "not given" (Python's None); arguments listed in `zeroIsUnset` are also unset when 0 (Python's
 * `x or default`). An argument not in the table throws a TypeError naming the nearest known one.
 */
export function referenceOptions(
  layer: string, reference: string, ctor: Record<string, unknown>,
  table: Readonly<Record<string, string | null>>, o: { zeroIsUnset?: readonly string[] } = {},
): Record<string, unknown> {
  const known = Object.keys(table);
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(ctor)) {
    if (!Object.hasOwn(table, key)) {
      const near = nearestNames(key, known, 1);
      throw new TypeError(`${layer}: unknown ${reference} argument '${key}'${near.length ? ` (did you mean '${near[0]}'?)` : ''}; ` +
        `known: ${known.join(', ')}`);
    }
    const name = table[key];
    if (name === null || value === null || (value === 0 && o.zeroIsUnset?.includes(key))) continue;
    options[name] = value;
  }
  return options;
}

/**
 * Checks the input rank (one of `ranks`) and optionally the size of the channel dim (`dim`,
 * negative counts from the end so unbatched inputs work). `layout` describes the expected shape
 * for the message, e.g. '(N, C_in=4, H, W) or (C_in=4, H, W)'.
 */
export function checkInput(
  layer: string, x: Tensor, layout: string,
  o: { ranks: number[]; channels?: { dim: number; size: number } },
): void {
  const shape = x.shape;
  const rankOk = o.ranks.includes(shape.length);
  const c = o.channels;
  const channelsOk = !c || (rankOk && shape[c.dim < 0 ? shape.length + c.dim : c.dim] === c.size);
  if (!rankOk || !channelsOk) {
    throw new ShapeError(`${layer}: expected input ${layout}, got shape [${shape.join(', ')}]`);
  }
}

/**
 * The option names of an options interface, for knownOptions; the compiler checks the list is
 * complete and has no extras (each key of T must be given once, as `name: 1`).
 *
 * @example
 * const LINEAR_OPTION_NAMES = optionNames<LinearOptions>({ inFeatures: 1, outFeatures: 1, bias: 1 });
 */
export function optionNames<T>(keys: { [K in keyof Required<T>]: 1 }): readonly string[] {
  return Object.keys(keys);
}
