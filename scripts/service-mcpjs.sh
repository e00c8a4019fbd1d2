#!/usr/bin/env bash
# Installs Node.js (Debian) when missing and the MCP TypeScript SDK (npm
# "@modelcontextprotocol/sdk", pinned) into a cache directory; prints
# AGENTHOST_TEST_MCPJS, the directory whose node_modules holds it. The MCP
# tests drive `agenthost mcp` with its client.
set -eu
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "installing nodejs and npm" >&2
  apt_install nodejs npm
fi
version=1.32.2
dir=${AGENTHOST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agenthost}/mcpjs-$version
if [ ! -f "$dir/node_modules/@modelcontextprotocol/sdk/package.json" ]; then
  mkdir -p "$dir"
  (cd "$dir" && [ -f package.json ] || echo '{"private":true}' > package.json)
  npm install --prefix "$dir" --no-audit --no-fund --loglevel=error "@modelcontextprotocol/sdk@$version" >&2 </dev/null
fi
echo "export AGENTHOST_TEST_MCPJS='$dir'" >&3
