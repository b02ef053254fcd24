#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install
# opentad in editable mode with its runtime and test dependencies.
#
# Idempotent: a stamp file records the hash of the requirement files; when it
# matches, nothing is installed and the script returns in well under a second.
#
# Usage: source <(bash tools/setup_env.sh --print-activate)   # or
#        bash tools/setup_env.sh && . .venv/bin/activate
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${OPENTAD_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"
STAMP="$VENV/.opentad-stamp"

hash_inputs() {
  cat "$ROOT/requirements.txt" "$ROOT/requirements/tests.txt" \
      "$ROOT/requirements/constraints.txt" "$ROOT/setup.py" | sha256sum | cut -d' ' -f1
}

want="$(hash_inputs)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi

echo "[setup_env] creating environment in $VENV" >&2
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
"${PIP[@]}" -c "$ROOT/requirements/constraints.txt" \
  -r "$ROOT/requirements.txt" -r "$ROOT/requirements/tests.txt"
# Native ops are optional; the test environment builds none of them unless
# OPENTAD_EXT is set by the caller.
OPENTAD_EXT="${OPENTAD_EXT:-none}" "${PIP[@]}" --no-build-isolation --no-deps -e "$ROOT"
echo "$want" > "$STAMP"
echo "[setup_env] done" >&2
