#!/usr/bin/env node
/** The `vicinity` command: one file per subcommand in src/cli/. */
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { doctor } from './doctor.js';
import { DATASET_NAMES } from '../data/load-dataset.js';
import { addTrainOptions } from '../train/config-schema.js';
import { addDistributedOptions } from '../distributed/launch.js';
import { benchCommand, type BenchOptions } from './bench.js';
import { evalCommand, type EvalCommandOptions } from './eval.js';
import { trainCommand, type TrainCommandOptions } from './train.js';
import { describeKinds, verify } from './verify.js';
import { infoCommand, listModelsCommand } from './info.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('vicinity')
  .description('Local-attention vision networks (LA-layer, LESA, LSAG, HaloNet) on libtorch')
  .version(pkg.version)
  // Commander's own errors (unknown option, missing argument) in the same form as ours; set
  // before the subcommands, which inherit it.
  .configureOutput({ outputError: (text, write) => write(text.replace(/^error: /, 'vicinity: ')) })
  .showSuggestionAfterError(true);

/** An 'Examples:' help section. */
const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ vicinity ${l}`).join('\n')}`;

program.addHelpText('after', `${examples('train', 'train --model small_convnet --epochs 2',
  'eval runs/la_resnet_nano_s2-fashion-mnist/best.safetensors', "bench 'la_*' --mode infer --csv la.csv", "list-models 'la_*'",
  'info la_resnet50', '<command> --help')}\n\nDocumentation: docs/cli.md`);

const TRAIN_EXAMPLES = `
Settings merge as defaults < --config file < flags; recipe settings left unset take the recipe's
value (--print-config shows them). Config keys are the flags' names in camelCase (or snake_case).

Examples:
  $ vicinity train                                          # la_resnet_nano_s2 on Fashion-MNIST
  $ vicinity train --model small_convnet --epochs 2 --out runs/quick
  $ vicinity train --config run.yaml --lr 0.05              # the file, with one override
  $ vicinity train --config run.yaml --print-config > resolved.yaml
  $ vicinity train --model resnet18_cifar --dataset cifar10 --data-root ~/data
  $ vicinity train --resume runs/la_resnet_nano_s2-fashion-mnist   # after Ctrl-C

Outputs in --out: last.safetensors and best.safetensors (weights), last.state.safetensors
(resume state), metrics.jsonl, summary.csv, config.json. Ctrl-C checkpoints and exits with 130.`;

const EVAL_EXAMPLES = `
Examples:
  $ vicinity eval runs/la_resnet_nano_s2-fashion-mnist/best.safetensors
  $ vicinity eval runs/resnet18_cifar-cifar10/last.safetensors --data-root ~/data --json
  $ vicinity eval resnet18.pth --model resnet18 --dataset imagefolder --data-root ~/data/val`;

const BENCH_EXAMPLES = `
Examples:
  $ vicinity bench small_convnet la_resnet_nano
  $ vicinity bench 'la_resnet*' --batch-size 32 --input-size 224 --mode infer --csv la.csv
  $ vicinity bench resnet50 --num-threads 4 --steps 10 --warmup 2

CSV columns (timm benchmark.py): model, infer_samples_per_sec, infer_step_time (ms),
infer_batch_size, infer_img_size, infer_gmacs, infer_macts, train_samples_per_sec,
train_step_time (ms), train_batch_size, train_img_size, param_count (millions).`;

program
  .command('doctor')
  .description('print libtorch, thread, BLAS, CUDA and addon facts; exit non-zero if something is wrong')
  .option('--json', 'machine-readable output')
  .addHelpText('after', examples('doctor', 'doctor --json'))
  .action(async (options: { json?: boolean }) => {
    process.exitCode = await doctor(options);
  });

const positiveInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got '${v}'`);
  return n;
};
const nonNegativeInt = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || v.trim() === '') throw new Error(`--${name} must be a non-negative integer, got '${v}'`);
  return n;
};
const choice = (name: string, choices: string[]) => (v: string) => {
  if (!choices.includes(v)) throw new Error(`--${name} must be ${choices.slice(0, -1).join(', ')} or ${choices.at(-1)}, got '${v}'`);
  return v;
};
const nonNegative = (name: string) => (v: string) => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got '${v}'`);
  return n;
};

const trainCli = program
  .command('train')
  .description('train and evaluate a classifier: a registered model on a dataset with its recipe, every setting overridable')
  .option('--config <file>', 'YAML or JSON file of settings (keys as below, camelCase or snake_case); flags override it')
  .option('--print-config', 'print the merged settings as YAML (loadable with --config) and exit')
  .addHelpText('after', TRAIN_EXAMPLES);
