#!/usr/bin/env bash
# Set up the environment (idempotent) and run the CPU test suite.
# Extra arguments go to pytest, e.g. `bash tools/run_tests.sh tests/datasets -x`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash tools/setup_env.sh
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec "$ROOT/.venv/bin/python" -m pytest -q "$@"
