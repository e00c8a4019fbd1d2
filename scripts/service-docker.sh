#!/usr/bin/env bash
# Makes a Docker engine available (installing docker.io and starting dockerd
# in the background when none answers) and prints AGENTHOST_TEST_DOCKER=1.
set -eu
# Only the export lines go to the real stdout (fd 3); everything the tools
# print (apt, pg_ctlcluster "Removed stale pid file", ...) goes to stderr.
# Anything that may leave a daemon behind runs with fd 3 closed: a daemon
# holding it would keep `make test`'s $(services.sh) waiting forever.
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
if docker info >/dev/null 2>&1; then echo "export AGENTHOST_TEST_DOCKER=1" >&3; exit 0; fi
if ! command -v dockerd >/dev/null; then
  echo "installing docker.io" >&2
  apt_install docker.io
fi
if ! docker info >/dev/null 2>&1; then
  echo "starting dockerd" >&2
  nohup dockerd >/tmp/agenthost-dockerd.log 2>&1 3>&- </dev/null &
  for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
fi
docker info >/dev/null 2>&1 || { echo "dockerd did not start; see /tmp/agenthost-dockerd.log" >&2; tail -5 /tmp/agenthost-dockerd.log >&2; exit 1; }
echo "export AGENTHOST_TEST_DOCKER=1" >&3
