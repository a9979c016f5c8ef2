/**
 * Checks shared by the layers: constructor options (integers, ranges, tuples) and the cheap
 * forward-time input checks that turn libtorch's generic shape errors into messages naming the
 * layer, the expected layout and the actual shape.
 *
 * Constructor problems throw RangeError/TypeError (a bad value or a bad type); input problems
 * throw ShapeError, so callers can tell a misbuilt model from a misfed one.
 */
import { ShapeError } from '../../tensor/shape-error.js';
import type { Tensor } from '../../tensor/tensor.js';

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
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new RangeError(`${layer}: ${name} must be a finite number, got ${String(value)}`);
  }
  return value;
}

/** Throws unless `value` is a positive number (e.g. eps); returns it. */
export function positiveNumber(layer: string, name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${layer}: ${name} must be a positive finite number, got ${String(value)}`);
  }
  return value;
}

/** Throws unless `value` is one of `allowed`; returns it. */
export function oneOf<T extends string>(layer: string, name: string, value: unknown, allowed: readonly T[]): T {
  if (!allowed.includes(value as T)) {
    throw new TypeError(`${layer}: ${name} must be one of ${allowed.map((a) => `'${a}'`).join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** Throws unless `value` is a boolean (catches e.g. `bias: 0` or a misspelt option value). */
export function booleanOption(layer: string, name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new TypeError(`${layer}: ${name} must be true or false, got ${String(value)}`);
  return value;
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
