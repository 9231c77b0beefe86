# SPDX-License-Identifier: Apache-2.0
# cmake --install: the public headers, the libraries by role (static and shared), the CMake
# package medwire (medwireConfig.cmake: medwire::medwire, medwire::gateway, ...) and the
# pkg-config files medwire.pc and medwire-gateway.pc. The programs install themselves
# (examples/*/CMakeLists.txt). tests/install builds a device program against the result.
include(CMakePackageConfigHelpers)

set(MW_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/medwire)
set(MW_PKGCONFIG_DIR ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/medwire
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
install(TARGETS ${MW_INSTALL_TARGETS} EXPORT medwireTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT medwireTargets NAMESPACE medwire:: DESTINATION ${MW_CMAKE_DIR})

configure_package_config_file(${CMAKE_CURRENT_LIST_DIR}/medwireConfig.cmake.in
  ${CMAKE_BINARY_DIR}/package/medwireConfig.cmake INSTALL_DESTINATION ${MW_CMAKE_DIR})
# 0.x: a minor version may change the API (docs/design.md); SameMajorVersion is the contract
# from 1.0 on.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/package/medwireConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_BINARY_DIR}/package/medwireConfig.cmake
  ${CMAKE_BINARY_DIR}/package/medwireConfigVersion.cmake DESTINATION ${MW_CMAKE_DIR})

# pkg-config files are relocatable: the prefix is found from where the .pc file lies
# (${pcfiledir}), so `cmake --install --prefix DIR` needs nothing rewritten.
file(RELATIVE_PATH MW_PC_TO_PREFIX /prefix/${MW_PKGCONFIG_DIR} /prefix)
string(REGEX REPLACE "/$" "" MW_PC_TO_PREFIX "${MW_PC_TO_PREFIX}")
# For static linking (pkg-config --static): the port's archive, which calls back into
# libmedwire.a, hence libmedwire.a again after it; nanopb's runtime (no .pc file of its own).
set(MW_PC_DEVICE_PRIVATE_LIBS "")
if(MW_PORT STREQUAL "posix")
  set(MW_PC_DEVICE_PRIVATE_LIBS "-lmedwire-posix -lmedwire ")
endif()
string(APPEND MW_PC_DEVICE_PRIVATE_LIBS "-lprotobuf-nanopb")
configure_file(${CMAKE_CURRENT_LIST_DIR}/medwire.pc.in ${CMAKE_BINARY_DIR}/package/medwire.pc @ONLY)
set(MW_PC_FILES ${CMAKE_BINARY_DIR}/package/medwire.pc)
if(MW_WITH_GATEWAY)
  set(MW_PC_LIBPQ "")
  if(LIBPQ_FOUND)
    set(MW_PC_LIBPQ "libpq ")
  endif()
  configure_file(${CMAKE_CURRENT_LIST_DIR}/medwire-gateway.pc.in
    ${CMAKE_BINARY_DIR}/package/medwire-gateway.pc @ONLY)
  list(APPEND MW_PC_FILES ${CMAKE_BINARY_DIR}/package/medwire-gateway.pc)
endif()
install(FILES ${MW_PC_FILES} DESTINATION ${MW_PKGCONFIG_DIR})
