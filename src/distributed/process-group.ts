/**
 * ProcessGroup: libtorch's c10d process group (Gloo on CPU, NCCL for CUDA tensors when compiled
 * in), initialised from the env:// variables, with PyTorch's collectives on tensors.
 *
 * Collectives come in two forms: `allReduce(...)` returns a Promise whose wait runs on a worker
 * thread (Node's event loop keeps turning: timers, signals, I/O), `allReduceSync(...)` waits on
 * this thread (for use inside a synchronous training step, where the step must not go on before
 * the result). Every wait is bounded by the group's timeout (`timeoutSeconds`, default
 * VICINITY_DIST_TIMEOUT or 300 s), which c10d/Gloo enforce themselves.
 *
 * Faults. A collective that fails — a peer's connection closed, or the timeout passed — becomes a
 * DistributedError that names the ranks at fault. Each rank that sees a failure marks itself in the
 * rendezvous store, then waits briefly (at most 5 s) for the others: ranks that reported an error
 * of their own (`reportFailure`, e.g. a non-finite loss) are named with their message, ranks that
 * never answer are named as gone (dead or hung), and when the store itself is gone, so is rank 0,
 * which hosts it.
 */
import { native, type NativeProcessGroup, type NativeWork, type TensorBase } from '../native/binding.js';
import * as F from '../ops/functional.js';
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { readDistributedEnv, type DistributedEnv } from './env.js';

export type ReduceOp = 'sum' | 'mean' | 'product' | 'min' | 'max';

/** A collective failed; `ranks` are the ranks named as its cause (empty when none is known). */
export class DistributedError extends Error {
  constructor(message: string, readonly ranks: number[]) {
    super(message);
    this.name = 'DistributedError';
  }
}

export interface ProcessGroupOptions {
  /** Rendezvous settings; default readDistributedEnv(). */
  env?: DistributedEnv;
  /** Bound on the rendezvous and on every collective; default VICINITY_DIST_TIMEOUT or 300 s. */
  timeoutSeconds?: number;
  /** 'gloo' (CPU tensors) or 'nccl' (CUDA tensors; needs a CUDA build); default 'gloo'. */
  backend?: 'gloo' | 'nccl';
}

/** Default bound on a collective, in seconds: VICINITY_DIST_TIMEOUT, else 300. */
export function defaultTimeoutSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.VICINITY_DIST_TIMEOUT;
  if (raw === undefined || raw === '') return 300;
  const value = Number(raw);
  if (!(value > 0)) throw new RangeError(`VICINITY_DIST_TIMEOUT=${raw} must be a positive number of seconds`);
  return value;
}

const PROBE_MS = 5000;

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

export class ProcessGroup {
  readonly rank: number;
  readonly worldSize: number;
  readonly timeoutSeconds: number;
  private failure: DistributedError | null = null;

  private constructor(private handle: NativeProcessGroup | null, readonly env: DistributedEnv, timeoutSeconds: number) {
    this.rank = env.rank;
    this.worldSize = env.worldSize;
    this.timeoutSeconds = timeoutSeconds;
  }

  /**
   * Joins the group: connects to the TCPStore at MASTER_ADDR:MASTER_PORT (rank 0 hosts it, unless
   * torchrun's agent does) and builds the backend's connections to every peer.
   *
   * Example:
   *   const group = await ProcessGroup.init();          // RANK, WORLD_SIZE, ... from the environment
   *   await group.allReduce(grad, { op: 'mean' });
   */
  static async init(options: ProcessGroupOptions = {}): Promise<ProcessGroup> {
    const env = options.env ?? readDistributedEnv();
    const timeoutSeconds = options.timeoutSeconds ?? defaultTimeoutSeconds();
    if (!(timeoutSeconds > 0)) throw new RangeError(`ProcessGroup: timeoutSeconds must be positive, got ${timeoutSeconds}`);
    const backend = options.backend ?? 'gloo';
    if (backend === 'nccl' && !native.distributedInfo().nccl) {
      throw new Error('ProcessGroup: this build of vicinity has no NCCL (it needs a CUDA libtorch); use backend \'gloo\'');
    }
    let handle: NativeProcessGroup;
    try {
      handle = await native.initProcessGroup({
        host: env.masterAddr, port: env.masterPort, rank: env.rank, worldSize: env.worldSize,
        timeoutMs: Math.round(timeoutSeconds * 1000), backend, hostStore: env.rank === 0 && !env.agentStore,
      });
    } catch (e) {
      throw new DistributedError(`distributed: rank ${env.rank} of ${env.worldSize} could not join the group at ` +
        `${env.masterAddr}:${env.masterPort} within ${timeoutSeconds} s (${messageOf(e)}); check that every rank ` +
        'was started with the same MASTER_ADDR, MASTER_PORT and WORLD_SIZE, and that the port is free and reachable', []);
    }
    const group = new ProcessGroup(handle, env, timeoutSeconds);
    handle.storeSet(`alive/${env.rank}`, String(process.pid));
    return group;
  }

