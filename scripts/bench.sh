#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# bench.sh -- build and run every benchmark side by side (medwire against libcoap with
# OpenSSL DTLS, mosquitto over TLS, bare wolfSSL/wolfCrypt, fdatasync, SQLite), write
# bench/results/latest.md and bench/results/ratios.png, print the table. Figures, not tests.
#
#   scripts/bench.sh                 # everything, a few minutes
#   MW_BENCH_RUNS=5 MW_BENCH_SECONDS=3 scripts/bench.sh    # more runs, longer runs
#   MW_BENCH_BUILD=build-bench       # build directory (default build-bench)
# See bench/README.md for the method and what each baseline is.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/deps.sh
. scripts/deps.sh

runs=${MW_BENCH_RUNS:-3}
secs=${MW_BENCH_SECONDS:-2}
build=${MW_BENCH_BUILD:-build-bench}
jobs=${MW_BENCH_JOBS:-2}

banner() { printf '\n== %s\n' "$*" >&2; }

banner "packages"
mw_install_packages "${MW_PACKAGES[@]}" libssl-dev mosquitto libmosquitto-dev gnuplot-nox \
  gcc-arm-none-eabi libnewlib-arm-none-eabi valgrind binutils

banner "build ($build, Release)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMW_BUILD_TESTS=ON -DMW_BUILD_EXAMPLES=ON \
  -DMW_BUILD_BENCH_BASELINES=ON >/dev/null
targets=(medwire-pki medwire-gateway medwire-device medwire-bridge bench-channel bench-queue bench-mw-load
         bench-handshake bench-sqlite bench-coap-load bench-mqtt-load bench-open-heap)
if grep -q 'bench-sessions' bench/CMakeLists.txt; then targets+=(bench-sessions); fi
cmake --build "$build" -j "$jobs" --target "${targets[@]}" >/dev/null
bin=$root/$build/bin

# The work directory sits in the build directory: on the project's disk (the durability
# figures are the disk's), never in the tree, deleted at exit.
work=$(mktemp -d "$root/$build/bench-run.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]:-}"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; fi
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

declare -A R # every figure, by key

# median VALUE...: the median of the numbers given.
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{a[NR]=$1} END {if (NR == 0) print "nan"; else if (NR % 2) print a[(NR+1)/2];
                         else print (a[NR/2] + a[NR/2+1]) / 2}'
}
# field NAME LINE: the value after NAME in a "key value key value" line.
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i+1); exit}}' <<<"$2"; }
# cpu_ticks PID: user+system clock ticks of a process so far.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tick=$(getconf CLK_TCK)
free_port() { # a UDP+TCP port (and port+1) nobody listens on
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    if ! ss -lntu 2>/dev/null | awk '{print $5}' | grep -E ":($p|$((p + 1)))\$" >/dev/null; then
      echo "$p"; return
    fi
  done
}
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }

banner "PKI: a CA, the gateway and 100 devices (medwire-pki, ECDSA P-256, made now)"
pki=$work/pki
"$bin/medwire-pki" ca --out "$pki/ca" >/dev/null
"$bin/medwire-pki" issue --ca "$pki/ca" --role gateway --id gateway --out "$pki" >/dev/null
for i in $(seq -f %03g 0 99); do
  "$bin/medwire-pki" issue --ca "$pki/ca" --role device --id "dev-$i" --out "$pki" >/dev/null
done

banner "servers: medwire gateway (store off, store on), coap-server-openssl, mosquitto (TLS)"
start_mw() { # NAME [STORE]: starts a medwire gateway, sets port_NAME and pid_NAME
  local name=$1 store=${2:-}
  "$bin/bench-mw-load" gateway --dir "$pki" --listen 127.0.0.1:0 --store "$store" \
    --port-file "$work/$name.port" --stats "$work/$name.stats" &
  pids+=($!)
  eval "pid_$name=$!"
  wait_file "$work/$name.port"
  eval "port_$name=$(cat "$work/$name.port")"
}
port_mwoff=""
start_mw mwoff
start_mw mwon "$work/gateway-store.db"
port_coap=$(free_port)
# -d: /obs is created by the first POST (2.01), later POSTs get 2.04. DTLS on port+1.
coap-server-openssl -A 127.0.0.1 -p "$port_coap" -c "$pki/gateway.crt" -j "$pki/gateway.key" \
  -C "$pki/ca/ca.crt" -d 10 -v 0 >"$work/coap-server.log" 2>&1 &
