#!/usr/bin/env bash
# Builds the web meeting client into web/dist (served by meet-server at `/`, MEET_WEB__DIR).
# Idempotent: `npm ci` only when node_modules is missing or older than package-lock.json; then `npm run build`
# (tsc --noEmit type check, then the esbuild bundle + index.html + styles.css). Needs Node.js >= 20 and npm.
set -euo pipefail
cd "$(dirname "$0")"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! command -v npm >/dev/null 2>&1; then
  echo "web/build.sh: npm is missing (install Node.js >= 20 and npm)" >&2
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "npm ci in web/"
  npm ci --no-audit --no-fund --loglevel=error
fi
log "building the web client into web/dist"
npm run --silent build
