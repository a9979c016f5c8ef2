#!/usr/bin/env bash
# The test command (README): sets up, checks generated code and file sizes, runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
node dist/tools/gen-ops/generate.js --check
node scripts/check-file-sizes.mjs
node scripts/check-imports.mjs
node dist/src/cli/main.js doctor >/dev/null || node dist/src/cli/main.js doctor
node --test "${@:-dist/test/}"