pids+=($!); export pid_coap=$!
port_mqtt=$(free_port)
cat >"$work/mosquitto.conf" <<EOF
per_listener_settings false
listener $port_mqtt 127.0.0.1
cafile $pki/ca/ca.crt
certfile $pki/gateway.crt
keyfile $pki/gateway.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
ciphers ECDHE-ECDSA-AES128-CCM8:ECDHE-ECDSA-AES128-GCM-SHA256
persistence false
max_inflight_messages 0
max_queued_messages 100000
log_dest stderr
log_type error
user $(id -un)
EOF
mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
pids+=($!); export pid_mqtt=$!
sleep 0.5
export MWB_CIPHERS=ECDHE-ECDSA-AES128-CCM8 # bench-coap-load: the suite medwire negotiates

# One load run of SYSTEM with N devices, window W; sets LAST (the program's line) and
# LAST_CPU (the server's CPU microseconds per acknowledged message).
load_run() {
  local sys=$1 n=$2 w=$3 pid line t0 t1
  eval "pid=\$pid_$sys"
  t0=$(cpu_ticks "$pid")
  case $sys in
    mwoff | mwon)
      local port; eval "port=\$port_$sys"
      line=$("$bin/bench-mw-load" devices --dir "$pki" --gateway "127.0.0.1:$port" --n "$n" \
        --window "$w" --seconds "$secs" --warmup 1) || line="failed" ;;
    coap) line=$("$bin/bench-coap-load" load --dir "$pki" --port "$port_coap" --n "$n" \
        --window "$w" --seconds "$secs" --warmup 1) || line="failed" ;;
    mqtt) line=$("$bin/bench-mqtt-load" load --dir "$pki" --port "$port_mqtt" --n "$n" \
        --window "$w" --seconds "$secs" --warmup 1) || line="failed" ;;
  esac
  t1=$(cpu_ticks "$pid")
  LAST=$line
  # server CPU over the whole run (connect and warm-up included) per message acknowledged
  # while measuring: an upper bound, the same for every system
  LAST_CPU=$(awk -v d=$((t1 - t0)) -v hz="$tick" -v r="$(field acked_per_s "$line")" \
    -v s="$secs" 'BEGIN {if (r + 0 > 0) printf "%.2f", d / hz * 1e6 / (r * s); else print "nan"}')
}

banner "1. acknowledged messages per second ($runs runs of 1 s warm-up + $secs s, median)"
for scen in "1 16" "100 16" "1 1"; do
  read -r n w <<<"$scen"
  for sys in mwoff mwon coap mqtt; do eval "v_${sys}=(); b_${sys}=(); c_${sys}=()"; done
  for r in $(seq "$runs"); do
    for sys in mwoff mwon coap mqtt; do # interleaved, so that drift hits every system alike
      load_run "$sys" "$n" "$w"
      v=$(field acked_per_s "$LAST"); b=$(field bytes_per_ack "$LAST")
      eval "v_${sys}+=(${v:-nan}); b_${sys}+=(${b:-nan}); c_${sys}+=($LAST_CPU)"
      printf '   n=%-3s window=%-2s run %s %-5s %s\n' "$n" "$w" "$r" "$sys" "$LAST" >&2
      [ "$sys" = coap ] && R[coap_cipher]=$(field cipher "$LAST")
    done
  done
  for sys in mwoff mwon coap mqtt; do
    eval "R[tput_${sys}_${n}_${w}]=\$(median \"\${v_${sys}[@]}\")"
    eval "R[bytes_${sys}_${n}_${w}]=\$(median \"\${b_${sys}[@]}\")"
    eval "R[cpu_${sys}_${n}_${w}]=\$(median \"\${c_${sys}[@]}\")"
  done
