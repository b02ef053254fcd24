"""Print the THUMOS results table (mAP at each tIoU and the average) of finished runs, as Markdown.

    python tools/summarize_results.py exps/thumos/adatad [exps/other/gpu2_id0 ...] [--configs configs] [--recipe-gpus 2]

Each argument is a run folder (gpu{N}_id{ID}/) or a folder holding some. One
row per run: GPUs, batch per GPU and global, backbone, setting, trainable
parameters, mAP. Runs whose batch set-up differs from their config's recipe
are listed under the table with a warning. See docs/usage.md, "Summarizing runs".
"""
import argparse
import os
import sys

from opentad.apis.results import format_markdown, summarize_runs


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Tabulate the mAP of finished runs (Markdown)")
    parser.add_argument("work_dirs", nargs="+", metavar="WORK_DIR", help="run folders, or folders holding them")
    parser.add_argument("--configs", default="configs",
                        help="where the recipes (the original configs) are (default: configs)")
    parser.add_argument("--recipe-gpus", type=int, default=None,
                        help="GPUs the recipe was published with, when not known for the config")
    parser.add_argument("--full-paths", action="store_true",
                        help="name rows by full path (default: relative to the common folder)")
    return parser.parse_args(argv)


def row_names(paths, full):
    if full or len(paths) < 2:
        return list(paths)
    common = os.path.commonpath([os.path.abspath(p) for p in paths])
    return [os.path.relpath(os.path.abspath(p), common) for p in paths]


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        runs = summarize_runs(args.work_dirs, configs_root=args.configs, recipe_gpus=args.recipe_gpus)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(format_markdown(runs, names=row_names([r.work_dir for r in runs], args.full_paths)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
