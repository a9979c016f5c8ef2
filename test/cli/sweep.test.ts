/**
 * `vicinity sweep` as a user runs it, at a tiny budget: two settings of the LA constraint
 * ablation, each a full run with the same recipe; sweep.csv compares them, the report shows it,
 * and each run's checkpoint rebuilds its variant from its metadata (predict on it works).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'node:test';
import { PNG } from 'pngjs';
import { readSafetensors } from '../../src/checkpoint/safetensors.js';
import { ABLATIONS, runSweep } from '../../src/cli/sweep.js';
import { createModel } from '../../src/models/registry.js';
import { PRETRAINED_CFG_KEY } from '../../src/train/model-metadata.js';
import { vicinity } from '../support/tiny-run.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'vicinity-sweep-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('sweep la-kernel at a tiny budget: one run per setting, sweep.csv, report, variant checkpoints', () => {
  const out = path.join(tmp, 'sweep');
  const r = vicinity('sweep', 'la-kernel', '--only', '0,1', '--epochs', '1', '--train-limit', '128', '--data-source', 'subset',
    '--workers', '0', '--out', out);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stderr, /sweep la-kernel: kernelSize=3 \(1\/2\)/);
  const [header, ...rows] = readFileSync(path.join(out, 'sweep.csv'), 'utf8').trim().split('\n');
  assert.equal(header, 'setting,model,kernelSize,params,recipe,epochs,train_images,top1,top5,best_top1,eval_loss,train_seconds,run');
  assert.equal(rows.length, 2);
  const cells = rows.map((row) => row.split(','));
  assert.deepEqual(cells.map((c) => c.slice(0, 7)), [
    ['kernelSize=3', 'la_resnet_nano_s2', '3', '911842', 'fashion-mnist-sgd', '1', '128'],
    ['kernelSize=5', 'la_resnet_nano_s2', '5', '927202', 'fashion-mnist-sgd', '1', '128'],
  ]);
  for (const c of cells) assert.ok(Number(c[7]) >= 0 && Number(c[7]) <= 100);
  // The parameter counts are the variants' own.
  assert.equal(createModel('la_resnet_nano_s2', { modelArgs: { kernelSize: 5 } }).numParameters(), 927_202);
  const html = readFileSync(path.join(out, 'report.html'), 'utf8');
  assert.match(html, /data-chart="sweep"><svg/);
  assert.match(html, /kernelSize=5/);
  return (async () => {
    const checkpoint = path.join(out, 'kernelSize_5', 'last.safetensors');
    const cfg = JSON.parse((await readSafetensors(checkpoint)).metadata[PRETRAINED_CFG_KEY]) as { model_args: { modelArgs: Record<string, number> } };
    assert.deepEqual(cfg.model_args.modelArgs, { kernelSize: 5 });
    const image = path.join(tmp, 'gray.png');
    const png = new PNG({ width: 20, height: 20 });
    png.data.fill(128);
    writeFileSync(image, PNG.sync.write(png));
    const p = vicinity('predict', checkpoint, image, '--json');   // builds the k = 5 variant from the metadata
    assert.equal(p.status, 0, p.stderr);
    assert.equal((JSON.parse(p.stdout) as { predictions: unknown[] }).predictions.length, 1);
    const bad = vicinity('sweep', 'la-size');
    assert.match(bad.stderr, /unknown ablation 'la-size'; the ablations are la-kernel, la-constraint, halo-block, lsag-shifts/);
    const wrong = vicinity('sweep', 'la-kernel', '--model', 'resnet_nano', '--out', path.join(tmp, 'x'));
    assert.match(wrong.stderr, /resnet_nano does not take kernelSize \(its modelArgs: none\)/);
  })();
});

test('lsag-shifts: on lsag_nano, numShifts 0/4/8/17; runSweep accepts it and checks settings before training', async () => {
  assert.deepEqual(ABLATIONS['lsag-shifts'].settings.map((s) => s.numShifts), [0, 4, 8, 17]);
  assert.equal(ABLATIONS['lsag-shifts'].model, 'lsag_nano');
  // lsag_nano's own recipe ('lsag-adamw', 5 warm-up epochs) would refuse a budget under 5 epochs.
  assert.equal(ABLATIONS['lsag-shifts'].recipe, 'fashion-mnist-sgd');
  // The modelArgs check passes (lsag_nano takes numShifts), so the next check, --only, is what fails: no run starts.
  const out = path.join(tmp, 'lsag-shifts');
  await assert.rejects(runSweep('lsag-shifts', { only: '4', out }), /--only 4: settings are numbered 0\.\.3 \(numShifts=0; numShifts=4; numShifts=8; numShifts=17\)/);
  await assert.rejects(runSweep('lsag-shifts', { model: 'halonet_nano', out }), /halonet_nano does not take numShifts .*lsag-shifts runs on lsag_nano/);
  // Every setting builds (a misnumbered setting would fail here, not hours into the sweep).
  for (const setting of ABLATIONS['lsag-shifts'].settings) createModel('lsag_nano', { modelArgs: setting }).dispose();
});
