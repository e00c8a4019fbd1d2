#!/usr/bin/env bash
# Makes a Docker engine available (installing docker.io and starting dockerd
# in the background when none answers), makes sure the runtime image's base
# exists in it (installing mmdebstrap and building the base from Debian's
# packages when missing: minutes, once), and prints AGENTHOST_TEST_DOCKER=1.
# Under CI=true a base that cannot be built is a failure.
set -eu
# Only the export lines go to the real stdout (fd 3); everything the tools
# print (apt, pg_ctlcluster "Removed stale pid file", ...) goes to stderr.
# Anything that may leave a daemon behind runs with fd 3 closed: a daemon
# holding it would keep `make test`'s $(services.sh) waiting forever.
exec 3>&1 1>&2
here=$(cd "$(dirname "$0")" && pwd)
. "$here/apt.sh"
if ! docker info >/dev/null 2>&1; then
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
fi

# The runtime image's base (docs/docker.md): built here, before the suite,
# so the tests that need it find it cached. Outside CI a failure only
# warns: those tests then try again, or skip without mmdebstrap.
base_failed() {
  echo "the runtime base image could not be built: $1" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
}
if ! command -v mmdebstrap >/dev/null; then
  echo "installing mmdebstrap (builds the runtime image's base from Debian packages)" >&2
  apt_install mmdebstrap || base_failed "apt-get install mmdebstrap failed"
fi
if command -v mmdebstrap >/dev/null; then
  echo "building or finding the runtime base image (a few minutes the first time)" >&2
  (cd "$here/.." && go run ./cmd/agenthost image base) >&2 3>&- </dev/null ||
    base_failed "agenthost image base failed (see above)"
fi
echo "export AGENTHOST_TEST_DOCKER=1" >&3
