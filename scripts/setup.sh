#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (or checks an existing one) for vicinity:
#   1. Debian packages: libtorch-dev (the fallback libtorch 1.13), libopenblas-dev, libgloo-dev;
#      python3-torch (PyTorch 1.13, the fallback build's test oracle, never a runtime dependency);
#      python3-venv (for step 2); dataset-fashion-mnist (full data).
#   2. PyTorch's wheel in the project's .venv/ (pip install 'torch==2.13.*' numpy): the primary
#      libtorch the addon builds against, and the tests' oracle for that build. Where pip cannot
#      get it, the default build falls back to Debian's libtorch-dev 1.13 (with a message saying so).
#   3. npm ci, which also builds the native addon (scripts/build-addon.mjs) into build/default/.
#   4. tsc.
# Idempotent: each step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."
# Headless Chromium for the page tests (report and explain pages, the browser example in
# examples/browser; driven by playwright-core).
EXTRA_PACKAGES=(chromium)

PACKAGES=(libtorch-dev libopenblas-dev libgloo-dev python3-torch python3-venv dataset-fashion-mnist)
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

# PyTorch 2.x in .venv/. The stamp records the requirement once pip has installed it, so a set-up
# machine skips pip entirely. --retries 0: where the default index is unreachable and the wheel
# comes from a local folder, pip would otherwise retry the index for about 2 minutes.
TORCH_REQUIREMENT='torch==2.13.*'
torch_stamp=.venv/.vicinity-torch
if [[ ! -f $torch_stamp ]] || [[ $(cat "$torch_stamp") != "$TORCH_REQUIREMENT" ]]; then
  echo "setup: installing PyTorch ($TORCH_REQUIREMENT, numpy) into .venv/"
  if { [[ -x .venv/bin/python ]] || python3 -m venv .venv; } &&
    .venv/bin/pip install -q --retries 0 "$TORCH_REQUIREMENT" numpy; then
    echo "$TORCH_REQUIREMENT" >"$torch_stamp"
  else
    echo "setup: pip could not install $TORCH_REQUIREMENT into .venv/ (see above); falling back to" \
      "Debian's libtorch-dev 1.13 for the default build. Once pip can reach a torch wheel, run" \
      "this script again to build against PyTorch 2.x." >&2
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
