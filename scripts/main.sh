#!/usr/bin/env bash
# The main job (README): set up, then train and evaluate the default LA-layer model
# (la_resnet_nano_s2) on Fashion-MNIST — Debian's full dataset when installed, else the bundled
# subset — for 4 epochs, which fits the 15-minute budget on 2 cores (docs/results.md).
# Extra arguments go to `vicinity train` and override these.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/src/cli/main.js train --model la_resnet_nano_s2 --epochs 4 "$@"