done

banner "2. handshakes against the real servers (gateway CPU from /proc, 100 sessions, median of $runs)"
hs_run() {
  local sys=$1 k=100 pid line t0 t1
  eval "pid=\$pid_$sys"
  t0=$(cpu_ticks "$pid")
  case $sys in
    mwoff) line=$("$bin/bench-mw-load" handshakes --dir "$pki" --gateway "127.0.0.1:$port_mwoff" \
      --count $k) || line=failed ;;
    coap) line=$("$bin/bench-coap-load" handshakes --dir "$pki" --port "$port_coap" --count $k) ||
      line=failed ;;
    mqtt) line=$("$bin/bench-mqtt-load" handshakes --dir "$pki" --port "$port_mqtt" --count $k) ||
      line=failed ;;
  esac
  t1=$(cpu_ticks "$pid")
  LAST=$line
  LAST_CPU=$(awk -v d=$((t1 - t0)) -v hz="$tick" -v k=$k 'BEGIN {printf "%.3f", d / hz * 1e3 / k}')
}
for sys in mwoff coap mqtt; do
  c=(); b=(); d=()
  for _ in $(seq "$runs"); do
    hs_run "$sys"
    c+=("$LAST_CPU"); b+=("$(field bytes_per_handshake "$LAST")")
    d+=("$(field datagrams_per_handshake "$LAST" || true)")
    printf '   %-5s server %s ms/handshake; %s\n' "$sys" "$LAST_CPU" "$LAST" >&2
  done
  R[hs_cpu_$sys]=$(median "${c[@]}")
  R[hs_bytes_$sys]=$(median "${b[@]}")
  R[hs_dgrams_$sys]=$(median "${d[@]:-nan}")
done

banner "2b. handshakes in memory: medwire's gateway against a bare wolfSSL server (CPU, median of $runs)"
f=(); rs=(); m=(); mr=()
for _ in $(seq "$runs"); do
  line=$("$bin/bench-handshake" wolfssl 200); echo "   wolfssl $line" >&2
  f+=("$(field full_ms "$line")"); rs+=("$(field resumed_ms "$line")")
  line=$("$bin/bench-handshake" medwire 200); echo "   medwire $line" >&2
  m+=("$(field full_ms "$line")"); mr+=("$(field resumed_ms "$line")")
done
R[hs_bare_full]=$(median "${f[@]}")
R[hs_bare_resumed]=$(median "${rs[@]}")
R[hs_mw_full_mem]=$(median "${m[@]}")
R[hs_mw_resumed_mem]=$(median "${mr[@]}")
line=$("$bin/bench-channel" | grep 'full handshake on the wire' || true)
R[hs_mw_mem_bytes]=$(sed -E 's/.*: ([0-9.]+) bytes in ([0-9.]+) datagrams.*/\1/' <<<"$line")
R[hs_mw_mem_dgrams]=$(sed -E 's/.*: ([0-9.]+) bytes in ([0-9.]+) datagrams.*/\2/' <<<"$line")

banner "3. durable appends: medwire queue against raw fdatasync and SQLite WAL synchronous=FULL"
q=$("$bin/bench-queue" "$work")
awk '{print "   " $0}' <<<"$q" >&2
R[q_raw]=$(sed -nE 's/^raw .*: ([0-9]+)\/s.*/\1/p' <<<"$q")
R[q_rec]=$(sed -nE 's/^raw pwrite\+fdatasync of ([0-9]+) bytes.*/\1/p' <<<"$q")
R[q_default]=$(sed -nE 's/^default mode.*: ([0-9]+) appends\/s.*/\1/p' <<<"$q")
R[q_g16]=$(sed -nE 's/^group commit N=16.*: ([0-9]+) appends\/s.*/\1/p' <<<"$q")
R[q_g64]=$(sed -nE 's/^group commit N=64.*: ([0-9]+) appends\/s.*/\1/p' <<<"$q")
s1=(); s16=()
for _ in $(seq "$runs"); do
  s1+=("$(field inserts_per_s "$("$bin/bench-sqlite" "$work" "${R[q_rec]}" 1)")")
  s16+=("$(field inserts_per_s "$("$bin/bench-sqlite" "$work" "${R[q_rec]}" 16)")")
