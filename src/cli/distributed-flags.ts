/** `vicinity train`'s launcher flags (distributed/launch.ts reads them; docs/distributed.md). */
import { Option, type Command } from 'commander';

/** The launcher's flags, added to `vicinity train`. */
export function addDistributedOptions(command: Command): Command {
  const heading = 'Distributed options (docs/distributed.md):';
  const add = (flags: string, help: string) => command.addOption(new Option(flags, help).helpGroup(heading));
  add('--nproc-per-node <n>', 'start n training processes on this machine (data-parallel, Gloo)');
  add('--nnodes <n>', 'machines taking part (default: 1)');
  add('--node-rank <i>', "this machine's index in [0, nnodes) (default: 0)");
  add('--master-addr <host>', 'address of the machine with node rank 0 (default: 127.0.0.1)');
  add('--master-port <port>', 'its rendezvous port (default: 29500)');
  add('--sync-bn', 'BatchNorm layers use the statistics of the global batch (SyncBatchNorm)');
  add('--dist-timeout <s>', 'bound on every collective: a dead or hung rank fails the others after this (default: 300)');
  return command;
}
