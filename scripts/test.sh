#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test.sh -- all of CI, stage by stage: install what is missing, build and test with gcc,
# build with clang -Werror, lint, the suite under ASan+UBSan, the integration tests under
# valgrind, and every fuzzer for a bounded time. Stops at the first failing stage.
#
#   scripts/test.sh                  every stage (what .ci/run does)
#   scripts/test.sh -R test_channel  extra arguments go to the main ctest run; given alone
#                                    they run only the main stage (MW_STAGES overrides)
#
# Environment:
#   MW_STAGES        stages to run, in this order: main clang lint arm sanitize memcheck fuzz
#   MW_BUILD_DIR     main build directory (default build); the others add a suffix:
#                    -clang, -sanitize, -fuzz; the arm stage builds in build-arm
#   MW_BUILD_TYPE    CMake build type of the main build (default RelWithDebInfo)
#   MW_FUZZ_SECONDS  seconds each fuzzer runs (default 30: 7 targets, $jobs at a time)
#   MW_MEMCHECK_TESTS  integration tests run under valgrind (default: see stage_memcheck)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# shellcheck source=scripts/deps.sh
. scripts/deps.sh

jobs=$(nproc 2>/dev/null || echo 2)
build=${MW_BUILD_DIR:-build}
all_stages="main clang lint arm sanitize memcheck fuzz"
if [ -n "${MW_STAGES:-}" ]; then
  stages=$MW_STAGES
elif [ $# -gt 0 ]; then
  stages=main
else
  stages=$all_stages
fi
for s in $stages; do
  case " $all_stages " in
    *" $s "*) ;;
    *) echo "test.sh: unknown stage '$s' (stages: $all_stages)" >&2; exit 2 ;;
  esac
done
if [ "$stages" = main ]; then
  mw_install_deps
else
  mw_install_ci_deps
fi

banner() {
  printf '\n==================== %s ====================\n' "$*"
}

# ---- stages ----

