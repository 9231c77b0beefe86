#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deps.sh -- install the Debian 12 packages medwire builds and tests with, when they are missing.
# Sourced by demo.sh and test.sh; safe to run on its own. Uses sudo when not root.
set -euo pipefail

MW_PACKAGES=(
  build-essential cmake pkg-config
  libwolfssl-dev          # DTLS 1.2, X.509, wolfCrypt
  libcoap3-dev            # CoAP codec (libcoap-3-notls)
  libcoap3-bin            # coap-client/-server (openssl, gnutls) for interop tests
  nanopb libnanopb-dev python3-protobuf  # protobuf code generated at build time
  libcriterion-dev        # tests
  libsqlite3-dev          # gateway store
  openssl                 # independent certificate checks in tests
)

mw_missing_packages() {
  local missing=()
  for p in "${MW_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  echo "${missing[@]:-}"
}

mw_install_deps() {
  local missing
  missing=$(mw_missing_packages)
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

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  mw_install_deps
fi
