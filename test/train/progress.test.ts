/**
 * Progress output: the plain step and epoch line formats, plain mode's line cadence and rates
 * (with a fake clock), 'none' writing nothing, and 'auto' choosing a bar only on a TTY.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import test from 'node:test';
import type { MetricsRow } from '../../src/train/metrics-log.js';
import { Progress, formatDuration, formatEpochLine, formatLr, formatStepLine } from '../../src/train/progress.js';

/** A stream collecting what is written, TTY or not. */
function sink(isTTY = false): Writable & { text: string; isTTY: boolean } {
  const stream = new Writable({
    write(chunk, _encoding, done) {
      stream.text += String(chunk);
      done();
    },
  }) as Writable & { text: string; isTTY: boolean };
  stream.text = '';
  stream.isTTY = isTTY;
  return stream;
}

test('formatDuration, formatLr', () => {
  assert.equal(formatDuration(0), '0:00');
  assert.equal(formatDuration(65.4), '1:05');
  assert.equal(formatDuration(3725), '1:02:05');
  assert.equal(formatDuration(NaN), '?');
  assert.equal(formatLr(0.1), '0.1');
  assert.equal(formatLr(0.098765), '0.0988');
  assert.equal(formatLr(1e-6), '1.00e-6');
  assert.equal(formatLr(0), '0');
});

test('the plain step line and the epoch line', () => {
  assert.equal(formatStepLine({ epoch: 0, epochs: 5, done: 120, steps: 468, loss: 0.61234, lr: 0.0987, imagesPerSecond: 2345.4, etaSeconds: 15.2 }),
    'epoch 1/5  step 120/468  loss 0.6123  lr 0.0987  2,345 img/s  ETA 0:15');
  const row: MetricsRow = {
    epoch: 1, train_loss: 0.45678, eval_loss: 0.34567, eval_top1: 88.123, eval_top5: 99.8, lr: 0.05, step: 936,
    epoch_seconds: 12.34, images_per_second: 4878.2,
  };
  assert.equal(formatEpochLine(row, 5),
    'epoch 2/5  train loss 0.4568  eval loss 0.3457  top-1 88.12%  top-5 99.80%  lr 0.05  12.3 s  4,878 img/s');
  assert.match(formatEpochLine({ ...row, ema_eval_top1: 87.5 }, 5), /top-5 99\.80% {2}ema top-1 87\.50% {2}lr/);
});

test('plain mode: a line every `every` steps and at the end, with rate and ETA from the clock', () => {
  const stream = sink();
  let ms = 0;
  const progress = new Progress({ mode: 'plain', epochs: 3, stream, every: 4, now: () => ms });
  assert.equal(progress.mode, 'plain');
  progress.startEpoch(1, 10, 2);
  for (let done = 3; done <= 10; done++) {
    ms += 500;  // 0.5 s per step of 64 images: 128 img/s
    progress.step({ done, loss: 0.5, lr: 0.01, images: 64 });
  }
  progress.endEpoch();
  assert.deepEqual(stream.text.trim().split('\n'), [
    'epoch 2/3  step 4/10  loss 0.5000  lr 0.01  128 img/s  ETA 0:03',
    'epoch 2/3  step 8/10  loss 0.5000  lr 0.01  128 img/s  ETA 0:01',
    'epoch 2/3  step 10/10  loss 0.5000  lr 0.01  128 img/s  ETA 0:00',
  ]);
  assert.equal(progress.imagesPerSecond, 128);
});

test("'none' is silent; 'auto' is a bar on a TTY and plain lines elsewhere", () => {
  const quiet = sink();
  const none = new Progress({ mode: 'none', epochs: 1, stream: quiet });
  none.startEpoch(0, 2);
  none.step({ done: 1, loss: 1, lr: 1, images: 1 });
  none.step({ done: 2, loss: 1, lr: 1, images: 1 });
  none.endEpoch();
  assert.equal(quiet.text, '');
  assert.equal(new Progress({ mode: 'auto', epochs: 1, stream: sink(false) }).mode, 'plain');
  const tty = sink(true);
  const bar = new Progress({ mode: 'auto', epochs: 2, stream: tty });
  assert.equal(bar.mode, 'bar');
  bar.startEpoch(0, 4);
  bar.step({ done: 4, loss: 0.25, lr: 0.1, images: 8 });
  bar.endEpoch();
  assert.match(tty.text, /epoch 1\/2 \|.*\| 4\/4 \| \d+ img\/s \| loss 0\.2500 \| lr 0\.1 \| ETA/);
  // 'bar' asked for on a pipe still draws.
  const pipe = sink(false);
  const forced = new Progress({ mode: 'bar', epochs: 1, stream: pipe });
  forced.startEpoch(0, 2);
  forced.step({ done: 2, loss: 0.5, lr: 0.1, images: 8 });
  forced.endEpoch();
  assert.match(pipe.text, /epoch 1\/1 \|.*\| 2\/2 \|/);
});
