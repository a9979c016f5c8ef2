/**
 * Scopes own the tensors created inside them (architecture.md, "Memory"): garbage collection
 * alone cannot bound a training loop, because Node runs finalizers only when the event loop turns.
 *
 *   using s = scope();              // disposed at the end of the block
 *   const y = tidy(() => f(x));     // everything but y is disposed
 *   const y = await tidy(async () => { ... });   // spans await via AsyncLocalStorage
 *
 * A tensor survives its scope when it is returned from tidy(), passed to keep(), or is a
 * Parameter. Scopes nest: ending one hands its returned tensors to the parent.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { native, type TensorBase } from '../native/binding.js';

const storage = new AsyncLocalStorage<Scope | undefined>();

export class Scope implements Disposable {
  private tensors: TensorBase[] = [];
  private ended = false;
  readonly parent: Scope | undefined;

  constructor(parent: Scope | undefined) {
    this.parent = parent;
  }

  track(t: TensorBase): void {
    this.tensors.push(t);
  }

  /** Disposes every tracked tensor except those in `survivors`, which move to the parent scope. */
  end(survivors: Iterable<TensorBase> = []): void {
    if (this.ended) return;
    this.ended = true;
    const keep = new Set(survivors);
    for (const t of this.tensors) {
      if (keep.has(t) || kept.has(t)) {
        if (kept.has(t)) continue;
        if (this.parent) this.parent.track(t);
        else t._trackGc();  // returned to code outside every scope: only the GC frees it now
      } else {
        t.dispose();
      }
    }
    this.tensors = [];
  }

  /** For `using s = scope()`: ends the scope and makes the parent current again. */
  [Symbol.dispose](): void {
    this.end();
    if (storage.getStore() === this) storage.enterWith(this.parent);
  }
}

// Tensors that outlive every scope until disposed by hand.
const kept = new WeakSet<TensorBase>();

export function currentScope(): Scope | undefined {
  return storage.getStore();
}

/** Opens a scope for the rest of the current block: `using s = scope();`. */
export function scope(): Scope {
  const s = new Scope(storage.getStore());
  storage.enterWith(s);
  return s;
}

/** Marks a tensor as owned by the caller: no scope disposes it. */
export function keep<T extends TensorBase>(t: T): T {
  kept.add(t);
  t._trackGc();
  return t;
}

/** Collects the tensors reachable in a returned value (arrays, plain objects, Maps). */
function collect(value: unknown, out: TensorBase[], seen = new Set<unknown>()): TensorBase[] {
  if (value === null || typeof value !== 'object' || seen.has(value)) return out;
  seen.add(value);
  if (isTensor(value)) {
    out.push(value);
  } else if (Array.isArray(value)) {
    for (const v of value) collect(v, out, seen);
  } else if (value instanceof Map) {
    for (const v of value.values()) collect(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collect(v, out, seen);
  }
  return out;
}

// Every tensor (Tensor, Parameter, and whatever class the addon builds results with) derives from
// the addon's base class, so scopes recognise tensors without importing tensor.ts (which imports
// this file).
function isTensor(v: unknown): v is TensorBase {
  return v instanceof native.TensorBase;
}

/**
 * Runs fn in a new scope and disposes every tensor it created except those it returns.
 * An async fn keeps its scope across await; the scope ends when its promise settles.
 */
export function tidy<T>(fn: () => T): T {
  const s = new Scope(storage.getStore());
  let result: T;
  try {
    result = storage.run(s, fn);
  } catch (e) {
    s.end();
    throw e;
  }
  if (result instanceof Promise) {
    return result.then(
      (value) => {
        s.end(collect(value, []));
        return value;
      },
      (e) => {
        s.end();
        throw e;
      },
    ) as T;
  }
  s.end(collect(result, []));
  return result;
}
