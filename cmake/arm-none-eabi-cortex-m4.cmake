# SPDX-License-Identifier: Apache-2.0
# Toolchain file: medwire's device library for a Cortex-M4F with Debian's gcc-arm-none-eabi and
# newlib-nano. Use with -DMW_PORT=none -DMW_WITH_GATEWAY=OFF -DMW_WITH_PROGRAMS=OFF
# -DMW_BUILD_TESTS=OFF (docs/porting.md); scripts/test.sh's stage arm does.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR arm)
set(CMAKE_C_COMPILER arm-none-eabi-gcc)
set(CMAKE_AR arm-none-eabi-ar)
set(CMAKE_RANLIB arm-none-eabi-ranlib)
# Nothing is linked here (a library only): compiler checks build a static library, not a program.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)
set(MW_ARM_FLAGS "-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os")
set(CMAKE_C_FLAGS_INIT
  "${MW_ARM_FLAGS} -ffunction-sections -fdata-sections --specs=nano.specs")
set(CMAKE_C_FLAGS_RELEASE_INIT "-DNDEBUG")
set(CMAKE_C_FLAGS_MINSIZEREL_INIT "-DNDEBUG")
# Never the build machine's headers or libraries: the cross build's dependencies are staged
# into its build directory (cmake/cross-deps.cmake).
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
