#!/usr/bin/env bash
# Train with torchrun: bash tools/dist_train.sh CONFIG NUM_PROCS [ARGS for tools/train.py]
# NUM_PROCS processes on this machine, one per GPU (NCCL); without CUDA they run on the CPU (Gloo).
# One machine by default: the rendezvous uses a free local port (torchrun --standalone).
# Several machines: run it on each with the same NNODES, MASTER_ADDR (the NODE_RANK=0 machine) and
# MASTER_PORT (default 29500), and NODE_RANK 0..NNODES-1 (docs/ddp.md, "Several machines").
# PYTHON sets the interpreter. Argument checks, rendezvous flags, threads per process and the launcher
# pid: tools/launch_common.sh.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/launch_common.sh"
launch_prepare "$@"
shift 2
exec "$PYTHON" -m torch.distributed.run "${RDZV_ARGS[@]}" --nproc_per_node="$NPROC" \
    "$ROOT/tools/train.py" "$CONFIG" "$@"
