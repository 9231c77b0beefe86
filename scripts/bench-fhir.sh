#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench-fhir.sh -- FHIR REST delivery figures (printed, not asserted): messages/s the gateway
# delivers to a FHIR server (medwire-gateway --fhir-server) and the drain time of a backlog
# built while the server answered 503. Two servers: Medplum's FhirRouter over its in-memory
# repository (tests/fhir-server/server.js), and the same wrapper in --echo mode (every
# transaction answered 201 per entry, no FHIR work) for the gateway's own ceiling.
#
#   scripts/bench-fhir.sh                          # build dir "build" (MW_BENCH_BUILD)
#   MW_BENCH_BACKLOG=10000 MW_BENCH_MEDPLUM_BACKLOG=200 MW_BENCH_BATCH=50 scripts/bench-fhir.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${MW_BENCH_BUILD:-build}
backlog=${MW_BENCH_BACKLOG:-10000}
medplum_backlog=${MW_BENCH_MEDPLUM_BACKLOG:-200}
batch=${MW_BENCH_BATCH:-50}
devices=10
bin=$root/$build/bin
[ -x "$bin/medwire-gateway" ] || { echo "bench-fhir.sh: build first ($build/bin/medwire-gateway)" >&2; exit 1; }
bash tests/fhir-server/install-server.sh tests/fhir-server "$root/$build/fhir-server" >&2
work=$(mktemp -d "$root/$build/bench-fhir.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
wait_file() { for _ in $(seq 300); do [ -s "$1" ] && return 0; sleep 0.1; done; echo "no $1" >&2; exit 1; }
now_ms() { date +%s%3N; }

pki=$work/pki
"$bin/medwire-pki" ca --out "$pki/ca" >/dev/null
"$bin/medwire-pki" issue --ca "$pki/ca" --role gateway --id gateway --out "$pki" >/dev/null
for i in $(seq 1 $devices); do
  "$bin/medwire-pki" issue --ca "$pki/ca" --role device --id "bdev-$i" --out "$pki" >/dev/null
done

# run NAME BACKLOG BATCH [--echo]: prints "drain_s msgs_per_s"
run() {
  local name=$1 n=$2 b=$3 mode=${4:-}
  local dir=$work/$name
  mkdir -p "$dir"
  node "$root/$build/fhir-server/server.js" "$dir/fhir.port" ${mode:+"$mode"} >"$dir/fhir.log" 2>&1 &
  pids+=($!)
  local spid=$!
  wait_file "$dir/fhir.port"
  local fp
  fp=$(cat "$dir/fhir.port")
  curl -s -XPOST "http://127.0.0.1:$fp/_control/fail?status=503&count=100000000" >/dev/null
  MW_FHIR_BACKOFF_MS=100 "$bin/medwire-gateway" --listen 127.0.0.1:0 --ca "$pki/ca/ca.crt" \
    --cert "$pki/gateway.crt" --key "$pki/gateway.key" --store "$dir/store.db" \
    --audit "$dir/audit.jsonl" --port-file "$dir/gw.port" --log-level warn \
    --fhir-server "http://127.0.0.1:$fp/" --fhir-batch "$b" 2>"$dir/gw.err" &
  pids+=($!)
  local gpid=$!
  wait_file "$dir/gw.port"
  local per=$(( n / devices ))
  local dpids=()
  for i in $(seq 1 $devices); do
    "$bin/medwire-device" --gateway "127.0.0.1:$(cat "$dir/gw.port")" --gateway-name gateway \
      --ca "$pki/ca/ca.crt" --cert "$pki/bdev-$i.crt" --key "$pki/bdev-$i.key" \
      --count "$per" --give-up-s 300 --quiet &
    dpids+=($!)
  done
  for p in "${dpids[@]}"; do wait "$p"; done # the backlog is in the outbox
  local t0 t1 got=0
  t0=$(now_ms)
  curl -s -XPOST "http://127.0.0.1:$fp/_control/fail?status=503&count=0" >/dev/null
  while :; do
    if [ -n "$mode" ]; then
      got=$(curl -s "http://127.0.0.1:$fp/_control/stats" | sed -n 's/.*"echoedObservations":\([0-9]*\).*/\1/p')
    else
      got=$(curl -s "http://127.0.0.1:$fp/Observation?_summary=count" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
    fi
    [ "${got:-0}" -ge $(( per * devices )) ] && break
    sleep 0.05
  done
  t1=$(now_ms)
  kill "$gpid" "$spid" 2>/dev/null || true
  wait "$gpid" "$spid" 2>/dev/null || true
  awk -v d=$((t1 - t0)) -v n=$((per * devices)) 'BEGIN {printf "%.2f %.0f\n", d / 1000, n * 1000 / d}'
}

echo "== backlog of $backlog to the --echo wrapper (batch $batch)" >&2
read -r e_s e_r < <(run echo "$backlog" "$batch" --echo)
echo "== backlog of $medplum_backlog to Medplum (batch 8, its bound)" >&2
read -r m_s m_r < <(run medplum "$medplum_backlog" 8)
echo
echo "| figure | value | note |"
echo "| --- | --- | --- |"
echo "| drain of a $backlog-message backlog, --fhir-batch $batch, wrapper --echo (no FHIR work) | $e_s s ($e_r msg/s) | the gateway's ceiling: one curl handle, one request at a time; goal: < 10 s |"
echo "| drain of a $medplum_backlog-message backlog to Medplum fhir-router 4.5.2 MemoryRepository, --fhir-batch 8 | $m_s s ($m_r msg/s) | the in-memory server is the bottleneck: its time per transaction grows with what it holds (by hand: 100 transactions of 8 entries took 508 s), and it takes at most 8 entries per conditional transaction |"
