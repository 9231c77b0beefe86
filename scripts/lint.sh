#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# lint.sh -- cppcheck and clang-tidy over src/ and examples/, with the checks chosen in
# .clang-tidy and below, and shellcheck over the shell scripts; any finding fails. Needs a
# configured build (its compile_commands.json): scripts/lint.sh BUILD_DIR (default build-clang).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-clang}
db="$build/compile_commands.json"
if [ ! -f "$db" ]; then
  echo "lint.sh: $db is missing: configure a build first (CC=clang cmake -S . -B $build)" >&2
  exit 2
fi
jobs=$(nproc 2>/dev/null || echo 2)
# Generated nanopb headers must exist for both tools to see the real types.
cmake --build "$build" --target mw_proto >/dev/null

mapfile -t files < <(find src examples -name '*.c' | sort)

echo "lint: cppcheck ${#files[@]} files"
# warning, performance, portability: the classes that find bugs; style is clang-format's and
# review's business. Macros come from the compile database, as the compiler sees them, plus
# the two that system headers cppcheck does not read would give: wolfSSL's build options
# (every file gets wolfssl/options.h first, as dtls.c and medwire-pki.c include it) and
# nanopb 0.4.7's header version; without them the #error guards end the analysis of a file.
# missingIncludeSystem: system headers are the compiler's, not cppcheck's, to find.
cppcheck --project="$db" --enable=warning,performance,portability --std=c11 \
  --file-filter='src/*' --file-filter='examples/*' \
  --include=/usr/include/wolfssl/options.h -DPB_PROTO_HEADER_VERSION=40 \
  --suppress=missingIncludeSystem --inline-suppr \
  --error-exitcode=1 --quiet -j "$jobs" --cppcheck-build-dir="$(mkdir -p "$build/cppcheck" && echo "$build/cppcheck")"

# A source compiled into several targets (the gateway's log.c and outbox.c, also linked into
# their tests) has several entries in the database; clang-tidy 14 then analyses it once per
# entry and, from the second on, reports the fortify false positive below despite the
# -U_FORTIFY_SOURCE. It reads a copy with the first entry of each file only.
tidy_db="$build/lint-db"
mkdir -p "$tidy_db"
python3 - "$db" "$tidy_db/compile_commands.json" <<'PY'
import json, sys
seen, first = set(), []
for entry in json.load(open(sys.argv[1])):
    if entry["file"] not in seen:
        seen.add(entry["file"])
        first.append(entry)
json.dump(first, open(sys.argv[2], "w"), indent=1)
PY

echo "lint: clang-tidy ${#files[@]} files (.clang-tidy)"
# Exit codes are not enough (xargs folds them); the findings in the log decide. One file per
# clang-tidy run: given several, clang-tidy 14 reported the fortify false positive again
# for all but the first.
# -U_FORTIFY_SOURCE: the analyzer misreads glibc's fortify wrappers (a va_list passed on to
# vfprintf is reported uninitialised); the code it checks is the same without them.
printf '%s\n' "${files[@]}" | xargs -P "$jobs" -n 1 clang-tidy -p "$tidy_db" --quiet \
  --extra-arg=-U_FORTIFY_SOURCE \
  >"$build/clang-tidy.log" 2>&1 || true
if grep -q -E '(warning|error):' "$build/clang-tidy.log"; then
  grep -v -E '^[0-9]+ warnings? generated\.$|^Suppressed [0-9]+ warnings|^Use -header-filter' \
    "$build/clang-tidy.log" >&2
  echo "lint: clang-tidy found problems (above, and in $build/clang-tidy.log)" >&2
  exit 1
fi
if command -v shellcheck >/dev/null; then
  mapfile -t scripts < <(find scripts tests fuzz -name '*.sh' | sort)
  echo "lint: shellcheck ${#scripts[@]} scripts and .ci/run"
  shellcheck -x "${scripts[@]}" .ci/run
else
  echo "lint: shellcheck not installed: shell scripts not checked"
fi
echo "lint: clean"
