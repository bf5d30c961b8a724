#!/usr/bin/env bash
# The test command: installs what the browser end-to-end test needs (Debian's chromium, and
# playwright-core from npm) and what the GPU tests need (the Vulkan loader and Mesa's lavapipe,
# a Vulkan driver on the CPU) when missing, checks formatting (cargo fmt) and lints (clippy,
# warnings are errors), runs the whole Rust test suite, built with the GPU (wgpu) backend, then
# builds the Python package's wheel with maturin into a virtualenv and runs its pytest suite
# (Ray included, or a visible skip where Ray cannot be installed).
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

# the GPU path runs in CI on lavapipe; Debian 12's Mesa is 22.3, bookworm-backports has 25
lavapipe() { [ -e /usr/share/vulkan/icd.d/lvp_icd.json ] || ls /usr/share/vulkan/icd.d/lvp_icd.*.json >/dev/null 2>&1; }
if ! lavapipe && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing the Vulkan loader and Mesa's lavapipe (for the GPU tests)…" >&2
  from=()
  if grep -q bookworm /etc/os-release 2>/dev/null; then
    grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/ ||
      echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/bookworm-backports.list
    from=(-t bookworm-backports)
  fi
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${from[@]}" libvulkan1 mesa-vulkan-drivers >/dev/null ||
    echo "NOTE: could not install libvulkan1 and mesa-vulkan-drivers" >&2
fi
if lavapipe; then
  export MMFUSE_REQUIRE_GPU=1
else
  echo "NOTE: no Vulkan CPU driver (lavapipe): the GPU tests will skip (apt-get install libvulkan1 mesa-vulkan-drivers)" >&2
fi
# lavapipe compiles each GPU kernel with LLVM; Mesa keeps the results in ~/.cache/mesa_shader_cache_db
FEATURES=(--features mmfuse/wgpu)

# the Python package's virtualenv, kept outside the clone: maturin, numpy, Pillow, pytest, Ray;
# its interpreter is the one pyo3 builds against in every cargo command below (pyo3 rebuilds
# when that changes)
VENV="${MMFUSE_VENV:-$HOME/.cache/mmfuse/venv}"
PYTHON="${PYTHON:-python3}"
if "$PYTHON" -c 'import sys; assert sys.version_info >= (3, 9)' 2>/dev/null; then
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -c 'import maturin, numpy, PIL, pytest' 2>/dev/null ||
    "$VENV/bin/pip" install -q "maturin>=1.16,<2" numpy pillow pytest
  "$VENV/bin/python" -c 'import ray.data, ray.tune' 2>/dev/null || "$VENV/bin/pip" install -q "ray[data,tune]>=2.50" ||
    echo "NOTE: could not install Ray: the Ray tests will skip" >&2
  export PYO3_PYTHON="$VENV/bin/python"
else
  echo "NOTE: no Python >= 3.9 ($PYTHON): the Python package's tests are skipped" >&2
  VENV=""
fi

# style and lints first: they fail fast and cost seconds on a warm build
if cargo fmt --version >/dev/null 2>&1; then
  cargo fmt --all --check
else
  echo "NOTE: rustfmt is not installed: skipping 'cargo fmt --check' (rustup component add rustfmt)" >&2
fi
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --release --workspace --all-targets "${FEATURES[@]}" -- -D warnings
else
  echo "NOTE: clippy is not installed: skipping 'cargo clippy -D warnings' (rustup component add clippy)" >&2
fi

export MMFUSE_REQUIRE_BROWSER=1
cargo test --release --workspace "${FEATURES[@]}" "$@"

# The Python package: a wheel built by maturin from the same target folder (only pyo3 and the
# binding crate are compiled again), installed into the virtualenv, and its pytest suite.
if [ -n "$VENV" ]; then
  TARGET="$(mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd)"
  rm -f "$TARGET"/wheels/mmfuse-*.whl
  (cd crates/mmfuse-py && "$VENV/bin/maturin" build --release --features wgpu -i "$VENV/bin/python" -o "$TARGET/wheels" --quiet)
  "$VENV/bin/pip" install -q --force-reinstall --no-deps "$TARGET"/wheels/mmfuse-*.whl
  (cd crates/mmfuse-py && MMFUSE_BIN="$TARGET/release/mmfuse" "$VENV/bin/python" -m pytest -q -rs tests)
fi
