/**
 * A restricted unpickler: reads the Python pickles torch.save writes (protocol 2; protocols 3–5
 * opcodes too) without ever running code. Opcode semantics follow CPython Lib/pickle.py
 * (`_Unpickler.load_*`) and the opcode table in Lib/pickletools.py.
 *
 * Safety: GLOBAL / STACK_GLOBAL resolve only names in an explicit whitelist of JS functions
 * (`PickleGlobal`s) — the built-in ones below plus whatever the caller passes (torch-pickle.ts adds
 * the tensor rebuilders). Any other name (os.system, builtins.eval, …) throws a CheckpointError at
 * the opcode that names it; nothing is looked up dynamically, nothing is executed.
 *
 * Python → JS:
 *   dict / OrderedDict → plain object when every key is a str (keys are defined as own properties,
 *                        so "__proto__" is an ordinary key), otherwise a Map (int or tuple keys)
 *   list, tuple        → array            int   → number, or bigint outside ±(2^53 − 1)
 *   float              → number           str   → string
 *   bytes, bytearray   → Uint8Array       None  → null      bool → boolean
 *   set, frozenset     → Set
 * Instance state that BUILD attaches to a dict (torch's `state_dict._metadata`, module version
 * numbers) is dropped: it carries no weights.
 */
import { CheckpointError, describe } from './raw-tensor.js';

/** A whitelisted Python callable/class. `call` receives already-unpickled arguments. */
export interface PickleGlobal {
  readonly qualifiedName: string;
  call(args: unknown[]): unknown;
}

export interface UnpickleOptions {
  /** Extra whitelisted globals, keyed "module.name". */
  globals?: ReadonlyMap<string, PickleGlobal>;
  /** Resolves BINPERSID ids (torch: storage references); without it, persistent ids are an error. */
  persistentLoad?: (pid: unknown) => unknown;
  /** Names the pickle in error messages. */
  source?: string;
  /**
   * More plain-data classes to accept ("module.Name"), for this call only; see addSafeGlobals.
   */
  safeGlobals?: readonly string[];
}

/**
 * An instance of an allow-listed plain-data class (argparse.Namespace, types.SimpleNamespace, or
 * what addSafeGlobals added): its class name, the arguments the pickle passed and the attributes
 * BUILD set. None of the class's code exists here, so nothing runs; the values are data.
 */
export class PickledObject {
  /** Attributes from BUILD (a str-keyed dict becomes a plain object). */
  state: unknown = null;

  constructor(readonly className: string, public args: unknown[]) {}

  /** The attributes as a plain object ({} when BUILD set none). */
  get attributes(): Record<string, unknown> {
    return typeof this.state === 'object' && this.state !== null && !(this.state instanceof Map) ? this.state as Record<string, unknown> : {};
  }
}

/**
 * Plain-data classes whose instances load as PickledObject: built from no code, their state is
 * data. timm's train.py stores its arguments as an argparse.Namespace (`args`).
 */
const SAFE_CLASSES = new Set<string>(['argparse.Namespace', 'types.SimpleNamespace']);

/**
 * Accepts more plain-data classes in every later load, as torch.serialization.add_safe_globals:
 * `addSafeGlobals(['my_project.config.TrainConfig'])`. Their instances load as PickledObject (class
 * name + attributes); nothing of them is executed, so this only widens what loads, never what runs.
 *
 * Errors: TypeError for a name that is not "module.Name".
 */
export function addSafeGlobals(names: readonly string[]): void {
  for (const name of names) SAFE_CLASSES.add(checkQualifiedName(name));
}

/** The plain-data classes accepted by default plus those added with addSafeGlobals. */
export function getSafeGlobals(): string[] {
  return [...SAFE_CLASSES].sort();
}

function checkQualifiedName(name: string): string {
  if (typeof name !== 'string' || !/^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+$/.test(name)) {
    throw new TypeError(`safe globals are "module.Name" strings (e.g. "argparse.Namespace"), got ${JSON.stringify(name)}`);
  }
  return name;
}

/** Mutable dict used while unpickling; converted to an object or Map once loading finishes. */
export class PyDict {
  readonly items = new Map<unknown, unknown>();
}

function global(qualifiedName: string, call: (args: unknown[]) => unknown): PickleGlobal {
  return { qualifiedName, call };
}

