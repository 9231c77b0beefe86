#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deps.sh -- install the Debian 12 packages medwire builds and tests with, when they are missing.
# Sourced by demo.sh and test.sh; safe to run on its own (--ci: the CI tools too). Uses sudo
# when not root.
set -euo pipefail

MW_PACKAGES=(
  build-essential cmake pkg-config
  libwolfssl-dev          # DTLS 1.2, X.509, wolfCrypt
  libcoap3-dev            # CoAP codec (libcoap-3-notls)
  libcoap3-bin            # coap-client/-server (openssl, gnutls) for interop tests
  nanopb libnanopb-dev python3-protobuf  # protobuf code generated at build time
  libcriterion-dev        # tests
  libsqlite3-dev          # gateway store
  libpq-dev               # gateway store on PostgreSQL (--store postgresql://); optional
  postgresql              # a real server for that store's tests (ctest -L pg)
  libmicrohttpd-dev       # medwire-gateway --metrics (Prometheus over HTTP); the program only
  libcurl4-openssl-dev    # medwire-gateway --fhir-server (FHIR REST over HTTPS); the program only
  openssl                 # independent certificate checks in tests
  python3-hl7             # an MLLP listener and HL7 parser written by others (tests/hl7)
  softhsm2 opensc         # a PKCS#11 token and pkcs11-tool for keys in tokens (tests/pkcs11)
  doxygen                 # the API reference (target docs; ctest api_reference)
)

# What the CI stages of test.sh add (scripts/test.sh installs them when it runs those stages).
MW_CI_PACKAGES=(
  clang libclang-rt-14-dev  # clang -Werror build; libFuzzer, ASan and UBSan runtimes
  llvm                      # llvm-symbolizer: sanitizer reports with file and line
  clang-tidy cppcheck       # scripts/lint.sh
  shellcheck                # scripts/lint.sh checks the shell scripts when present
  valgrind                  # memcheck stage
  gcc-arm-none-eabi libnewlib-arm-none-eabi  # arm stage: the device library for a Cortex-M4
)

# mw_missing_packages PACKAGE...: those of the given packages that are not installed.
mw_missing_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

# mw_install_packages PACKAGE...: installs those of them that are missing.
mw_install_packages() {
  local missing
  missing=$(mw_missing_packages "$@")
  if [ -z "$missing" ]; then
    return 0
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo -n"
  fi
  echo "medwire: installing Debian packages: $missing" >&2
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq </dev/null
  # shellcheck disable=SC2086
  $sudo apt-get install -y -qq --no-install-recommends $missing </dev/null
}

# The FHIR validation tests run validators written elsewhere on Node.js (tests/fhir). A
# machine that already has node and npm (Debian's or NodeSource's nodejs, which carries npm)
# keeps them: installing Debian's npm beside NodeSource's nodejs would conflict.
mw_install_node() {
  if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
    return 0
  fi
  mw_install_packages nodejs npm
}

# What building and testing need.
mw_install_deps() {
  mw_install_packages "${MW_PACKAGES[@]}"
  mw_install_node
}

# That and the tools of the CI stages (clang, sanitizer runtimes, linters, valgrind).
mw_install_ci_deps() {
  mw_install_packages "${MW_PACKAGES[@]}" "${MW_CI_PACKAGES[@]}"
  mw_install_node
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  if [ "${1:-}" = --ci ]; then
    mw_install_ci_deps
  else
    mw_install_deps
  fi
fi
