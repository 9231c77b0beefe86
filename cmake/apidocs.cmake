# SPDX-License-Identifier: Apache-2.0
# The `docs` target: the API reference of include/medwire/ with Doxygen, warnings as errors
# (docs/api/Doxyfile.in), into ${CMAKE_BINARY_DIR}/docs/api/html. With the tests, the ctest
# test `api_reference` builds it, so a broken comment fails CI.
find_program(MW_DOXYGEN doxygen)
if(NOT MW_DOXYGEN)
  message(STATUS "doxygen not found: no docs target (Debian package: doxygen)")
  return()
endif()
set(MW_DOCS_OUT ${CMAKE_BINARY_DIR}/docs/api)
configure_file(${PROJECT_SOURCE_DIR}/docs/api/Doxyfile.in ${MW_DOCS_OUT}/Doxyfile @ONLY)
add_custom_target(docs
  COMMAND ${CMAKE_COMMAND} -E make_directory ${MW_DOCS_OUT}
  COMMAND ${MW_DOXYGEN} ${MW_DOCS_OUT}/Doxyfile
  WORKING_DIRECTORY ${MW_DOCS_OUT}
  COMMENT "API reference (Doxygen) in ${MW_DOCS_OUT}/html"
  VERBATIM)
if(MW_BUILD_TESTS)
  add_test(NAME api_reference COMMAND ${MW_DOXYGEN} ${MW_DOCS_OUT}/Doxyfile
    WORKING_DIRECTORY ${MW_DOCS_OUT})
  set_tests_properties(api_reference PROPERTIES LABELS evidence TIMEOUT 120)
endif()
