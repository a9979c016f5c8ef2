/**
 * The bridge between checkpoint files (RawTensor: dtype, shape, little-endian bytes) and live
 * tensors, and the user-facing save/load functions:
 *
 *   await saveSafetensors('model.safetensors', model);         // or a state dict
 *   const sd = await loadStateDictFile('ckpt.pth');            // .pth/.pt or .safetensors
 *   const report = await loadWeights(model, 'ckpt.pth', { stripPrefix: 'module.' });
 */
import { readFile } from 'node:fs/promises';
import { native } from '../native/binding.js';
import type { Module, LoadReport, StateDict } from '../nn/module.js';
import * as aten from '../ops/generated/ops.gen.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { CheckpointError, type RawTensor } from './raw-tensor.js';
import { parseSafetensors, writeSafetensors } from './safetensors.js';
import { extractStateDict, renameKeys, stripPrefix, type RenameRules } from './state-dict-keys.js';
import { parseTorchCheckpoint } from './torch-pickle.js';

/** A CPU tensor holding a copy of the raw bytes. */
export function rawToTensor(raw: RawTensor): Tensor {
  return native.fromTypedArray(raw.data, raw.shape, raw.dtype) as Tensor;
}

/** The tensor's bytes, contiguous and on the CPU (bfloat16/float16 kept bit-exact). */
export function tensorToRaw(t: Tensor): RawTensor {
  return tidy(() => noGrad(() => {
    const host = t.detach().to({ device: 'cpu' }).contiguous();
    // dataSync widens half types to float32: read their bits through an int16 view instead.
    const half = host.dtype === 'bfloat16' || host.dtype === 'float16';
    const typed = (half ? aten.view_dtype(host, 'int16') : host).dataSync();
    return { dtype: t.dtype, shape: t.shape, data: new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength) };
  }));
}

function isModule(value: unknown): value is Module {
  return typeof value === 'object' && value !== null && typeof (value as Module).stateDict === 'function';
}

/** Writes a module's state dict (or any name → tensor map) as safetensors, atomically. */
export async function saveSafetensors(
  file: string,
  source: Module | StateDict | Record<string, Tensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const entries = isModule(source) ? source.stateDict() : source instanceof Map ? source : new Map(Object.entries(source));
  const raw = new Map<string, RawTensor>();
  for (const [name, t] of entries) raw.set(name, tensorToRaw(t));
  if (isModule(source)) for (const t of entries.values()) t.dispose();
  await writeSafetensors(file, raw, metadata);
}

function looksLikeZip(bytes: Uint8Array): boolean {
  return bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;
}

/** Which state dict of a training checkpoint to read, and which plain-data classes its pickle may hold. */
export interface ReadStateDictOptions {
  /** The checkpoint key holding the state dict (e.g. 'state_dict_ema'); default: found by extractStateDict. */
  stateDictKey?: string;
  /** Take the EMA weights (timm's 'state_dict_ema', 'model_ema', 'ema', 'params_ema', whichever exists). */
  ema?: boolean;
  /** Plain-data classes the pickle may hold besides the built-in ones (see addSafeGlobals). */
  safeGlobals?: readonly string[];
}

/** Checkpoint keys that hold EMA weights, in order of preference. */
export const EMA_STATE_DICT_KEYS: readonly string[] = ['state_dict_ema', 'model_ema', 'ema', 'params_ema'];

function pickStateDict(checkpoint: unknown, file: string, o: ReadStateDictOptions): Map<string, RawTensor> {
  if (o.stateDictKey !== undefined) return extractStateDict(checkpoint, { key: o.stateDictKey });
  if (!o.ema) return extractStateDict(checkpoint);
  const top = typeof checkpoint === 'object' && checkpoint !== null && !(checkpoint instanceof Map) ? Object.keys(checkpoint) : [];
  const key = EMA_STATE_DICT_KEYS.find((k) => top.includes(k));
  if (key === undefined) {
    throw new CheckpointError(`${file} holds no EMA weights (none of ${EMA_STATE_DICT_KEYS.join(', ')}; its keys: ` +
      `${top.join(', ') || 'none'}); load it without the EMA option, or train with EMA enabled`);
  }
  return extractStateDict(checkpoint, { key });
}

/** Reads a safetensors or PyTorch (.pth/.pt, zip format) file as raw tensors by name. */
export async function readStateDictFile(file: string, options: ReadStateDictOptions = {}): Promise<Map<string, RawTensor>> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint ${file}: ${(e as Error).message}`);
  }
  if (looksLikeZip(bytes)) return pickStateDict(parseTorchCheckpoint(bytes, file, { safeGlobals: options.safeGlobals }), file, options);
  if (options.ema || options.stateDictKey !== undefined) {
    throw new CheckpointError(`${file}: a safetensors file holds one state dict; the EMA / stateDictKey options apply to torch.save checkpoints`);
  }
  if (file.endsWith('.safetensors') || !/\.(pth|pt|bin|ckpt)$/.test(file)) return parseSafetensors(bytes, file).tensors;
  throw new CheckpointError(
    `${file} is not a zip archive; vicinity reads torch.save's zip format (PyTorch ≥ 1.6) and safetensors. ` +
      'Re-save it in Python with torch.save(obj, f) or safetensors.torch.save_file(sd, f)',
  );
}

/** Reads a checkpoint file into CPU tensors by name. */
export async function loadStateDictFile(file: string): Promise<StateDict> {
  const raw = await readStateDictFile(file);
  const out: StateDict = new Map();
  for (const [name, t] of raw) out.set(name, rawToTensor(t));
  return out;
}

export interface LoadWeightsOptions extends ReadStateDictOptions {
  /** Default true: any missing, unexpected or mis-shaped key throws with the full report. */
  strict?: boolean;
  /** Removed from the front of every key that has it (e.g. DataParallel's 'module.'). */
  stripPrefix?: string;
  /** Renames applied after stripping; a function returning null drops a key. */
  rename?: RenameRules;
}

/** Loads a checkpoint file into a module by parameter name; returns the key report. */
export async function loadWeights(model: Module, file: string, options: LoadWeightsOptions = {}): Promise<LoadReport> {
  return loadRawInto(model, await readStateDictFile(file, options), options);
}

/**
 * Loads published weights (safetensors, or a `.pth`/`.pt` from torch.save — also nested
 * `{'net': sd}` / `{'model': sd}` checkpoints, and timm train.py checkpoints with their `args`
 * Namespace; `ema: true` takes `state_dict_ema`) into a model. DataParallel's `module.` prefix is
 * stripped when every key has it. Strict by default: a missing, unexpected or mis-shaped key
 * throws a StateDictError listing all of them.
 */
export async function loadPretrained(model: Module, file: string, options: LoadWeightsOptions = {}): Promise<LoadReport> {
  const raw = await readStateDictFile(file, options);
  const keys = [...raw.keys()];
  const dataParallel = keys.length > 0 && keys.every((k) => k.startsWith('module.'));
  return loadRawInto(model, raw, { ...options, stripPrefix: options.stripPrefix ?? (dataParallel ? 'module.' : undefined) });
}

function loadRawInto(model: Module, source: Map<string, RawTensor>, options: LoadWeightsOptions): LoadReport {
  let raw = source;
  if (options.stripPrefix) raw = stripPrefix(raw, options.stripPrefix);
  if (options.rename) raw = renameKeys(raw, options.rename);
  const tensors: StateDict = new Map();
  try {
    for (const [name, t] of raw) tensors.set(name, rawToTensor(t));
    return model.loadStateDict(tensors, { strict: options.strict ?? true });
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}
