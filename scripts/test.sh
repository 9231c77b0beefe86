#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test.sh -- install what is missing, build into build/, and run the whole test suite with ctest.
# Extra arguments go to ctest (e.g. scripts/test.sh -R test_channel).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/deps.sh
. scripts/deps.sh
mw_install_deps

jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -DCMAKE_BUILD_TYPE="${MW_BUILD_TYPE:-RelWithDebInfo}" -DMW_BUILD_TESTS=ON
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure -j "$jobs" "$@"
