#!/usr/bin/env bash
# The Debian packages `make demo` and `make test` need, installed when missing, so that on a fresh
# Debian 12 or 13 machine, as root, the README's two commands are the whole set-up. Without root (or
# without apt-get) it names what is missing and the command that installs it, and stops.
#   system-packages.sh demo|test
set -euo pipefail
purpose=${1:-test}
py=${PY:-python3}
needed=()
command -v dockerd >/dev/null || needed+=(docker.io)   # the farm-node containers (dockerd.sh)
command -v debootstrap >/dev/null || needed+=(debootstrap) # the node image (node-image.sh)
command -v zstd >/dev/null || needed+=(zstd)           # the llama.cpp build cache's archives
"$py" -c 'import ensurepip, venv' 2>/dev/null || needed+=(python3-venv) # make venv
if [ "$purpose" = test ]; then
  [ -x /usr/bin/chromium ] || needed+=(chromium)       # the dashboard's browser tests
fi
[ ${#needed[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "make $purpose needs these Debian packages: ${needed[*]}" >&2
  echo "install them as root: apt-get install -y --no-install-recommends ${needed[*]}" >&2
  exit 1
fi
echo "installing the Debian packages make $purpose needs: ${needed[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${needed[@]}" >/dev/null
