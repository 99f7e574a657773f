#!/usr/bin/env bash
# Prepares the web client tests; idempotent and quiet when everything is there.
#  - Node.js / npm, Debian's chromium at /usr/bin/chromium and firefox-esr at /usr/bin/firefox-esr (apt-get; never a
#    downloaded browser: puppeteer-core drives the Debian Firefox over WebDriver BiDi)
#  - npm ci in tests/webclient when node_modules is missing or older than package-lock.json
#  - builds the web client (web/build.sh: npm ci + tsc --noEmit + esbuild → web/dist)
# Then, from the repo root (needs target/debug/meet-server):
#   node --test --test-concurrency=1 tests/webclient/
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

ensure_chromium
[ -x /usr/bin/firefox-esr ] || apt_install firefox-esr
npm_ci tests/webclient
web/build.sh
