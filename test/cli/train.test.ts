/** `vicinity train`'s pieces in-process: the merged config, Ctrl-C wiring and the final report. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { INTERRUPTED_EXIT_CODE, formatTrainResult, resolveTrainConfig, withInterrupt } from '../../src/cli/train.js';
import type { TrainResult } from '../../src/train/trainer.js';

test('resolveTrainConfig: defaults < config file < flags, flags validated as strings', async (t) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'vicinity-train-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'run.yml');
  writeFileSync(file, 'model: small_convnet\nepochs: 4\nlabel_smoothing: 0.1\nout: runs/x\n');
  const config = await resolveTrainConfig({ config: file, epochs: '2', printConfig: true, seed: '3' });
  assert.equal(config.model, 'small_convnet');
  assert.equal(config.epochs, 2);
  assert.equal(config.labelSmoothing, 0.1);
  assert.equal(config.seed, 3);
  assert.equal(config.out, 'runs/x');
  assert.equal(config.dataset, 'fashion-mnist');
  await assert.rejects(resolveTrainConfig({ epochs: '-1' }), { message: "command line: --epochs must be a positive integer, got '-1'" });
});

test('withInterrupt: the first SIGINT aborts the signal, the listener goes afterwards', async () => {
  const said: string[] = [];
  const before = process.listenerCount('SIGINT');
  const aborted = await withInterrupt(async (signal) => {
    assert.equal(process.listenerCount('SIGINT'), before + 1);
    process.emit('SIGINT');
    return signal.aborted;
  }, (line) => said.push(line));
  assert.equal(aborted, true);
  assert.equal(process.listenerCount('SIGINT'), before);
  assert.deepEqual(said, ['\nCtrl-C: stopping after this step and writing a checkpoint (Ctrl-C again to quit at once)']);
  assert.equal(INTERRUPTED_EXIT_CODE, 130);
});

const RESULT: TrainResult = {
  epochs: 2, top1: 91.234, top5: 99.87, evalLoss: 0.25, bestTop1: 91.5, steps: 40, checkpoint: 'r/last.safetensors',
  stateFile: 'r/last.state.safetensors', runDir: 'r', metricsFile: 'r/metrics.jsonl', summaryFile: 'r/summary.csv',
  seconds: 12.34, interrupted: false,
};

test('formatTrainResult: accuracy and files; how to resume an interrupted run', () => {
  assert.equal(formatTrainResult(RESULT), [
    'test accuracy: 91.23% top-1, 99.87% top-5 after 2 epoch(s) in 12.3 s',
    'checkpoint: r/last.safetensors', 'best:       r/best.safetensors (91.50% top-1)', 'state:      r/last.state.safetensors', 'metrics:    r/metrics.jsonl', 'summary:    r/summary.csv',
  ].join('\n'));
  const stopped = formatTrainResult({ ...RESULT, epochs: 0, steps: 3, top1: NaN, top5: NaN, bestTop1: NaN, interrupted: true });
  assert.doesNotMatch(stopped, /best:/);
  assert.match(stopped, /^interrupted after 3 steps \(0 complete epoch\(s\)\); continue with: vicinity train --resume r\n/);
  assert.match(stopped, /\ntest accuracy: none yet \(stopped before the first epoch ended\)\n/);
  assert.match(formatTrainResult({ ...RESULT, emaTop1: 92 }), /99\.87% top-5, EMA 92\.00% top-1 after/);
});
