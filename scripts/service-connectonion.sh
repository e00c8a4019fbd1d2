#!/usr/bin/env bash
# Installs Node.js (Debian) when missing and the reference TypeScript client
# (npm "connectonion", pinned) into a cache directory; prints
# AGENTHOST_TEST_CONNECTONION, the directory whose node_modules holds it.
set -eu
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing nodejs and npm" >&2
  apt_install nodejs npm
fi
version=0.1.4
dir=${AGENTHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost}/connectonion-$version
if [ ! -f "$dir/node_modules/connectonion/package.json" ]; then
  mkdir -p "$dir"
  (cd "$dir" && [ -f package.json ] || echo '{"private":true}' > package.json)
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "connectonion@$version" >&2 </dev/null
fi
echo "export AGENTHOST_TEST_CONNECTONION='$dir'" >&3
