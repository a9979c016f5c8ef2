/** The settings table (src/train/settings.ts) and what derives from it: validation messages, config files, the merge order and the flags. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { Command } from 'commander';
import { addTrainOptions, flagValues } from '../../src/cli/train-flags.js';
import { formatConfigYaml, loadConfigFile, parseConfigText } from '../../src/train/config-file.js';
import { ConfigError, expectation, validateConfig } from '../../src/train/config-validation.js';
import { nearest } from '../../src/train/setting-checks.js';
import { TRAIN_SETTINGS, defaultTrainConfig, mergeConfig } from '../../src/train/settings.js';
import type { RecipeSettings, TrainConfig } from '../../src/train/train-config.js';

/** The problems validateConfig reports (it must throw). */
function problems(raw: unknown, options: { flags?: boolean } = {}): string[] {
  try {
    validateConfig(raw, 'run.yaml', options);
  } catch (e) {
    assert.ok(e instanceof ConfigError, String(e));
    return e.problems;
  }
  assert.fail(`no error for ${JSON.stringify(raw)}`);
}

test('the table covers every TrainConfig and RecipeSettings key once, flags in kebab-case', () => {
  const config: Record<keyof TrainConfig, true> = {
    model: true, dataset: true, dataRoot: true, dataSource: true, recipe: true, trainLimit: true, evalBatchSize: true,
    workers: true, seed: true, out: true, resume: true, overwrite: true, device: true, progress: true,
    pretrained: true, pretrainedEma: true, numClasses: true, freeze: true, inputSize: true,
    optimizer: true, lr: true, momentum: true, nesterov: true, beta2: true, eps: true, weightDecay: true, epochs: true,
    batchSize: true, schedule: true, warmupEpochs: true, warmupLr: true, minLr: true, stepEpochs: true, stepGamma: true,
    labelSmoothing: true, clipGrad: true, mixup: true, cutmix: true, randAugment: true, randomErasing: true, hflip: true,
    cropPadding: true, dropPath: true, emaDecay: true,
  };
  const recipeKeys: (keyof RecipeSettings)[] = ['optimizer', 'lr', 'momentum', 'nesterov', 'beta2', 'eps', 'weightDecay',
    'epochs', 'batchSize', 'schedule', 'warmupEpochs', 'warmupLr', 'minLr', 'stepEpochs', 'stepGamma', 'labelSmoothing',
    'clipGrad', 'mixup', 'cutmix', 'randAugment', 'randomErasing', 'hflip', 'cropPadding', 'dropPath', 'emaDecay'];
  assert.deepEqual(TRAIN_SETTINGS.map((s) => s.key).sort(), Object.keys(config).sort());
  assert.deepEqual(TRAIN_SETTINGS.filter((s) => s.group === 'recipe').map((s) => s.key).sort(), [...recipeKeys].sort());
  assert.equal(TRAIN_SETTINGS.find((s) => s.key === 'evalBatchSize')?.flag, '--eval-batch-size');
  assert.equal(TRAIN_SETTINGS.find((s) => s.key === 'lr')?.flag, '--lr');
});

test('validateConfig returns typed values and accepts camelCase, snake_case and kebab-case keys', () => {
  const out = validateConfig({
    model: 'small_convnet', epochs: 3, weight_decay: 1e-4, 'batch-size': 64, nesterov: false,
    randAugment: 'rand-m9-mstd0.5-inc1', data_source: 'subset', warmupEpochs: 0.5, rand_augment: undefined,
  }, 'run.yaml');
  assert.deepEqual(out, {
    model: 'small_convnet', epochs: 3, weightDecay: 1e-4, batchSize: 64, nesterov: false,
    randAugment: 'rand-m9-mstd0.5-inc1', dataSource: 'subset', warmupEpochs: 0.5,
  });
  assert.deepEqual(validateConfig(null, 'empty.yaml'), {});
  assert.deepEqual(validateConfig({ randAugment: '' }, 'x'), { randAugment: '' });
});

