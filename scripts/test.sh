#!/usr/bin/env bash
# The test command: installs what the browser end-to-end test needs (Debian's chromium, and
# playwright-core from npm) when missing, then runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing chromium (for the web page test)…" >&2
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "Chromium is missing: install it (e.g. 'sudo apt-get install chromium') or set CHROMIUM=/path/to/chrome" >&2
    exit 1
  fi
fi
if [ ! -d crates/mmfuse-serve/e2e/node_modules/playwright-core ]; then
  (cd crates/mmfuse-serve/e2e && npm install --no-package-lock --no-audit --no-fund --silent)
fi

export MMFUSE_REQUIRE_BROWSER=1
cargo test --release --workspace "$@"
