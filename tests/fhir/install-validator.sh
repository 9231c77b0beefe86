#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# install-validator.sh -- installs the FHIR R4 validators pinned by package-lock.json into a build
# directory with `npm ci`, once per lock file; later runs only refresh validate.js.
# usage: install-validator.sh SOURCE_DIR DEST_DIR   (SOURCE_DIR: tests/fhir)
set -euo pipefail

src=${1:?usage: install-validator.sh SOURCE_DIR DEST_DIR}
dest=${2:?usage: install-validator.sh SOURCE_DIR DEST_DIR}

fail() {
  echo "install-validator.sh: $*" >&2
  echo "install-validator.sh: the FHIR R4 validation tests need this; they fail rather than skip." >&2
  exit 1
}

command -v node >/dev/null 2>&1 ||
  fail "node is not installed (Debian packages: nodejs npm)"
command -v npm >/dev/null 2>&1 ||
  fail "npm is not installed (Debian packages: nodejs npm)"

mkdir -p "$dest"
# Always: an edited validate.js takes effect without a reinstall.
cp "$src/validate.js" "$dest/validate.js"

stamp="$dest/node_modules/.medwire-package-lock.json"
if [ -f "$stamp" ] && cmp -s "$src/package-lock.json" "$stamp" &&
   [ -d "$dest/node_modules/fhir" ] && [ -d "$dest/node_modules/@asymmetrik/fhir-json-schema-validator" ]; then
  echo "FHIR validators already installed in $dest (node $(node --version))"
  exit 0
fi

cp "$src/package.json" "$src/package-lock.json" "$dest/"
start=$(date +%s)
# npm ci installs exactly the locked versions and checks their integrity hashes. Bounded in
# time: an unreachable registry must end in a clear failure, not a hung test.
if ! timeout 300 npm ci --prefix "$dest" --no-audit --no-fund --loglevel=error; then
  fail "npm ci failed: cannot install fhir and @asymmetrik/fhir-json-schema-validator from the npm registry (is it reachable?)"
fi
cp "$src/package-lock.json" "$stamp"
echo "FHIR validators installed in $dest in $(( $(date +%s) - start )) s (node $(node --version), npm $(npm --version))"
