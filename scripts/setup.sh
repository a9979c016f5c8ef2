#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (or checks an existing one) for vicinity:
#   1. Debian packages: libtorch-dev (the numerics), libopenblas-dev, libgloo-dev; python3-torch
#      (PyTorch as the tests' oracle, never a runtime dependency); dataset-fashion-mnist (full data).
#   2. npm ci, which also builds the native addon (scripts/build-addon.mjs).
#   3. tsc.
# Idempotent: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
# Headless Chromium for the page tests (report and explain pages, the browser example in
# examples/browser; driven by playwright-core).
EXTRA_PACKAGES=(chromium)

PACKAGES=(libtorch-dev libopenblas-dev libgloo-dev python3-torch dataset-fashion-mnist)
missing=()
for p in "${PACKAGES[@]}" "${EXTRA_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

stamp=node_modules/.vicinity-lock
if [[ ! -f $stamp ]] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund
  cp package-lock.json "$stamp"
else
  node scripts/build-addon.mjs >/dev/null  # incremental: recompiles only what changed
fi
npx tsc -p tsconfig.json
chmod +x dist/src/cli/main.js
