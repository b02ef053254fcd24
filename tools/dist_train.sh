#!/usr/bin/env bash
# Train with torchrun on one host: bash tools/dist_train.sh CONFIG NUM_PROCS [ARGS for tools/train.py]
# One process per GPU (NCCL); without CUDA the processes run on the CPU (Gloo).
# The rendezvous uses a free local port (torchrun --standalone); PYTHON sets the interpreter.
set -euo pipefail
if [ "$#" -lt 2 ]; then
    echo "usage: bash $0 CONFIG NUM_PROCS [ARGS]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
# a path or a name on PATH (PYTHON=python3); else python3, else python
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=$(command -v python3 || command -v python)
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec "$PYTHON" -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node="$NPROC" \
    "$ROOT/tools/train.py" "$CONFIG" "$@"