function pairsToDict(args: unknown[], name: string): PyDict {
  const dict = new PyDict();
  if (args.length === 0) return dict;
  const [pairs] = args;
  if (!Array.isArray(pairs) || !pairs.every((p) => Array.isArray(p) && p.length === 2)) {
    throw new CheckpointError(`${name} expects a list of (key, value) pairs, got ${describe(pairs)}`);
  }
  for (const [k, v] of pairs as [unknown, unknown][]) dict.items.set(k, v);
  return dict;
}

function toSet(args: unknown[], name: string): Set<unknown> {
  if (args.length === 0) return new Set();
  if (!Array.isArray(args[0])) throw new CheckpointError(`${name} expects a list, got ${describe(args[0])}`);
  return new Set(args[0]);
}

function toBytes(args: unknown[], name: string): Uint8Array {
  if (args.length === 0) return new Uint8Array(0);
  if (args[0] instanceof Uint8Array) return args[0].slice();
  throw new CheckpointError(`${name} is only read from bytes, got ${describe(args[0])}`);
}

/** Harmless data constructors that pickles of plain containers refer to. */
const BUILTIN_GLOBALS: ReadonlyMap<string, PickleGlobal> = new Map(
  [
    global('collections.OrderedDict', (a) => pairsToDict(a, 'collections.OrderedDict')),
    global('builtins.set', (a) => toSet(a, 'set')),
    global('builtins.frozenset', (a) => toSet(a, 'frozenset')),
    // Protocol ≤ 2 pickles empty bytes as bytes(), bytearray as bytearray(bytes) …
    global('builtins.bytes', (a) => toBytes(a, 'bytes')),
    global('builtins.bytearray', (a) => toBytes(a, 'bytearray')),
    // … and non-empty Python 3 `bytes` as _codecs.encode(text, 'latin1').
    global('_codecs.encode', (a) => {
      const [text, encoding] = a;
      if (typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1')) {
        throw new CheckpointError(`_codecs.encode is only read for (str, 'latin1') pairs, got ${describe(encoding)}`);
      }
      return Uint8Array.from(text, (ch) => ch.charCodeAt(0) & 0xff);
    }),
  ].map((g) => [g.qualifiedName, g]));

/** Python 2 module names that protocol ≤ 2 pickles use (CPython Lib/_compat_pickle.py). */
const PY2_MODULES: Record<string, string> = { __builtin__: 'builtins', copy_reg: 'copyreg' };

/** Unpickles `bytes`, resolving only whitelisted globals. Never executes anything. */
export function unpickle(bytes: Uint8Array, options: UnpickleOptions = {}): unknown {
  return new Unpickler(bytes, options).load();
}

class Unpickler {
  private pos = 0;
  private stack: unknown[] = [];
  private readonly metastack: unknown[][] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly view: DataView;
  private readonly source: string;
  private opAt = 0;

