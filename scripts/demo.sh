#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh -- install what is missing, build, make a throwaway PKI, start a gateway and three
# simulated pulse oximeters on loopback, and show the decoded observations as they arrive.
# MW_DEMO_BIN=DIR runs the programs already built in DIR instead (no install, no build).
# Every file the demo makes, the gateway's store included, lives in one temporary folder that
# is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${MW_DEMO_BIN:-}" ]; then
  bin=$MW_DEMO_BIN
else
  # shellcheck source=scripts/deps.sh
  . scripts/deps.sh
  mw_install_deps
  jobs=$(nproc 2>/dev/null || echo 2)
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMW_BUILD_TESTS=OFF >/dev/null
  cmake --build build -j "$jobs" >/dev/null
  bin=build/bin
fi

demo=$(mktemp -d "${TMPDIR:-/tmp}/medwire-demo.XXXXXX")
gw_pid=""
cleanup() {
  if [ -n "$gw_pid" ]; then kill "$gw_pid" 2>/dev/null || true; wait "$gw_pid" 2>/dev/null || true; fi
  rm -rf "$demo"
}
trap cleanup EXIT INT TERM

echo "== PKI: a CA, a gateway and three devices (made now, kept in $demo, deleted at exit)"
"$bin/medwire-pki" ca --out "$demo/ca" >/dev/null
"$bin/medwire-pki" issue --ca "$demo/ca" --role gateway --id gateway --out "$demo" >/dev/null
for d in pulseox-1 pulseox-2 pulseox-3; do
  "$bin/medwire-pki" issue --ca "$demo/ca" --role device --id "$d" --out "$demo" >/dev/null
done
"$bin/medwire-pki" issue --ca "$demo/ca" --role device --id pulseox-old --out "$demo" \
  --not-before 2020-01-01 --not-after 2021-01-01 >/dev/null

echo "== gateway on 127.0.0.1 (port chosen by the system)"
"$bin/medwire-gateway" --listen 127.0.0.1:0 --ca "$demo/ca/ca.crt" \
  --cert "$demo/gateway.crt" --key "$demo/gateway.key" \
  --out "$demo/messages.jsonl" --audit "$demo/audit.jsonl" --store "$demo/gateway.db" \
  --port-file "$demo/port" &
gw_pid=$!
for _ in $(seq 100); do [ -s "$demo/port" ] && break; sleep 0.05; done
port=$(cat "$demo/port")
echo "   listening on 127.0.0.1:$port"

# The simulator's 25th SpO2 reading (its 49th observation) dips to 88 %: each device raises
# one low-SpO2 alarm, which overtakes the observations queued before it.
echo "== three pulse oximeters send 50 observations each (SpO2 and pulse rate); each raises a"
echo "   low-SpO2 alarm when its 25th SpO2 reading dips to 88 %"
pids=()
for d in pulseox-1 pulseox-2 pulseox-3; do
  "$bin/medwire-device" --gateway "127.0.0.1:$port" --gateway-name gateway \
    --ca "$demo/ca/ca.crt" --cert "$demo/$d.crt" --key "$demo/$d.key" \
    --count 50 --interval-ms 20 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

echo "== a device with an expired certificate is refused (and says why)"
"$bin/medwire-device" --gateway "127.0.0.1:$port" --gateway-name gateway \
  --ca "$demo/ca/ca.crt" --cert "$demo/pulseox-old.crt" --key "$demo/pulseox-old.key" \
  --count 1 || true

sleep 0.2
echo
echo "== the first decoded messages at the gateway (one JSON object per line; $(wc -l <"$demo/messages.jsonl") in all)"
head -n 6 "$demo/messages.jsonl"
echo "   ..."
echo "== the alarms"
if ! grep '"type":"alarm"' "$demo/messages.jsonl"; then
  echo "demo.sh: no alarm reached the gateway" >&2
  exit 1
fi
echo
echo "== the gateway's audit log"
cat "$demo/audit.jsonl"
