#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ha_pg.sh -- figures of the gateway's store on PostgreSQL, printed, not asserted:
#  1. acknowledged messages/s with 100 devices (bench-mw-load: clients in one process, each
#     keeping 16 observations unacknowledged, --window 16) against a gateway with (a) the SQLite
#     store, (b) the PostgreSQL store, (c) two gateways on one PostgreSQL database, 50 devices
#     each (the two figures added);
#  2. the failover time: medwire-device processes listing two medwire-gateway processes on one
#     PostgreSQL, the first killed (SIGKILL) mid-stream; from the database's received_ms (the
#     gateway's wall clock when it took each message, just before its commit and Ack): per
#     device, its last message taken by the killed gateway to its first taken by the other.
# The PostgreSQL server is the script's own (initdb and pg_ctl in a temporary folder, on a free
# loopback port, with its default durability: fsync on, as the SQLite store syncs; as root it
# runs as nobody, as PostgreSQL refuses root).
# Usage: bench/ha_pg.sh [BUILD_DIR]   (default build; needs build/bin with bench-mw-load, and
#        PostgreSQL's server programs: Debian package postgresql)
#   MW_BENCH_SECONDS (3): measured seconds per throughput run, after 1 s of warm-up
#   MW_BENCH_FAILOVER_DEVICES (20)
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src/build}
bin=$build/bin
secs=${MW_BENCH_SECONDS:-3}
n_fail=${MW_BENCH_FAILOVER_DEVICES:-20}
pgbin=${MW_PG_BIN:-}
if [ -z "$pgbin" ]; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && pgbin=$d; done
fi
if [ -z "$pgbin" ]; then
  echo "PostgreSQL's server is not installed (Debian package postgresql)" >&2
  exit 1
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/mw-ha-bench.XXXXXX")
# The server's folder holds its socket: a short path, readable by nobody.
pgdir=$(mktemp -d /tmp/mw-ha-pg.XXXXXX)
pids=()
pg_up=0
as_pg() { # runs a PostgreSQL server program, as nobody when root
  if [ "$(id -u)" = 0 ]; then
    setpriv --reuid="$(id -u nobody)" --regid="$(id -g nobody)" --clear-groups -- "$@"
  else
    "$@"
  fi
}
cleanup() {
  for p in "${pids[@]:-}"; do
    if [ -n "$p" ]; then kill "$p" 2>/dev/null || true; fi
  done
  wait 2>/dev/null || true
  if [ "$pg_up" = 1 ]; then as_pg "$pgbin/pg_ctl" stop -m immediate -D "$pgdir/data" >/dev/null 2>&1 || true; fi
  rm -rf "$work" "$pgdir"
}
trap cleanup EXIT INT TERM

now_ms() { date +%s%3N; }
wait_file() { for _ in $(seq 200); do [ -s "$1" ] && return 0; sleep 0.05; done; return 1; }
field() { awk -v k="$1" '{for (i = 1; i < NF; i++) if ($i == k) {print $(i+1); exit}}' <<<"$2"; }
free_port() { # a TCP and UDP port nobody listens on
  local p
  while :; do
    p=$((20000 + RANDOM % 30000))
    if ! ss -lntu 2>/dev/null | awk '{print $5}' | grep -E ":$p\$" >/dev/null; then
      echo "$p"; return
    fi
  done
}

# ---- PostgreSQL ----
[ "$(id -u)" = 0 ] && chown nobody "$pgdir"
pg_port=$(free_port)
as_pg "$pgbin/initdb" -D "$pgdir/data" -A trust -U postgres -E UTF8 --locale=C >"$pgdir/initdb.out" 2>&1 ||
  { cat "$pgdir/initdb.out" >&2; exit 1; }
as_pg "$pgbin/pg_ctl" start -w -t 30 -D "$pgdir/data" -l "$pgdir/server.log" \
  -o "-p $pg_port -k $pgdir -c listen_addresses=127.0.0.1 -c max_connections=60" >/dev/null ||
  { cat "$pgdir/server.log" >&2; exit 1; }
pg_up=1
for db in ha_b ha_c ha_f; do
  as_pg "$pgbin/createdb" -h "$pgdir" -p "$pg_port" -U postgres "$db"