done
R[sq_1]=$(median "${s1[@]}")
R[sq_16]=$(median "${s16[@]}")
echo "   sqlite: ${s1[*]} inserts/s (1 per transaction); ${s16[*]} (16 per transaction)" >&2

banner "4. instructions per acknowledged message on the gateway path (callgrind)"
ack=$("$bin/bench-handshake" ack 2000)
echo "   $ack" >&2
R[ack_us]=$(field gateway_us_per_ack "$ack")
req=$(field req_bytes "$ack"); resp=$(field resp_bytes "$ack")
ir() { # callgrind ARGS...: instructions collected (toggle-collect given in ARGS)
  valgrind --tool=callgrind --callgrind-out-file="$work/cg.out" "$@" >/dev/null 2>"$work/cg.err"
  awk '/^totals:|^summary:/ {print $2; exit}' "$work/cg.out"
}
i1=$(ir --toggle-collect=mw_gateway_poll "$bin/bench-handshake" ack 200)
i2=$(ir --toggle-collect=mw_gateway_poll "$bin/bench-handshake" ack 600)
R[ir_gateway]=$(awk -v a="$i1" -v b="$i2" 'BEGIN {printf "%.0f", (b - a) / 400}')
i3=$(ir --toggle-collect=two_records "$bin/bench-handshake" crypto "${req%.*}" "${resp%.*}" 1000)
R[ir_crypto]=$(awk -v a="$i3" 'BEGIN {printf "%.0f", a / 1000}')
R[ack_req]=$req; R[ack_resp]=$resp
echo "   gateway ${R[ir_gateway]} Ir/ack; AES-CCM-8 on a $req-byte and a $resp-byte record: ${R[ir_crypto]} Ir" >&2

banner "5. device footprint (-Os): x86-64 and Cortex-M4 (compile only)"
# Medwire's own device-side code: what mw_client needs, minus the OS port (sockets, files,
# clock: a device supplies its own) and minus the gateway. The generated protobuf tables
# (medwire.pb.c) count as ours; the nanopb runtime, wolfSSL and libcoap do not.
dev_src=(src/core/err.c src/client/client.c src/session/codec.c src/session/command.c
         src/session/replay.c src/coap/coap.c src/coap/exchange.c src/dtls/dtls.c
         src/queue/queue.c src/queue/record.c src/queue/aead.c src/queue/index.c src/queue/log.c
         src/queue/recovery.c src/queue/seqstore.c src/queue/slice.c src/queue/format.c)
