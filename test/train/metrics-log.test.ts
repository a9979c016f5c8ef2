/**
 * metrics.jsonl and summary.csv: timm's summary columns in timm's order, numbers as Python's repr
 * writes them, one JSON row per epoch, and reset() rewriting both files from a row list.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { MetricsLog, pythonFloat, summaryColumns, summaryLine, type MetricsRow } from '../../src/train/metrics-log.js';

const ROW: MetricsRow = {
  epoch: 0, train_loss: 0.6931471805599453, eval_loss: 0.5, eval_top1: 85.25, eval_top5: 100, lr: 0.00001,
  step: 8, epoch_seconds: 1.5, images_per_second: 682.6666666666666,
};

test("pythonFloat writes floats as Python's repr", () => {
  const cases: [number, string][] = [
    [0, '0.0'], [100, '100.0'], [85.25, '85.25'], [0.1, '0.1'], [0.0001, '0.0001'], [0.00001, '1e-05'],
    [1.5e-7, '1.5e-07'], [-0.5, '-0.5'], [123456789.125, '123456789.125'], [1e16, '1e+16'], [1.5e16, '1.5e+16'],
    [9999999999999998, '9999999999999998.0'], [0.6931471805599453, '0.6931471805599453'], [NaN, 'nan'],
    [Infinity, 'inf'], [-Infinity, '-inf'], [2.5e-4, '0.00025'], [-3e-5, '-3e-05'],
  ];
  for (const [x, want] of cases) assert.equal(pythonFloat(x), want, String(x));
});

test("summary.csv columns are timm's update_summary columns", () => {
  assert.deepEqual(summaryColumns(false), ['epoch', 'train_loss', 'eval_loss', 'eval_top1', 'eval_top5', 'lr']);
  assert.deepEqual(summaryColumns(true),
    ['epoch', 'train_loss', 'eval_loss', 'eval_top1', 'eval_top5', 'ema_eval_loss', 'ema_eval_top1', 'ema_eval_top5', 'lr']);
  assert.equal(summaryLine(ROW, false), '0,0.6931471805599453,0.5,85.25,100.0,1e-05');
});

test('MetricsLog: header, appended rows, JSON lines, and reset rewriting both files', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'vicinity-metrics-'));
  try {
    const log = new MetricsLog(dir, true);
    await log.reset([]);
    assert.equal(await readFile(log.summaryFile, 'utf8'),
      'epoch,train_loss,eval_loss,eval_top1,eval_top5,ema_eval_loss,ema_eval_top1,ema_eval_top5,lr\n');
    assert.equal(await readFile(log.metricsFile, 'utf8'), '');
    const rows = [
      { ...ROW, ema_eval_loss: 0.75, ema_eval_top1: 80, ema_eval_top5: 99.5 },
      { ...ROW, epoch: 1, step: 16, lr: 0.05, ema_eval_loss: 0.5, ema_eval_top1: 86.5, ema_eval_top5: 100 },
    ];
    for (const row of rows) await log.append(row);
    const csv = (await readFile(log.summaryFile, 'utf8')).split('\n');
    assert.deepEqual(csv.slice(1), [
      '0,0.6931471805599453,0.5,85.25,100.0,0.75,80.0,99.5,1e-05',
      '1,0.6931471805599453,0.5,85.25,100.0,0.5,86.5,100.0,0.05',
      '',
    ]);
    const json = (await readFile(log.metricsFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as MetricsRow);
    assert.deepEqual(json, rows);
    await log.reset(rows.slice(0, 1));
    assert.equal((await readFile(log.summaryFile, 'utf8')).trim().split('\n').length, 2);
    assert.deepEqual((await readFile(log.metricsFile, 'utf8')).trim().split('\n').map((l) => JSON.parse(l)), rows.slice(0, 1));
    assert.deepEqual((await readdir(dir)).sort(), ['metrics.jsonl', 'summary.csv']);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