  constructor(private readonly bytes: Uint8Array, private readonly options: UnpickleOptions) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.source = options.source ?? 'pickle';
  }

  fail(problem: string): never {
    throw new CheckpointError(`${this.source}: ${problem} (at byte ${this.opAt}); the pickle is corrupt or not a torch checkpoint`);
  }

  load(): unknown {
    while (this.pos < this.bytes.byteLength) {
      this.opAt = this.pos;
      const op = this.bytes[this.pos++]!;
      if (op === 0x2e /* STOP */) {
        if (this.stack.length !== 1 || this.metastack.length !== 0) this.fail(`STOP with ${this.stack.length} values on the stack`);
        return finalize(this.stack[0]);
      }
      this.step(op);
    }
    return this.fail('pickle ends without a STOP opcode; the data is truncated');
  }

  // ---- raw reads ---------------------------------------------------------------------------------

  private take(n: number): Uint8Array {
    if (!Number.isSafeInteger(n) || n < 0 || this.pos + n > this.bytes.byteLength) {
      this.fail(`an argument of ${n} bytes runs past the end of the ${this.bytes.byteLength}-byte pickle (truncated)`);
    }
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  private u8(): number { return this.take(1)[0]!; }
  private u16(): number { const b = this.take(2); return b[0]! | (b[1]! << 8); }
  private u32(): number { this.take(4); return this.view.getUint32(this.pos - 4, true); }
  private i32(): number { this.take(4); return this.view.getInt32(this.pos - 4, true); }
  private u64(): number {
    this.take(8);
    const v = this.view.getBigUint64(this.pos - 8, true);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? this.fail(`length ${v} is impossibly large`) : Number(v);
  }
  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.pos);
    if (end < 0) this.fail('a text argument has no terminating newline (truncated)');
    return new TextDecoder('latin1').decode(this.take(end - this.pos + 1).subarray(0, -1));
  }
  private utf8(n: number): string {
    try {
      return new TextDecoder('utf-8', { fatal: true }).decode(this.take(n));
    } catch (err) {
      if (err instanceof CheckpointError) throw err;
      return this.fail('a string is not valid UTF-8');
    }
  }
  private latin1(n: number): string { return new TextDecoder('latin1').decode(this.take(n)); }
  private bytesCopy(n: number): Uint8Array { return this.take(n).slice(); }

  // ---- stack -------------------------------------------------------------------------------------

  private push(v: unknown): void { this.stack.push(v); }
  private pop(): unknown {
    if (this.stack.length === 0) this.fail('stack underflow');
    return this.stack.pop();
  }
  private top(): unknown {
    if (this.stack.length === 0) this.fail('stack underflow');
    return this.stack[this.stack.length - 1];
  }
  private popMark(): unknown[] {
    const items = this.stack;
    const outer = this.metastack.pop();
    if (outer === undefined) this.fail('an opcode expected a MARK but none is open');
    this.stack = outer;
    return items;
  }
  private memoGet(i: number): unknown {
    if (!this.memo.has(i)) this.fail(`memo slot ${i} is read before it is written`);
    return this.memo.get(i);
  }
  private memoPut(i: number): void { this.memo.set(i, this.top()); }

  // ---- opcodes -----------------------------------------------------------------------------------

  private step(op: number): void {
    switch (op) {
      case 0x80: { const v = this.u8(); if (v > 5) this.fail(`pickle protocol ${v} is newer than 5`); return; } // PROTO
      case 0x95: this.u64(); return; // FRAME: framing is only a read-ahead hint
      case 0x28: this.metastack.push(this.stack); this.stack = []; return; // MARK
      case 0x30: this.pop(); return; // POP
      case 0x31: this.popMark(); return; // POP_MARK
      case 0x32: this.push(this.top()); return; // DUP
      case 0x4e: this.push(null); return; // NONE
      case 0x88: this.push(true); return; // NEWTRUE
      case 0x89: this.push(false); return; // NEWFALSE
      case 0x4a: this.push(this.i32()); return; // BININT
      case 0x4b: this.push(this.u8()); return; // BININT1
      case 0x4d: this.push(this.u16()); return; // BININT2
      case 0x8a: this.push(decodeLong(this.take(this.u8()))); return; // LONG1
      case 0x8b: { const n = this.i32(); this.push(decodeLong(this.take(n))); return; } // LONG4
      case 0x47: this.take(8); this.push(this.view.getFloat64(this.pos - 8, false)); return; // BINFLOAT (big-endian)
      case 0x58: this.push(this.utf8(this.u32())); return; // BINUNICODE
      case 0x8c: this.push(this.utf8(this.u8())); return; // SHORT_BINUNICODE
      case 0x8d: this.push(this.utf8(this.u64())); return; // BINUNICODE8
      case 0x54: this.push(this.latin1(this.i32())); return; // BINSTRING (Python 2 str)
      case 0x55: this.push(this.latin1(this.u8())); return; // SHORT_BINSTRING
      case 0x42: this.push(this.bytesCopy(this.u32())); return; // BINBYTES
      case 0x43: this.push(this.bytesCopy(this.u8())); return; // SHORT_BINBYTES
      case 0x8e: case 0x96: this.push(this.bytesCopy(this.u64())); return; // BINBYTES8, BYTEARRAY8
      case 0x7d: this.push(new PyDict()); return; // EMPTY_DICT
      case 0x5d: this.push([]); return; // EMPTY_LIST
      case 0x29: this.push([]); return; // EMPTY_TUPLE
      case 0x8f: this.push(new Set()); return; // EMPTY_SET
      case 0x74: this.push(this.popMark()); return; // TUPLE
      case 0x6c: this.push(this.popMark()); return; // LIST
      case 0x85: this.push([this.pop()]); return; // TUPLE1
      case 0x86: { const b = this.pop(); const a = this.pop(); this.push([a, b]); return; } // TUPLE2
      case 0x87: { const c = this.pop(); const b = this.pop(); const a = this.pop(); this.push([a, b, c]); return; } // TUPLE3
      case 0x91: this.push(new Set(this.popMark())); return; // FROZENSET
      case 0x64: this.push(this.dictFrom(this.popMark())); return; // DICT
      case 0x73: { const v = this.pop(); const k = this.pop(); this.setItems([k, v]); return; } // SETITEM
      case 0x75: this.setItems(this.popMark()); return; // SETITEMS
      case 0x61: this.appendItems([this.pop()]); return; // APPEND
      case 0x65: this.appendItems(this.popMark()); return; // APPENDS
      case 0x90: this.addItems(this.popMark()); return; // ADDITEMS
      case 0x71: this.memoPut(this.u8()); return; // BINPUT
      case 0x72: this.memoPut(this.u32()); return; // LONG_BINPUT
      case 0x94: this.memoPut(this.memo.size); return; // MEMOIZE
      case 0x70: this.memoPut(this.decimal(this.line())); return; // PUT
      case 0x68: this.push(this.memoGet(this.u8())); return; // BINGET
      case 0x6a: this.push(this.memoGet(this.u32())); return; // LONG_BINGET
      case 0x67: this.push(this.memoGet(this.decimal(this.line()))); return; // GET
      case 0x63: { const module = this.line(); this.push(this.resolve(module, this.line())); return; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = this.pop();
        const module = this.pop();
        if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two strings');
        this.push(this.resolve(module, name));
        return;
      }
      case 0x52: { const args = this.pop(); this.push(this.call(this.pop(), args)); return; } // REDUCE
      case 0x81: { const args = this.pop(); this.push(this.call(this.pop(), args)); return; } // NEWOBJ
      case 0x62: this.build(this.pop()); return; // BUILD
      case 0x51: this.push(this.persistent(this.pop())); return; // BINPERSID
      case 0x50: this.push(this.persistent(this.line())); return; // PERSID
      default:
        this.fail(`opcode 0x${op.toString(16).padStart(2, '0')} is not one vicinity reads ` +
          '(only the data opcodes torch.save emits are supported)');
    }
  }

  private decimal(text: string): number {
    const n = Number(text);
    return Number.isSafeInteger(n) && n >= 0 ? n : this.fail(`memo index ${JSON.stringify(text)} is not a number`);
  }

  private dictFrom(items: unknown[]): PyDict {
    const dict = new PyDict();
    if (items.length % 2 !== 0) this.fail('DICT needs an even number of items');
    for (let i = 0; i < items.length; i += 2) dict.items.set(items[i], items[i + 1]);
    return dict;
  }

  private setItems(items: unknown[]): void {
    const target = this.top();
    if (!(target instanceof PyDict)) this.fail(`SETITEM(S) on ${describe(target)}, not a dict`);
    if (items.length % 2 !== 0) this.fail('SETITEMS needs an even number of items');
    for (let i = 0; i < items.length; i += 2) {
      const key = items[i];
      if (key instanceof PyDict || (Array.isArray(key) && !isHashableTuple(key))) this.fail('a dict key is unhashable');
      target.items.set(key, items[i + 1]);
    }
  }

  private appendItems(items: unknown[]): void {
    const target = this.top();
    if (!Array.isArray(target)) this.fail(`APPEND(S) on ${describe(target)}, not a list`);
    for (const item of items) target.push(item);
  }

  private addItems(items: unknown[]): void {
    const target = this.top();
    if (!(target instanceof Set)) this.fail(`ADDITEMS on ${describe(target)}, not a set`);
    for (const item of items) target.add(item);
  }

  private resolve(module: string, name: string): PickleGlobal {
    const qualified = `${PY2_MODULES[module] ?? module}.${name}`;
    const found = this.options.globals?.get(qualified) ?? BUILTIN_GLOBALS.get(qualified);
    if (found !== undefined) return found;
    if (SAFE_CLASSES.has(qualified) || this.options.safeGlobals?.includes(qualified)) {
      return { qualifiedName: qualified, call: (args) => new PickledObject(qualified, args) };
    }
    throw new CheckpointError(`${this.source}: checkpoint refers to ${qualified}, which vicinity does not load ` +
      `(only tensors, dicts, lists, numbers and strings); ${hintFor(qualified)}`);
  }

  private call(callable: unknown, args: unknown): unknown {
    if (!isPickleGlobal(callable)) this.fail(`REDUCE/NEWOBJ calls ${describe(callable)}, which is not a whitelisted global`);
    if (!Array.isArray(args)) this.fail(`${callable.qualifiedName} is called with ${describe(args)}, not an argument tuple`);
    try {
      return callable.call(args);
    } catch (err) {
      // Any failure — including allocation RangeErrors for absurd sizes — is reported, never a crash.
      const problem = err instanceof CheckpointError ? err.message : `${callable.qualifiedName} failed: ${String(err)}`;
      throw new CheckpointError(`${this.source}: ${problem}`, { cause: err });
    }
  }

  private build(state: unknown): void {
    const target = this.top();
    // torch attaches `_metadata` (per-module version numbers) to state dicts; no weights live there.
    if (target instanceof PyDict) return;
    if (target instanceof PickledObject) {
      // __setstate__-less objects: state is a dict, or (dict, slot dict) for classes with __slots__.
      target.state = Array.isArray(state) && state.length === 2 ? mergeStates(state[0], state[1]) : state;
      return;
    }
    this.fail(`BUILD sets state on ${describe(target)}; only dict state is accepted (got state ${describe(state)})`);
  }

  private persistent(pid: unknown): unknown {
    const load = this.options.persistentLoad;
    if (load === undefined) this.fail('a persistent id (external storage reference) appears, but none are expected here');
    return load(finalize(pid));
  }
}

