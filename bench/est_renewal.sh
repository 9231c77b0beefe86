#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# est_renewal.sh -- what a certificate renewal over EST costs, printed, not asserted: the bytes
# on the wire that a renewal adds to a device's session, and the gateway's CPU for it. For the
# bytes, N devices (medwire-device --count 1) run once with --renew-before-days (each renews: its
# certificate expires within the window) and once more without (each with its new certificate,
# nothing to renew); the difference between the two rounds is the renewal. The gateway's CPU
# is measured in process by bench-est (the request's check and the --est-ca issuer), as the
# process's CPU time over a round is mostly its idle loop and handshakes.
# Last, what a device's CRL fetch (--crl-refresh-s) adds to a session: the devices once more
# against a gateway serving the CA's CRL with MW_BENCH_REVOKED revocations, with and without it.
# Usage: bench/est_renewal.sh [BUILD_DIR]   (default build)
#   MW_BENCH_DEVICES (30), MW_BENCH_REVOKED (20)
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
bin=$build/bin
n=${MW_BENCH_DEVICES:-30}
revoked=${MW_BENCH_REVOKED:-20}
work=$(mktemp -d "${TMPDIR:-/tmp}/mw-est-bench.XXXXXX")
gw_pid=
cleanup() {
  if [ -n "$gw_pid" ]; then kill "$gw_pid" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
# The gateway's CPU so far, in ms (fields 14 and 15 of /proc/PID/stat, in clock ticks).

soon=$(date -u -d '+10 days' +%F)
"$bin/medwire-pki" ca --out "$work/ca" >/dev/null
"$bin/medwire-pki" issue --ca "$work/ca" --role gateway --id gateway --out "$work" >/dev/null
"$bin/medwire-pki" issue --ca "$work/ca" --role device --id dev --count "$n" --out "$work" \
  --not-after "$soon" >/dev/null

"$bin/medwire-gateway" --listen 127.0.0.1:0 --ca "$work/ca/ca.crt" --cert "$work/gateway.crt" \
  --key "$work/gateway.key" --store "$work/gw.db" --out "$work/out.ndjson" --est-ca "$work/ca" \
  --audit "$work/audit.ndjson" --port-file "$work/gw.port" --log-level warn 2>"$work/gw.err" &
gw_pid=$!
wait_file "$work/gw.port"
port=$(cat "$work/gw.port")

# One round: every device once; prints the bytes sent and received.
round() {
  local sent=0 recv=0 i line
  for i in $(seq "$n"); do
    line=$("$bin/medwire-device" --gateway "127.0.0.1:$port" --gateway-name gateway \
      --ca "$work/ca/ca.crt" --cert "$work/dev-$i.crt" --key "$work/dev-$i.key" --count 1 \
      "$@" 2>&1 | sed -n 's/.* \([0-9]*\) bytes sent and \([0-9]*\) received.*/\1 \2/p')
    sent=$((sent + ${line% *}))
    recv=$((recv + ${line#* }))
  done
  echo "$sent $recv"
}

read -r sent1 recv1 < <(round --renew-before-days 30)
renewed=$(grep -c '"event":"certificate_renewed"' "$work/audit.ndjson" || true)
read -r sent2 recv2 < <(round)
# The CPU: 50 renewals in process, each presenting the certificate the one before issued.
"$bin/medwire-pki" issue --ca "$work/ca" --role device --id dev-1 --out "$work/cpu" >/dev/null
mkdir -p "$work/cpu" && ln -s "$work/ca" "$work/cpu/ca"
read -r _ _ _ check _ issue_cpu _ issue_wall _ cert_bytes < <("$bin/bench-est" "$work/cpu" 50)

echo "| EST renewal, $n devices (bench/est_renewal.sh) | with renewal | without | per renewal |"
echo "|---|---:|---:|---:|"
echo "| certificates renewed | $renewed | 0 | |"
echo "| bytes sent by the devices | $sent1 | $sent2 | $(((sent1 - sent2) / n)) |"
echo "| bytes received by the devices | $recv1 | $recv2 | $(((recv1 - recv2) / n)) |"
echo
echo "| gateway per renewal (bench-est, 50) | value |"
echo "|---|---:|"
echo "| CPU checking the request (parse, signature, names), µs | $check |"
echo "| CPU issuing (--est-ca: index, sign, record, keep), µs | $issue_cpu |"
echo "| wall time issuing (files synced), µs | $issue_wall |"
echo "| certificate, bytes | $cert_bytes |"

# The CRL fetch: a second gateway, enforcing and serving the CA's CRL.
kill "$gw_pid" 2>/dev/null || true
wait "$gw_pid" 2>/dev/null || true
for i in $(seq "$revoked"); do
  "$bin/medwire-pki" issue --ca "$work/ca" --role device --id "gone-$i" --out "$work/gone" \
    >/dev/null
  "$bin/medwire-pki" revoke --ca "$work/ca" --id "gone-$i" >/dev/null
done
"$bin/medwire-pki" crl --ca "$work/ca" >/dev/null
crl_bytes=$(openssl crl -in "$work/ca/crl.pem" -outform DER | wc -c)
rm -f "$work/gw.port"
"$bin/medwire-gateway" --listen 127.0.0.1:0 --ca "$work/ca/ca.crt" --cert "$work/gateway.crt" \
  --key "$work/gateway.key" --store "$work/gw2.db" --out "$work/out2.ndjson" \
  --crl "$work/ca/crl.pem" --port-file "$work/gw.port" --log-level warn 2>"$work/gw2.err" &
gw_pid=$!
wait_file "$work/gw.port"
port=$(cat "$work/gw.port")
read -r sent3 recv3 < <(round)
cp "$work/ca/crl.pem" "$work/device.crl" # what the devices start with, and keep what they fetch
read -r sent4 recv4 < <(round --crl "$work/device.crl" --crl-refresh-s 3600)
echo
echo "| CRL fetch, $n devices, CRL of $revoked revocations ($crl_bytes bytes) | with fetch | without | per fetch |"
echo "|---|---:|---:|---:|"
echo "| bytes sent by the devices | $sent4 | $sent3 | $(((sent4 - sent3) / n)) |"
echo "| bytes received by the devices | $recv4 | $recv3 | $(((recv4 - recv3) / n)) |"
