#!/usr/bin/env bash
# Train on a SLURM cluster: one torchrun per machine through srun, NUM_PROCS processes (GPUs) on each.
#   bash tools/slurm_train.sh [--dry-run] CONFIG NUM_PROCS [ARGS for tools/train.py]
# Run it inside an allocation, e.g.
#   sbatch --nodes=2 --gres=gpu:8 --cpus-per-task=64 --wrap "bash tools/slurm_train.sh CONFIG 8"
# or in an salloc shell. It runs
#   srun --nodes=N --ntasks=N --ntasks-per-node=1 --kill-on-bad-exit=1 [--cpus-per-task=C] $SRUN_ARGS \
#        bash tools/slurm_train.sh CONFIG NUM_PROCS [ARGS]
# and each of those tasks runs tools/dist_train.sh with
#   NNODES = SLURM_JOB_NUM_NODES, NODE_RANK = SLURM_NODEID,
#   MASTER_ADDR = the first host of SLURM_JOB_NODELIST (scontrol show hostnames),
#   MASTER_PORT = $MASTER_PORT if set, else 20000 + SLURM_JOB_ID % 10000 (two jobs sharing a machine differ).
# C is SLURM_CPUS_ON_NODE (srun no longer inherits --cpus-per-task since SLURM 22.05); SRUN_ARGS (split on
# spaces) adds or overrides srun options. --dry-run prints the srun command and each machine's dist_train.sh
# command instead of running them. docs/ddp.md, "SLURM".
set -euo pipefail
TOOLS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DRY_RUN=0
if [ "${1-}" = "--dry-run" ]; then
    DRY_RUN=1
    shift
fi
LAUNCH_USAGE="[--dry-run] CONFIG NUM_PROCS [ARGS]"
source "$TOOLS/launch_common.sh"
launch_check_args "$@"

# the variables the job provides, or one line naming what is missing
slurm_var() {
    local name
    for name in "$@"; do
        if [ -n "${!name:-}" ]; then
            printf '%s' "${!name}"
            return
        fi
    done
    launch_error "$1 is not set: run this inside a SLURM allocation (an sbatch script or an salloc shell), e.g. sbatch --nodes=2 --gres=gpu:$NPROC --wrap \"bash $0 CONFIG $NPROC\""
}

# one machine's part: the task srun started on it (marked by OPENTAD_SLURM_STEP)
if [ -n "${OPENTAD_SLURM_STEP:-}" ]; then
    NODE_RANK=$(slurm_var SLURM_NODEID)
    for name in NNODES MASTER_ADDR MASTER_PORT; do
        [ -n "${!name:-}" ] || launch_error "$name did not reach the task srun started on $(hostname) (the job step must get the environment: srun --export=ALL, SLURM_EXPORT_ENV unset)"
    done
    export NODE_RANK
    exec bash "$TOOLS/dist_train.sh" "$@"
fi

JOB_ID=$(slurm_var SLURM_JOB_ID SLURM_JOBID)
NNODES=$(slurm_var SLURM_JOB_NUM_NODES SLURM_NNODES)
NODELIST=$(slurm_var SLURM_JOB_NODELIST SLURM_NODELIST)
command -v scontrol >/dev/null 2>&1 || launch_error "scontrol is not on PATH: it expands SLURM_JOB_NODELIST='$NODELIST' into host names"
HOSTS=()
while IFS= read -r host; do
    if [ -n "$host" ]; then HOSTS+=("$host"); fi
done < <(scontrol show hostnames "$NODELIST")
if [ "${#HOSTS[@]}" -ne "$NNODES" ]; then
    launch_error "scontrol show hostnames '$NODELIST' gave ${#HOSTS[@]} host(s) (${HOSTS[*]-}), but SLURM_JOB_NUM_NODES=$NNODES"
fi
MASTER_ADDR=${HOSTS[0]}
_launch_is_count "$JOB_ID" || launch_error "SLURM_JOB_ID must be a number, got '$JOB_ID'"
MASTER_PORT=${MASTER_PORT:-$(( 20000 + 10#$JOB_ID % 10000 ))}
export NNODES MASTER_ADDR MASTER_PORT
NODE_RANK=0 launch_rendezvous  # the checks each machine makes, once before srun starts
SRUN=(srun --nodes="$NNODES" --ntasks="$NNODES" --ntasks-per-node=1 --kill-on-bad-exit=1)
if [ -n "${SLURM_CPUS_ON_NODE:-}" ]; then SRUN+=(--cpus-per-task="$SLURM_CPUS_ON_NODE"); fi
read -r -a EXTRA <<< "${SRUN_ARGS:-}"
SRUN+=("${EXTRA[@]}" bash "$TOOLS/slurm_train.sh" "$@")

if [ "$DRY_RUN" = 1 ]; then
    printf '%q ' "${SRUN[@]}" | sed 's/ $//'
    echo
    for ((i = 0; i < NNODES; i++)); do
        printf 'machine %d (%s): ' "$i" "${HOSTS[$i]}"
        printf '%q ' NNODES="$NNODES" NODE_RANK="$i" MASTER_ADDR="$MASTER_ADDR" MASTER_PORT="$MASTER_PORT" \
            bash "$TOOLS/dist_train.sh" "$@" | sed 's/ $//'
        echo
    done
    exit 0
fi
echo "$(basename "$0"): job $JOB_ID: $NNODES machine(s) (${HOSTS[*]}), $NPROC process(es) each, rank 0 on $MASTER_ADDR:$MASTER_PORT" >&2
export OPENTAD_SLURM_STEP=1
exec "${SRUN[@]}"
