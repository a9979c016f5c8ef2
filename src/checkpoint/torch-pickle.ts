/**
 * Reads PyTorch `torch.save` checkpoints (the zip format, default since PyTorch 1.6) without
 * Python or libtorch. Layout (torch/serialization.py `_save` / `_load`,
 * caffe2/serialize/inline_container.h):
 *   <archive>/data.pkl    pickle of the saved object; tensors appear as
 *                         _rebuild_tensor_v2(persistent storage, offset, size, stride, requires_grad, hooks)
 *   <archive>/data/<key>  raw bytes of storage <key> (native byte order; little unless <archive>/byteorder says big)
 *   <archive>/version     format version
 * The persistent id of a storage is ('storage', <torch.XStorage class>, key, location, numel).
 * Every tensor becomes a contiguous RawTensor copied out of its storage honouring offset and
 * strides, so views, slices and storages shared between entries (tied weights) come out exactly
 * as Python sees them. nn.Parameter unwraps to its tensor. Only whitelisted globals load (see
 * pickle.ts): a checkpoint can never run code.
 */
import {
  CheckpointError, DTYPE_SIZE, type DType, type RawTensor, describe, isRawTensor, numel, readCheckpointBytes,
} from './raw-tensor.js';
import { type PickleGlobal, unpickle } from './pickle.js';
import { type ZipArchive, openZip } from './zip.js';

/** torch storage classes → dtype (torch/storage.py `_LegacyStorage` subclasses). */
const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8',
  ByteStorage: 'uint8', BoolStorage: 'bool',
};

class StorageType implements PickleGlobal {
  constructor(readonly qualifiedName: string, readonly dtype: DType) {}
  call(): never {
    throw new CheckpointError(`${this.qualifiedName} is only expected inside a storage reference`);
  }
}

/** One storage: element type plus its bytes (already little-endian). */
interface Storage { readonly key: string; readonly dtype: DType; readonly bytes: Uint8Array; readonly numel: number }

const STORAGE_KIND = Symbol('torch storage');

function isStorage(v: unknown): v is Storage {
  return typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === STORAGE_KIND;
}

/**
 * Parses a torch.save archive held in memory and returns the saved object (a state dict comes back
 * as a plain object of RawTensors; see pickle.ts for the Python → JS mapping).
 */
export function parseTorchCheckpoint(bytes: Uint8Array, source = 'checkpoint', options: { safeGlobals?: readonly string[] } = {}): unknown {
  rejectOtherFormats(bytes, source);
  const zip = openZip(bytes, source);
  const names = zip.names();
  const first = names[0];
  const slash = first?.indexOf('/') ?? -1;
  if (first === undefined || slash <= 0) {
    throw new CheckpointError(`${source}: zip archive has no "<archive>/data.pkl"; it is not a torch.save checkpoint`);
  }
  const prefix = first.slice(0, slash);
  if (zip.has(`${prefix}/constants.pkl`)) {
    throw new CheckpointError(`${source}: this is a TorchScript archive (torch.jit.save), not a torch.save checkpoint; ` +
      'load it in Python with torch.jit.load and save model.state_dict() with torch.save');
  }
  if (!zip.has(`${prefix}/data.pkl`)) {
    throw new CheckpointError(`${source}: zip archive has no "${prefix}/data.pkl" (entries: ${names.slice(0, 6).join(', ')}); ` +
      'it is not a torch.save checkpoint');
  }
  const bigEndian = zip.has(`${prefix}/byteorder`) && new TextDecoder().decode(zip.read(`${prefix}/byteorder`)).trim() === 'big';
  return unpickle(zip.read(`${prefix}/data.pkl`), {
    source: `${source}: ${prefix}/data.pkl`,
    globals: torchGlobals(),
    safeGlobals: options.safeGlobals,
    persistentLoad: storageLoader(zip, prefix, bigEndian),
  });
}

/** Reads a torch.save checkpoint from a path (errors name it) or from bytes. */
export async function readTorchCheckpoint(
  pathOrBytes: string | Uint8Array, options: { safeGlobals?: readonly string[] } = {},
): Promise<unknown> {
  if (typeof pathOrBytes !== 'string') return parseTorchCheckpoint(pathOrBytes, 'checkpoint', options);
  return parseTorchCheckpoint(await readCheckpointBytes(pathOrBytes), pathOrBytes, options);
}

