# Sourced by tools/dist_train.sh, tools/dist_test.sh and tools/slurm_train.sh (not run on its own); defines:
#   launch_error MESSAGE     one line 'SCRIPT: error: MESSAGE' on stderr, exit status 2
#   launch_check_args ARGS   CONFIG and NUM_PROCS are there, NUM_PROCS a positive integer: sets CONFIG, NPROC
#   launch_rendezvous        RDZV_ARGS, torchrun's rendezvous flags, from NNODES, NODE_RANK, MASTER_ADDR, MASTER_PORT
#   launch_prepare ARGS      all of the above, then the interpreter, the CPU threads per process and the
#                            launcher pid: leaves CONFIG, NPROC, ROOT, PYTHON and RDZV_ARGS set (the caller shifts 2)
# LAUNCH_USAGE (set before sourcing, else 'CONFIG NUM_PROCS [ARGS]') is the usage line's arguments.
LAUNCH_USAGE=${LAUNCH_USAGE:-"CONFIG NUM_PROCS [ARGS]"}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

launch_error() {
    echo "$(basename "$0"): error: $1" >&2
    exit 2
}

# digits only, read in base 10 ('08' is 8)
_launch_is_count() { [[ "$1" =~ ^[0-9]+$ ]]; }

launch_check_args() {
    if [ "$#" -lt 2 ]; then
        echo "usage: bash $0 $LAUNCH_USAGE" >&2
        exit 2
    fi
    CONFIG=$1
    NPROC=$2
    # a positive integer (torchrun's own message for 0 or 'two' is a stack trace)
    if ! _launch_is_count "$NPROC" || [ "$((10#$NPROC))" -eq 0 ]; then
        launch_error "NUM_PROCS must be a positive integer (the number of processes, one per GPU), got '$NPROC'; usage: bash $0 $LAUNCH_USAGE"
    fi
    NPROC=$((10#$NPROC))  # 007 -> 7
}

# One machine (NNODES unset or 1): torchrun --standalone, a free local port, as before (MASTER_ADDR and
# MASTER_PORT are not used). Several: torchrun's static rendezvous, --node_rank fixed by NODE_RANK, so global
# rank 0 (logs, checkpoints, metrics) runs on the NODE_RANK=0 machine, which hosts the store at
# MASTER_ADDR:MASTER_PORT (default 29500, torchrun's). docs/ddp.md, "Several machines".
launch_rendezvous() {
    local nnodes=${NNODES:-1} rank=${NODE_RANK:-} addr=${MASTER_ADDR:-} port=${MASTER_PORT:-29500}
    if [[ "$nnodes" == *:* ]]; then
        launch_error "NNODES must be the number of machines, got '$nnodes' (elastic MIN:MAX ranges are not supported: every machine starts with the same fixed NNODES)"
    fi
    if ! _launch_is_count "$nnodes" || [ "$((10#$nnodes))" -eq 0 ]; then
        launch_error "NNODES must be a positive integer (the number of machines), got '$nnodes'"
    fi
    nnodes=$((10#$nnodes))
    if [ -z "${NNODES:-}" ] && [ -n "$rank" ] && [ "$rank" != 0 ]; then
        launch_error "NODE_RANK=$rank but NNODES is not set (one machine): set NNODES, the number of machines, on every machine"
    fi
    if [ -n "$rank" ] && { ! _launch_is_count "$rank" || [ "$((10#$rank))" -ge "$nnodes" ]; }; then
        launch_error "NODE_RANK must be an integer from 0 to NNODES-1 = $((nnodes - 1)) (this machine's index, 0 on the machine at MASTER_ADDR), got '$rank' with NNODES=$nnodes"
    fi
    if [ "$nnodes" -eq 1 ]; then
        RDZV_ARGS=(--standalone --nnodes=1)
        return
    fi
    [ -n "$rank" ] || launch_error "NODE_RANK is not set: with NNODES=$nnodes each machine needs its own, 0 to $((nnodes - 1)) (0 on the machine at MASTER_ADDR)"
    [ -n "$addr" ] || launch_error "MASTER_ADDR is not set: with NNODES=$nnodes every machine needs the address (IP or host name) of the NODE_RANK=0 machine"
    if [[ "$addr" =~ [[:space:]] ]] || { [[ "$addr" == *:* ]] && ! [[ "$addr" =~ ^\[[0-9A-Fa-f:.]+\]$ ]]; }; then
        launch_error "MASTER_ADDR must be a host name or IP address without a port (the port goes in MASTER_PORT; an IPv6 address in brackets, e.g. [fd00::1]), got '$addr'"
    fi
    if ! _launch_is_count "$port" || [ "$((10#$port))" -lt 1 ] || [ "$((10#$port))" -gt 65535 ]; then
        launch_error "MASTER_PORT must be a port number from 1 to 65535 (a free TCP port on the machine at MASTER_ADDR), got '$port'"
    fi
    rank=$((10#$rank)) port=$((10#$port))
    RDZV_ARGS=(--nnodes="$nnodes" --node_rank="$rank" --master_addr="$addr" --master_port="$port")
}

launch_prepare() {
    launch_check_args "$@"
    launch_rendezvous
    if [ "${RDZV_ARGS[0]}" != --standalone ]; then
        echo "$(basename "$0"): one of several machines, torchrun's static rendezvous: ${RDZV_ARGS[*]}" >&2
    fi
    PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
    # a path or a name on PATH (PYTHON=python3); else python3, else python
    command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=$(command -v python3 || command -v python)
    # CPU threads per process, unless set: the usable cores shared by the NPROC processes of this machine (at least
    # 1), waiting passively when more than 1 (tools/train.py and tools/test.py set the same for a plain process;
    # docs/ddp.md).
    if [ -z "${OMP_NUM_THREADS:-}" ]; then
        local cores per_proc
        cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
        per_proc=$(( cores / NPROC ))
        export OMP_NUM_THREADS=$(( per_proc > 0 ? per_proc : 1 ))
        if [ "$OMP_NUM_THREADS" -gt 1 ]; then export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}; fi
    fi
    # torchrun forwards SIGINT/SIGTERM/SIGHUP to the workers (each in a session of its own); a worker also
    # ends by itself when this process (exec'd into torchrun, so the same pid) is gone, e.g. after kill -9.
    export OPENTAD_LAUNCHER_PID=$$
}