function isPickleGlobal(v: unknown): v is PickleGlobal {
  return typeof v === 'object' && v !== null && typeof (v as PickleGlobal).call === 'function' &&
    typeof (v as PickleGlobal).qualifiedName === 'string';
}

function mergeStates(dict: unknown, slots: unknown): unknown {
  if (!(slots instanceof PyDict)) return dict;
  const out = new PyDict();
  if (dict instanceof PyDict) for (const [k, v] of dict.items) out.items.set(k, v);
  for (const [k, v] of slots.items) out.items.set(k, v);
  return out;
}

function isHashableTuple(v: unknown[]): boolean {
  return v.every((x) => !(x instanceof PyDict) && (!Array.isArray(x) || isHashableTuple(x)));
}

function hintFor(qualified: string): string {
  if (qualified.startsWith('__torch__.')) {
    return 'this looks like a TorchScript archive — load it in Python with torch.jit.load and save ' +
      'model.state_dict() with torch.save';
  }
  if (/^torch\.\w+Storage$/.test(qualified)) {
    return 'vicinity reads float32/64, bfloat16, float16, int8–int64, uint8 and bool tensors; ' +
      'convert other dtypes (e.g. complex) before torch.save';
  }
  if (qualified.startsWith('torch._utils._rebuild_')) {
    return 'vicinity reads dense tensors only; convert quantized or sparse tensors with .dequantize() / ' +
      '.to_dense() before torch.save';
  }
  if (qualified.startsWith('numpy.')) {
    return 'convert NumPy values to Python numbers or torch tensors before torch.save';
  }
  return 'if this is a whole pickled model, save only the weights: torch.save(model.state_dict(), path); ' +
    `if ${qualified} is a plain-data class (attributes only), allow it with addSafeGlobals(['${qualified}'])`;
}

