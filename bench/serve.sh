#!/usr/bin/env bash
# Load test of `mmfuse serve` on loopback: a bounded wrk run (fixed duration, fixed
# connections) at concurrency 1, 8 and 64 against POST /v1/predict with a text + PNG post.
# Prints requests/s and latency percentiles per level, and fails if any request errored.
#
#   bench/serve.sh [RUN_DIR]      (default: trains the demo NER model into target/bench-run)
#
# Needs wrk (Debian: apt-get install wrk).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
BIN="${CARGO_TARGET_DIR:-target}/release/mmfuse"
cargo build --release -q -p mmfuse
RUN="${1:-}"
WORK="$(mktemp -d)"
trap 'kill $SERVER 2>/dev/null || true; rm -rf "$WORK"' EXIT
if [ -z "$RUN" ]; then
  "$BIN" synth --out "$WORK/corpus" --train 1500 --dev 200 --test 200 >/dev/null
  "$BIN" -q train --config configs/demo-ner.toml --set data.dir="$WORK/corpus/ner" --set train.epochs=2 --out "$WORK/run" >/dev/null
  RUN="$WORK/run"
  IMG="$WORK/corpus/ner/images/100000.png"
else
  IMG="$(find "$RUN/.." -name '*.png' | head -1)"
fi
PORT=18931
"$BIN" -q serve --model "$RUN" --port $PORT --max-concurrency 4096 &
SERVER=$!
for _ in $(seq 50); do curl -sf "localhost:$PORT/healthz" >/dev/null && break; sleep 0.1; done

python3 - "$IMG" > "$WORK/post.lua" <<'PY'
import base64, json, sys
body = json.dumps({"text": "so i met Kalo Terzu at the station today", "image": base64.b64encode(open(sys.argv[1], "rb").read()).decode()})
print('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = ' + json.dumps(body))
PY

printf "| concurrency | requests/s | p50 | p99 | errors |\n|---:|---:|---:|---:|---:|\n"
status=0
for c in 1 8 64; do
  t=$(( c < 2 ? 1 : 2 ))
  out=$(wrk -t$t -c$c -d10s --latency -s "$WORK/post.lua" "http://127.0.0.1:$PORT/v1/predict")
  rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
  p50=$(echo "$out" | awk '$1=="50%" {print $2}')
  p99=$(echo "$out" | awk '$1=="99%" {print $2}')
  errs=$(echo "$out" | awk '/Non-2xx/ {print $5} /Socket errors/ {s=$4+$6+$8+$10; print s}' | paste -sd+ | bc 2>/dev/null || echo 0)
  errs=${errs:-0}
  printf "| %d | %s | %s | %s | %s |\n" "$c" "$rps" "$p50" "$p99" "$errs"
  [ "$errs" = 0 ] || status=1
done
curl -s "localhost:$PORT/metrics" | grep -E '^mmfuse_batch_size_(sum|count)'
exit $status
