#!/usr/bin/env bash
# Installs Node.js (Debian) when missing and the A2A JavaScript SDK
# (npm "@a2a-js/sdk", pinned to the protocol 0.3 line that
# github.com/a2aproject/a2a-go v0.3 speaks) into a cache directory; prints
# AGENTHOST_TEST_A2A_JS, the directory whose node_modules holds it.
set -eu
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing nodejs and npm" >&2
  apt_install nodejs npm
fi
version=0.3.14
dir=${AGENTHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost}/a2a-js-$version
if [ ! -f "$dir/node_modules/@a2a-js/sdk/package.json" ]; then
  mkdir -p "$dir"
  (cd "$dir" && [ -f package.json ] || echo '{"private":true}' > package.json)
  # The client needs none of the server's peers (express, gRPC).
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error --legacy-peer-deps "@a2a-js/sdk@$version" >&2 </dev/null
fi
echo "export AGENTHOST_TEST_A2A_JS='$dir'" >&3
