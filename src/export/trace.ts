/**
 * Captures a model's forward pass as a graph of ATen op calls, for the ONNX exporter.
 *
 * Every op vicinity runs goes through one boxed call (ops/call.ts), whose observer sees the op's
 * name, arguments and results. A trace keeps each tensor's identity (the JS object) to wire the
 * calls into a graph: the input, the model's parameters and buffers (by state-dict name), values
 * that ops produced, and constants (tensors made outside the op calls, read once).
 *
 * Dynamic batch: the forward is traced at two batch sizes. Both traces must call the same ops
 * with the same argument structure; every integer that differs (a reshape's B·heads, an expand to
 * B) is fitted as a·B + c, and so is every dimension of every result. Values that do not depend on
 * the input (index tables, position grids, weight-only products) are constant-folded from the first
 * trace, unless they differ between the traces, in which case their op is exported too.
 */
import type { Module } from '../nn/module.js';
import { observeOps } from '../ops/call.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import { Tensor, type DType, type TypedData } from '../tensor/tensor.js';

/** An integer that is a·B + c in the batch size B (a = 0: a plain number). */
export interface BatchLinear {
  a: number;
  c: number;
}
export type Dim = number | BatchLinear;

/** A traced argument: tensors become `{ value: id }`; integers may be batch-linear after fitting. */
export type Arg = number | boolean | string | null | undefined | { value: number } | BatchLinear | Arg[];

export type ValueKind = 'input' | 'parameter' | 'constant' | 'op';

export interface TracedValue {
  id: number;
  kind: ValueKind;
  shape: Dim[];
  dtype: DType;
  /** Derived from the input (else a constant the graph can carry). */
  dynamic: boolean;
  /** State-dict name of a parameter or buffer. */
  name?: string;
  /** Element data of a non-dynamic value (first trace). */
  data?: TypedData;
}

export interface TracedCall {
  op: string;
  args: Arg[];
  outputs: number[];
  /** The op's result was a list of tensors (split), not one tensor. */
  listOutput: boolean;
  /** Constant inputs but batch-dependent results: must be exported, not folded. */
  batchDependent?: boolean;
}

export interface Trace {
  values: TracedValue[];
  calls: TracedCall[];
  input: number;
  output: number;
  batch: number;
}

export class ExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportError';
  }
}

const isTensor = (t: unknown): t is Tensor => t instanceof Tensor;

/** One forward of `model` on `x` (eval mode, no grad), recorded. */
export function recordForward(model: Module & { forward(x: Tensor): unknown }, x: Tensor): Trace {
  const names = new Map<Tensor, string>();
  for (const [name, p] of model.namedParameters()) names.set(p, name);
  for (const [name, b] of model.namedBuffers()) names.set(b, name);
  const ids = new Map<Tensor, number>();
  const values: TracedValue[] = [];
  const calls: TracedCall[] = [];

  const addValue = (t: Tensor, kind: ValueKind, dynamic: boolean, name?: string): number => {
    const id = values.length;
    const v: TracedValue = { id, kind, shape: t.shape, dtype: t.dtype, dynamic, name };
    if (!dynamic) v.data = t.dataSync().slice();
    values.push(v);
    ids.set(t, id);
    return id;
  };
  const idOf = (t: Tensor): number => {
    const known = ids.get(t);
    if (known !== undefined) return known;
    const name = names.get(t);
    if (name !== undefined) return addValue(t, 'parameter', false, name);
    for (const [other, id] of ids) if (t.sameAs(other)) return id;   // a second JS handle of one tensor
    return addValue(t, 'constant', false);
  };
  const argOf = (a: unknown): Arg => {
    if (isTensor(a)) return { value: idOf(a) };
    if (Array.isArray(a)) return a.map(argOf);
    if (typeof a === 'bigint') return Number(a);
    if (a === null || a === undefined || typeof a === 'number' || typeof a === 'boolean' || typeof a === 'string') return a;
    throw new ExportError(`export: cannot record an argument of type ${Object.prototype.toString.call(a)}`);
  };

  const watch = (op: string, rawArgs: unknown[], result: unknown) => {
    const args = rawArgs.map(argOf);
    const dynamic = tensorIds(args).some((id) => values[id].dynamic);
    const list = Array.isArray(result);
    const outs = (list ? result : [result]).filter(isTensor);
    const outputs = outs.map((t) => addValue(t, 'op', dynamic));
    calls.push({ op, args, outputs, listOutput: list });
    // An in-place op (relu_, add_) changes its first argument: later readers see its result.
    if (/_($|\.)/.test(op.split('::')[1] ?? '') && isTensor(rawArgs[0]) && outs.length === 1) ids.set(rawArgs[0], outputs[0]);
  };

  return noGrad(() => tidy(() => {
    const input = addValue(x, 'input', true);
    const result = observeOps(watch, () => model.forward(x));
    if (!isTensor(result)) throw new ExportError('export: the model returned no single tensor; export covers classifiers (images → logits)');
    const output = ids.get(result);
    if (output === undefined || !values[output].dynamic) {
      throw new ExportError('export: the model output was not computed from the input by recorded ops');
    }
    return { values, calls, input, output, batch: x.shape[0] };
  }));
}

