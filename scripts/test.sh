#!/usr/bin/env bash
# The test command: installs what the browser end-to-end test needs (Debian's chromium, and
# playwright-core from npm) when missing, checks formatting (cargo fmt) and lints (clippy, warnings
# are errors), then runs the whole test suite.
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

# style and lints first: they fail fast and cost seconds on a warm build
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all --check
else
  echo "NOTE: rustfmt is not installed: skipping 'cargo fmt --check' (rustup component add rustfmt)" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --release --workspace --all-targets -- -D warnings
else
  echo "NOTE: clippy is not installed: skipping 'cargo clippy -D warnings' (rustup component add clippy)" >&2
fi

export MMFUSE_REQUIRE_BROWSER=1
cargo test --release --workspace "$@"
