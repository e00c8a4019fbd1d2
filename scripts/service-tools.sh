#!/usr/bin/env bash
# Installs, when missing, the tools internal/cli's tests check the
# deployment files with: zsh and fish (the scripts of `agenthost completion
# zsh|fish`, parsed and run by the shells themselves) and systemd-analyze
# (deploy/systemd/*.service, verified), and curl and ip for the docs
# walkthrough (internal/docstest). Prints AGENTHOST_TEST_TOOLS=1.
set -eu
# Only the export lines go to the real stdout (fd 3).
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
missing=
command -v zsh >/dev/null || missing="$missing zsh"
command -v fish >/dev/null || missing="$missing fish"
command -v systemd-analyze >/dev/null || missing="$missing systemd"
# The docs walkthrough (internal/docstest) runs the docs' curl commands, in a
# network namespace of its own (ip brings its loopback up).
command -v curl >/dev/null || missing="$missing curl"
command -v ip >/dev/null || missing="$missing iproute2"
command -v promtool >/dev/null || missing="$missing prometheus"
if [ -n "$missing" ]; then
  echo "installing$missing (to check the completion scripts, systemd units and metrics)" >&2
  apt_install $missing
fi
echo "export AGENTHOST_TEST_TOOLS=1" >&3
