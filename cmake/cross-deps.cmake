# SPDX-License-Identifier: Apache-2.0
# The dependencies of a cross build (MW_PORT=none, cmake/arm-none-eabi-cortex-m4.cmake): their
# headers only, staged. Only the wolfssl/ and coap3/ folders and nanopb's four pb*.h headers are
# copied from the build machine into <build>/staged-include, which is the only foreign folder on
# the cross include path: the host's /usr/include (glibc, Linux) never is. wolfSSL is configured
# by src/port/none/user_settings.h (WOLFSSL_USER_SETTINGS), not by Debian's options.h; libcoap's
# headers get the two socket headers they include from src/port/none. Debian ships no nanopb C
# sources (only a host libprotobuf-nanopb.a), so the archive leaves pb_encode/pb_decode to the
# device's own nanopb; it carries the generated medwire.pb.c. Nothing is linked here.
set(MW_STAGED_INCLUDE ${CMAKE_BINARY_DIR}/staged-include)
set(MW_STAGE_FROM /usr/include CACHE PATH "Where the wolfssl/, coap3/ and pb*.h headers are taken")
foreach(d wolfssl coap3)
  if(NOT EXISTS ${MW_STAGE_FROM}/${d})
    message(FATAL_ERROR "${MW_STAGE_FROM}/${d} is missing: install libwolfssl-dev and libcoap3-dev")
  endif()
  file(COPY ${MW_STAGE_FROM}/${d} DESTINATION ${MW_STAGED_INCLUDE})
endforeach()
# wolfSSL's options.h describes Debian's x86-64 build (OPENSSL_EXTRA, HAVE_CRL, pthreads...):
# never read in a cross build, so it is not staged.
file(REMOVE ${MW_STAGED_INCLUDE}/wolfssl/options.h)
foreach(h pb.h pb_common.h pb_encode.h pb_decode.h)
  file(COPY ${MW_STAGE_FROM}/${h} DESTINATION ${MW_STAGED_INCLUDE})
endforeach()

set(MW_PORT_NONE_INCLUDE ${PROJECT_SOURCE_DIR}/src/port/none)
add_library(PkgConfig::WOLFSSL INTERFACE IMPORTED)
target_include_directories(PkgConfig::WOLFSSL SYSTEM INTERFACE ${MW_PORT_NONE_INCLUDE}
  ${MW_STAGED_INCLUDE})
target_compile_definitions(PkgConfig::WOLFSSL INTERFACE WOLFSSL_USER_SETTINGS)
add_library(PkgConfig::LIBCOAP INTERFACE IMPORTED)
target_include_directories(PkgConfig::LIBCOAP SYSTEM INTERFACE ${MW_PORT_NONE_INCLUDE}
  ${MW_STAGED_INCLUDE})
add_library(nanopb::protobuf-nanopb-static INTERFACE IMPORTED)
target_include_directories(nanopb::protobuf-nanopb-static SYSTEM INTERFACE ${MW_STAGED_INCLUDE})
