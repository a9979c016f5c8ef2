#!/usr/bin/env bash
# The test command (README): sets up, checks generated code and file sizes, runs every test against
# the default build (pip's torch 2.x in .venv/, the primary backend), then builds the Debian
# libtorch 1.13 fallback (build/debian/) and runs a parity-and-smoke subset against it, its oracle
# being Debian's python3-torch. With arguments, runs only those tests, on the default build
# (or the one VICINITY_BACKEND names). --test-force-exit: a test that leaves a handle open (a
# browser, a server) fails or ends its file instead of holding the run until CI's time limit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/tools/gen-ops/generate.js --check
node scripts/check-file-sizes.mjs
node scripts/check-imports.mjs
node dist/src/cli/main.js doctor >/dev/null || node dist/src/cli/main.js doctor
node --test --test-force-exit "${@:-dist/test/}"

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
node --test --test-force-exit dist/test/native/ dist/test/tensor/ dist/test/ops/ dist/test/autograd/ dist/test/nn/ \
  dist/test/attention/ dist/test/verify/ dist/test/models/small-convnet.test.js dist/test/models/la.test.js \
  dist/test/checkpoint/torch-pickle.test.js dist/test/optim/state.test.js dist/test/train/trainer.test.js \
  dist/test/cli/doctor.test.js
