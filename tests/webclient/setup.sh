#!/usr/bin/env bash
# Prepares the web client tests; idempotent and quiet when everything is there.
#  - Node.js / npm and Debian's chromium at /usr/bin/chromium (apt-get; never a downloaded browser)
#  - npm ci in tests/webclient when node_modules is missing or older than package-lock.json
#  - builds the web client (web/build.sh: npm ci + tsc --noEmit + esbuild → web/dist)
# Then, from the repo root (needs target/debug/meet-server):
#   node --test --test-concurrency=1 tests/webclient/
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else SUDO="__none__"; fi
fi

apt_updated=""
apt_install() {
  if [ "$SUDO" = "__none__" ]; then
    echo "need root (or sudo) to apt-get install $*" >&2
    exit 1
  fi
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

command -v node >/dev/null 2>&1 || apt_install nodejs
command -v npm >/dev/null 2>&1 || apt_install npm
[ -x /usr/bin/chromium ] || apt_install chromium

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci in tests/webclient"
  npm ci --no-audit --no-fund --loglevel=error
fi

../../web/build.sh
