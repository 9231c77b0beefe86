#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# install-server.sh -- installs the FHIR server pinned by package-lock.json (Medplum's
# @medplum/fhir-router with its in-memory repository) into a build directory with `npm ci`,
# once per lock file; later runs only refresh server.js.
# usage: install-server.sh SOURCE_DIR DEST_DIR   (SOURCE_DIR: tests/fhir-server)
set -euo pipefail

src=${1:?usage: install-server.sh SOURCE_DIR DEST_DIR}
dest=${2:?usage: install-server.sh SOURCE_DIR DEST_DIR}

fail() {
  echo "install-server.sh: $*" >&2
  echo "install-server.sh: the FHIR REST delivery tests need this; they fail rather than skip." >&2
  exit 1
}

command -v node >/dev/null 2>&1 || fail "node is not installed (Debian packages: nodejs npm)"
command -v npm >/dev/null 2>&1 || fail "npm is not installed (Debian packages: nodejs npm)"
# @medplum/* 4.5.2 declare node ^20.19.0 || >=22.12.0 (5.x needs 22.18).
major=$(node -p 'process.versions.node.split(".")[0]')
minor=$(node -p 'process.versions.node.split(".")[1]')
if [ "$major" -lt 20 ] || { [ "$major" -eq 20 ] && [ "$minor" -lt 19 ]; }; then
  fail "node $(node --version) is too old for @medplum/fhir-router 4.5.2 (needs 20.19 or later)"
fi

mkdir -p "$dest"
cp "$src/server.js" "$dest/server.js"

stamp="$dest/node_modules/.medwire-package-lock.json"
if [ -f "$stamp" ] && cmp -s "$src/package-lock.json" "$stamp" &&
   [ -d "$dest/node_modules/@medplum/fhir-router" ]; then
  echo "FHIR server already installed in $dest (node $(node --version))"
  exit 0
fi

cp "$src/package.json" "$src/package-lock.json" "$dest/"
start=$(date +%s)
# npm ci installs exactly the locked versions and checks their integrity hashes; no install
# scripts run. Bounded in time: an unreachable registry ends in a clear failure.
if ! timeout 300 npm ci --prefix "$dest" --ignore-scripts --no-audit --no-fund --loglevel=error; then
  fail "npm ci failed: cannot install @medplum/fhir-router from the npm registry (is it reachable?)"
fi
cp "$src/package-lock.json" "$stamp"
echo "FHIR server installed in $dest in $(( $(date +%s) - start )) s (node $(node --version), npm $(npm --version))"
