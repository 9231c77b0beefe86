#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# check_elf.sh -- checks the shipped binaries with readelf and nm: hardening flags, that
# libmedwire.so and libmedwire-gateway.so export only the public mw_ API, and that the device
# library needs nothing of the gateway's dependencies.
#
#   check_elf.sh hardening [--fortify] FILE...   PIE (programs), full RELRO, non-executable
#                                                stack, stack protector, FORTIFY_SOURCE
#   check_elf.sh exports LIB [SYMBOL...]         every defined dynamic symbol starts with mw_,
#                                                and each SYMBOL is among them
#   check_elf.sh no-imports PREFIX FILE...       no undefined symbol of FILE (a shared or
#                                                static library) starts with PREFIX
set -euo pipefail

fail=0 # any file failed
bad=0  # the file being checked failed
problem() {
  echo "FAIL: $*" >&2
  bad=1
  fail=1
}

# One ELF file: readelf's verdicts on the properties a hardened distribution build has.
check_hardening() {
  local f=$1 fortify=$2
  local header dynamic segments imports
  bad=0
  header=$(readelf -hW "$f")
  dynamic=$(readelf -dW "$f")
  segments=$(readelf -lW "$f")
  # Imported names without their version (__stack_chk_fail@GLIBC_2.4).
  imports=$(nm -D --undefined-only "$f" | awk '{ sub(/@.*/, "", $NF); print $NF }')

  # Position independence: an executable is ET_DYN with DF_1_PIE; a shared library is ET_DYN.
  grep -q 'Type:[[:space:]]*DYN' <<<"$header" || problem "$f: not position-independent (ELF type is not DYN)"
  if ! grep -q '(SONAME)' <<<"$dynamic"; then
    grep -q 'FLAGS_1).*PIE' <<<"$dynamic" || problem "$f: executable without the PIE flag (FLAGS_1)"
  fi
  # Full RELRO: the GOT is read-only after relocation, which needs all of it done at start.
  grep -q 'GNU_RELRO' <<<"$segments" || problem "$f: no GNU_RELRO segment (-z relro)"
  grep -q -E 'BIND_NOW|FLAGS_1\).* NOW' <<<"$dynamic" || problem "$f: no BIND_NOW (-z now): partial RELRO only"
  # The stack is never executable.
  if grep 'GNU_STACK' <<<"$segments" | grep 'RWE' >/dev/null; then
    problem "$f: executable stack"
  fi
  # -fstack-protector-strong: functions with arrays on the stack call __stack_chk_fail.
  grep -qx '__stack_chk_fail' <<<"$imports" || problem "$f: does not import __stack_chk_fail (no stack protector)"
  # -D_FORTIFY_SOURCE=2: some libc calls became their checked __*_chk forms.
  # (No grep -q at the end of a pipe: under pipefail, the writer it leaves behind dies of
  # SIGPIPE once the list passes a pipe buffer, and the check would fail by chance.)
  if [ "$fortify" = 1 ]; then
    local checked
    checked=$(grep -E '^__[a-z_]+_chk$' <<<"$imports" | grep -v -x '__stack_chk_fail' || true)
    [ -n "$checked" ] || problem "$f: imports no __*_chk function (FORTIFY_SOURCE not in effect)"
  fi
  if [ $bad -eq 0 ]; then
    local pic=PIE
    grep -q '(SONAME)' <<<"$dynamic" && pic=PIC
    echo "ok: $f: $pic, full RELRO, NX stack, stack protector$([ "$fortify" = 1 ] && echo ', FORTIFY_SOURCE')"
  fi
}

check_exports() {
  local lib=$1 names others
  shift
  bad=0
  # Versioned names look like mw_foo@@VERSION; the name is what counts.
  names=$(nm -D --defined-only "$lib" | awk '{ sub(/@.*/, "", $NF); print $NF }')
  if [ -z "$names" ]; then
    problem "$lib exports nothing"
    return
  fi
  others=$(grep -v -E '^mw_' <<<"$names" || true)
  if [ -n "$others" ]; then
    problem "$lib exports symbols outside the public API:"
    while read -r sym; do echo "    $sym" >&2; done <<<"$others"
  fi
  for needed in "$@"; do
    grep -q -x "$needed" <<<"$names" || problem "$lib does not export $needed"
  done
  if [ $bad -eq 0 ]; then
    echo "ok: $lib exports $(wc -l <<<"$names") symbols, all mw_"
  fi
}

# Undefined symbols with PREFIX in a shared library (dynamic table) or an archive.
check_no_imports() {
  local prefix=$1 f=$2 found
  bad=0
  if [[ $f == *.a ]]; then
    found=$(nm -u "$f" 2>/dev/null | awk '{ print $NF }' | grep -E "^${prefix}" | sort -u || true)
  else
    found=$(nm -D --undefined-only "$f" | awk '{ sub(/@.*/, "", $NF); print $NF }' |
      grep -E "^${prefix}" | sort -u || true)
  fi
  if [ -n "$found" ]; then
    problem "$f needs symbols it must not ($prefix*):"
    while read -r sym; do echo "    $sym" >&2; done <<<"$found"
  else
    echo "ok: $f needs no $prefix* symbol"
  fi
}

mode=${1:-}
shift || true
case "$mode" in
  hardening)
    fortify=0
    if [ "${1:-}" = --fortify ]; then
      fortify=1
      shift
    fi
    [ $# -gt 0 ] || { echo "usage: $0 hardening [--fortify] FILE..." >&2; exit 2; }
    for f in "$@"; do
      check_hardening "$f" "$fortify"
    done
    ;;
  exports)
    [ $# -ge 1 ] || { echo "usage: $0 exports LIB [SYMBOL...]" >&2; exit 2; }
    check_exports "$@"
    ;;
  no-imports)
    [ $# -ge 2 ] || { echo "usage: $0 no-imports PREFIX FILE..." >&2; exit 2; }
    prefix=$1
    shift
    for f in "$@"; do
      check_no_imports "$prefix" "$f"
    done
    ;;
  *)
    echo "usage: $0 hardening [--fortify] FILE... | exports LIB [SYMBOL...] | no-imports PREFIX FILE..." >&2
    exit 2
    ;;
esac
exit $fail
