#!/usr/bin/env bash
# Installs (when missing) and starts the services the test suite uses:
# bubblewrap (the tool sandbox), PostgreSQL, a Docker engine, Chromium, the
# reference TypeScript client, the MCP TypeScript SDK, the A2A JavaScript SDK,
# axe-core (the browser tests' accessibility checks), Redocly's CLI (the
# OpenAPI documents' lint) and zsh, fish and systemd-analyze (to check
# completion scripts and units). Prints `export`
# lines for the environment the tests read; `make test` evaluates them.
#
# Each service is best effort on a developer machine (its tests then skip),
# but under CI=true a service that cannot be had fails the run.
set -u
here=$(cd "$(dirname "$0")" && pwd)
status=0
for svc in sandbox postgres docker chromium connectonion mcpjs a2a axe redocly tools; do
  if ! out=$("$here/service-$svc.sh" 2> >(sed "s/^/[$svc] /" >&2)); then
    echo "[$svc] not available" >&2
    [ "${CI:-}" = "true" ] && status=1
  else
    printf '%s\n' "$out"
  fi
done
exit $status
