#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# hl7_delivery.sh -- figures of the gateway's HL7 v2 (MLLP) destination, printed, not asserted:
#   1. devices' acknowledged messages/s with --out (a file), with --hl7 (the outbox), and with
#      --hl7 and --fhir-server together (two outbox rows a message), the delivery running off
#      the acknowledgement path;
#   2. the drain of a backlog: N messages taken into custody while the listener (python-hl7's
#      MLLP server, tests/hl7/mllp_peer.py) is down, then the time until it has all of them.
# Usage: bench/hl7_delivery.sh [BUILD_DIR]   (default build; needs build/bin and python3-hl7)
#   MW_BENCH_DEVICES (20), MW_BENCH_PER_DEVICE (500): the backlog is their product.
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
bin=$build/bin
devices=${MW_BENCH_DEVICES:-20}
per=${MW_BENCH_PER_DEVICE:-500}
total=$((devices * per))
python=/usr/bin/python3
work=$(mktemp -d "${TMPDIR:-/tmp}/mw-hl7-bench.XXXXXX")
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
lines() { if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi; }

"$bin/medwire-pki" ca --out "$work/ca" >/dev/null
"$bin/medwire-pki" issue --ca "$work/ca" --role gateway --id gateway --out "$work" >/dev/null
for i in $(seq "$devices"); do
  "$bin/medwire-pki" issue --ca "$work/ca" --role device --id "dev-$i" --out "$work" >/dev/null
done

# gateway NAME OPTIONS...: starts one, sets gw_port
gateway() {
  local name=$1
  shift
  rm -f "$work/$name.port"
  "$bin/medwire-gateway" --listen 127.0.0.1:0 --ca "$work/ca/ca.crt" --cert "$work/gateway.crt" \
    --key "$work/gateway.key" --store "$work/$name.db" --audit "$work/$name.audit" \
    --port-file "$work/$name.port" --log-level warn "$@" 2>"$work/$name.err" &
  gw_pid=$!
  pids+=("$gw_pid")
  wait_file "$work/$name.port" || { echo "gateway $name did not start" >&2; cat "$work/$name.err" >&2; exit 1; }
  gw_port=$(cat "$work/$name.port")
}

# send: every device sends its messages as fast as it is acknowledged; prints the ms it took
send() {
  local t0 t1 d=()
  t0=$(now_ms)
  for i in $(seq "$devices"); do
    "$bin/medwire-device" --gateway "127.0.0.1:$gw_port" --gateway-name gateway \
      --ca "$work/ca/ca.crt" --cert "$work/dev-$i.crt" --key "$work/dev-$i.key" \
      --count "$per" --interval-ms 0 --give-up-s 120 --quiet &
    d+=($!)
  done
  for p in "${d[@]}"; do wait "$p"; done
  t1=$(now_ms)
  echo $((t1 - t0))
}

peer() { # starts python-hl7's listener on port $1 (0: any), writing ids to $work/ids
  rm -f "$work/peer.port"
  "$python" "$src/tests/hl7/mllp_peer.py" --port-file "$work/peer.port" --ids "$work/ids" \
    --errors "$work/errors" --frames "$work/frames" --port "$1" >/dev/null 2>"$work/peer.err" &
  peer_pid=$!
  pids+=("$peer_pid")
  wait_file "$work/peer.port"
}

echo "== $devices devices x $per messages = $total, window as medwire-device sends"

gateway file --out "$work/out.jsonl"
ms_file=$(send)
kill "$gw_pid"

# A port for the listener, found by starting it once and stopping it.
peer 0
hl7_port=$(cat "$work/peer.port")
kill "$peer_pid"
wait "$peer_pid" 2>/dev/null || true
rm -f "$work/ids"

# Both destinations (both down: every message makes two outbox rows in one transaction).
gateway both --hl7 "mllp://127.0.0.1:$hl7_port" --fhir-server "http://127.0.0.1:$hl7_port/"
ms_both=$(send)
kill "$gw_pid"

gateway hl7 --hl7 "mllp://127.0.0.1:$hl7_port"
ms_hl7=$(send)
peer "$hl7_port"
t0=$(now_ms)
t_first=0
while [ "$(lines "$work/ids")" -lt "$total" ]; do
  if [ "$t_first" -eq 0 ] && [ "$(lines "$work/ids")" -gt 0 ]; then t_first=$(now_ms); fi
  sleep 0.01
  if [ $(($(now_ms) - t0)) -gt 300000 ]; then
    echo "the backlog did not drain in 300 s ($(lines "$work/ids") of $total)" >&2
    exit 1
  fi
done
t_end=$(now_ms)
[ "$t_first" -eq 0 ] && t_first=$t_end
ms_drain=$((t_end - t0))
ms_flow=$((t_end - t_first))
[ "$ms_flow" -gt 0 ] || ms_flow=1
errors=$(lines "$work/errors")

printf '%-62s %s\n' "acknowledged msgs/s, --out file" "$((total * 1000 / ms_file))"
printf '%-62s %s\n' "acknowledged msgs/s, --hl7 (listener down: all into the outbox)" \
  "$((total * 1000 / ms_hl7))"
printf '%-62s %s\n' "acknowledged msgs/s, --hl7 and --fhir-server (both down)" \
  "$((total * 1000 / ms_both))"
printf '%-62s %s\n' "backlog of $total drained to python-hl7 over MLLP, ms" "$ms_drain"
printf '%-62s %s\n' "  of which waiting for the sender's next connection attempt, ms" \
  "$((t_first - t0))"
frames=$(lines "$work/frames")
printf '%-62s %s\n' "delivered to the MLLP listener with ACKs once connected, msgs/s" \
  "$((total * 1000 / ms_flow))"
printf '%-62s %s\n' "MLLP frames (ORU^R01) for them; messages (OBX) per frame" \
  "$frames; $(awk -v t="$total" -v f="$frames" 'BEGIN {printf "%.1f", f ? t / f : 0}')"
printf '%-62s %s\n' "messages the listener could not parse" "$errors"
