#!/usr/bin/env bash
# The main job (README): set up, then train and evaluate the default model on Fashion-MNIST.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/src/cli/main.js train "$@"
