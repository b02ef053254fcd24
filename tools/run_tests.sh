#!/usr/bin/env bash
# Set up the environment (idempotent) and run the CPU test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh tests/datasets -x`.
#
# With 2 or more usable cores the suite runs in that many pytest-xdist workers (at most 8,
# `--dist loadgroup`: tests sharing an expensive fixture stay in one worker); on 2 cores this took
# the suite from 539 s to 329 s (docs/install.md). OPENTAD_TEST_WORKERS=N sets the count (1: one
# process); `-n`/`--numprocesses` or `-p no:xdist` among the arguments leave it to pytest, and
# `--pdb`/`--trace` (which xdist refuses) run one process.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
PY="$ROOT/.venv/bin/python"
workers="${OPENTAD_TEST_WORKERS:-$("$PY" -c 'from opentad.utils.process import usable_cores; print(min(8, usable_cores()))')}"
if ! [[ "$workers" =~ ^[0-9]+$ ]]; then
  echo "run_tests.sh: OPENTAD_TEST_WORKERS=$workers is not a whole number (1: one process)" >&2
  exit 2
fi
workers=$((10#$workers))  # "08" is 8, not an octal error
xdist=(-n "$workers" --dist loadgroup)
for arg in "$@" ${PYTEST_ADDOPTS:-}; do
  case "$arg" in -n*|--numprocesses*|no:xdist|-pno:xdist|--pdb|--trace) xdist=() ;; esac
done
(( workers >= 2 )) || xdist=()
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$PY" -m pytest -q ${xdist[@]+"${xdist[@]}"} "$@"
