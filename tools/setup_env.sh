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
  # requirement files, setup.py, and the native ops' sources and build logic
  { cat "$ROOT/requirements.txt" "$ROOT/requirements/tests.txt" \
        "$ROOT/requirements/constraints.txt" "$ROOT/setup.py" \
        "$ROOT/opentad/ops/_build.py" "$ROOT/opentad/ops/specs.py"
    find "$ROOT/csrc" -type f | LC_ALL=C sort | xargs cat
    echo "OPENTAD_EXT=${OPENTAD_EXT:-auto}"
  } | sha256sum | cut -d' ' -f1
}

want="$(hash_inputs)"
if [[ -x "$VENV/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi

echo "[setup_env] creating environment in $VENV" >&2
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
# Byte-compiled at install (48 s of a 103 s install on one core): with PYTHONDONTWRITEBYTECODE set, as on CI,
# nothing compiled at import is kept, and every test process compiled torch again (the suite: 734 s -> 1036 s)
"${PIP[@]}" -c "$ROOT/requirements/constraints.txt" \
  -r "$ROOT/requirements.txt" -r "$ROOT/requirements/tests.txt"
# Native ops are optional accelerators (docs/install.md): `auto` builds the C++
# ops where a compiler exists and the CUDA ops where nvcc, a CUDA torch and a
# GPU (or TORCH_CUDA_ARCH_LIST) exist; a failed op only warns.
OPENTAD_EXT="${OPENTAD_EXT:-auto}" MAX_JOBS="${MAX_JOBS:-2}" \
  "${PIP[@]}" --no-build-isolation --no-deps -e "$ROOT"
"$VENV/bin/python" -m opentad.ops >&2 || true
echo "$want" > "$STAMP"
echo "[setup_env] done" >&2
