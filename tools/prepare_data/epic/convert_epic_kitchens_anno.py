"""Convert the official EPIC-Kitchens-100 CSVs into upstream OpenTAD's annotation files (same arguments as upstream).

    python tools/prepare_data/epic/convert_epic_kitchens_anno.py \
        epic-kitchens-100-annotations data/epic_kitchens-100/annotations

reads EPIC_100_{train,validation,test_timestamps,video_info}.csv and writes
epic_kitchens_full.json, epic_kitchens_verb.json, epic_kitchens_noun.json,
category_idx_verb.txt and category_idx_noun.txt. Rules: opentad/datasets/convert_ego.py.
"""
import argparse
import sys

from opentad.datasets.convert_ego import convert_epic_csvs, write_epic_kitchens_files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv_dir", help="folder of the official CSVs")
    parser.add_argument("save_path", help="output folder (data/epic_kitchens-100/annotations)")
    args = parser.parse_args(argv)
    database = convert_epic_csvs(args.csv_dir)
    for path in write_epic_kitchens_files(database, args.save_path):
        print(f"wrote {path}")
    counts = {}
    for info in database.values():
        counts[info["subset"]] = counts.get(info["subset"], 0) + 1
    print(", ".join(f"{subset}: {n} videos" for subset, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