pbc=$(find "$build" -name medwire.pb.c | head -n 1)
[ -n "$pbc" ] && dev_src+=("$pbc")
pbdir=$(dirname "${pbc:-$build/proto/gen/x}")
fp() { # ARCH CC FLAGS...: compiles each source, prints "text data bss" summed, and the misses
  local arch=$1 cc=$2; shift 2
  local out="$work/fp-$arch" ok=() miss=()
  mkdir -p "$out"
  for s in "${dev_src[@]}"; do
    local o; o="$out/$(basename "$s" .c).o"
    if "$cc" -std=c11 -Os -ffunction-sections -fdata-sections -DMW_BUILDING_LIBRARY \
      -DWOLFSSL_OPTIONS_IGNORE_SYS -D_POSIX_C_SOURCE=200809L -Iinclude -Isrc -I"$pbdir" "$@" \
      -c "$s" -o "$o" 2>"$out/$(basename "$s").err"; then ok+=("$o"); else miss+=("$(basename "$s")"); fi
  done
  local sz=size
  [ "$arch" = m4 ] && sz=arm-none-eabi-size
  if [ ${#ok[@]} -gt 0 ]; then
    $sz -t "${ok[@]}" | awk 'END {print $1, $2, $3}'
  else
    echo "0 0 0"
  fi
  echo "${miss[*]:-}"
}
mapfile -t x86 < <(fp x86 cc)
read -r 'R[fp_x86_text]' 'R[fp_x86_data]' 'R[fp_x86_bss]' <<<"${x86[0]}"
R[fp_x86_miss]=${x86[1]:-}
if command -v arm-none-eabi-gcc >/dev/null; then
  # newlib's libc headers; wolfSSL's and libcoap's headers are the host's (x86-64 Debian), so
  # files that include them compile against a host configuration or not at all: listed.
  mapfile -t m4 < <(fp m4 arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=soft \
    -idirafter /usr/include)
  read -r 'R[fp_m4_text]' 'R[fp_m4_data]' 'R[fp_m4_bss]' <<<"${m4[0]}"
  R[fp_m4_miss]=${m4[1]:-}
fi
coapso=$(find /usr/lib -name 'libcoap-3-notls.so.*' -type f 2>/dev/null | head -n 1)
read -r 'R[fp_coap_text]' 'R[fp_coap_data]' 'R[fp_coap_bss]' < <(size "$coapso" | awk 'NR == 2 {print $1, $2, $3}')
echo "   x86-64: ${x86[0]} (not compiled: ${R[fp_x86_miss]:-none})" >&2
echo "   cortex-m4: ${R[fp_m4_text]:-?} ${R[fp_m4_data]:-?} ${R[fp_m4_bss]:-?} (not compiled: ${R[fp_m4_miss]:-none})" >&2

banner "5b. device library for Cortex-M4 (build-arm, MW_PORT=none): per file, mw_client_t, open heap"
footprint=""
if command -v arm-none-eabi-gcc >/dev/null; then
  footprint=$(bash scripts/footprint.sh "$build") || footprint="(scripts/footprint.sh failed)"
  awk '{print "   " $0}' <<<"$footprint" >&2
fi

banner "6. gateway memory per idle session at 1,000 and 5,000 sessions"
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
if [ -x "$bin/bench-sessions" ]; then
  # medwire: bench-sessions (in memory; heap the gateway gives back on destruction, per session)
  out=$(cd "$build" && MW_BIN_DIR=$bin "$bin/bench-sessions" 1000 5000 2>&1) || true
  awk '{print "   " $0}' <<<"$out" >&2
  for n in 1000 5000; do
    R[mem_mw_$n]=$(sed -nE "s/^gateway heap per idle session at $n sessions: ([0-9]+) bytes.*/\1/p" <<<"$out")
  done
fi
# coap-server-openssl: growth of its resident memory (smaps_rollup Rss) with N idle DTLS sessions
rss_kb() { awk '/^Rss:/ {print $2}' "/proc/$1/smaps_rollup"; }
for n in 1000 5000; do
  p=$(free_port)
  coap-server-openssl -A 127.0.0.1 -p "$p" -c "$pki/gateway.crt" -j "$pki/gateway.key" \
    -C "$pki/ca/ca.crt" -d 10 -v 0 >/dev/null 2>&1 &
  cpid=$!; pids+=("$cpid")
  sleep 0.3
  r0=$(rss_kb "$cpid")
  rm -f "$work/idle.fifo" "$work/idle.out"; mkfifo "$work/idle.fifo"
  "$bin/bench-coap-load" idle --dir "$pki" --port "$p" --n "$n" <"$work/idle.fifo" >"$work/idle.out" &
  ipid=$!
  exec 7>"$work/idle.fifo"
  for _ in $(seq 1200); do grep -q ready "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
  if grep -q ready "$work/idle.out"; then
    r1=$(rss_kb "$cpid")
    R[mem_coap_$n]=$(awk -v a="$r0" -v b="$r1" -v n="$n" 'BEGIN {printf "%.0f", (b - a) * 1024 / n}')
  fi
  exec 7>&-
  wait "$ipid" 2>/dev/null || true
  kill "$cpid" 2>/dev/null || true; wait "$cpid" 2>/dev/null || true
  echo "   coap-server-openssl, $n idle sessions: ${R[mem_coap_$n]:-?} bytes each (RSS growth)" >&2
done

# ---------------------------------------------------------------------------------------------
banner "results"
mkdir -p bench/results
md=bench/results/latest.md
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {num = "^[0-9.]+(e[-+]?[0-9]+)?$"
    if (a !~ num || b !~ num || b + 0 == 0) print "n/a"; else printf "%.2f", a / b}'
}
dat=$work/ratios.dat
: >"$dat"
row() { # FIGURE MEDWIRE BASELINE-NAME BASELINE-VALUE GOAL [CHART-LABEL]
  local r; r=$(ratio "$2" "$4")
  printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$r" "$5"
  if [ -n "${6:-}" ] && [ "$r" != n/a ]; then printf '"%s" %s\n' "$6" "$r" >>"$dat"; fi
}
{
  echo "# medwire benchmarks: latest run"
  echo
  echo "Produced by \`scripts/bench.sh\` on $(date -u +%Y-%m-%d) ($(nproc) cores, $(uname -m), shared machine: figures are noisy,"
  echo "the ratios of one run are what matter). $runs runs per figure, median; each load run 1 s warm-up + $secs s."
  echo "Method and baselines: [bench/README.md](../README.md). Ratio = medwire / baseline."
  echo
  echo "| figure | medwire | baseline | baseline value | ratio | goal |"
  echo "| --- | --- | --- | --- | --- | --- |"
  for scen in "1 16" "100 16" "1 1"; do
    read -r n w <<<"$scen"
    for s in mwoff mwon; do
      lab="store off"; [ $s = mwon ] && lab="store on (SQLite)"
      row "acked msg/s, $n dev, window $w, $lab" "${R[tput_${s}_${n}_${w}]}" "libcoap+OpenSSL DTLS -> coap-server-openssl" "${R[tput_coap_${n}_${w}]}" "≥ 5×" "msg/s ${n}d w$w $([ $s = mwon ] && echo store) vs libcoap"
      row "acked msg/s, $n dev, window $w, $lab" "${R[tput_${s}_${n}_${w}]}" "libmosquitto QoS 1 TLS -> mosquitto" "${R[tput_mqtt_${n}_${w}]}" "≥ 1×" "msg/s ${n}d w$w $([ $s = mwon ] && echo store) vs MQTT"
    done
    row "server CPU µs per acked msg, $n dev, window $w (store off)" "${R[cpu_mwoff_${n}_${w}]}" "coap-server-openssl" "${R[cpu_coap_${n}_${w}]}" "" ""
    row "server CPU µs per acked msg, $n dev, window $w (store off)" "${R[cpu_mwoff_${n}_${w}]}" "mosquitto" "${R[cpu_mqtt_${n}_${w}]}" "" ""
  done
  row "bytes on the wire per acked observation, window 1" "${R[bytes_mwoff_1_1]}" "MQTT/TLS/JSON (TCP payload)" "${R[bytes_mqtt_1_1]}" "≤ 0.5×" "bytes/ack w1 vs MQTT"
  row "bytes on the wire per acked observation, window 1" "${R[bytes_mwoff_1_1]}" "libcoap/DTLS/JSON (UDP payload)" "${R[bytes_coap_1_1]}" "" "bytes/ack w1 vs libcoap"
  row "bytes on the wire per acked observation, window 16" "${R[bytes_mwoff_1_16]}" "MQTT/TLS/JSON (TCP payload)" "${R[bytes_mqtt_1_16]}" "≤ 0.5×" "bytes/ack w16 vs MQTT"
  row "bytes on the wire per acked observation, window 16" "${R[bytes_mwoff_1_16]}" "libcoap/DTLS/JSON (UDP payload)" "${R[bytes_coap_1_16]}" "" "bytes/ack w16 vs libcoap"
  row "gateway CPU ms per full handshake (in memory)" "${R[hs_mw_full_mem]}" "bare wolfSSL server, same suites and certificates" "${R[hs_bare_full]}" "≤ 1.25×" "full handshake CPU vs bare wolfSSL"
  row "gateway CPU ms per resumed handshake (in memory; medwire re-checks chain and CRL)" "${R[hs_mw_resumed_mem]}" "bare wolfSSL server" "${R[hs_bare_resumed]}" "" ""
  row "gateway CPU ms per session (full handshake + 1 msg + close, real processes)" "${R[hs_cpu_mwoff]}" "coap-server-openssl" "${R[hs_cpu_coap]}" "" "handshake CPU vs coap-server"
  row "gateway CPU ms per session (full handshake + 1 msg + close, real processes)" "${R[hs_cpu_mwoff]}" "mosquitto (TLS 1.2 + CONNECT)" "${R[hs_cpu_mqtt]}" "" ""
  row "bytes per session (handshake + 1 msg + ack)" "${R[hs_bytes_mwoff]}" "libcoap/DTLS" "${R[hs_bytes_coap]}" "" "handshake bytes vs libcoap"
  row "bytes per session (handshake + 1 msg + ack)" "${R[hs_bytes_mwoff]}" "MQTT/TLS (TCP payload)" "${R[hs_bytes_mqtt]}" "" ""
  row "datagrams per session (handshake + 1 msg + ack)" "${R[hs_dgrams_mwoff]}" "libcoap/DTLS" "${R[hs_dgrams_coap]}" "" ""
  row "full handshake alone, bytes (in memory, bench-channel)" "${R[hs_mw_mem_bytes]}" "" "" "" ""
  row "full handshake alone, datagrams (in memory, bench-channel)" "${R[hs_mw_mem_dgrams]}" "" "" "" ""
  row "durable appends/s, every append synced" "${R[q_default]}" "raw pwrite+fdatasync of one ${R[q_rec]}-byte record" "${R[q_raw]}" "≥ 10×" "durable appends vs fdatasync"
  row "durable appends/s, group commit N=16" "${R[q_g16]}" "raw pwrite+fdatasync" "${R[q_raw]}" "≥ 10×" "group-16 appends vs fdatasync"
  row "durable appends/s, group commit N=64" "${R[q_g64]}" "raw pwrite+fdatasync" "${R[q_raw]}" "≥ 10×" ""
  row "durable appends/s, every append synced" "${R[q_default]}" "SQLite WAL synchronous=FULL, 1 insert/txn" "${R[sq_1]}" "" "durable appends vs SQLite"
  row "durable appends/s, group commit N=16" "${R[q_g16]}" "SQLite WAL synchronous=FULL, 16 inserts/txn" "${R[sq_16]}" "" ""
  row "gateway instructions per acked msg (callgrind)" "${R[ir_gateway]}" "wolfCrypt AES-128-CCM-8: verify ${R[ack_req]} B + protect ${R[ack_resp]} B record" "${R[ir_crypto]}" "" "gateway Ir vs crypto minimum"
  row "gateway CPU µs per acked msg (in memory, 1 per request)" "${R[ack_us]}" "" "" "" ""
  row "gateway memory per idle session, 1,000 sessions (bytes)" "${R[mem_mw_1000]:-n/a}" "coap-server-openssl (RSS growth / N)" "${R[mem_coap_1000]:-}" "" "memory/session 1k vs coap-server"
  row "gateway memory per idle session, 5,000 sessions (bytes)" "${R[mem_mw_5000]:-n/a}" "coap-server-openssl (RSS growth / N)" "${R[mem_coap_5000]:-}" "" "memory/session 5k vs coap-server"
  row "device code text bytes, x86-64 -Os" "${R[fp_x86_text]}" "libcoap-3-notls.so text (Debian, -O2)" "${R[fp_coap_text]}" "" "device text x86 vs libcoap"
  row "device code data+bss bytes, x86-64 -Os" "$(( ${R[fp_x86_data]:-0} + ${R[fp_x86_bss]:-0} ))" "libcoap-3-notls.so data+bss" "$(( ${R[fp_coap_data]:-0} + ${R[fp_coap_bss]:-0} ))" "" ""
  row "device code text bytes, Cortex-M4 -Os (compiled files only)" "${R[fp_m4_text]:-n/a}" "goal 24 kB" "24576" "≤ 1×" "device text M4 vs 24 kB"
  row "device code data+bss bytes, Cortex-M4 -Os" "$(( ${R[fp_m4_data]:-0} + ${R[fp_m4_bss]:-0} ))" "" "" "" ""
  echo
  echo "Cipher suites: medwire ECDHE-ECDSA-AES128-CCM-8 (DTLS 1.2); libcoap/OpenSSL ${R[coap_cipher]:-?} (DTLS 1.2);"
  echo "mosquitto ECDHE-ECDSA-AES128-CCM8 offered by the client (TLS 1.2). Certificates: the same ECDSA P-256 PKI for all."
  echo
  echo "Footprint files: ${#dev_src[@]} device-side sources. Not compiled for x86-64: ${R[fp_x86_miss]:-none}."
  echo "Not compiled for Cortex-M4: ${R[fp_m4_miss]:-none} (they need headers Debian only has for the host)."
  echo
  if [ -n "$footprint" ]; then
    echo "Device library on Cortex-M4 (scripts/footprint.sh; the archive of the arm stage):"
    echo
    echo "$footprint"
    echo
  fi
  echo "Resumed handshakes: medwire's gateway re-checks the device's chain, dates and CRL on each"
  echo "resumption (wolfSSL does not), which is most of the difference to the bare wolfSSL loop."
  echo "Memory per idle session: medwire's is heap measured in process by bench/bench_sessions.c; the"
  echo "baseline's is coap-server-openssl's resident-set growth: comparable in size, not in method."
} >"$md"

if command -v gnuplot >/dev/null && [ -s "$dat" ]; then
  gnuplot <<EOF
set terminal pngcairo size 1100,650 noenhanced font ",10"
set output "bench/results/ratios.png"
set title "medwire / baseline (scripts/bench.sh, $(date -u +%Y-%m-%d); 1 = parity, log scale)"
set style fill solid 0.7
set boxwidth 0.7
set logscale y
set yrange [0.005:100]
set grid ytics
set xtics rotate by -40 left
set bmargin 11
set rmargin 12
unset key
plot "$dat" using 0:2:xtic(1) with boxes lc rgb "#3070b0", 1 with lines lc rgb "black" dt 2
EOF
fi
cat "$md"

# The gateway's hospital destinations, against peers written by others (python-hl7's MLLP
# listener, Medplum's FHIR router, and its echo mode for the gateway's own ceiling).
banner "hospital delivery: HL7 v2 over MLLP (bench/hl7_delivery.sh)"
MW_BENCH_PER_DEVICE=${MW_BENCH_PER_DEVICE:-500} bash bench/hl7_delivery.sh "$root/$build" ||
  echo "bench/hl7_delivery.sh failed" >&2
banner "legacy devices: medwire-bridge (bench/bridge.sh)"
bash bench/bridge.sh "$root/$build" || echo "bench/bridge.sh failed" >&2
banner "high availability: the store on PostgreSQL, two gateways, failover (bench/ha_pg.sh)"
bash bench/ha_pg.sh "$root/$build" || echo "bench/ha_pg.sh failed" >&2
banner "certificate renewal over EST: bytes and gateway CPU (bench/est_renewal.sh)"
bash bench/est_renewal.sh "$root/$build" || echo "bench/est_renewal.sh failed" >&2
banner "hospital delivery: FHIR R4 REST (scripts/bench-fhir.sh)"
MW_BENCH_BUILD=$build bash scripts/bench-fhir.sh || echo "scripts/bench-fhir.sh failed" >&2