  private live(): NativeProcessGroup {
    if (this.failure) throw this.failure;
    if (!this.handle) throw new Error('ProcessGroup: this group was destroyed');
    return this.handle;
  }

  /** Reduces `tensors` in place across ranks ('mean' = sum / worldSize); resolves when done. */
  /**
   * Reduces `tensors` in place across ranks ('mean' = sum / worldSize); resolves when done.
   * Several tensors travel as one flat buffer per dtype (PyTorch's coalesced collectives).
   */
  async allReduce(tensors: Tensor | Tensor[], options: { op?: ReduceOp } = {}): Promise<void> {
    const op = options.op ?? 'sum';
    const batch = coalesce(this.list(tensors));
    try {
      await this.waitAsync('allReduce', () => batch.flat.map((t) => this.live().allReduce([t], op === 'mean' ? 'sum' : op)));
      batch.finish(op === 'mean' ? this.worldSize : 1);
    } finally {
      batch.dispose();
    }
  }

  /** allReduce, waiting on this thread. */
  allReduceSync(tensors: Tensor | Tensor[], options: { op?: ReduceOp } = {}): void {
    const op = options.op ?? 'sum';
    const batch = coalesce(this.list(tensors));
    try {
      this.waitSync('allReduce', () => batch.flat.map((t) => this.live().allReduce([t], op === 'mean' ? 'sum' : op)));
      batch.finish(op === 'mean' ? this.worldSize : 1);
    } finally {
      batch.dispose();
    }
  }

  /** Copies rank `root`'s tensors into every other rank's, in place. */
  async broadcast(tensors: Tensor | Tensor[], options: { root?: number } = {}): Promise<void> {
    const root = this.root(options.root);
    const batch = coalesce(this.list(tensors));
    try {
      await this.waitAsync('broadcast', () => batch.flat.map((t) => this.live().broadcast([t], root)));
      batch.finish(1);
    } finally {
      batch.dispose();
    }
  }

  broadcastSync(tensors: Tensor | Tensor[], options: { root?: number } = {}): void {
    const root = this.root(options.root);
    const batch = coalesce(this.list(tensors));
    try {
      this.waitSync('broadcast', () => batch.flat.map((t) => this.live().broadcast([t], root)));
      batch.finish(1);
    } finally {
      batch.dispose();
    }
  }

  /** Every rank's `tensor` (same shape and dtype on all), in rank order. */
  async allGather(tensor: Tensor): Promise<Tensor[]> {
    return (await this.waitAsync('allGather', () => [this.live().allGather(tensor.contiguous())])) as Tensor[];
  }

  allGatherSync(tensor: Tensor): Tensor[] {
    return this.waitSync('allGather', () => [this.live().allGather(tensor.contiguous())]) as Tensor[];
  }

  /** Resolves when every rank has reached its barrier. */
  async barrier(): Promise<void> {
    await this.waitAsync('barrier', () => [this.live().barrier()]);
  }

  /** The native group, for the Reducer (ddp.ts). */
  get nativeHandle(): NativeProcessGroup {
    return this.live();
  }

  /**
   * Tells the other ranks why this one is about to stop (best effort), so their next collective
   * fails naming it with this message instead of as a rank that went silent.
   */
  reportFailure(message: string): void {
    try {
      this.handle?.storeSet(`error/${this.rank}`, message.slice(0, 2000));
    } catch {
      // The store is gone too; the others will name this rank as unresponsive.
    }
  }

  /** Releases the backend's connections; later calls throw. */
  destroy(): void {
    this.handle?.destroy();
    this.handle = null;
  }

