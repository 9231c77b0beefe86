#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# fuzz.sh -- one fuzzer for longer than CI runs it: a campaign. Builds the libFuzzer targets
# (clang, ASan, UBSan) and runs TARGET for SECONDS (default 600) on a working corpus kept
# between campaigns; crash reproducers go to fuzz/crashes/TARGET/ (fuzz/README.md: triage).
#
#   scripts/fuzz.sh TARGET [SECONDS] [-- LIBFUZZER_ARGS...]
#   scripts/fuzz.sh fuzz_session 3600 -- -jobs=2 -workers=2
#
# Environment: MW_BUILD_DIR (default build; the fuzz build is its -fuzz sibling), and
# MW_FUZZ_WORK, the working corpus directory (default BUILD-fuzz/campaign/TARGET), seeded
# from fuzz/corpus/TARGET. The committed corpus is never written: fuzz/README.md says how
# to merge what a campaign found back into it.
set -euo pipefail
cd "$(dirname "$0")/.."

targets="fuzz_batch fuzz_coap fuzz_gateway_hello fuzz_session fuzz_certs fuzz_queue fuzz_bridge_hl7"
usage() {
  echo "usage: $0 TARGET [SECONDS] [-- LIBFUZZER_ARGS...]   (TARGET: $targets)" >&2
  exit 2
}
[ $# -ge 1 ] || usage
target=$1
shift
case " $targets " in
  *" $target "*) ;;
  *) usage ;;
esac
secs=600
if [ $# -gt 0 ] && [ "$1" != -- ]; then
  secs=$1
  shift
fi
if [ $# -gt 0 ]; then
  [ "$1" = -- ] || usage
  shift
fi

build=${MW_BUILD_DIR:-build}-fuzz
work=${MW_FUZZ_WORK:-$build/campaign/$target}
jobs=$(nproc 2>/dev/null || echo 2)

CC=clang cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMW_BUILD_FUZZERS=ON >/dev/null
cmake --build "$build" -j "$jobs" --target "$target"

mkdir -p "$work" "fuzz/crashes/$target"
cp -n fuzz/corpus/"$target"/* "$work"/
echo "fuzz.sh: $target for $secs s; working corpus $work ($(find "$work" -type f | wc -l) inputs)"
status=0
MW_BIN_DIR="$(pwd)/$build/bin" "$build/fuzz/$target" \
  -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="fuzz/crashes/$target/" "$@" "$work" || status=$?
find fuzz/crashes -type d -empty -delete 2>/dev/null || true
if [ $status -ne 0 ]; then
  echo "fuzz.sh: $target found a problem; reproducers in fuzz/crashes/$target/:" >&2
  ls -1 "fuzz/crashes/$target" >&2 2>/dev/null || true
  echo "fuzz.sh: replay one with: $build/fuzz/$target FILE   (fuzz/README.md, Triage)" >&2
fi
exit $status