done
url() { echo "postgresql://postgres@127.0.0.1:$pg_port/$1"; }
sql() { "$pgbin/psql" -h 127.0.0.1 -p "$pg_port" -U postgres -d "$1" -Atc "$2"; }

# ---- PKI: the gateway, dev-000..099 for one gateway, a-000..049 and b-000..049 for two ----
pki=$work/pki
"$bin/medwire-pki" ca --out "$pki/ca" >/dev/null
"$bin/medwire-pki" issue --ca "$pki/ca" --role gateway --id gateway --out "$pki" >/dev/null
for i in $(seq -f %03g 0 99); do
  "$bin/medwire-pki" issue --ca "$pki/ca" --role device --id "dev-$i" --out "$pki" >/dev/null
done
for i in $(seq -f %03g 0 49); do
  for p in a b; do
    "$bin/medwire-pki" issue --ca "$pki/ca" --role device --id "$p-$i" --out "$pki" >/dev/null
  done
done

# gateway NAME STORE [ID]: a bench-mw-load gateway; sets PORT and PID
gateway() {
  local name=$1 store=$2 id=${3:-}
  "$bin/bench-mw-load" gateway --dir "$pki" --listen 127.0.0.1:0 --store "$store" \
    --gateway-id "$id" --port-file "$work/$name.port" --stats "$work/$name.stats" \
    2>"$work/$name.err" &
  PID=$!
  pids+=("$PID")
  wait_file "$work/$name.port" || { echo "gateway $name did not start" >&2; cat "$work/$name.err" >&2; exit 1; }
  PORT=$(cat "$work/$name.port")
}
# devices PORT N PREFIX: N clients, window 16; prints bench-mw-load's line
devices() {
  "$bin/bench-mw-load" devices --dir "$pki" --gateway "127.0.0.1:$1" --n "$2" --prefix "$3" \
    --window 16 --seconds "$secs" --warmup 1
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
# commits NAME: what the gateway's commits cost (its --stats file, written as it stops)
commits() {
  local st=$work/$1.stats
  [ -s "$st" ] || return 0
  awk '{for (i = 1; i < NF; i++) v[$i] = $(i + 1)}
       END {if (v["commits"] > 0)
              printf "      the gateway: %d commits, %.1f messages and %.0f us each, CPU %.2f s\n",
                     v["commits"], v["delivered"] / v["commits"], v["commit_us_mean"], v["cpu_s"]}' "$st"
}

# pg_cpu: CPU seconds the PostgreSQL server has used so far: its processes' own, and those of
# the backends that have exited (the postmaster's children's, once reaped).
pg_cpu() {
  local pm
  pm=$(head -n 1 "$pgdir/data/postmaster.pid")
  { sed 's/^.*) //' "/proc/$pm/stat" | awk '{print $12 + $13 + $14 + $15}'
    for c in $(pgrep -P "$pm"); do
      sed 's/^.*) //' "/proc/$c/stat" 2>/dev/null | awk '{print $12 + $13}'
    done; } | awk -v hz="$(getconf CLK_TCK)" '{t += $1} END {printf "%.2f", t / hz}'
}

echo "1. acknowledged messages/s, 100 devices, 16 observations in flight each (${secs} s after 1 s warm-up)"
gateway a "$work/a.db"
line=$(devices "$PORT" 100 dev-) || line="failed"
stop "$PID"
printf '  (a) SQLite store, one gateway:                %8s msg/s  (%s)\n' "$(field acked_per_s "$line")" "$line"
commits a

gateway b "$(url ha_b)" gw-b
cpu0=$(pg_cpu)
line=$(devices "$PORT" 100 dev-) || line="failed"
stop "$PID"
sleep 0.2 # the gateway's backend exits and is reaped
cpu1=$(pg_cpu)
printf '  (b) PostgreSQL store, one gateway:            %8s msg/s  (%s)\n' "$(field acked_per_s "$line")" "$line"
commits b
awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "      the PostgreSQL server: CPU %.2f s\n", b - a}'

