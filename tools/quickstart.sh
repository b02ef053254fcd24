#!/usr/bin/env bash
# The main job on a fresh machine, end to end:
#   1. set up .venv (idempotent),
#   2. generate the synthetic THUMOS-format dataset (idempotent),
#   3. train QLoRA-AdaTAD on it through tools/dist_train.sh,
#   4. evaluate on the synthetic test split and print the mAP table.
# Usage: bash tools/quickstart.sh [NUM_PROCESSES]   (default 1; CPU uses Gloo)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NPROC="${1:-1}"
CONFIG="${QUICKSTART_CONFIG:-configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora.py}"

bash tools/setup_env.sh
PY="$ROOT/.venv/bin/python"
export PATH="$ROOT/.venv/bin:$PATH"

"$PY" tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
bash tools/dist_train.sh "$CONFIG" "$NPROC" --id 0
