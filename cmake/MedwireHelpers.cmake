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
  add_test(NAME ${name} COMMAND ${name} --jobs=1 --timeout=${T_TIMEOUT})
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "MW_BIN_DIR=${CMAKE_BINARY_DIR}/bin;MW_SOURCE_DIR=${CMAKE_SOURCE_DIR}")
  if(T_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()
