/** env:// settings and the launcher's flags: values, defaults and the errors users see. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readDistributedEnv, isDistributedEnv } from '../../src/distributed/env.js';
import { launchSettings, LAUNCHED_ENV } from '../../src/distributed/launch.js';

const base = { RANK: '1', WORLD_SIZE: '4', MASTER_ADDR: '10.0.0.1', MASTER_PORT: '29500' };

test('readDistributedEnv: torchrun variables, defaults and the agent-store port', () => {
  assert.deepEqual(readDistributedEnv({ ...base, LOCAL_RANK: '1', LOCAL_WORLD_SIZE: '2' }), {
    rank: 1, worldSize: 4, localRank: 1, localWorldSize: 2, masterAddr: '10.0.0.1', masterPort: 29500, agentStore: false,
  });
  // Under torchrun our store moves next to the agent's, unless asked to share it.
  assert.equal(readDistributedEnv({ ...base, TORCHELASTIC_USE_AGENT_STORE: 'True' }).masterPort, 29501);
  const shared = readDistributedEnv({ ...base, TORCHELASTIC_USE_AGENT_STORE: 'True', VICINITY_USE_AGENT_STORE: '1' });
  assert.deepEqual([shared.masterPort, shared.agentStore], [29500, true]);
  assert.equal(isDistributedEnv({}), false);
  assert.equal(isDistributedEnv(base), true);
});

test('readDistributedEnv: missing or inconsistent variables name the variable and the fix', () => {
  assert.throws(() => readDistributedEnv({ ...base, RANK: '4' }), /RANK=4 must be below WORLD_SIZE=4/);
  assert.throws(() => readDistributedEnv({ WORLD_SIZE: '2' }), /RANK is not set; launch with `vicinity train --nproc-per-node N`/);
  assert.throws(() => readDistributedEnv({ ...base, MASTER_ADDR: '' }), /MASTER_ADDR is not set/);
  assert.throws(() => readDistributedEnv({ ...base, MASTER_PORT: '70000' }), /not a TCP port/);
});

test('launchSettings: ranks per node, several machines, and children that must not launch again', () => {
  const args = ['main.js', 'train'];
  assert.equal(launchSettings({}, args, {}), null);
  assert.equal(launchSettings({ nprocPerNode: '2' }, args, { [LAUNCHED_ENV]: '1' }), null);
  assert.deepEqual(launchSettings({ nprocPerNode: '2', distTimeout: '60' }, args, {}), {
    nprocPerNode: 2, nnodes: 1, nodeRank: 0, masterAddr: '127.0.0.1', masterPort: 29500, timeoutSeconds: 60, args,
  });
  assert.throws(() => launchSettings({ nprocPerNode: '2', nnodes: '2' }, args, {}), /--nnodes > 1 needs --master-addr/);
  assert.throws(() => launchSettings({ nprocPerNode: '0' }, args, {}), /--nproc-per-node must be an integer ≥ 1/);
  assert.throws(() => launchSettings({ nprocPerNode: '2', nnodes: '2', nodeRank: '2', masterAddr: 'a' }, args, {}), /--node-rank 2 must be below --nnodes 2/);
});
