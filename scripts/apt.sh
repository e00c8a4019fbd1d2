# Sourced by the service scripts: apt_install PKG... installs Debian packages
# once, running apt-get update first (fresh machines have no package lists).
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; else
      echo "need root to install $*" >&2; return 1; fi
  else SUDO=; fi
  if [ ! -f /tmp/.agenthost-apt-updated ]; then
    $SUDO apt-get update -qq >&2 3>&- && touch /tmp/.agenthost-apt-updated
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >&2 3>&- </dev/null
}