test('validateConfig: ranges and integers, with the value as given', () => {
  assert.deepEqual(problems({ epochs: -2 }), ['epochs must be a positive integer, got -2']);
  assert.deepEqual(problems({ epochs: 2.5 }), ['epochs must be a positive integer, got 2.5']);
  assert.deepEqual(problems({ trainLimit: -1 }), ['trainLimit must be a non-negative integer, got -1']);
  assert.deepEqual(problems({ lr: 0 }), ['lr must be a positive number, got 0']);
  assert.deepEqual(problems({ weightDecay: -0.1 }), ['weightDecay must be a non-negative number, got -0.1']);
  assert.deepEqual(problems({ hflip: 1.5 }), ['hflip must be a number in [0, 1], got 1.5']);
  assert.deepEqual(problems({ momentum: 1 }), ['momentum must be a number in [0, 1), got 1']);
  assert.deepEqual(problems({ stepGamma: 0 }), ['stepGamma must be a number in (0, 1], got 0']);
  assert.deepEqual(problems({ lr: Infinity }), ['lr must be a positive number, got Infinity']);
});

test('validateConfig: wrong types name the type and the fix', () => {
  assert.deepEqual(problems({ epochs: '3' }), ["epochs must be a positive integer, got '3' (a string; write 3 without quotes)"]);
  assert.deepEqual(problems({ lr: 'fast' }), ["lr must be a positive number, got 'fast' (a string)"]);
  assert.deepEqual(problems({ nesterov: 'yes' }), ["nesterov must be true or false, got 'yes' (a string)"]);
  assert.deepEqual(problems({ model: 50 }), ["model must be a string, got 50 (a number; quote it: '50')"]);
  assert.deepEqual(problems({ out: ['a'] }), ['out must be a non-empty path, got ["a"] (a list)']);
  assert.deepEqual(problems({ out: '  ' }), ["out must be a non-empty path, got '  '"]);
  assert.deepEqual(problems(['epochs', 3]), ['the settings must be a mapping of key: value, got a list']);
  assert.deepEqual(problems('epochs'), ['the settings must be a mapping of key: value, got a string']);
});

test('validateConfig: choices are listed; models and recipes get the nearest names', () => {
  assert.deepEqual(problems({ dataset: 'cifar' }), ["dataset must be fashion-mnist, mnist, cifar10, cifar100 or imagefolder, got 'cifar'"]);
  assert.deepEqual(problems({ device: 'gpu' }), ["device must be cpu or cuda, got 'gpu'"]);
  const [model] = problems({ model: 'resnet5' });
  assert.match(model, /^model: unknown model 'resnet5'; did you mean resnet50, /);
  assert.deepEqual(problems({ recipe: 'la-sg' }), ["recipe: unknown recipe 'la-sg'; did you mean la-sgd?"]);
  assert.deepEqual(problems({ randAugment: 'm9' }),
    ["randAugment: RandAugment config 'm9': must start with 'rand', got 'm9'; the grammar is 'rand' followed by '-'-separated sections m<int> (magnitude, default 10), n<int> (ops per image, 2), mstd<float> (magnitude std, 0), mmax<int> (magnitude bound, 10), inc<0|1> (increasing ops, 0), p<float> (op probability, 0.5), e.g. 'rand-m9-mstd0.5-inc1'; or '' for none"]);
});

test('validateConfig: unknown keys suggest the nearest setting or the timm name it stands for', () => {
  assert.deepEqual(problems({ epoch: 3 }), ["unknown setting 'epoch'; did you mean epochs?"]);
  assert.deepEqual(problems({ wieght_decay: 3 }), ["unknown setting 'wieght_decay'; did you mean weightDecay?"]);
  assert.deepEqual(problems({ smoothing: 0.1 }), ["unknown setting 'smoothing'; did you mean labelSmoothing (timm's smoothing)?"]);
  assert.deepEqual(problems({ drop_path_rate: 0.1 }), ["unknown setting 'drop_path_rate'; did you mean dropPath (timm's drop_path_rate)?"]);
  const [far] = problems({ zzzzzzzzzzzz: 1 });
  assert.match(far, /^unknown setting 'zzzzzzzzzzzz'; the settings are model, dataset, dataRoot, /);
  assert.deepEqual(nearest('batchsize', ['batchSize', 'evalBatchSize']), ['batchSize']);
});

