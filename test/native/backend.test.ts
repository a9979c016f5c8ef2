/**
 * The libtorch backend the addon was built against (scripts/build-addon.mjs): the build record, the
 * tests' PyTorch oracle being that same torch, and ops a libtorch lacks failing by name.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import test from 'node:test';
import { native } from '../../src/native/binding.js';
import { buildConfig } from '../../src/native/build-config.js';
import { PYTHON } from '../support/parity.js';

const info = native.buildInfo();
const majorMinor = (v: string) => v.split('.').slice(0, 2).join('.');

test('the addon is the build of VICINITY_BACKEND and describes the libtorch it links', () => {
  assert.equal(info.backend, process.env.VICINITY_BACKEND || 'default');
  const config = buildConfig();
  assert.ok(config, 'build/<backend>/libtorch.config.json is missing');
  assert.equal(config.backend, info.backend);
  assert.equal(config.version, info.torchVersion);
  assert.equal(config.label, info.torchLabel);
  assert.match(info.torchLabel, /^(pip torch 2\.\d+\.\d+ in \.venv|Debian libtorch-dev 1\.13\.\d+|.*torch.*)$/);
});

test('the PyTorch oracle is the torch the addon links', { skip: process.env.VICINITY_TEST_PYTHON ? 'VICINITY_TEST_PYTHON overrides the oracle' : false }, () => {
  const r = spawnSync(PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(majorMinor(r.stdout.trim()), majorMinor(info.torchVersion), `${PYTHON} has torch ${r.stdout.trim()}`);
});

test('an operator this libtorch lacks fails by name, with the version and the fix', () => {
  assert.throws(() => native.opId('aten::no_such_operator', 'overload'), (e: Error) => {
    assert.match(e.message, /operator aten::no_such_operator\.overload is not in libtorch /);
    assert.ok(e.message.includes(`libtorch ${info.torchVersion} (${info.torchLabel}`), e.message);
    assert.match(e.message, /scripts\/setup\.sh/);
    return true;
  });
  // aten::rms_norm arrived in PyTorch 2.4: present on the primary backend, absent from 1.13.
  if (info.torchVersion.startsWith('1.')) {
    assert.throws(() => native.opId('aten::rms_norm', ''), /operator aten::rms_norm is not in libtorch 1\.13/);
  } else {
    assert.equal(typeof native.opId('aten::rms_norm', ''), 'number');
  }
});
