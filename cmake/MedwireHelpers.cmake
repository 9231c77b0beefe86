# SPDX-License-Identifier: Apache-2.0
# Build helpers shared by every directory: strict warnings on our own code, tests with a timeout.

# Strict warnings apply to medwire's own targets only; generated nanopb code and
# dependencies' headers are not held to them (nanopb's CORECFLAGS idea).
set(MW_WARNINGS -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
    -Wformat=2 -Wvla -Wpointer-arith -Wcast-qual -Wundef)

function(mw_strict target)
  target_compile_options(${target} PRIVATE ${MW_WARNINGS})
  target_compile_definitions(${target} PRIVATE _POSIX_C_SOURCE=200809L)
endfunction()

# mw_add_test(NAME SOURCES... [LIBS ...] [TIMEOUT seconds] [LABELS ...])
# One Criterion executable run by ctest, bounded in time (nng's nng_test).
function(mw_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  add_executable(${name} ${T_SOURCES})
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  mw_strict(${name})
  target_link_libraries(${name} PRIVATE mw_testsupport ${T_LIBS} PkgConfig::CRITERION)
  # Each run leaves a per-test report (PASSED/FAILED/ERRORED/SKIPPED) for scripts/evidence.py.
  file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/test-reports)
  add_test(NAME ${name} COMMAND ${name} --jobs=1 --timeout=${T_TIMEOUT}
    --xml=${CMAKE_BINARY_DIR}/test-reports/${name}.xml)
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "MW_BIN_DIR=${CMAKE_BINARY_DIR}/bin;MW_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  if(T_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()

# ---- Hardening of what we ship ----
# The programs and the shared libraries are network-facing on both sides of a clinical link, so
# they get the distribution-grade hardening: PIE and full RELRO (no writable GOT after start-up),
# stack protector, stack-clash probes, CET branch protection where the target has it, and
# FORTIFY_SOURCE in optimised builds. tests/hardening checks the result with readelf and nm.
option(MW_HARDEN "Build with PIE, full RELRO, stack protector and FORTIFY_SOURCE" ON)

include(CheckCCompilerFlag)
include(CheckPIESupported)
check_pie_supported()

# wolfssl/options.h (Debian 5.5.4) redefines _FORTIFY_SOURCE to 2 in every file that includes
# it, whatever the build asked for; this makes it leave system macros to us, so that one
# setting holds for the whole build (and a sanitizer build, where FORTIFY only hides bugs
# from ASan's interceptors, really has none).
add_compile_definitions(WOLFSSL_OPTIONS_IGNORE_SYS)

# True when FORTIFY_SOURCE is in effect: it needs optimisation and is off under sanitizers.
set(MW_FORTIFY OFF)
if(MW_HARDEN)
  foreach(flag -fstack-protector-strong -fstack-clash-protection -fcf-protection)
    string(MAKE_C_IDENTIFIER "MW_HAVE${flag}" var)
    check_c_compiler_flag(${flag} ${var})
    if(${var})
      add_compile_options(${flag})
    endif()
  endforeach()
  add_link_options(LINKER:-z,relro LINKER:-z,now LINKER:-z,noexecstack)
  if(NOT MW_SANITIZE AND NOT MW_BUILD_FUZZERS AND NOT CMAKE_BUILD_TYPE STREQUAL "Debug")
    # -U first: a toolchain (Ubuntu's gcc) may already define it, and a redefinition warns.
    add_compile_options(-U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=2)
    set(MW_FORTIFY ON)
  endif()
endif()

# ---- libFuzzer builds (fuzz/) ----
# Everything, the library included, is instrumented for coverage and built with ASan and UBSan,
# as OSS-Fuzz builds a project; only the fuzz targets link libFuzzer itself (fuzz/CMakeLists.txt).
if(MW_BUILD_FUZZERS)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MW_BUILD_FUZZERS needs clang (libFuzzer): configure with CC=clang")
  endif()
  if(MW_SANITIZE)
    message(FATAL_ERROR "MW_BUILD_FUZZERS already builds with ASan and UBSan: leave MW_SANITIZE off")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=address,undefined)
endif()