test('validateConfig: one error lists every problem; a key in two spellings is one problem', () => {
  let error: unknown;
  try {
    validateConfig({ epochs: 0, lr: -1, epoch: 2, weight_decay: 0.1, weightDecay: 0.2 }, 'config.yaml');
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ConfigError);
  assert.equal(error.message, [
    'config.yaml has 4 problems:',
    '  - epochs must be a positive integer, got 0',
    '  - lr must be a positive number, got -1',
    "  - unknown setting 'epoch'; did you mean epochs?",
    '  - weightDecay is given twice, as weight_decay and as weightDecay; keep one',
  ].join('\n'));
  assert.throws(() => validateConfig({ epochs: -2 }, 'config.yaml'), { message: 'config.yaml: epochs must be a positive integer, got -2' });
});

test('validateConfig with flags: strings converted, problems name the flag, --data still works', () => {
  assert.deepEqual(validateConfig({ epochs: '3', lr: '1e-4', nesterov: true, data: 'subset', seed: '0' }, 'command line', { flags: true }),
    { epochs: 3, lr: 1e-4, nesterov: true, dataSource: 'subset', seed: 0 });
  assert.deepEqual(problems({ epochs: '0', lr: '0x10', seed: '', data: 'cifar' }, { flags: true }), [
    "--epochs must be a positive integer, got '0'",
    "--lr must be a positive number, got '0x10'",
    "--seed must be an integer in [0, 9007199254740991], got ''",
    "--data must be auto, full or subset, got 'cifar'",
  ]);
  assert.deepEqual(problems({ epoch: '1' }, { flags: true }), ["unknown option 'epoch'; did you mean --epochs?"]);
  assert.deepEqual(problems({ dataSource: 'full', data: 'subset' }, { flags: true }),
    ['--data-source is given twice, as --data-source and as --data; keep one']);
});

test('expectation phrases each kind of range', () => {
  const spec = (key: string) => TRAIN_SETTINGS.find((s) => s.key === key)!;
  assert.equal(expectation(spec('epochs')), 'a positive integer');
  assert.equal(expectation(spec('workers')), `an integer from 0 to ${4 * os.availableParallelism()} (4 per core; this machine has ${os.availableParallelism()})`);
  assert.equal(expectation(spec('seed')), 'an integer in [0, 9007199254740991]');
  assert.equal(expectation(spec('dropPath')), 'a number in [0, 1)');
  assert.equal(expectation(spec('progress')), 'auto, bar, plain or none');
  assert.equal(expectation(spec('nesterov')), 'true or false');
});

test('mergeConfig: flags override the file, the file overrides the defaults; out follows model and dataset', () => {
  const defaults = defaultTrainConfig();
  assert.ok(defaults.workers >= 0 && defaults.workers <= 2);
  const merged = mergeConfig(defaults, { model: 'small_convnet', epochs: 3, lr: 0.2, seed: 5 }, { epochs: 1, seed: undefined });
  assert.equal(merged.model, 'small_convnet');
  assert.equal(merged.epochs, 1);
  assert.equal(merged.lr, 0.2);
  assert.equal(merged.seed, 5);
  assert.equal(merged.dataset, 'fashion-mnist');
  assert.equal(merged.evalBatchSize, 500);
  assert.equal(merged.out, path.join('runs', 'small_convnet-fashion-mnist'));
  assert.equal(merged.momentum, undefined);
  assert.equal(mergeConfig(defaults, { out: 'a' }, {}).out, 'a');
  assert.equal(mergeConfig(defaults, { out: 'a' }, { out: 'b' }).out, 'b');
  assert.equal(mergeConfig(defaults).out, path.join('runs', 'la_resnet_nano_s2-fashion-mnist'));
});

