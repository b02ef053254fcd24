"""Check an ActivityNet-style dataset (ActivityNet-1.3, HACS-1.1.1, FineAction, Charades) before training.

Example:

    python tools/prepare_data/activitynet/check_data.py --dataset activitynet \
        --ann data/activitynet-1.3/annotations/activity_net.v1-3.min.json \
        --class-map data/activitynet-1.3/annotations/category_idx.txt \
        --data data/activitynet-1.3/features/anet_tsp_npy_unresize --write-block-list

Prints the videos per subset (and how many the dataset's published files
hold), then one line per kind of problem with its count and the first
offenders: unusable segments (end <= start, outside the video, not numbers),
segments reaching outside [0, duration] (kept by the datasets, clipped by the
pipelines), labels missing from the class map, videos without a usable
duration, and videos without a feature / video file. --dataset sets the file
name prefix of the configs (ActivityNet's files are "v_<video>.npy").
With --write-block-list, the missing names go to <data>/missing_files.txt,
the block_list the configs read. Exit status: 0 when the data is usable,
1 otherwise (missing files do not count once the block list is written).
"""
import argparse
import os
import sys

from tqdm import tqdm

from opentad.datasets.data_check import check_annotations

#: dataset -> (file name prefix in upstream's configs, videos per subset in the published annotation file)
DATASETS = {
    "activitynet": ("v_", {"training": 10024, "validation": 4926, "testing": 5044}),
    "hacs": ("", {}),
    "fineaction": ("", {}),
    "charades": ("", {"training": 7985, "testing": 1863}),
    "other": ("", {}),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", choices=sorted(DATASETS), default="activitynet", help="which dataset (default: %(default)s)"
    )
    parser.add_argument("--ann", required=True, help="annotation JSON ({'database': {video: {...}}})")
    parser.add_argument("--class-map", help="class map, one class per line (checks the labels)")
    parser.add_argument("--data", help="folder of the features or videos (checks that each video has its file)")
    parser.add_argument("--prefix", help="file name prefix (default: the dataset's, 'v_' for ActivityNet)")
    parser.add_argument("--suffix", default=".npy", help="file ending (.npy for features, .mp4 for videos)")
    parser.add_argument("--subsets", nargs="+", help="only these subsets (default: all)")
    parser.add_argument("--write-block-list", action="store_true", help="write <data>/missing_files.txt")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    default_prefix, expected = DATASETS[args.dataset]
    prefix = default_prefix if args.prefix is None else args.prefix
    try:
        report = check_annotations(
            args.ann,
            class_map=args.class_map,
            data_path=args.data,
            prefix=prefix,
            suffix=args.suffix,
            subsets=args.subsets,
            progress=lambda videos: tqdm(videos, desc="videos", unit="video", file=sys.stderr),
        )
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    lines = report.lines()
    notes = [f"{s}: {n}" for s, n in sorted(expected.items()) if report.videos.get(s, n) != n]
    if notes:
        lines[0] += f" (the published {args.dataset} file has {', '.join(notes)})"
    print("\n".join(lines))
    if args.write_block_list and args.data is not None:
        path = os.path.join(args.data, "missing_files.txt")
        with open(path, "w", encoding="utf8") as f:
            f.writelines(f"{name}\n" for name in report.missing_files)
        print(f"wrote {path} ({len(report.missing_files)} videos)")
        report.missing_files = []
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
