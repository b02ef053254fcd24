"""Check EPIC-Sounds annotations: bad segments, labels missing from the class map, missing feature (or video) files.

    python tools/prepare_data/epic_sounds/check_data.py [--ann A] [--class-map M] [--data D] [--suffix .npz] [--write-block-list]

Defaults are the paths of configs/_base_/datasets/epic_sounds/
(CHECK_DEFAULTS in opentad/datasets/check_ego.py; see --help). One line per
finding with its count and the first offenders. Exits with status 1 when a label is
unknown (the datasets refuse it) or a file is missing and no block list was written
(--write-block-list writes the missing videos to <data>/missing_files.txt).
"""
import sys

from opentad.datasets.check_ego import check_command

if __name__ == "__main__":
    lines, status = check_command(sys.argv[1:], "epic_sounds")
    print("\n".join(lines))
    sys.exit(status)
