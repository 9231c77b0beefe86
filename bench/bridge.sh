#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bridge.sh -- figures of medwire-bridge, printed, not asserted: HL7 v2 messages/s from a legacy
# monitor (python-hl7's MLLP client, tests/bridge/legacy_device.py: one message at a time, each
# sent once the previous one is answered AA; 1 to 4 OBX each, 2.5 on average) through the bridge
# into its queue, with the gateway up (the queue drains as it fills) and with it down (the queue
# only), and the bridge's memory (peak and final resident set, /proc VmHWM and VmRSS).
# Usage: bench/bridge.sh [BUILD_DIR]   (default build; needs build/bin and python3-hl7)
#   MW_BENCH_MESSAGES (2000)
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
bin=$build/bin
n=${MW_BENCH_MESSAGES:-2000}
python=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/mw-bridge-bench.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

now_ms() { date +%s%3N; }
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$2/status"; }

"$bin/medwire-pki" ca --out "$work/ca" >/dev/null
"$bin/medwire-pki" issue --ca "$work/ca" --role gateway --id gateway --out "$work" >/dev/null
"$bin/medwire-pki" issue --ca "$work/ca" --role device --id bridge --out "$work" >/dev/null
head -c 32 /dev/urandom >"$work/qkey"

"$bin/medwire-gateway" --listen 127.0.0.1:0 --ca "$work/ca/ca.crt" --cert "$work/gateway.crt" \
  --key "$work/gateway.key" --store "$work/gw.db" --out "$work/out.ndjson" \
  --port-file "$work/gw.port" --log-level warn 2>"$work/gw.err" &
gw_pid=$!
pids+=("$gw_pid")
wait_file "$work/gw.port" || { echo "the gateway did not start" >&2; exit 1; }
gw_port=$(cat "$work/gw.port")

# run NAME GATEWAY_PORT: one bridge, N messages through it; prints the figures
run() {
  local name=$1 port=$2
  rm -f "$work/$name.port"
  "$bin/medwire-bridge" --gateway "127.0.0.1:$port" --gateway-name gateway \
    --ca "$work/ca/ca.crt" --cert "$work/bridge.crt" --key "$work/bridge.key" \
    --queue "$work/$name.queue" --queue-key "$work/qkey" --queue-capacity 16384 \
    --listen-mllp 127.0.0.1:0 --port-file "$work/$name.port" --quiet 2>"$work/$name.err" &
  local b=$!
  pids+=("$b")
  wait_file "$work/$name.port" || { echo "the bridge did not start" >&2; cat "$work/$name.err" >&2; exit 1; }
  local t0 t1
  t0=$(now_ms)
  "$python" "$src/tests/bridge/legacy_device.py" stream 127.0.0.1 "$(cat "$work/$name.port")" "$n" \
    "$work/$name.expected" "$work/$name.progress"
  t1=$(now_ms)
  local obx
  obx=$(wc -l <"$work/$name.expected")
  printf '%-28s %5d messages (%5d OBX) in %6d ms: %6.0f msg/s, %6.0f OBX/s; bridge RSS peak %s kB, now %s kB\n' \
    "$name" "$n" "$obx" $((t1 - t0)) "$(awk -v a="$n" -v t=$((t1 - t0)) 'BEGIN {print a * 1000 / t}')" \
    "$(awk -v a="$obx" -v t=$((t1 - t0)) 'BEGIN {print a * 1000 / t}')" "$(kb VmHWM $b)" "$(kb VmRSS $b)"
  kill "$b"
  wait "$b" 2>/dev/null || true
}

echo "medwire-bridge: $n ORU^R01 messages from python-hl7's MLLP client, each answered AA once durable"
run "gateway up" "$gw_port"
# A port nobody answers on: the bridge only queues.
run "gateway down (queue only)" 9
