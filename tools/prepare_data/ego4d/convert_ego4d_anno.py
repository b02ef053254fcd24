"""Convert the official Ego4D moment-query files into upstream OpenTAD's annotation file (same arguments as upstream).

    python tools/prepare_data/ego4d/convert_ego4d_anno.py \
        ego4d_data/v2/annotations data/ego4d/annotations/ego4d_v2_220429.json

reads moments_{train,val,test_unannotated}.json and writes one entry per clip,
plus category_idx.txt next to the output. Rules: opentad/datasets/convert_ego.py.
"""
import argparse
import os
import sys

from opentad.datasets.convert_ego import convert_ego4d_moments, write_annotation_files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="folder of the official moments_*.json files")
    parser.add_argument("save_path", help="output JSON (data/ego4d/annotations/ego4d_v2_220429.json)")
    args = parser.parse_args(argv)
    database, header, skipped = convert_ego4d_moments(args.data_dir)
    out_dir, name = os.path.split(os.path.abspath(args.save_path))
    path = write_annotation_files(out_dir, name, database, header.get("version"), "category_idx.txt",
                                  date=header.get("date"))
    print(f"wrote {path} ({len(database)} clips) and {os.path.join(out_dir, 'category_idx.txt')}")
    print("left out: " + ", ".join(f"{n} clip(s) with {reason}" for reason, n in skipped.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
