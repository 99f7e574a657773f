#!/usr/bin/env bash
# Prepares the browser tests; idempotent and quiet when everything is there.
#  - Node.js / npm and Debian's chromium at /usr/bin/chromium (apt-get; never a downloaded browser)
#  - Debian's coturn (turnserver) for the TURN relay test (turn-relay.test.mjs starts its own on loopback)
#  - npm ci in tests/browser when node_modules is missing or older than package-lock.json
#  - bundles the test page (page/ + socket.io-client + mediasoup-client) with esbuild into dist/
# Then, from the repo root: node --test --test-concurrency=1 tests/browser/
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ensure_chromium
command -v turnserver >/dev/null 2>&1 || apt_install coturn
# ffmpeg/ffprobe: the recording test checks every recorded file with real decoders, and the server makes composites
command -v ffmpeg >/dev/null 2>&1 && command -v ffprobe >/dev/null 2>&1 || apt_install ffmpeg
npm_ci tests/browser
log "bundling the test page into tests/browser/dist"
(cd tests/browser && node build.mjs --quiet)