  /** The error for a failed collective, naming the ranks at fault (file header). Sticky. */
  explain(what: string, error: unknown): DistributedError {
    if (error instanceof DistributedError) return error;
    if (this.failure) return this.failure;
    const base = messageOf(error);
    const handle = this.handle;
    const others = Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => r !== this.rank);
    const reported = new Map<number, string>();
    const answered = new Set<number>();
    let storeGone = false;
    try {
      handle?.storeSet(`fail/${this.rank}`, base.slice(0, 500));
      const deadline = Date.now() + Math.min(PROBE_MS, this.timeoutSeconds * 1000);
      for (;;) {
        for (const r of others) {
          const message = handle?.storeGet(`error/${r}`);
          if (message != null) reported.set(r, message);
          if (message != null || handle?.storeGet(`fail/${r}`) != null) answered.add(r);
        }
        if (answered.size === others.length || Date.now() >= deadline) break;
        sleepSync(100);
      }
    } catch {
      storeGone = true;
    }
    const causes: string[] = [];
    const ranks: number[] = [];
    if (storeGone) {
      const host = `${this.env.masterAddr}:${this.env.masterPort}`;
      if (this.env.agentStore) causes.push(`the rendezvous store at ${host} (torchrun's agent) no longer answers`);
      else {
        causes.push(`rank 0 is gone (it hosts the rendezvous store at ${host}, which no longer answers)`);
        ranks.push(0);
      }
    } else {
      for (const [r, message] of reported) {
        causes.push(`rank ${r} failed: ${message}`);
        ranks.push(r);
      }
      const silent = others.filter((r) => !answered.has(r));
      for (const r of silent) {
        causes.push(`rank ${r} stopped responding (it exited, was killed or hangs)`);
        ranks.push(r);
      }
    }
    const cause = causes.length ? causes.join('; ') : 'no rank reported a cause';
    this.failure = new DistributedError(`distributed: rank ${this.rank} of ${this.worldSize}: ${what} failed: ${cause} ` +
      `[${base}] (timeout ${this.timeoutSeconds} s; set VICINITY_DIST_TIMEOUT or --dist-timeout to change it)`, ranks.sort((a, b) => a - b));
    return this.failure;
  }

  private list(tensors: Tensor | Tensor[]): Tensor[] {
    return Array.isArray(tensors) ? tensors : [tensors];
  }

  private root(root = 0): number {
    if (!Number.isInteger(root) || root < 0 || root >= this.worldSize) {
      throw new RangeError(`ProcessGroup: root must be a rank in [0, ${this.worldSize}), got ${root}`);
    }
    return root;
  }

  // Waits for every launched work; returns the last one's results (allGather launches one).
  private waitSync(what: string, launch: () => NativeWork[]): TensorBase[] | undefined {
    try {
      let out: TensorBase[] | undefined;
      for (const work of launch()) out = work.wait();
      return out;
    } catch (e) {
      throw this.explain(what, e);
    }
  }

  private async waitAsync(what: string, launch: () => NativeWork[]): Promise<TensorBase[] | undefined> {
    try {
      let out: TensorBase[] | undefined;
      for (const work of launch()) out = await work.waitAsync();
      return out;
    } catch (e) {
      throw this.explain(what, e);
    }
  }
}

/**
 * Gloo takes one dense tensor per collective call; several tensors (parameters, buffers, metric
 * sums) go as one flat buffer per dtype, copied back by finish(divisor).
 */
function coalesce(list: Tensor[]): { flat: Tensor[]; finish: (divisor: number) => void; dispose: () => void } {
  const groups = new Map<string, Tensor[]>();
  for (const t of list) {
    const group = groups.get(t.dtype) ?? [];
    group.push(t);
    groups.set(t.dtype, group);
  }
  const flat: Tensor[] = [];
  const owned: Tensor[] = [];
  const copies: Array<() => void> = [];
  noGrad(() => {
    for (const group of groups.values()) {
      if (group.length === 1 && group[0].isContiguous) {
        flat.push(group[0]);
        continue;
      }
      const buffer = F.cat(group.map((t) => t.reshape(-1)));
      flat.push(buffer);
      owned.push(buffer);
      copies.push(() => {
        let offset = 0;
        for (const t of group) {
          const part = buffer.narrow(0, offset, t.numel);
          t.copy_(part.view(t.shape));
          offset += t.numel;
        }
      });
    }
  });
  return {
    flat,
    finish: (divisor) => noGrad(() => {
      if (divisor !== 1) for (const t of flat) t.div_(divisor);
      for (const copy of copies) copy();
    }),
    dispose: () => { for (const t of owned) t.dispose(); },
  };
}
