#!/usr/bin/env bash
# Sets everything up, trains the demo models briefly (writing to logs/), then starts TensorBoard
# on http://127.0.0.1:6006 — open it and click the "Arch Viz" tab.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export TF_CPP_MIN_LOG_LEVEL=2
LOGDIR="${LOGDIR:-logs}"
python demo/keras_demo.py --logdir "$LOGDIR"
python demo/torch_demo.py --logdir "$LOGDIR"
[ -f demo/compare_demo.py ] && python demo/compare_demo.py --logdir "$LOGDIR"
echo "== open http://127.0.0.1:6006/#archviz"
exec tensorboard --logdir "$LOGDIR" --host 127.0.0.1 --port 6006
