"""``python -m opentad.ops``: which native ops are compiled and which fall back.

Exit status 0 always; ``--require NAME`` (repeatable, or ``all``) exits 1 when
one of the named ops is not compiled, for scripts that must have them.
"""

from __future__ import annotations

import argparse
import sys

from . import OP_SPECS, op_status
from .specs import BUILD_HINT


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m opentad.ops", description=__doc__.splitlines()[0])
    parser.add_argument("--require", action="append", default=[], help="op name (or 'all') that must be compiled")
    args = parser.parse_args(argv)
    required = {spec.name for spec in OP_SPECS} if "all" in args.require else set(args.require)
    unknown = required - {spec.name for spec in OP_SPECS}
    if unknown:
        parser.error(f"unknown op(s) {sorted(unknown)}; known: {[spec.name for spec in OP_SPECS]}")
    rows = []
    missing_required = []
    for spec, compiled, reason in op_status():
        state = "compiled" if compiled else "fallback (pure PyTorch)"
        rows.append((spec.name, spec.device, state, spec.summary, "" if compiled else reason))
        if spec.name in required and not compiled:
            missing_required.append(spec.name)
    widths = [max(len(str(r[i])) for r in rows + [("op", "device", "status", "computes", "")]) for i in range(4)]
    header = ("op", "device", "status", "computes")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row[:4], widths)))
        if row[4]:
            print(f"    why: {row[4]}")
    if any(not compiled for _, compiled, _ in op_status()):
        print(f"\nMissing ops run their fallback with the same results. {BUILD_HINT}")
    if missing_required:
        print(f"\nRequired but not compiled: {missing_required}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
