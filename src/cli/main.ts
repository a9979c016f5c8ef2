#!/usr/bin/env node
/** The `vicinity` command: one file per subcommand in src/cli/. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { doctor } from './doctor.js';
import { train } from './train.js';
import { describeKinds, verify } from './verify.js';
import { infoCommand, listModelsCommand } from './info.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('vicinity')
  .description('Local-attention vision networks (LA-layer, LESA, LSAG, HaloNet) on libtorch')
  .version(pkg.version);

program
  .command('doctor')
  .description('print libtorch, thread, BLAS, CUDA and addon facts; exit non-zero if something is wrong')
  .option('--json', 'machine-readable output')
  .action(async (options: { json?: boolean }) => {
    process.exitCode = await doctor(options);
  });

const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${v}'`);
  return n;
};
const nonNegative = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got '${v}'`);
  return n;
};

program
  .command('train')
  .description('train and evaluate a classifier on Fashion-MNIST (the full Debian dataset if installed, else the bundled subset)')
  .option('--data <source>', "'auto' (full if installed), 'full' or 'subset'", 'auto')
  .option('--epochs <n>', 'training epochs', positiveInt('epochs'), 4)
  .option('--batch-size <n>', 'batch size', positiveInt('batch-size'), 128)
  .option('--lr <x>', 'peak learning rate (SGD, Nesterov momentum 0.9, cosine schedule)', nonNegative('lr'), 0.1)
  .option('--weight-decay <x>', 'weight decay (not on norms and biases)', nonNegative('weight-decay'), 5e-4)
  .option('--seed <n>', 'seed of initialisation and data order', (v) => Number(v), 0)
  .option('--out <dir>', 'where the checkpoint and metrics go', 'runs/fashion-mnist')
  .action(async (options) => {
    if (!['auto', 'full', 'subset'].includes(options.data)) throw new Error(`--data must be auto, full or subset, got '${options.data}'`);
    process.exitCode = await train(options);
  });

program
  .command('info')
  .description('a registered model: paper, parameters and MACs vs the targets, per-stage and layer tables')
  .argument('<model>', 'a name from list-models')
  .option('--input-size <n>', "input side (default: the model's)", positiveInt('input-size'))
  .option('--depth <n>', 'layer-table depth (default 2; 1 hides it)', positiveInt('depth'))
  .option('--json', 'machine-readable output')
  .action(async (name: string, options) => {
    process.exitCode = await infoCommand(name, options);
  });

program
  .command('list-models')
  .description('list registered models')
  .argument('[pattern]', "glob, e.g. 'resnet*'")
  .option('--json', 'machine-readable output')
  .action((pattern: string | undefined, options) => {
    process.exitCode = listModelsCommand(pattern, options);
  });

program
  .command('verify')
  .description('check vicinity layers against reference fixtures (<name>.safetensors + <name>.json): output, input and parameter gradients, running statistics')
  .argument('<fixtures...>', 'fixture .safetensors files')
  .option('--tolerance <x>', "relative L2 tolerance (default: each fixture's suggested one)", nonNegative('tolerance'))
  .option('--json', 'machine-readable output')
  .addHelpText('after', () => `\nReference classes it knows:\n${describeKinds()}`)
  .action(async (files: string[], options) => {
    process.exitCode = await verify(files, options);
  });

try {
  await program.parseAsync(process.argv);
} catch (e) {
  // Bad flags, missing data, corrupt files: the message names the problem; a stack would not help.
  console.error(`vicinity: ${e instanceof Error ? e.message : String(e)}`);
  if (process.env.VICINITY_DEBUG) console.error(e);
  process.exitCode = 1;
}
