#!/usr/bin/env bash
# Installs Debian's Chromium when missing and prints AGENTHOST_TEST_CHROMIUM.
set -eu
# Only the export lines go to the real stdout (fd 3); everything the tools
# print (apt, pg_ctlcluster "Removed stale pid file", ...) goes to stderr.
# Anything that may leave a daemon behind runs with fd 3 closed: a daemon
# holding it would keep `make test`'s $(services.sh) waiting forever.
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
bin=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$bin" ]; then
  echo "installing chromium" >&2
  apt_install chromium
  bin=$(command -v chromium)
fi
echo "export AGENTHOST_TEST_CHROMIUM='$bin'" >&3
