#!/usr/bin/env bash
# Prepares the Python client test (tests/python); idempotent and quiet when everything is there.
#  - python3 with venv/ensurepip (Debian's python3-venv via apt-get when missing)
#  - tests/python/.venv (git-ignored) holding exactly the pins of tests/python/requirements.txt (pymediasoup on
#    aiortc, python-socketio, PyJWT, pytest); reinstalled only when requirements.txt changed
# Then, from the repo root: tests/python/.venv/bin/python -m pytest -q tests/python
set -euo pipefail
cd "$(dirname "$0")/../.."
. scripts/lib.sh

venv=tests/python/.venv
req=tests/python/requirements.txt

need_cmd python3 python3
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi
if [ -x "$venv/bin/python" ] && cmp -s "$req" "$venv/.requirements.installed"; then
  exit 0
fi
log "python venv in $venv (pinned pymediasoup, aiortc, python-socketio, PyJWT, pytest)"
if ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$venv" # missing, or left half-made by a python3 without ensurepip
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input --require-virtualenv -r "$req"
cp "$req" "$venv/.requirements.installed"
