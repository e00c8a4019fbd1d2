#!/usr/bin/env bash
# Installs Node.js (Debian) when missing and Redocly's CLI (npm
# "@redocly/cli", pinned) into a cache directory; prints
# AGENTHOST_TEST_REDOCLY, the path of its `redocly` command. The OpenAPI
# tests lint the host's and the platform's documents with its recommended
# rules (internal/openapilint).
set -eu
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing nodejs and npm" >&2
  apt_install nodejs npm
fi
version=2.77.0
dir=${AGENTHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost}/redocly-$version
bin=$dir/node_modules/.bin/redocly
if [ ! -x "$bin" ]; then
  mkdir -p "$dir"
  (cd "$dir" && [ -f package.json ] || echo '{"private":true}' > package.json)
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "@redocly/cli@$version" >&2 </dev/null
fi
[ -x "$bin" ] || { echo "@redocly/cli installed but $bin is missing" >&2; exit 1; }
echo "export AGENTHOST_TEST_REDOCLY='$bin'" >&3
