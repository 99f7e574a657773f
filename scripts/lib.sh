# Shared by scripts/dev and scripts/test: install what a fresh machine lacks (Debian packages, npm packages).
# Everything here is idempotent and quiet when the thing is already there.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi

apt_updated=""
apt_install() {
  if [ -z "$apt_updated" ]; then
    log "apt-get update"
    $SUDO apt-get update -qq >/dev/null
    apt_updated=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

need_cmd() { # need_cmd COMMAND DEBIAN-PACKAGE...
  local c="$1"; shift
  command -v "$c" >/dev/null 2>&1 || apt_install "$@"
}

ensure_toolchain() {
  command -v cargo >/dev/null 2>&1 || { echo "cargo is required (install Rust with rustup)" >&2; exit 1; }
  need_cmd node nodejs
  need_cmd npm npm
  need_cmd pkg-config pkg-config
  need_cmd patch patch
  scripts/patch-crates # crates.io crates with a small patch of ours (patches/README.md); cargo needs them first
}

# PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres: used as is when it answers, started when it is
# installed but stopped, installed (Debian's package) and configured when missing.
ensure_postgres() {
  need_cmd pg_isready postgresql-client
  if pg_isready -q -h 127.0.0.1 -p 5432; then return 0; fi
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
  fi
  local ver
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  local hba="/etc/postgresql/$ver/main/pg_hba.conf"
  if ! grep -q "meet-test trust" "$hba" 2>/dev/null; then
    log "PostgreSQL $ver: trust auth for local test connections"
    $SUDO sh -c "printf 'host all all 127.0.0.1/32 trust # meet-test trust\nhost all all ::1/128 trust # meet-test trust\nlocal all all trust # meet-test trust\n' | cat - '$hba' > '$hba.new' && mv '$hba.new' '$hba'"
  fi
  log "starting PostgreSQL $ver"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main reload || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 1; done
  echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
  exit 1
}

# Node.js, npm and Debian's Chromium at /usr/bin/chromium for the browser suites (never a downloaded browser, never
# `playwright install`).
ensure_chromium() {
  need_cmd node nodejs
  need_cmd npm npm
  [ -x /usr/bin/chromium ] || apt_install chromium
}

npm_ci() { # npm_ci DIR
  if [ ! -d "$1/node_modules" ] || [ "$1/package-lock.json" -nt "$1/node_modules/.package-lock.json" ]; then
    log "npm ci in $1"
    (cd "$1" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}
