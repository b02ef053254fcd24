#!/usr/bin/env bash
# Train with torchrun on one host: bash tools/dist_train.sh CONFIG NUM_PROCS [ARGS for tools/train.py]
# One process per GPU (NCCL); without CUDA the processes run on the CPU (Gloo).
# The rendezvous uses a free local port (torchrun --standalone); PYTHON sets the interpreter.
# Argument checks, threads per process and the launcher pid: tools/launch_common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
shift 2
exec "$PYTHON" -m torch.distributed.run --standalone --nnodes=1 --nproc_per_node="$NPROC" \
    "$ROOT/tools/train.py" "$CONFIG" "$@"
