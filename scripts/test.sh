#!/usr/bin/env bash
# Sets everything up, then runs the whole test suite (unit, real TensorBoard, real Chromium).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONDONTWRITEBYTECODE=1 TF_CPP_MIN_LOG_LEVEL=2
python -m pytest tests -q -p no:cacheprovider --timeout=900 --durations=25 "$@"
