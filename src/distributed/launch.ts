/**
 * `vicinity train --nproc-per-node N`: a local launcher like torchrun's. It starts N copies of the
 * same command on this machine with the env:// variables set (RANK = nodeRank·N + localRank,
 * WORLD_SIZE = nnodes·N, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and supervises
 * them:
 *
 *   Ctrl-C    the launcher forwards one SIGINT to each rank (they run in their own process groups,
 *             so the terminal's signal reaches only the launcher); the ranks agree on the step to
 *             stop after and rank 0 checkpoints once. A second Ctrl-C kills the ranks.
 *   failure   when a rank exits non-zero, the others get the collective timeout plus 15 s to notice
 *             and exit with their own error naming it (distributed/process-group.ts); any still
 *             running then are killed. The launcher exits with the first failing rank's code.
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  /** The collective timeout the ranks use (seconds), for the launcher's grace period. */
  timeoutSeconds: number;
  /** The command line each rank runs (node's arguments: script and its flags). */
  args: string[];
  /** Where launcher notes go; default stderr. */
  say?: (line: string) => void;
}

/** Marks the ranks a launcher started, so they train instead of launching again. */
export const LAUNCHED_ENV = 'VICINITY_LAUNCHED';

function integerFlag(value: unknown, flag: string, min: number, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${flag} must be an integer ≥ ${min}, got ${JSON.stringify(value)}`);
  return n;
}

/** The launcher settings from parsed flags, or null when this process should train itself. */
export function launchSettings(options: Record<string, unknown>, args: string[], env: NodeJS.ProcessEnv = process.env): LaunchOptions | null {
  const timeoutSeconds = distTimeout(options);
  if (options.nprocPerNode === undefined || env[LAUNCHED_ENV] === '1') return null;
  const nprocPerNode = integerFlag(options.nprocPerNode, '--nproc-per-node', 1, 1);
  const nnodes = integerFlag(options.nnodes, '--nnodes', 1, 1);
  const nodeRank = integerFlag(options.nodeRank, '--node-rank', 0, 0);
  if (nodeRank >= nnodes) throw new RangeError(`--node-rank ${nodeRank} must be below --nnodes ${nnodes}`);
  const masterPort = integerFlag(options.masterPort, '--master-port', 1, 29500);
  if (masterPort > 65535) throw new RangeError(`--master-port ${masterPort} is not a TCP port (1–65535)`);
  const masterAddr = typeof options.masterAddr === 'string' ? options.masterAddr : '127.0.0.1';
  if (nnodes > 1 && options.masterAddr === undefined) {
    throw new RangeError('--nnodes > 1 needs --master-addr: the address of the machine with --node-rank 0');
  }
  return { nprocPerNode, nnodes, nodeRank, masterAddr, masterPort, timeoutSeconds: timeoutSeconds ?? 300, args };
}

/** --dist-timeout in seconds (undefined when not given). */
export function distTimeout(options: Record<string, unknown>): number | undefined {
  if (options.distTimeout === undefined) return undefined;
  const n = Number(options.distTimeout);
  if (!(n > 0)) throw new RangeError(`--dist-timeout must be a positive number of seconds, got ${JSON.stringify(options.distTimeout)}`);
  return n;
}

/** Starts and supervises the ranks (file header); resolves with the exit code for the launcher. */
export async function launchLocal(o: LaunchOptions): Promise<number> {
  const say = o.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  const worldSize = o.nnodes * o.nprocPerNode;
  say(`launch: ${o.nprocPerNode} process(es) on this node (node ${o.nodeRank} of ${o.nnodes}), world size ${worldSize}, ` +
    `rendezvous ${o.masterAddr}:${o.masterPort}`);
  const children: ChildProcess[] = [];
  const exits: Promise<{ rank: number; code: number; signal: string | null }>[] = [];
  for (let local = 0; local < o.nprocPerNode; local++) {
    const rank = o.nodeRank * o.nprocPerNode + local;
    const child = spawn(process.execPath, o.args, {
      stdio: 'inherit', detached: true,
      env: {
        ...process.env, [LAUNCHED_ENV]: '1', RANK: String(rank), WORLD_SIZE: String(worldSize), LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(o.nprocPerNode), MASTER_ADDR: o.masterAddr, MASTER_PORT: String(o.masterPort),
        VICINITY_DIST_TIMEOUT: String(o.timeoutSeconds),
        // One process per core unless the user chose otherwise (torchrun sets OMP_NUM_THREADS=1 likewise).
        VICINITY_NUM_THREADS: process.env.VICINITY_NUM_THREADS ?? '1', OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '1',
      },
    });
    children.push(child);
    exits.push(new Promise((resolve) => child.on('exit', (code, signal) => resolve({ rank, code: code ?? (signal === 'SIGINT' ? 130 : 1), signal }))));
  }
  const running = new Set(children);
  children.forEach((c) => c.on('exit', () => running.delete(c)));
  const killAll = () => { for (const c of running) c.kill('SIGKILL'); };
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) {
      say('launch: second Ctrl-C: killing the ranks');
      killAll();
      return;
    }
    for (const c of running) c.kill('SIGINT');
  };
  process.on('SIGINT', onSigint);
  process.on('exit', killAll);
  let firstFailure: { rank: number; code: number; signal: string | null } | null = null;
  let grace: NodeJS.Timeout | null = null;
  try {
    await Promise.all(exits.map(async (exit) => {
      const result = await exit;
      if (result.code !== 0 && result.code !== 130 && !firstFailure) {
        firstFailure = result;
        const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.code}`;
        say(`launch: rank ${result.rank} ${how}; waiting up to ${o.timeoutSeconds + 15} s for the others`);
        grace = setTimeout(() => {
          if (running.size) say(`launch: killing ${running.size} rank(s) still running`);
          killAll();
        }, (o.timeoutSeconds + 15) * 1000);
      }
    }));
  } finally {
    if (grace) clearTimeout(grace);
    process.off('SIGINT', onSigint);
    process.off('exit', killAll);
  }
  const codes = await Promise.all(exits);
  const failed = firstFailure as { rank: number; code: number } | null;
  if (failed) return failed.code;
  return codes.some((c) => c.code === 130) ? 130 : 0;
}
