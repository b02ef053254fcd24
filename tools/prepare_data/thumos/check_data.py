"""Check that every video of a THUMOS14 annotation file has its feature (or video) file.

Example:

    python tools/prepare_data/thumos/check_data.py \
        --ann data/thumos-14/annotations/thumos_14_anno.json \
        --data data/thumos-14/features/i3d_actionformer_stride4_thumos \
        --suffix .npy --write-block-list

Prints the number of videos per subset (THUMOS14 as OpenTAD uses it: 200 in
"training", 211 in "validation") and the missing files. With
--write-block-list, the missing names go to <data>/missing_files.txt, the
block_list the THUMOS configs read. Exits with status 1 if a file is missing
and no block list was written.
"""
import argparse
import os
import sys

from opentad.datasets.convert import find_missing_files

EXPECTED = {"training": 200, "validation": 211}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ann", required=True, help="OpenTAD annotation file")
    parser.add_argument("--data", required=True, help="folder of features or videos")
    parser.add_argument("--suffix", default=".npy", help="file ending (.npy for features, .mp4 for videos)")
    parser.add_argument("--prefix", default="", help="file name prefix")
    parser.add_argument("--write-block-list", action="store_true", help="write <data>/missing_files.txt")
    args = parser.parse_args()

    counts, missing = find_missing_files(args.ann, args.data, suffix=args.suffix, prefix=args.prefix)
    for subset, n in sorted(counts.items()):
        note = "" if EXPECTED.get(subset, n) == n else f" (THUMOS14 in OpenTAD has {EXPECTED[subset]})"
        print(f"{subset}: {n} videos{note}")
    shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
    print(f"missing files: {len(missing)}" + (f" ({shown})" if missing else ""))
    if args.write_block_list:
        path = os.path.join(args.data, "missing_files.txt")
        with open(path, "w", encoding="utf8") as f:
            f.writelines(f"{name}\n" for name in missing)
        print(f"wrote {path}")
        return 0
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
