#!/usr/bin/env bash
# Sets up everything a fresh machine needs: Debian's Chromium (browser tests), the pinned Python
# packages, the frontend's npm packages, and this package (editable, which builds the dashboard).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  echo "== installing chromium (apt)"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

echo "== installing Python packages"
python -m pip install -q --disable-pip-version-check -r requirements-dev.txt

echo "== installing npm packages and building the dashboard"
(cd frontend && npm ci --no-audit --no-fund --loglevel=error)
python -m pip install -q --disable-pip-version-check --no-build-isolation -e .
test -f tensorboard_archviz/static/index.js
echo "== setup done"
