#!/usr/bin/env bash
# Over-HTTP benchmark: `examples/hello` served by zerofn and by `wasmtime serve` (same component,
# same machine, same run), loaded by wrk on loopback, rounds interleaved.
#
#   bench/http.sh                # needs wrk (apt-get install wrk) and wasmtime 48 on PATH or in $WASMTIME
#
# Install the baseline with: cargo install wasmtime-cli --version 48.0.8 --locked
set -euo pipefail
cd "$(dirname "$0")/.."

WASMTIME=${WASMTIME:-$(command -v wasmtime || true)}
DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-8}
ROUNDS=${ROUNDS:-3}
[ -x "$WASMTIME" ] || { echo "wasmtime not found: set WASMTIME or install wasmtime-cli 48.0.8" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk not found: apt-get install wrk" >&2; exit 1; }

cargo build --release -p zerofn --locked -q
(cd examples/hello && cargo build --release --target wasm32-wasip2 --locked -q)
component=examples/hello/target/wasm32-wasip2/release/hello.wasm

data=$(mktemp -d)
trap 'kill $zerofn_pid $wasmtime_pid 2>/dev/null || true; rm -rf "$data"' EXIT
ZEROFN_LOG=error target/release/zerofn up examples/hello --no-build --listen 127.0.0.1:18081 --data-dir "$data" >/dev/null 2>&1 &
zerofn_pid=$!
"$WASMTIME" serve -Scli --addr 127.0.0.1:18082 "$component" >/dev/null 2>&1 &
wasmtime_pid=$!
for port in 18081 18082; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/hello" >/dev/null && break; sleep 0.1; done
done

run() { # name port -> "requests/s p50 p99"
  wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "http://127.0.0.1:$2/hello" |
    awk -v name="$1" '/Requests\/sec/ {rps=$2} /^ +50%/ {p50=$2} /^ +99%/ {p99=$2}
      END {printf "%-16s %12s %10s %10s\n", name, rps, p50, p99}'
}

echo "wrk -t1 -c$CONNECTIONS -d$DURATION on loopback, $ROUNDS interleaved rounds, $(nproc) cores, $(date -u +%F)"
printf "%-16s %12s %10s %10s\n" "" "requests/s" "p50" "p99"
for round in $(seq "$ROUNDS"); do
  run "wasmtime serve" 18082
  run "zerofn" 18081
done