gateway c1 "$(url ha_c)" gw-1
p1=$PORT c1=$PID
gateway c2 "$(url ha_c)" gw-2
p2=$PORT c2=$PID
devices "$p1" 50 a- >"$work/c1.line" || echo failed >"$work/c1.line" &
d1=$!
devices "$p2" 50 b- >"$work/c2.line" || echo failed >"$work/c2.line" &
d2=$!
wait "$d1" "$d2" || true
stop "$c1"
stop "$c2"
l1=$(cat "$work/c1.line")
l2=$(cat "$work/c2.line")
sum=$(awk -v x="$(field acked_per_s "$l1")" -v y="$(field acked_per_s "$l2")" 'BEGIN {printf "%.1f", x + y}')
printf '  (c) PostgreSQL store, two gateways, 50 each:  %8s msg/s  (%s | %s)\n' "$sum" "$l1" "$l2"

echo "2. failover: $n_fail medwire-device processes (100 observations, 50 ms apart; --ack-timeout-ms 200"
echo "   --max-retransmit 2 --reconnect-min-ms 200) listing gateways A then B on one PostgreSQL; A killed"
# The devices all come from 127.0.0.1, where a site's come from many hosts: the per-host share
# of handshakes in progress is raised so that the figure is the failover's, not that limit's.
mwgw() { # NAME: medwire-gateway on database ha_f; sets ADDR and PID
  "$bin/medwire-gateway" --listen 127.0.0.1:0 --ca "$pki/ca/ca.crt" --cert "$pki/gateway.crt" \
    --key "$pki/gateway.key" --store "$(url ha_f)" --gateway-id "$1" --out "$work/$1.ndjson" \
    --port-file "$work/$1.port" --log-level warn --max-half-open-per-host 256 2>"$work/$1.err" &
  PID=$!
  pids+=("$PID")
  wait_file "$work/$1.port" || { echo "gateway $1 did not start" >&2; cat "$work/$1.err" >&2; exit 1; }
  ADDR=127.0.0.1:$(cat "$work/$1.port")
}
mwgw fa
addr_a=$ADDR pid_a=$PID
mwgw fb
addr_b=$ADDR pid_b=$PID
devs=()
for i in $(seq -f %03g 0 $((n_fail - 1))); do
  "$bin/medwire-device" --ca "$pki/ca/ca.crt" --cert "$pki/dev-$i.crt" --key "$pki/dev-$i.key" \
    --gateway "$addr_a" --gateway "$addr_b" --gateway-name gateway --count 100 --interval-ms 50 \
    --give-up-s 30 --ack-timeout-ms 200 --max-retransmit 2 --reconnect-min-ms 200 \
    2>"$work/dev-$i.err" &
  devs+=($!)
done
sleep 2
exec 3>&2 2>/dev/null # not the shell's "Killed" line
kill -KILL "$pid_a"
killed=$(now_ms)
wait "$pid_a" || true
exec 2>&3 3>&-
failed=0
for p in "${devs[@]}"; do wait "$p" || failed=$((failed + 1)); done
stop "$pid_b"
[ "$failed" = 0 ] || echo "   $failed device(s) did not deliver everything: see their stderr" >&2
# Per device: its last message taken before the kill (by A) and its first after (by B).
gaps=$(sql ha_f "SELECT min(received_ms) FILTER (WHERE received_ms > $killed)
                      - max(received_ms) FILTER (WHERE received_ms <= $killed)
                 FROM messages GROUP BY device ORDER BY 1")
overall=$(sql ha_f "SELECT (SELECT min(received_ms) FROM messages WHERE received_ms > $killed)
                        - (SELECT max(received_ms) FROM messages WHERE received_ms <= $killed)")
a_to_kill=$(sql ha_f "SELECT $killed - max(received_ms) FROM messages WHERE received_ms <= $killed")
echo "$gaps" | awk -v o="$overall" -v k="$a_to_kill" -v n="$n_fail" '
  {g[NR] = $1} END {
    if (NR == 0) {print "   no figures"; exit}
    printf "   per device, last message at A to first at B: median %d ms, min %d ms, max %d ms (%d of %d devices)\n",
      g[int((NR + 1) / 2)], g[1], g[NR], NR, n
    printf "   the site: last message at A to first at B %d ms (A killed %d ms after its last)\n", o, k
  }'
echo "   rows $(sql ha_f "SELECT count(*) FROM messages") of $((n_fail * 102)) expected (100 observations and 2 alarms a device)"
