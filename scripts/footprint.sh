#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# footprint.sh -- the device library's size for a Cortex-M4 and its memory at open: text, data
# and bss of each file of the ARM libmedwire.a (MW_PORT=none, -Os, newlib-nano) and their
# total, what of it the bare-metal example keeps when linked with --gc-sections,
# sizeof(mw_client_t) on the Cortex-M4 and on the host, and the heap of mw_client_open on the
# host (bench/bench_open_heap.c). Prints rows ("| figure | value |"); asserts nothing.
# Called by scripts/bench.sh; runs alone too:
#
#   scripts/footprint.sh [HOST_BUILD_DIR]   (default build; its bin/bench-open-heap if built)
set -euo pipefail
cd "$(dirname "$0")/.."
host_build=${1:-build}
arm=build-arm
jobs=${MW_BENCH_JOBS:-2}

if ! command -v arm-none-eabi-gcc >/dev/null; then
  echo "footprint.sh: arm-none-eabi-gcc missing (Debian gcc-arm-none-eabi)" >&2
  exit 1
fi
cmake -S . -B "$arm" -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi-cortex-m4.cmake \
  -DCMAKE_BUILD_TYPE=MinSizeRel -DMW_PORT=none -DMW_WITH_GATEWAY=OFF -DMW_WITH_PROGRAMS=OFF \
  -DMW_BUILD_TESTS=OFF -DMW_HARDEN=OFF >/dev/null
cmake --build "$arm" -j "$jobs" >/dev/null

echo "| Cortex-M4 -Os file | text | data | bss |"
echo "|---|---:|---:|---:|"
arm-none-eabi-size "$arm/lib/libmedwire.a" | awk 'NR > 1 {
    f = $6; sub(/\.obj$/, "", f); printf "| %s | %d | %d | %d |\n", f, $1, $2, $3
    t += $1; d += $2; b += $3
  } END { printf "| **total libmedwire.a** | %d | %d | %d |\n", t, d, b }'

# What a firmware keeps: the bare-metal example (examples/bare-metal: open, send, poll) linked
# with --gc-sections from its two entry points. wolfSSL, libcoap, nanopb and libc are not built
# for the target here, so their symbols stay unresolved and nothing of them is counted.
linked() {
  local link
  link=$(mktemp -d)
  arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 --specs=nano.specs \
    -nostartfiles -nostdlib -Wl,--gc-sections -Wl,--unresolved-symbols=ignore-all \
    -Wl,-e,device_turn -Wl,--undefined=device_open -Wl,-Map="$link/image.map" \
    -o "$link/image.elf" "$1/lib/libmw_bare_metal.a" "$1/lib/libmedwire.a"
  python3 scripts/linked_size.py "$link/image.map"
  rm -rf "$link"
}
echo
echo "| Cortex-M4, linked with --gc-sections from examples/bare-metal | text + rodata |"
echo "|---|---:|"
linked "$arm"

# The same firmware without the sentences of errors, audit events and logs
# (-DMW_ERROR_REASONS=OFF): codes, events and checks stay.
cmake -S . -B "$arm-terse" -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi-cortex-m4.cmake \
  -DCMAKE_BUILD_TYPE=MinSizeRel -DMW_PORT=none -DMW_WITH_GATEWAY=OFF -DMW_WITH_PROGRAMS=OFF \
  -DMW_BUILD_TESTS=OFF -DMW_HARDEN=OFF -DMW_ERROR_REASONS=OFF >/dev/null
cmake --build "$arm-terse" -j "$jobs" >/dev/null
echo
echo "| Cortex-M4, linked as above, -DMW_ERROR_REASONS=OFF | text + rodata |"
echo "|---|---:|"
linked "$arm-terse"

# That firmware built as many are, with link-time optimisation: medwire and the example compiled
# with -flto. Such a link must resolve every symbol, so newlib-nano supplies the C library and
# each other symbol (wolfSSL, libcoap, nanopb, the vendor's hooks) gets an empty definition made
# here; none of those is counted. The link-time objects hold medwire and the example together,
# so the rows count the two, with and without -flto.
F=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16)
cmake -S . -B "$arm-lto" -DCMAKE_TOOLCHAIN_FILE=cmake/arm-none-eabi-cortex-m4.cmake \
  -DCMAKE_BUILD_TYPE=MinSizeRel -DMW_PORT=none -DMW_WITH_GATEWAY=OFF -DMW_WITH_PROGRAMS=OFF \
  -DMW_BUILD_TESTS=OFF -DMW_HARDEN=OFF -DMW_ERROR_REASONS=OFF \
  -DCMAKE_C_FLAGS_MINSIZEREL="-DNDEBUG -flto" -DCMAKE_AR="$(command -v arm-none-eabi-gcc-ar)" \
  -DCMAKE_RANLIB="$(command -v arm-none-eabi-gcc-ranlib)" >/dev/null