# gcc, the main compiler: the whole suite, which includes every fuzz corpus replayed
# (label fuzz-replay), the hardening and exported-symbols checks (label hardening) and the SBOM
# (label evidence); then, for a whole run, the regulatory matrix from this run's reports
# (build/evidence/regulatory-matrix.md, docs/regulatory.md), written even when a test failed.
stage_main() {
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE="${MW_BUILD_TYPE:-RelWithDebInfo}" -DMW_BUILD_TESTS=ON
  cmake --build "$build" -j "$jobs"
  local reports rc=0
  reports="$(cd "$build" && pwd)/test-reports"
  rm -rf "$reports" && mkdir -p "$reports"
  # The 5,000-session test (label scale, minutes of handshakes) runs on request only:
  # scripts/test.sh -L scale, or ctest --test-dir build -L scale.
  local select=("$@")
  if [ $# -eq 0 ]; then
    select=(-LE scale)
  fi
  ctest --test-dir "$build" --output-on-failure -j "$jobs" --output-junit "$reports/ctest-junit.xml" \
    "${select[@]}" || rc=$?
  if [ $# -eq 0 ]; then
    python3 scripts/evidence.py --build "$build" || [ $rc -ne 0 ] || rc=1
  fi
  return $rc
}

# clang with the same -Werror flags (mw_strict): a second compiler's warnings. Its
# compile_commands.json is what clang-tidy reads in the lint stage.
stage_clang() {
  CC=clang cmake -S . -B "$build-clang" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMW_BUILD_TESTS=ON
  cmake --build "$build-clang" -j "$jobs"
}

stage_lint() {
  if [ ! -f "$build-clang/compile_commands.json" ]; then
    stage_clang
  fi
  bash scripts/lint.sh "$build-clang"
}

# The device library cross-built for a Cortex-M4F (MW_PORT=none, newlib-nano, wolfSSL configured
# by src/port/none/user_settings.h, headers only: cmake/cross-deps.cmake), then its undefined
# symbols checked: nothing of POSIX, stdio, pthreads, clocks or libcoap's logging
# (scripts/arm_symbols.py), and the bare-metal port example built against it.
stage_arm() {
  local dir=build-arm
  cmake -S . -B "$dir" -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi-cortex-m4.cmake \
    -DCMAKE_BUILD_TYPE=MinSizeRel -DMW_PORT=none -DMW_WITH_GATEWAY=OFF -DMW_WITH_PROGRAMS=OFF \
    -DMW_BUILD_TESTS=OFF -DMW_HARDEN=OFF
  cmake --build "$dir" -j "$jobs"
  python3 scripts/arm_symbols.py --self-test
  python3 scripts/arm_symbols.py "$dir/lib/libmedwire.a"
  python3 scripts/arm_symbols.py "$dir/lib/libmw_bare_metal.a" >/dev/null
  # The same without the sentences (-DMW_ERROR_REASONS=OFF, docs/porting.md): it builds, and
  # none of three sentences, of the client, the DTLS layer and the queue, is left in it.
  cmake -S . -B "$dir-terse" -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi-cortex-m4.cmake \
    -DCMAKE_BUILD_TYPE=MinSizeRel -DMW_PORT=none -DMW_WITH_GATEWAY=OFF -DMW_WITH_PROGRAMS=OFF \
    -DMW_BUILD_TESTS=OFF -DMW_HARDEN=OFF -DMW_ERROR_REASONS=OFF
  cmake --build "$dir-terse" -j "$jobs"
  python3 scripts/arm_symbols.py "$dir-terse/lib/libmedwire.a" >/dev/null
  local sentence
  for sentence in "stopped acknowledging" "refused our certificate as expired" \
    "failed authentication (damaged"; do
    if ! grep -q "$sentence" "$dir/lib/libmedwire.a"; then
      echo "test.sh: '$sentence' is in no file of $dir/lib/libmedwire.a: name a sentence it has" >&2
      return 1
    fi
    if grep -q "$sentence" "$dir-terse/lib/libmedwire.a"; then
      echo "test.sh: -DMW_ERROR_REASONS=OFF left '$sentence' in $dir-terse/lib/libmedwire.a" >&2
      return 1
    fi
  done
}

# The whole suite again under AddressSanitizer and UndefinedBehaviorSanitizer (gcc), but for
# the scale test, the long ones (label long: minutes spent in the test peers) and the load
# ones (label load: many sessions at once, where the sanitizers measure themselves).
stage_sanitize() {
  cmake -S . -B "$build-sanitize" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMW_SANITIZE=ON
  cmake --build "$build-sanitize" -j "$jobs"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_stack_use_after_return=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$build-sanitize" --output-on-failure -j "$jobs" -LE 'scale|long|load'
}

# The integration tests under valgrind memcheck, children included (Criterion runs each test
# in a child; test_programs starts medwire-gateway, medwire-device and medwire-pki, test_bridge
# medwire-bridge): zero
# errors and zero definite or possible leaks, with the suppressions in tests/valgrind.supp
# (each says why). test_flood is left out: a load test under valgrind measures valgrind. So are
# three loops (memcheck_filter): the device killed 50 times and the two 10,000-observation
# runs. They take minutes there, repeating code paths the other tests cover, and they run in
# the main and sanitizer stages.
# Valgrind is single-threaded, so the tests run $jobs at a time, longest first: test_programs,
# the longest by far, in one slot while the others follow each other in the second.
memcheck_filter() {
  case $1 in
    test_programs) echo '!(programs/a_device_killed_50_times*)' ;;
    test_messaging) echo '!(*/ten_thousand_*)' ;;
    *) echo '*' ;;
  esac
}

memcheck_one() {
  local t=$1 logs=$2
  local exe="$build/tests/$t" t0=$SECONDS bad
  mkdir -p "$logs/$t"
  if [ ! -x "$exe" ]; then
    echo "memcheck: $exe is missing" >&2
    return 1
  fi
  local rc=0
  # Criterion's own timeout is raised: valgrind runs 20 to 50 times slower.
  MW_BIN_DIR="$root/$build/bin" MW_SOURCE_DIR="$root" \
    valgrind --tool=memcheck --leak-check=full --num-callers=40 \
      --trace-children=yes --trace-children-skip='/usr/*,/bin/*' --child-silent-after-fork=yes \
      --suppressions="$root/tests/valgrind.supp" --error-exitcode=99 \
      --log-file="$logs/$t/vg.%p.log" \
      "$exe" --jobs=1 --timeout=1800 --filter="$(memcheck_filter "$t")" \
      >"$logs/$t/output.txt" 2>&1 || rc=$?
  bad=$(grep -l -E 'ERROR SUMMARY: [1-9]' "$logs/$t"/vg.*.log || true)
  printf 'memcheck: %-16s %3d processes, %s, %d s\n' "$t" \
    "$(find "$logs/$t" -name 'vg.*.log' | wc -l)" \
    "$([ -z "$bad" ] && echo 'no errors' || echo 'ERRORS')" $((SECONDS - t0))
  if [ $rc -ne 0 ]; then
    echo "memcheck: $t failed under valgrind (exit $rc); the end of its output:" >&2
    tail -n 40 "$logs/$t/output.txt" >&2
  fi
  if [ -n "$bad" ]; then
    echo "memcheck: $t: valgrind found errors:" >&2
    for f in $bad; do
      echo "--- $f" >&2
      sed -n '/Command:/,/HEAP SUMMARY/p' "$f" >&2
      grep -A30 -E 'definitely|possibly' "$f" >&2 || true
    done
    return 1
  fi
  return $rc
}