test('loadConfigFile reads YAML and JSON (by extension or content) and labels problems with the path', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const yaml = path.join(dir, 'run.yaml');
  writeFileSync(yaml, '# a run\nmodel: small_convnet\nepochs: 2\nweight_decay: 1e-4\nnesterov: true\n');
  assert.deepEqual(await loadConfigFile(yaml), { model: 'small_convnet', epochs: 2, weightDecay: 1e-4, nesterov: true });
  const json = path.join(dir, 'run.json');
  writeFileSync(json, '{ "model": "small_convnet", "batchSize": 32 }');
  assert.deepEqual(await loadConfigFile(json), { model: 'small_convnet', batchSize: 32 });
  const noExt = path.join(dir, 'run.conf');
  writeFileSync(noExt, '{ "epochs": 1 }');
  assert.deepEqual(await loadConfigFile(noExt), { epochs: 1 });
  const empty = path.join(dir, 'empty.yml');
  writeFileSync(empty, '# nothing yet\n');
  assert.deepEqual(await loadConfigFile(empty), {});
  const bad = path.join(dir, 'bad.yaml');
  writeFileSync(bad, 'epochs: -2\nlr: 0.1\n');
  await assert.rejects(loadConfigFile(bad), { message: `${bad}: epochs must be a positive integer, got -2` });
  await assert.rejects(loadConfigFile(path.join(dir, 'missing.yaml')), { message: `${path.join(dir, 'missing.yaml')}: cannot read the config file: ENOENT` });
});

test('syntax errors give file:line:column', () => {
  assert.throws(() => parseConfigText('model: small_convnet\nepochs: [1, 2\nlr: 0.1\n', 'run.yaml'),
    (e: Error) => /^run\.yaml:3:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a \]/.test(e.message));
  assert.throws(() => parseConfigText('epochs: 1\nepochs: 2\n', 'run.yaml'), { message: /^run\.yaml:2:1: YAML syntax error: Map keys must be unique/ });
  assert.throws(() => parseConfigText('{\n  "epochs": 1,\n}\n', 'run.json'),
    { message: 'run.json:3:1: JSON syntax error: Expected double-quoted property name' });
});

test('addTrainOptions registers every setting as a flag; unset flags stay undefined', () => {
  const command = addTrainOptions(new Command('train').exitOverride().option('--config <file>'));
  const help = command.helpInformation();
  for (const spec of TRAIN_SETTINGS) assert.ok(help.includes(spec.flag), `help lacks ${spec.flag}`);
  assert.match(help, /--no-nesterov/);
  assert.match(help, /--eval-batch-size <n> +batch size of evaluation \(default: 500\)/);
  assert.match(help, /Recipe options \(default: the recipe's value\):/);
  assert.doesNotMatch(help, /--data </);   // the old spelling works but is not advertised
  command.parse(['--epochs', '3', '--no-nesterov', '--lr', '0.05', '--config', 'x.yaml', '--data', 'subset'], { from: 'user' });
  const values = flagValues(command.opts());
  assert.deepEqual(values, { epochs: '3', nesterov: false, lr: '0.05', data: 'subset' });
  assert.deepEqual(validateConfig(values, 'command line', { flags: true }), { epochs: 3, nesterov: false, lr: 0.05, dataSource: 'subset' });
});

test('formatConfigYaml lists set values and comments the recipe values; it loads back', () => {
  const config = mergeConfig(defaultTrainConfig(), { model: 'small_convnet', epochs: 2, randAugment: '' }, {});
  const text = formatConfigYaml(config, { name: 'fashion-mnist-sgd', settings: { lr: 0.1, epochs: 5 } });
  assert.match(text, /^# run\nmodel: small_convnet\n/);
  assert.match(text, /\nepochs: 2\n/);
  assert.match(text, /\n# lr: 0\.1\n/);
  assert.match(text, /\nrandAugment: ""\n/);
  assert.deepEqual(validateConfig(parseConfigText(text, 'printed.yaml'), 'printed.yaml'), JSON.parse(JSON.stringify(config)));
});