// ---- format sniffing ---------------------------------------------------------------------------

/** LONG1 of torch's legacy MAGIC_NUMBER 0x1950a86a20f9469cfc6c (torch/serialization.py). */
const LEGACY_MAGIC = [0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];

function rejectOtherFormats(bytes: Uint8Array, source: string): void {
  if (bytes.byteLength >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b) return; // "PK": a zip
  const head = bytes.subarray(0, 64);
  if (head[0] === 0x80) {
    const legacy = indexOfSequence(head, LEGACY_MAGIC) >= 0;
    throw new CheckpointError(`${source}: ${legacy ? 'this checkpoint was saved with _use_new_zipfile_serialization=False' :
      'this is a plain pickle, not a torch.save archive'}; re-save it with torch.save(obj, f) (PyTorch ≥ 1.6 default)`);
  }
  if (bytes.byteLength > 262 && new TextDecoder('latin1').decode(bytes.subarray(257, 262)) === 'ustar') {
    throw new CheckpointError(`${source}: this is a tar-format checkpoint from PyTorch < 0.4; ` +
      're-save it with torch.save(obj, f) in a current PyTorch');
  }
  if (bytes.byteLength >= 10 && bytes[8] === 0x7b /* { */ &&
      new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true) < BigInt(bytes.byteLength)) {
    throw new CheckpointError(`${source}: this is a safetensors file, not a torch.save checkpoint; read it with readSafetensors`);
  }
  throw new CheckpointError(`${source}: not a torch.save checkpoint (no zip signature); ` +
    'the file is truncated, corrupt or of another format');
}

function indexOfSequence(hay: Uint8Array, needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

// ---- storages ----------------------------------------------------------------------------------

function storageLoader(zip: ZipArchive, prefix: string, bigEndian: boolean): (pid: unknown) => Storage {
  const loaded = new Map<string, Storage>();
  return (pid) => {
    if (!Array.isArray(pid) || pid.length !== 5 || pid[0] !== 'storage') {
      throw new CheckpointError(`persistent id ${describe(pid)} is not a ('storage', type, key, location, numel) tuple`);
    }
    const [, type, key, , count] = pid as unknown[];
    if (!(type instanceof StorageType)) throw new CheckpointError(`storage reference names ${describe(type)}, not a storage type`);
    if (typeof key !== 'string') throw new CheckpointError(`storage key ${describe(key)} is not a string`);
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
      throw new CheckpointError(`storage ${key} has element count ${describe(count)}`);
    }
    const cached = loaded.get(key);
    if (cached !== undefined) return cached;
    const entry = `${prefix}/data/${key}`;
    if (!zip.has(entry)) throw new CheckpointError(`storage ${key} is referenced but "${entry}" is missing from the archive`);
    let bytes = zip.read(entry);
    const need = count * DTYPE_SIZE[type.dtype];
    if (bytes.byteLength < need) {
      throw new CheckpointError(`storage ${key} holds ${bytes.byteLength} bytes but ${count} ${type.dtype} elements need ${need}; ` +
        'the checkpoint is truncated or corrupt');
    }
    bytes = bytes.subarray(0, need);
    if (bigEndian) bytes = swapBytes(bytes, DTYPE_SIZE[type.dtype]);
    const storage = { kind: STORAGE_KIND, key, dtype: type.dtype, bytes, numel: count };
    loaded.set(key, storage);
    return storage;
  };
}

function swapBytes(bytes: Uint8Array, itemsize: number): Uint8Array {
  const out = bytes.slice();
  if (itemsize === 1) return out;
  for (let i = 0; i < out.length; i += itemsize) out.subarray(i, i + itemsize).reverse();
  return out;
}

// ---- tensors -----------------------------------------------------------------------------------