cmake --build "$arm-lto" -j "$jobs" >/dev/null
lto=$(mktemp -d)
libs=("$arm-terse/lib/libmw_bare_metal.a" "$arm-terse/lib/libmedwire.a")
arm-none-eabi-nm --defined-only "$(arm-none-eabi-gcc "${F[@]}" --specs=nano.specs -print-file-name=libc_nano.a)" \
  "$(arm-none-eabi-gcc "${F[@]}" -print-libgcc-file-name)" "${libs[@]}" 2>/dev/null |
  awk 'NF == 3 {print $3}' | sort -u >"$lto/defined"
arm-none-eabi-nm -u "${libs[@]}" | awk 'NF == 2 {print $2}' | sort -u | comm -23 - "$lto/defined" |
  awk '{printf "void %s(void) {}\n", $1}' >"$lto/stubs.c"
arm-none-eabi-gcc "${F[@]}" -Os -c -o "$lto/stubs.o" "$lto/stubs.c"
# libnosys warns of each system call it leaves unimplemented: shown only if the link fails.
if ! arm-none-eabi-gcc "${F[@]}" -Os -flto --specs=nano.specs --specs=nosys.specs \
  -Wl,--gc-sections -Wl,-e,device_turn -Wl,--undefined=device_open -Wl,-Map="$lto/image.map" \
  -o "$lto/image.elf" "$arm-lto/lib/libmw_bare_metal.a" "$arm-lto/lib/libmedwire.a" \
  "$lto/stubs.o" 2>"$lto/link.err"; then
  cat "$lto/link.err" >&2
  exit 1
fi
link=$(mktemp -d)
arm-none-eabi-gcc "${F[@]}" --specs=nano.specs -nostartfiles -nostdlib -Wl,--gc-sections \
  -Wl,--unresolved-symbols=ignore-all -Wl,-e,device_turn -Wl,--undefined=device_open \
  -Wl,-Map="$link/image.map" -o "$link/image.elf" "${libs[@]}"
echo
echo "| Cortex-M4, -DMW_ERROR_REASONS=OFF, medwire with examples/bare-metal | text + rodata |"
echo "|---|---:|"
echo "| the example's own part, without -flto | $(python3 scripts/linked_size.py --total "$link/image.map" "libmw_bare_metal.a(") |"
echo "| medwire and the example, without -flto | $(python3 scripts/linked_size.py --total "$link/image.map" "libmw_bare_metal.a(" "libmedwire.a(") |"
echo "| medwire and the example, with -flto | $(python3 scripts/linked_size.py --total "$lto/image.map" .ltrans) |"
echo "| newlib-nano and libgcc in that image (C library, 64-bit division) | $(python3 scripts/linked_size.py --total "$lto/image.map" libc_nano.a libgcc.a libnosys.a) |"
rm -rf "$lto" "$link"

# sizeof(struct mw_client): client.c compiled with one more object, an array of that size, whose
# size nm -S reads back (no program is run on the target).
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include "client/client.c"\nconst char mw_sizeof_client[sizeof(struct mw_client)];\n' \
  >"$probe/sizeof.c"
gen=$(dirname "$(find "$arm" -name medwire.pb.h | head -n 1)")
arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os \
  --specs=nano.specs -std=c11 -DMW_BUILDING_LIBRARY -DWOLFSSL_USER_SETTINGS -Iinclude -Isrc \
  -I"$gen" -isystem src/port/none -isystem "$arm/staged-include" -c "$probe/sizeof.c" \
  -o "$probe/m4.o"
m4=$((16#$(arm-none-eabi-nm -S "$probe/m4.o" | awk '$4 == "mw_sizeof_client" {print $2}')))
host=n/a
hgen=$(dirname "$(find "$host_build" -name medwire.pb.h 2>/dev/null | head -n 1)")
if [ -n "$hgen" ] && cc -std=c11 -D_POSIX_C_SOURCE=200809L -DMW_BUILDING_LIBRARY -DMW_PORT_POSIX \
  -DWOLFSSL_OPTIONS_IGNORE_SYS -Iinclude -Isrc -I"$hgen" -c "$probe/sizeof.c" -o "$probe/host.o" \
  2>/dev/null; then
  host=$((16#$(nm -S "$probe/host.o" | awk '$4 == "mw_sizeof_client" {print $2}')))
fi
echo
echo "| figure | value |"
echo "|---|---:|"
echo "| sizeof(mw_client_t), Cortex-M4 | $m4 |"
echo "| sizeof(mw_client_t), x86-64 | $host |"
if [ -x "$host_build/bin/bench-open-heap" ]; then
  (cd "$host_build" && MW_BIN_DIR=$(pwd)/bin ./bin/bench-open-heap) |
    sed -nE 's/^client open heap, queue capacity ([0-9]+) in RAM, ([^:]+): peak ([0-9]+) bytes, held after open ([0-9]+) bytes, largest allocation ([0-9]+) bytes, largest transient ([0-9]+) bytes$/| heap of mw_client_open (host), queue of \1 in RAM, \2: peak | \3 |\n| ... held after open | \4 |\n| ... largest single allocation | \5 |\n| ... largest transient allocation | \6 |/p'
else
  echo "| heap of mw_client_open (host) | n/a (build bench-open-heap in $host_build) |"
fi
