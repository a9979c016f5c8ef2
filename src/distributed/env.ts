/**
 * The `env://` rendezvous settings torchrun (and `vicinity train --nproc-per-node`) give each
 * process: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, as
 * torch.distributed.init_process_group(init_method='env://') reads them.
 */

export interface DistributedEnv {
  /** Global rank in [0, worldSize). */
  rank: number;
  worldSize: number;
  /** Rank on this machine (torchrun's LOCAL_RANK). */
  localRank: number;
  localWorldSize: number;
  /** Where rank 0 (or torchrun's agent) hosts the rendezvous store. */
  masterAddr: string;
  masterPort: number;
  /**
   * Connect to the store torchrun's agent hosts at MASTER_PORT instead of hosting one (only with
   * VICINITY_USE_AGENT_STORE=1: the agent's TCPStore speaks its own libtorch's protocol, and a
   * torchrun from another PyTorch release than vicinity's libtorch does not answer ours).
   */
  agentStore: boolean;
}

/** Thrown for missing or inconsistent rendezvous settings. */
export class DistributedEnvError extends Error {}

function integer(env: NodeJS.ProcessEnv, name: string, min: number, fallback?: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new DistributedEnvError(`distributed: ${name} is not set; launch with \`vicinity train --nproc-per-node N\` ` +
      'or torchrun, or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT yourself');
  }
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new DistributedEnvError(`distributed: ${name}=${raw} is not an integer ≥ ${min}`);
  }
  return value;
}

/** True when the environment describes a multi-process run (WORLD_SIZE set). */
export function isDistributedEnv(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.WORLD_SIZE !== undefined && env.WORLD_SIZE !== '';
}

/**
 * Reads and checks the env:// variables.
 *
 * Example (torchrun --nproc-per-node 2, second process):
 *   readDistributedEnv()  // { rank: 1, worldSize: 2, localRank: 1, masterAddr: '127.0.0.1', masterPort: 29500, ... }
 */
export function readDistributedEnv(env: NodeJS.ProcessEnv = process.env): DistributedEnv {
  const worldSize = integer(env, 'WORLD_SIZE', 1);
  const rank = integer(env, 'RANK', 0);
  if (rank >= worldSize) throw new DistributedEnvError(`distributed: RANK=${rank} must be below WORLD_SIZE=${worldSize}`);
  const localRank = integer(env, 'LOCAL_RANK', 0, rank);
  const localWorldSize = integer(env, 'LOCAL_WORLD_SIZE', 1, worldSize);
  const masterAddr = env.MASTER_ADDR || (worldSize === 1 ? '127.0.0.1' : '');
  if (!masterAddr) throw new DistributedEnvError('distributed: MASTER_ADDR is not set (the address of the machine running rank 0)');
  let masterPort = integer(env, 'MASTER_PORT', 1, worldSize === 1 ? 29500 : undefined);
  // Under torchrun the agent's store holds MASTER_PORT; by default rank 0 hosts ours on the next port.
  const underTorchrun = env.TORCHELASTIC_USE_AGENT_STORE === 'True';
  const agentStore = underTorchrun && env.VICINITY_USE_AGENT_STORE === '1';
  if (underTorchrun && !agentStore) masterPort += 1;
  if (masterPort > 65535) throw new DistributedEnvError(`distributed: MASTER_PORT=${masterPort} is not a TCP port (1–65535)`);
  return { rank, worldSize, localRank, localWorldSize, masterAddr, masterPort, agentStore };
}