/** Two's-complement little-endian integer (LONG1/LONG4): number when exact, else bigint. */
function decodeLong(b: Uint8Array): number | bigint {
  if (b.length === 0) return 0;
  let v = 0n;
  for (let i = b.length - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[i]!);
  if (b[b.length - 1]! & 0x80) v -= 1n << BigInt(8 * b.length);
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

/**
 * Converts PyDicts to objects/Maps everywhere in the loaded value, iteratively (deeply nested
 * pickles must not overflow the JS stack) and preserving sharing and cycles.
 */
function finalize(root: unknown): unknown {
  const converted = new Map<PyDict, Record<string, unknown> | Map<unknown, unknown>>();
  const seenArrays = new Set<unknown[]>();
  const seenObjects = new Set<PickledObject>();
  const work: Array<() => void> = [];
  const convert = (v: unknown): unknown => {
    if (v instanceof PyDict) {
      const done = converted.get(v);
      if (done !== undefined) return done;
      const allStrings = [...v.items.keys()].every((k) => typeof k === 'string');
      const out: Record<string, unknown> | Map<unknown, unknown> = allStrings ? {} : new Map();
      converted.set(v, out);
      work.push(() => {
        for (const [k, item] of v.items) {
          const value = convert(item);
          if (out instanceof Map) out.set(k, value);
          else Object.defineProperty(out, k as string, { value, enumerable: true, writable: true, configurable: true });
        }
      });
      return out;
    }
    if (v instanceof PickledObject && !seenObjects.has(v)) {
      seenObjects.add(v);
      work.push(() => { v.state = convert(v.state); v.args = convert(v.args) as unknown[]; });
      return v;
    }
    if (Array.isArray(v) && !seenArrays.has(v)) {
      seenArrays.add(v);
      work.push(() => { for (let i = 0; i < v.length; i++) v[i] = convert(v[i]); });
    }
    return v;
  };
  const result = convert(root);
  while (work.length > 0) work.pop()!();
  return result;
}
