#!/usr/bin/env bash
# The test command (README): sets up, checks generated code and file sizes, runs every test against
# the default build (pip's torch 2.x in .venv/, the primary backend), then builds the Debian
# libtorch 1.13 fallback (build/debian/) and runs a parity-and-smoke subset against it, its oracle
# being Debian's python3-torch. With arguments, runs only those tests, on the default build
# (or the one VICINITY_BACKEND names). No --test-force-exit: on Node 20 it ends a file before the
# tests of its describe() suites with async before-hooks have run (test/ops: 414 of 437 counted);
# a test must close what it opens (a browser, a server) in its own clean-up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/tools/gen-ops/generate.js --check
node scripts/check-file-sizes.mjs
node scripts/check-imports.mjs
node dist/src/cli/main.js doctor >/dev/null || node dist/src/cli/main.js doctor
node --test "${@:-dist/test/}"

# The fallback backend, when the default build is not already it.
(($# == 0)) && [[ -z ${VICINITY_BACKEND:-} ]] || exit 0
if [[ $(node -p "require('./build/default/libtorch.config.json').source") == "Debian libtorch-dev" ]]; then
  echo "test: the default build is Debian's libtorch 1.13 already; no separate fallback run"
  exit 0
fi
export VICINITY_BACKEND=debian
echo "test: the fallback backend, Debian's libtorch-dev 1.13 (build/debian/)"
node scripts/build-addon.mjs >/dev/null
node dist/tools/gen-ops/generate.js --check
node dist/src/cli/main.js doctor >/dev/null || node dist/src/cli/main.js doctor
# Parity with PyTorch 1.13 (tensor ops, autograd, layers), the reference-layer fixtures of every
# attention operator, model forwards, checkpoints written by torch.save, and a training smoke run.
node --test dist/test/native/ dist/test/tensor/ dist/test/ops/ dist/test/autograd/ dist/test/nn/ \
  dist/test/attention/ dist/test/verify/ dist/test/models/small-convnet.test.js dist/test/models/la.test.js \
  dist/test/checkpoint/torch-pickle.test.js dist/test/optim/state.test.js dist/test/train/trainer.test.js \
  dist/test/cli/doctor.test.js