addDistributedOptions(addTrainOptions(trainCli)).action(async (options: TrainCommandOptions) => {
  process.exitCode = await trainCommand(options);
});

program
  .command('eval')
  .description("a checkpoint's test loss, top-1 and top-5 accuracy and throughput, with the trainer's evaluation transform")
  .argument('<checkpoint>', '.safetensors from vicinity train (model and data from its metadata), or any .safetensors/.pth with --model')
  .option('--model <name>', "registry name (default: the checkpoint's)")
  .option('--dataset <name>', `${DATASET_NAMES.join(', ')} (default: the checkpoint's, else fashion-mnist)`)
  .option('--data-root <path>', 'dataset directory (needed by mnist, cifar10, cifar100, imagefolder)')
  .option('--data-source <source>', "fashion-mnist: 'auto', 'full' or 'subset'", choice('data-source', ['auto', 'full', 'subset']))
  .option('--batch-size <n>', 'evaluation batch size (default 500)', positiveInt('batch-size'))
  .option('--input-size <n>', "input side (default: the checkpoint's)", positiveInt('input-size'))
  .option('--workers <n>', 'loader worker threads (default 0)', nonNegativeInt('workers'))
  .option('--device <device>', "'cpu' or 'cuda' (default cpu)", choice('device', ['cpu', 'cuda']))
  .option('--json', 'machine-readable output')
  .addHelpText('after', EVAL_EXAMPLES)
  .action(async (file: string, options: EvalCommandOptions) => {
    process.exitCode = await evalCommand(file, options);
  });

program
  .command('bench')
  .description("inference and training throughput on random input, like timm's benchmark.py (CSV with its columns)")
  .argument('<models...>', "registry names or globs, e.g. 'la_*'")
  .option('--batch-size <n>', 'images per step (default 256)', positiveInt('batch-size'))
  .option('--input-size <n>', "input side (default: each model's)", positiveInt('input-size'))
  .option('--steps <n>', 'timed steps (default 20)', positiveInt('steps'))
  .option('--warmup <n>', 'untimed steps first (default 5)', nonNegativeInt('warmup'))
  .option('--mode <mode>', "'infer', 'train' or 'both' (default both)", choice('mode', ['infer', 'train', 'both']))
  .option('--csv <file>', "also write the results as CSV (timm benchmark.py's columns)")
  .option('--num-threads <n>', 'libtorch intra-op threads (default: VICINITY_NUM_THREADS or every core)', positiveInt('num-threads'))
  .option('--device <device>', "'cpu' or 'cuda' (default cpu)", choice('device', ['cpu', 'cuda']))
  .option('--json', 'machine-readable output')
  .addHelpText('after', BENCH_EXAMPLES)
  .action(async (models: string[], options: BenchOptions) => {
    process.exitCode = await benchCommand(models, options);
  });

program
  .command('info')
  .description('a registered model: paper, parameters and MACs vs the targets, per-stage and layer tables')
  .argument('<model>', 'a name from list-models')
  .option('--input-size <n>', "input side (default: the model's)", positiveInt('input-size'))
  .option('--depth <n>', 'layer-table depth (default 2; 1 hides it)', positiveInt('depth'))
  .option('--json', 'machine-readable output')
  .addHelpText('after', examples('info la_resnet50', 'info la_resnet_nano --input-size 32 --depth 3', 'info resnet50 --json'))
  .action(async (name: string, options) => {
    process.exitCode = await infoCommand(name, options);
  });

program
  .command('list-models')
  .description('list registered models')
  .argument('[pattern]', "glob, e.g. 'resnet*'")
  .option('--json', 'machine-readable output')
  .addHelpText('after', examples('list-models', "list-models '*_nano'", "list-models 'la_*' --json"))
  .action((pattern: string | undefined, options) => {
    process.exitCode = listModelsCommand(pattern, options);
  });

program
  .command('verify')
  .description('check vicinity layers against reference fixtures (<name>.safetensors + <name>.json): output, input and parameter gradients, running statistics')
  .argument('<fixtures...>', 'fixture .safetensors files')
  .option('--tolerance <x>', "relative L2 tolerance (default: each fixture's suggested one)", nonNegative('tolerance'))
  .option('--json', 'machine-readable output')
  .addHelpText('after', () => `\nReference classes it knows:\n${describeKinds()}\n${examples('verify ../shared/fixtures/halo-attn-open.safetensors', 'verify ../shared/fixtures/*.safetensors --tolerance 1e-4 --json')}`)
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
