#!/usr/bin/env bash
# Load test of `mmfuse serve` on loopback: closed-loop keep-alive clients at concurrency
# 1, 16, 64 and 256 (SECONDS_PER_LEVEL each, default 10) send a mix of good posts (text,
# text + PNG, batches of 8) and bad ones (not JSON, unknown field, images that are not base64
# or not images, overlong text). Prints answers/s, p50/p99 latency, the posts per model call
# the batcher formed, answers by class and I/O errors per level, and the server's peak RSS;
# fails if any answer is not the one a well-behaved server gives (the load bench,
# crates/mmfuse/benches/load.rs; the same mix as the 60 s burst test in CI).
#
#   bench/serve.sh [RUN_DIR]      (default: trains the demo NER model, 2 epochs)
#
# Environment: LEVELS (1,16,64,256), SECONDS_PER_LEVEL (10), RESULTS (bench/results),
# MMFUSE_FEATURES (extra cargo features of the build), BIN / LOAD (prebuilt mmfuse and load
# bench binaries: skips the build).
set -euo pipefail
cd "$(dirname "$0")/.."
LEVELS="${LEVELS:-1,16,64,256}"
SECS="${SECONDS_PER_LEVEL:-10}"
RESULTS="${RESULTS:-bench/results}"
MMFUSE_FEATURES="${MMFUSE_FEATURES:-}"
if [ -z "${BIN:-}" ] || [ -z "${LOAD:-}" ]; then
  echo "building mmfuse and the load bench (release)..." >&2
  cargo build --release -q -p mmfuse ${MMFUSE_FEATURES:+--features "$MMFUSE_FEATURES"}
  BIN="${CARGO_TARGET_DIR:-target}/release/mmfuse"
  LOAD="$(cargo bench -p mmfuse --bench load --no-run ${MMFUSE_FEATURES:+--features "$MMFUSE_FEATURES"} --message-format=json 2>/dev/null |
      python3 bench/cargo_artifact.py load)"
fi
[ -x "$BIN" ] && [ -x "$LOAD" ] || { echo "no mmfuse ($BIN) or load bench ($LOAD) binary" >&2; exit 1; }
RUN="${1:-}"
WORK="$(mktemp -d)"
SERVER=
trap '[ -n "$SERVER" ] && kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
"$BIN" -q synth --out "$WORK/corpus" --train 1500 --dev 200 --test 200 >/dev/null
IMG="$(find "$WORK/corpus/ner/images" -name "*.png" -print -quit)"
if [ -z "$RUN" ]; then
  "$BIN" -q train --config configs/demo-ner.toml --set data.dir="$WORK/corpus/ner" --set train.epochs=2 --out "$WORK/run" >/dev/null
  RUN="$WORK/run"
fi
PORT=18931
"$BIN" -q serve --model "$RUN" --port $PORT &
SERVER=$!
for _ in $(seq 100); do curl -sf "localhost:$PORT/healthz" >/dev/null && break; sleep 0.1; done
mkdir -p "$RESULTS"
OUT="$RESULTS/serve-$(date -u +%Y%m%dT%H%M%SZ).jsonl"
echo "$(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(date -u +%F)" >&2
"$LOAD" --port $PORT --pid $SERVER --image "$IMG" --levels "$LEVELS" --seconds "$SECS" --jsonl "$OUT"
echo "raw results: $OUT" >&2
