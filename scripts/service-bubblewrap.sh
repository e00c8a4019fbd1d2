#!/usr/bin/env bash
# Installs bubblewrap (the agents' tool sandbox; the process driver refuses
# to start without it) and util-linux's prlimit when missing. Prints no
# environment: the tests find bwrap on PATH.
set -eu
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
missing=
command -v bwrap >/dev/null || missing="$missing bubblewrap"
command -v prlimit >/dev/null || missing="$missing util-linux"
if [ -n "$missing" ]; then
  echo "installing$missing" >&2
  apt_install $missing
fi
bwrap --version >&2
