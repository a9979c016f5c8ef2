#!/usr/bin/env node
/** The `vicinity` command: one file per subcommand in src/cli/. */
// First: checks the environment (VICINITY_NUM_THREADS) before any import loads libtorch.
import './check-environment.js';
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../package-root.js';
import { doctor } from './doctor.js';
import { DATASET_NAMES } from '../data/load-dataset.js';
import { addTrainOptions } from './train-flags.js';
import { addDistributedOptions } from './distributed-flags.js';
import { benchCommand, type BenchOptions } from './bench.js';
import { evalCommand, type EvalCommandOptions } from './eval.js';
import { exportCommand, type ExportCommandOptions } from './export.js';
import { trainCommand, type TrainCommandOptions } from './train.js';
import { describeBundled, describeKinds, verify } from './verify.js';
import { infoCommand, listModelsCommand } from './info.js';
import { predictCommand, type PredictOptions } from './predict.js';
import { explainCommand, type ExplainCommandOptions } from './explain.js';
import { reportCommand, type ReportOptions } from './report.js';
import { ABLATIONS, sweepCommand, type SweepOptions } from './sweep.js';
import { parseThreadCount } from '../native/thread-limit.js';

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
  'info la_resnet50', '<command> --help')}\n\nDocumentation: ${path.join(packageRoot, 'docs', 'cli.md')} (shipped with the package)`);

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
const threads = (name: string, min: 0 | 1) => (v: string) => parseThreadCount(v, `--${name}`, min);
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
  .option('--workers <n>', 'loader worker threads (default 0)', threads('workers', 0))
  .option('--device <device>', "'cpu' or 'cuda' (default cpu)", choice('device', ['cpu', 'cuda']))
  .option('--ema', "evaluate the EMA weights of a training checkpoint (timm's state_dict_ema)")
  .option('--json', 'machine-readable output')
  .addHelpText('after', EVAL_EXAMPLES)
  .action(async (file: string, options: EvalCommandOptions) => {
    process.exitCode = await evalCommand(file, options);
  });

const numberList = (name: string) => (v: string) => {
  const values = v.split(',').map(Number);
  if (values.some((n) => !Number.isFinite(n))) throw new Error(`--${name} must be comma-separated numbers, got '${v}'`);
  return values;
};

/** The flags that stand in for a checkpoint's metadata (train/model-metadata.ts), shared by predict and explain. */
function addCheckpointOptions(command: Command): Command {
  return command
    .option('--model <name>', "registry name (default: the checkpoint's)")
    .option('--classes <names>', "comma-separated class names in index order (default: the checkpoint's)", (v: string) => v.split(','))
    .option('--dataset <name>', `${DATASET_NAMES.join(', ')}: mean/std and channels of the data the weights were trained on`)
    .option('--num-classes <n>', "classes of the classifier (default: the checkpoint's)", positiveInt('num-classes'))
    .option('--input-size <n>', "input side (default: the checkpoint's)", positiveInt('input-size'))
    .option('--in-channels <n>', "input channels, 1 or 3 (default: the checkpoint's)", positiveInt('in-channels'))
    .option('--mean <values>', 'per-channel mean of the normalisation, e.g. 0.485,0.456,0.406', numberList('mean'))
    .option('--std <values>', 'per-channel std of the normalisation', numberList('std'))
    .option('--interpolation <mode>', "'bilinear', 'bicubic' or 'nearest'", choice('interpolation', ['bilinear', 'bicubic', 'nearest']))
    .option('--crop-pct <x>', 'resize the shorter side to size / x, then centre-crop (timm crop_pct)', nonNegative('crop-pct'))
    .option('--device <device>', "'cpu' or 'cuda' (default cpu)", choice('device', ['cpu', 'cuda']));
}

addCheckpointOptions(program
  .command('predict')
  .description('top-k classes of images (any size) with names and probabilities, through the checkpoint\'s eval transform')
  .argument('<checkpoint>', '.safetensors from vicinity train (model, classes and preprocessing from its metadata), or any weights with flags')
  .argument('<images...>', 'image files (.png, .jpg, .jpeg) or directories of them (searched recursively)'))
  .option('--top-k <k>', 'classes per image (default 5)', positiveInt('top-k'))
  .option('--batch-size <n>', 'images per forward pass (default 64)', positiveInt('batch-size'))
  .option('--json', 'machine-readable output')
  .addHelpText('after', examples('predict runs/la_resnet_nano_s2-fashion-mnist/best.safetensors shoe.png',
    'predict best.safetensors photos/ --top-k 3 --json', 'predict resnet18.pth cat.jpg --model resnet18 --dataset imagefolder --classes cat,dog'))
  .action(async (checkpoint: string, images: string[], options: PredictOptions) => {
    process.exitCode = await predictCommand(checkpoint, images, options);
  });

addCheckpointOptions(program
  .command('explain')
  .description('Grad-CAM, attention maps of query pixels, LA sampling points and LESA gates of one image: PNGs plus an HTML page')
  .argument('<checkpoint>', '.safetensors from vicinity train, or any weights with flags')
  .argument('<image>', 'an image file (.png, .jpg, .jpeg), any size'))
  .option('--out <dir>', 'output directory (default explain-<image name>)')
  .option('--layer <name>', 'Grad-CAM layer, a dotted module name (default: the last stage)')
  .option('--class <class>', 'class to explain, index or name (default: the prediction)')
  .option('--query <y,x>', 'query pixel in input pixels; repeatable (default: the centre and the Grad-CAM peak)', (v: string, prev: string[] = []) => [...prev, v])
  .option('--json', 'print explain.json')
  .addHelpText('after', examples('explain runs/la_resnet_nano_s2-fashion-mnist/best.safetensors shoe.png',
    'explain best.safetensors shoe.png --layer layer3 --query 7,7 --query 20,14 --out shoe-explained'))
  .action(async (checkpoint: string, image: string, options: ExplainCommandOptions) => {
    process.exitCode = await explainCommand(checkpoint, image, options);
  });

program
  .command('report')
  .description('one self-contained HTML report of a training run: curves, confusion matrix, test images with Grad-CAM, model summary, recipe')
  .argument('<run-dir>', 'a directory written by vicinity train (--out) or vicinity sweep')
  .option('--out <file>', 'output file (default <run-dir>/report.html)')
  .option('--samples <n>', 'test images in the grid (default 16)', positiveInt('samples'))
  .option('--data-root <path>', "dataset directory (default: the run's)")
  .option('--batch-size <n>', 'evaluation batch size (default 500)', positiveInt('batch-size'))
  .option('--device <device>', "'cpu' or 'cuda' (default cpu)", choice('device', ['cpu', 'cuda']))
  .addHelpText('after', examples('report runs/la_resnet_nano_s2-fashion-mnist', 'report runs/quick --out quick.html --samples 32'))
  .action(async (runDir: string, options: ReportOptions) => {
    process.exitCode = await reportCommand(runDir, options);
  });

program
  .command('sweep')
  .description("one of the papers' ablations: each setting trained with the same recipe and budget; sweep.csv and a report")
  .argument('<ablation>', Object.entries(ABLATIONS).map(([k, a]) => `${k} (${a.model}: ${a.paper})`).join('; '))
  .option('--model <name>', "another model whose entry takes the ablation's settings")
  .option('--recipe <name>', "recipe of every setting (default: the ablation's, else the model's)")
  .option('--epochs <n>', "epochs per setting (default: the recipe's)", positiveInt('epochs'))
  .option('--train-limit <n>', 'first n training images only (0 = all)', nonNegativeInt('train-limit'))
  .option('--dataset <name>', `${DATASET_NAMES.join(', ')} (default fashion-mnist)`)
  .option('--data-source <source>', "fashion-mnist: 'auto', 'full' or 'subset'", choice('data-source', ['auto', 'full', 'subset']))
  .option('--data-root <path>', 'dataset directory')
  .option('--seed <n>', 'seed of every run (default 0)', nonNegativeInt('seed'))
  .option('--workers <n>', 'loader worker threads', nonNegativeInt('workers'))
  .option('--device <device>', "'cpu' or 'cuda' (default cpu)", choice('device', ['cpu', 'cuda']))
  .option('--out <dir>', 'sweep directory (default runs/sweep-<ablation>)')
  .option('--only <i,j>', 'run only these settings (0-based positions)')
  .addHelpText('after', examples('sweep la-kernel --epochs 5', 'sweep halo-block --epochs 2 --train-limit 5000 --out runs/halo-sweep'))
  .action(async (ablation: string, options: SweepOptions) => {
    process.exitCode = await sweepCommand(ablation, options);
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
  .option('--num-threads <n>', 'libtorch intra-op threads (default: VICINITY_NUM_THREADS or every core)', threads('num-threads', 1))
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
  .command('export')
  .description('an ONNX model (opset 17, standard ops, dynamic batch) of a checkpoint, or of a registered model with fresh weights')
  .argument('<source>', '.safetensors from vicinity train (model and sizes from its metadata), any .safetensors/.pth with --model, or a model name')
  .argument('<out>', 'the .onnx file to write')
  .option('--model <name>', "registry name (default: the checkpoint's)")
  .option('--num-classes <n>', "classifier outputs (default: the checkpoint's, else the model's)", positiveInt('num-classes'))
  .option('--in-channels <n>', "image channels (default: the checkpoint's, else the model's)", positiveInt('in-channels'))
  .option('--input-size <n>', "input side the graph is built for (default: the checkpoint's, else the model's)", positiveInt('input-size'))
  .option('--json', 'machine-readable output')
  .addHelpText('after', examples('export runs/la_resnet_nano_s2-fashion-mnist/best.safetensors la.onnx', 'export resnet18 resnet18.onnx --num-classes 10',
    'export resnet18.pth resnet18.onnx --model resnet18 --json') + '\n\nDocumentation: docs/export.md')
  .action(async (source: string, out: string, options: ExportCommandOptions) => {
    process.exitCode = await exportCommand(source, out, options);
  });

program
  .command('verify')
  .description('check vicinity layers against reference fixtures (<name>.safetensors + <name>.json): output, input and parameter gradients, running statistics')
  .argument('<fixtures...>', 'fixture .safetensors files, or names of the fixtures shipped with vicinity')
  .option('--tolerance <x>', "relative L2 tolerance (default: each fixture's suggested one)", nonNegative('tolerance'))
  .option('--json', 'machine-readable output')
  .addHelpText('after', () => `\nReference classes it knows:\n${describeKinds()}\n${examples('verify halo-attn-open                                  # a fixture shipped with vicinity, by name', 'verify test/fixtures/*.safetensors --tolerance 1e-4 --json  # from a clone of the repository')}\n\n${describeBundled()}`)
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
