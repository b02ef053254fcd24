# Sourced by tools/dist_train.sh and tools/dist_test.sh (not run on its own):
# checks CONFIG and NUM_PROCS, finds the interpreter, sets the CPU threads per
# process and the launcher pid, then leaves CONFIG, NPROC, ROOT and PYTHON set
# and the remaining arguments in "$@" of the caller (which shifts 2 itself).
if [ "$#" -lt 2 ]; then
    echo "usage: bash $0 CONFIG NUM_PROCS [ARGS]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
# (the caller shifts CONFIG and NUM_PROCS off)
# a positive integer (torchrun's own message for 0 or 'two' is a stack trace)
if ! [[ "$NPROC" =~ ^[0-9]+$ ]] || [ "$((10#$NPROC))" -eq 0 ]; then
    echo "$(basename "$0"): error: NUM_PROCS must be a positive integer (the number of processes, one per GPU), got '$NPROC'; usage: bash $0 CONFIG NUM_PROCS [ARGS]" >&2
    exit 2
fi
NPROC=$((10#$NPROC))  # 007 -> 7
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON=${PYTHON:-"$ROOT/.venv/bin/python"}
# a path or a name on PATH (PYTHON=python3); else python3, else python
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=$(command -v python3 || command -v python)
# CPU threads per process, unless set: the usable cores shared by the NPROC processes (at least 1),
# waiting passively when more than 1 (tools/train.py and tools/test.py set the same for a plain process; docs/ddp.md).
if [ -z "${OMP_NUM_THREADS:-}" ]; then
    CORES=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
    PER_PROC=$(( CORES / 10#$NPROC ))
    export OMP_NUM_THREADS=$(( PER_PROC > 0 ? PER_PROC : 1 ))
    if [ "$OMP_NUM_THREADS" -gt 1 ]; then export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}; fi
fi
# torchrun forwards SIGINT/SIGTERM/SIGHUP to the workers (each in a session of its own); a worker also
# ends by itself when this process (exec'd into torchrun, so the same pid) is gone, e.g. after kill -9.
export OPENTAD_LAUNCHER_PID=$$
