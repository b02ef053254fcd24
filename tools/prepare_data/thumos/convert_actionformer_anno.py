"""Convert ActionFormer's thumos14.json into OpenTAD's annotation file and class map.

Example (from the repository root, with the package installed or PYTHONPATH=.):

    python tools/prepare_data/thumos/convert_actionformer_anno.py \
        --src thumos14.json \
        --out data/thumos-14/annotations/thumos_14_anno.json \
        --class-map data/thumos-14/annotations/category_idx.txt

The logic lives in opentad/datasets/convert.py; see docs/data.md.
"""
import argparse

from opentad.datasets.convert import DEFAULT_SUBSET_MAP, UPSTREAM_REMOVED_VIDEOS, convert_actionformer_file


def parse_subset_map(text: str) -> dict:
    """``"Validation=training,Test=validation"`` -> ``{"Validation": "training", "Test": "validation"}``."""
    pairs = [item.split("=") for item in text.split(",") if item.strip()]
    if not pairs or any(len(pair) != 2 or not all(p.strip() for p in pair) for pair in pairs):
        raise argparse.ArgumentTypeError(f"expected SRC=DST[,SRC=DST...], got {text!r}")
    return {src.strip(): dst.strip() for src, dst in pairs}


def main() -> None:
    default_map = ",".join(f"{k}={v}" for k, v in DEFAULT_SUBSET_MAP.items())
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", required=True, help="ActionFormer's thumos14.json")
    parser.add_argument("--out", required=True, help="OpenTAD annotation file to write")
    parser.add_argument("--class-map", required=True, help="class map to write (classes sorted by label_id)")
    parser.add_argument(
        "--subset-map", type=parse_subset_map, default=DEFAULT_SUBSET_MAP, help=f"default: {default_map}"
    )
    parser.add_argument(
        "--drop-videos",
        nargs="*",
        default=list(UPSTREAM_REMOVED_VIDEOS),
        help="videos left out (default: the two upstream removes); pass no name to keep all",
    )
    args = parser.parse_args()
    counts = convert_actionformer_file(
        args.src, args.out, args.class_map, subset_map=args.subset_map, drop_videos=args.drop_videos
    )
    listing = ", ".join(f"{subset}: {n}" for subset, n in sorted(counts.items()))
    print(f"Wrote {args.out} ({listing} videos) and {args.class_map}")


if __name__ == "__main__":
    main()
