#!/usr/bin/env bash
# The main job on a fresh machine, end to end, as the real QLoRA-AdaTAD recipe runs:
#   1. set up .venv (idempotent),
#   2. generate the synthetic THUMOS-format dataset (idempotent),
#   3. pretrain the tiny video ViT on synthetic clips of their own seed, the
#      stand-in for a VideoMAE checkpoint (cached: skipped when up to date),
#   4. QLoRA-AdaTAD on top through tools/dist_train.sh: the ViT quantized to
#      NF4 and frozen, adapters and LoRA trained, evaluated on the test split,
#   5. print the mAP table of the run.
# Usage: bash tools/quickstart.sh [NUM_PROCESSES]   (default 1; CPU uses Gloo)
# About 8 minutes on 2 CPU cores, set-up included (docs/qlora.md, "The synthetic end-to-end run").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NPROC="${1:-1}"
CONFIG="${QUICKSTART_CONFIG:-configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora_pretrained.py}"
RUN_ID="${QUICKSTART_ID:-0}"

bash tools/setup_env.sh
PY="$ROOT/.venv/bin/python"
# The same floating-point code paths every run (the table is the same each time on
# one machine; across hosts it has still differed: docs/qlora.md, "Reproducibility"):
# a fixed thread count, and PyTorch's, MKL's and oneDNN's kernels held to AVX2.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(( NPROC > 1 ? 1 : 2 ))}" OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
export ATEN_CPU_CAPABILITY="${ATEN_CPU_CAPABILITY:-avx2}" MKL_CBWR="${MKL_CBWR:-AVX2}"
export ONEDNN_MAX_CPU_ISA="${ONEDNN_MAX_CPU_ISA:-AVX2}"

"$PY" tools/prepare_data/synthetic/generate.py --out data/synthetic-thumos
"$PY" tools/prepare_data/synthetic/pretrain_vit.py "$CONFIG"
WORK_DIR="exps/quickstart/$(basename "${CONFIG%.py}")"
rm -rf "$WORK_DIR/gpu${NPROC}_id${RUN_ID}"   # a fresh run each time
bash tools/dist_train.sh "$CONFIG" "$NPROC" --id "$RUN_ID" --cfg-options "work_dir=$WORK_DIR"
echo
echo "mAP on the synthetic test split (%):"
"$PY" tools/summarize_results.py "$WORK_DIR/gpu${NPROC}_id${RUN_ID}"