stage_memcheck() {
  if [ ! -x "$build/tests/test_channel" ]; then
    stage_main
  fi
  local tests=${MW_MEMCHECK_TESTS:-test_programs test_channel test_messaging test_commands test_credentials_mem
    test_bridge test_hostile test_revocation}
  local logs="$build/memcheck"
  rm -rf "$logs"
  mkdir -p "$logs"
  local t failed=0 running=0
  for t in $tests; do
    if [ $running -ge "$jobs" ]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
    memcheck_one "$t" "$logs" &
    running=$((running + 1))
  done
  while [ $running -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
  done
  return $failed
}

# clang + libFuzzer + ASan + UBSan: each fuzzer for MW_FUZZ_SECONDS from a scratch copy of
# its corpus (CI writes nothing to the tree but crash reproducers, in fuzz/crashes/TARGET/),
# $jobs at a time: each is single-threaded.
fuzz_one() {
  local t=$1 scratch=$2 secs=$3
  local log="$scratch/$t.log" t0=$SECONDS
  mkdir -p "$scratch/$t" "fuzz/crashes/$t"
  cp fuzz/corpus/"$t"/* "$scratch/$t/"
  if ! MW_BIN_DIR="$root/$build-fuzz/bin" "$build-fuzz/fuzz/$t" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/crashes/$t/" "$scratch/$t" >"$log" 2>&1; then
    local repro
    repro=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -n 1)
    {
      echo "fuzz: $t FAILED; the end of its log:"
      tail -n 60 "$log"
      echo
      echo "fuzz: reproducer: ${repro:-(none written)}"
      echo "fuzz: replay it:  $build-fuzz/fuzz/$t ${repro:-fuzz/crashes/$t/FILE}"
      echo "fuzz:   (or with any compiler: $build/fuzz/${t}_replay FILE); see fuzz/README.md"
    } >&2
    return 1
  fi
  local done_line execs rate
  done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  printf 'fuzz: %-20s %9s runs, %6s exec/s, %s (%d s)\n' "$t" "${execs:-?}" "${rate:-?}" \
    "$(grep -oE 'cov: [0-9]+ ft: [0-9]+' <<<"$done_line" || echo 'cov: ?')" $((SECONDS - t0))
}

stage_fuzz() {
  local secs=${MW_FUZZ_SECONDS:-30}
  local targets="fuzz_session fuzz_gateway_hello fuzz_certs fuzz_queue fuzz_batch fuzz_coap
    fuzz_bridge_hl7 fuzz_est"
  CC=clang cmake -S . -B "$build-fuzz" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMW_BUILD_FUZZERS=ON
  # shellcheck disable=SC2086 # one word per target
  cmake --build "$build-fuzz" -j "$jobs" --target $targets
  local scratch
  scratch=$(mktemp -d "${TMPDIR:-/tmp}/medwire-fuzz.XXXXXX")
  local t failed=0 running=0
  for t in $targets; do
    if [ $running -ge "$jobs" ]; then
      wait -n || failed=1
      running=$((running - 1))
    fi
    fuzz_one "$t" "$scratch" "$secs" &
    running=$((running + 1))
  done
  while [ $running -gt 0 ]; do
    wait -n || failed=1
    running=$((running - 1))
  done
  rm -rf "$scratch"
  # Empty reproducer directories are not worth keeping.
  find fuzz/crashes -type d -empty -delete 2>/dev/null || true
  return $failed
}

# ---- driver ----

declare -a timings=()
current=""
stage_start=0
total_start=$SECONDS

on_exit() {
  local rc=$?
  if [ $rc -ne 0 ] && [ -n "$current" ]; then
    printf '\ntest.sh: FAILED in stage "%s" after %d s (exit %d); stages passed before it:%s\n' \
      "$current" $((SECONDS - stage_start)) "$rc" "${timings[*]:+ ${timings[*]}}" >&2
  fi
}
trap on_exit EXIT

for s in $stages; do
  current=$s
  stage_start=$SECONDS
  banner "stage $s"
  if [ "$s" = main ]; then
    stage_main "$@"
  else
    "stage_$s"
  fi
  timings+=("$s=$((SECONDS - stage_start))s")
  printf -- '---- stage %s passed in %d s\n' "$s" $((SECONDS - stage_start))
done
current=""
banner "all stages passed in $((SECONDS - total_start)) s: ${timings[*]}"
