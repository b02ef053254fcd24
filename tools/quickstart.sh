#!/usr/bin/env bash
# The main job on a fresh machine, end to end:
#   1. set up .venv (idempotent),
#   2. generate the synthetic THUMOS-format dataset (idempotent),
#   3. train QLoRA-AdaTAD on it through tools/dist_train.sh (evaluating on the
#      synthetic test split as it goes),
#   4. print the mAP table of the run.
# Usage: bash tools/quickstart.sh [NUM_PROCESSES]   (default 1; CPU uses Gloo)
# About 10 minutes on 2 CPU cores (docs/qlora.md, "The synthetic end-to-end run").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NPROC="${1:-1}"
CONFIG="${QUICKSTART_CONFIG:-configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora.py}"
RUN_ID="${QUICKSTART_ID:-0}"

bash tools/setup_env.sh
PY="$ROOT/.venv/bin/python"

"$PY" tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
WORK_DIR="exps/quickstart/$(basename "${CONFIG%.py}")"
rm -rf "$WORK_DIR/gpu${NPROC}_id${RUN_ID}"   # a fresh run each time
bash tools/dist_train.sh "$CONFIG" "$NPROC" --id "$RUN_ID" --cfg-options "work_dir=$WORK_DIR"
echo
echo "mAP on the synthetic test split (%):"
"$PY" tools/summarize_results.py "$WORK_DIR/gpu${NPROC}_id${RUN_ID}"
