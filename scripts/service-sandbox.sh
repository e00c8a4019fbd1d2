#!/usr/bin/env bash
# Installs bubblewrap (the tool sandbox of the coding runtime; the process
# driver refuses to start without it) and util-linux's prlimit when missing,
# checks that bwrap can create the sandbox's namespaces here, and prints
# AGENTHOST_TEST_BWRAP. Tests use bwrap from PATH; under CI=true a missing
# or unusable bwrap fails them.
set -eu
# Only the export lines go to the real stdout (fd 3); everything the tools
# print goes to stderr.
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
missing=
command -v bwrap >/dev/null || missing="$missing bubblewrap"
command -v prlimit >/dev/null || missing="$missing util-linux"
if [ -n "$missing" ]; then
  echo "installing$missing" >&2
  apt_install $missing
fi
bin=$(command -v bwrap)
# The namespaces the sandbox uses (internal/sandbox): user, pid, net, ipc, uts.
if ! "$bin" --unshare-user --uid 1000 --gid 1000 --unshare-pid --unshare-net --unshare-ipc --unshare-uts \
    --ro-bind / / --proc /proc --dev /dev -- true; then
  echo "bwrap cannot create namespaces here (user namespaces disabled? see docs/security.md)" >&2
  exit 1
fi
echo "export AGENTHOST_TEST_BWRAP='$bin'" >&3