function torchGlobals(): Map<string, PickleGlobal> {
  const globals = new Map<string, PickleGlobal>();
  const add = (qualifiedName: string, call: (args: unknown[]) => unknown): void => {
    globals.set(qualifiedName, { qualifiedName, call });
  };
  for (const [name, dtype] of Object.entries(STORAGE_DTYPES)) globals.set(`torch.${name}`, new StorageType(`torch.${name}`, dtype));
  // Raw untyped storages count bytes (torch/serialization.py persistent_id: numel = nbytes()).
  globals.set('torch.storage.UntypedStorage', new StorageType('torch.storage.UntypedStorage', 'uint8'));
  globals.set('torch.UntypedStorage', new StorageType('torch.UntypedStorage', 'uint8'));
  add('torch._utils._rebuild_tensor_v2', rebuildTensor);
  add('torch._utils._rebuild_parameter', (args) => parameterData(args, '_rebuild_parameter'));
  add('torch._utils._rebuild_parameter_with_state', (args) => parameterData(args, '_rebuild_parameter_with_state'));
  add('torch.device', ([type, index]) => (index === undefined || index === null ? String(type) : `${String(type)}:${String(index)}`));
  return globals;
}

function parameterData(args: unknown[], name: string): RawTensor {
  const [data] = args;
  if (!isRawTensor(data)) throw new CheckpointError(`${name} wraps ${describe(data)}, not a tensor`);
  return data;
}

/** torch/_utils.py `_rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks, metadata=None)`. */
function rebuildTensor(args: unknown[]): RawTensor {
  const [storage, offset, size, stride] = args;
  if (args.length < 6 || args.length > 7) throw new CheckpointError(`_rebuild_tensor_v2 takes 6 or 7 arguments, got ${args.length}`);
  if (!isStorage(storage)) throw new CheckpointError(`_rebuild_tensor_v2 got ${describe(storage)} instead of a storage`);
  const where = `tensor in storage ${storage.key}`;
  if (!isIndexList(size) || !isIndexList(stride) || size.length !== stride.length) {
    throw new CheckpointError(`${where}: size ${describe(size)} and stride ${describe(stride)} must be equal-length lists of non-negative integers`);
  }
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new CheckpointError(`${where}: storage offset ${describe(offset)} is not a non-negative integer`);
  }
  const n = numel(size, where);
  if (n > 0) {
    const last = size.reduce((acc, s, d) => acc + (s - 1) * stride[d]!, offset);
    if (last >= storage.numel) {
      throw new CheckpointError(`${where}: size [${size.join(', ')}], stride [${stride.join(', ')}] and offset ${offset} ` +
        `reach element ${last}, past the storage's ${storage.numel}; the checkpoint is corrupt`);
    }
  }
  return { dtype: storage.dtype, shape: [...size], data: gather(storage.bytes, DTYPE_SIZE[storage.dtype], offset, size, stride) };
}

function isIndexList(v: unknown): v is number[] {
  return Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0);
}

function isContiguous(size: number[], stride: number[]): boolean {
  let expected = 1;
  for (let d = size.length - 1; d >= 0; d--) {
    if (size[d] === 1) continue; // a size-1 dimension's stride is never used
    if (stride[d] !== expected) return false;
    expected *= size[d]!;
  }
  return true;
}

/** Copies the strided view (offset, size, stride) of `src` into a new contiguous row-major buffer. */
function gather(src: Uint8Array, itemsize: number, offset: number, size: number[], stride: number[]): Uint8Array {
  const n = size.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(n * itemsize);
  if (n === 0) return out;
  if (isContiguous(size, stride)) {
    out.set(src.subarray(offset * itemsize, (offset + n) * itemsize));
    return out;
  }
  const nd = size.length;
  const inner = size[nd - 1]!;
  const innerStride = stride[nd - 1]!;
  const index = new Array<number>(nd - 1).fill(0);
  let base = offset;
  let o = 0;
  for (let row = 0; row < n / inner; row++) {
    if (innerStride === 1) {
      out.set(src.subarray(base * itemsize, (base + inner) * itemsize), o);
      o += inner * itemsize;
    } else {
      for (let j = 0; j < inner; j++) {
        const s = (base + j * innerStride) * itemsize;
        for (let b = 0; b < itemsize; b++) out[o++] = src[s + b]!;
      }
    }
    // Odometer over the outer dimensions, last-but-one fastest.
    for (let d = nd - 2; d >= 0; d--) {
      index[d] = index[d]! + 1;
      base += stride[d]!;
      if (index[d]! < size[d]!) break;
      base -= stride[d]! * size[d]!;
      index[d] = 0;
    }
  }
  return out;
}
