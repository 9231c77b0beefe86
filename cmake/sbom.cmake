# SPDX-License-Identifier: Apache-2.0
# The `sbom` target: ${CMAKE_BINARY_DIR}/medwire.spdx.json, an SPDX 2.3 document of what we ship
# (libmedwire.so, libmedwire-gateway.so and the programs) and every Debian package they link,
# at the versions dpkg says are installed (scripts/sbom.py; docs/regulatory.md). Dynamic
# dependencies are read from the built files, so a new target_link_libraries() shows up by
# itself; static ones are named here.
find_program(MW_PYTHON3 python3)
if(NOT MW_PYTHON3)
  message(STATUS "python3 not found: no sbom target")
  return()
endif()

set(MW_SBOM_FILE ${CMAKE_BINARY_DIR}/medwire.spdx.json)
# nanopb's runtime is linked statically (nanopb::protobuf-nanopb-static) into everything that
# links medwire; dpkg attributes the archive to its package (libnanopb-dev).
set(_mw_nanopb $<TARGET_FILE:nanopb::protobuf-nanopb-static>)
set(_mw_sbom_args --artifact "medwire=$<TARGET_FILE:medwire>,static=${_mw_nanopb}")
set(_mw_sbom_deps medwire)
if(MW_WITH_GATEWAY)
  # The gateway library holds a copy of the device library's lower layers, and nanopb.
  list(APPEND _mw_sbom_args
       --artifact "medwire-gateway-lib=$<TARGET_FILE:medwire_gateway>,static=medwire+${_mw_nanopb}")
  list(APPEND _mw_sbom_deps medwire_gateway)
endif()
if(MW_WITH_PROGRAMS)
  # The programs link the static libraries (the same code as the shared ones) and so nanopb
  # too; medwire-pki links only wolfSSL.
  list(APPEND _mw_sbom_args
       --artifact "medwire-gateway=$<TARGET_FILE:medwire-gateway>,static=medwire+medwire-gateway-lib+${_mw_nanopb}"
       --artifact "medwire-device=$<TARGET_FILE:medwire-device>,static=medwire+${_mw_nanopb}")
  list(APPEND _mw_sbom_args --artifact "medwire-pki=$<TARGET_FILE:medwire-pki>")
  list(APPEND _mw_sbom_deps medwire-gateway medwire-device medwire-pki)
endif()

# sbom.py asks git for the commit (into each artifact's sourceInfo; "-dirty": uncommitted changes).
add_custom_target(sbom
  COMMAND ${MW_PYTHON3} ${PROJECT_SOURCE_DIR}/scripts/sbom.py --out ${MW_SBOM_FILE}
          --version ${PROJECT_VERSION} --license Apache-2.0 --source-dir ${PROJECT_SOURCE_DIR}
          ${_mw_sbom_args}
  DEPENDS ${_mw_sbom_deps}
  BYPRODUCTS ${MW_SBOM_FILE}
  COMMENT "SPDX 2.3 SBOM: ${MW_SBOM_FILE}"
  VERBATIM)
