#!/usr/bin/env bash
# Installs zsh and fish when missing, so that the completion scripts of
# `agenthost completion zsh|fish` are checked by the shells themselves
# (internal/cli's TestCompletion), and prints AGENTHOST_TEST_SHELLS=1.
set -eu
# Only the export lines go to the real stdout (fd 3).
exec 3>&1 1>&2
. "$(dirname "$0")/apt.sh"
missing=
command -v zsh >/dev/null || missing="$missing zsh"
command -v fish >/dev/null || missing="$missing fish"
if [ -n "$missing" ]; then
  echo "installing$missing (to check the completion scripts)" >&2
  apt_install $missing
fi
echo "export AGENTHOST_TEST_SHELLS=1" >&3
