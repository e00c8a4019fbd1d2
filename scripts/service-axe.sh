#!/usr/bin/env bash
# Installs Node.js's npm (Debian) when missing and the axe-core accessibility
# engine (npm "axe-core", pinned) into a cache directory; prints
# AGENTHOST_TEST_AXE, the path of axe.min.js, which the browser tests inject
# into the pages they check (internal/web/browsertest).
set -eu
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
if ! command -v npm >/dev/null; then
  echo "installing nodejs and npm" >&2
  apt_install nodejs npm
fi
version=4.14.1
dir=${AGENTHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost}/axe-core-$version
file=$dir/node_modules/axe-core/axe.min.js
if [ ! -f "$file" ]; then
  mkdir -p "$dir"
  (cd "$dir" && [ -f package.json ] || echo '{"private":true}' > package.json)
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "axe-core@$version" >&2 </dev/null
fi
[ -f "$file" ] || { echo "axe-core installed but $file is missing" >&2; exit 1; }
echo "export AGENTHOST_TEST_AXE='$file'" >&3
