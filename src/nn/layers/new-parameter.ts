/**
 * newParameter: a fresh Parameter for a layer's constructor. The temporary it is made from is
 * disposed at once, so building a model inside a scope leaves nothing behind for the scope or the
 * garbage collector.
 */
import { empty, full } from '../../tensor/creation.js';
import { parameter, type Parameter } from '../parameter.js';

/** A Parameter of `shape` filled with `fill`, or uninitialised (for an init function to fill). */
export function newParameter(shape: number[], fill?: number): Parameter {
  const data = fill === undefined ? empty(shape) : full(shape, fill);
  const p = parameter(data);
  data.dispose();
  return p;
}