export function tensorIds(args: Arg[]): number[] {
  const out: number[] = [];
  const walk = (a: Arg) => {
    if (Array.isArray(a)) a.forEach(walk);
    else if (a !== null && typeof a === 'object' && 'value' in a) out.push(a.value);
  };
  args.forEach(walk);
  return out;
}

/** a·B + c through the two points (b1, v1), (b2, v2); integral coefficients or an error. */
function fit(v1: number, v2: number, b1: number, b2: number, where: () => string): Dim {
  if (v1 === v2) return v1;
  const a = (v2 - v1) / (b2 - b1);
  const c = v1 - a * b1;
  if (!Number.isInteger(a) || !Number.isInteger(c)) {
    throw new ExportError(`export: ${where()} changes with the batch size (${v1} at ${b1}, ${v2} at ${b2}) but not as a·B + c; ` +
      'the exporter keeps the batch dynamic only for sizes linear in it');
  }
  return a === 0 ? c : { a, c };
}

function fitArg(a1: Arg, a2: Arg, b1: number, b2: number, where: () => string): Arg {
  if (Array.isArray(a1) && Array.isArray(a2) && a1.length === a2.length) {
    return a1.map((x, i) => fitArg(x, a2[i], b1, b2, () => `${where()}[${i}]`));
  }
  if (typeof a1 === 'number' && typeof a2 === 'number') {
    if (Number.isInteger(a1) && Number.isInteger(a2)) return fit(a1, a2, b1, b2, where);
    if (a1 === a2) return a1;
  }
  if (JSON.stringify(a1) === JSON.stringify(a2)) return a1;
  throw new ExportError(`export: ${where()} differs between batch sizes ${b1} and ${b2} ` +
    `(${JSON.stringify(a1)} vs ${JSON.stringify(a2)}); the forward pass must call the same ops whatever the batch`);
}

const sameData = (a?: TypedData, b?: TypedData) =>
  a !== undefined && b !== undefined && a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * Merges traces at two batch sizes into one whose integers and shapes are batch-linear, marking
 * constant computations whose results depend on the batch. Errors name the first op that differs.
 */
export function fitTraces(t1: Trace, t2: Trace): Trace {
  const { batch: b1 } = t1;
  const { batch: b2 } = t2;
  if (t1.calls.length !== t2.calls.length || t1.values.length !== t2.values.length) {
    throw new ExportError(`export: the forward pass runs ${t1.calls.length} ops at batch ${b1} but ${t2.calls.length} at batch ${b2}; ` +
      'control flow that depends on the batch size cannot be exported');
  }
  const values = t1.values.map((v, i): TracedValue => {
    const w = t2.values[i];
    if (v.kind !== w.kind || v.shape.length !== w.shape.length) {
      throw new ExportError(`export: value #${i} differs between batch sizes (${v.kind} ${JSON.stringify(v.shape)} vs ${w.kind} ${JSON.stringify(w.shape)})`);
    }
    const shape = v.shape.map((d, k) => fit(d as number, w.shape[k] as number, b1, b2, () => `dimension ${k} of value #${i}`));
    if (v.kind === 'constant' && (shape.some((d) => typeof d !== 'number') || !sameData(v.data, w.data))) {
      throw new ExportError(`export: a tensor made outside the op calls (shape ${JSON.stringify(v.shape)}) depends on the batch size; ` +
        'make it with ops (e.g. expand) so that the exporter can see how');
    }
    return { ...v, shape };
  });
  const calls = t1.calls.map((c, i): TracedCall => {
    const d = t2.calls[i];
    if (c.op !== d.op) throw new ExportError(`export: op #${i} is ${c.op} at batch ${b1} but ${d.op} at batch ${b2}`);
    const args = fitArg(c.args, d.args, b1, b2, () => `argument of op #${i} (${c.op})`) as Arg[];
    const batchDependent = c.outputs.some((o, k) => !values[o].dynamic && !sameData(values[o].data, t2.values[d.outputs[k]].data));
    return { ...c, args, batchDependent };
  });
  return { values, calls, input: t1.input, output: t1.output, batch: b1 };
}
