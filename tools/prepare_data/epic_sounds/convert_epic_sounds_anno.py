"""Convert the official EPIC-Sounds CSVs into upstream OpenTAD's annotation file (same arguments as upstream).

    python tools/prepare_data/epic_sounds/convert_epic_sounds_anno.py \
        epic-sounds-annotations data/epic_sounds/annotations

reads EPIC_Sounds_{train,validation,detection_test_videos}.csv and
EPIC_100_video_info.csv (copy it next to them) and writes epic_sounds.json (the
name the EPIC-Sounds config reads; upstream's converter writes
epic_kitchens_sound.json) and category_idx.txt. Rules: opentad/datasets/convert_ego.py.
"""
import argparse
import sys

from opentad.datasets.convert_ego import convert_epic_csvs, write_epic_sounds_files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv_dir", help="folder of the official CSVs and EPIC_100_video_info.csv")
    parser.add_argument("save_path", help="output folder (data/epic_sounds/annotations)")
    args = parser.parse_args(argv)
    for path in write_epic_sounds_files(convert_epic_csvs(args.csv_dir, sounds=True), args.save_path):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
