"""Convert an official VideoMAE fine-tuned checkpoint for the AdaTAD configs.

Example::

    python tools/model_converters/convert_videomae.py \\
        vit_s_k400_ft.pth pretrained/vit-small-p16_videomae-k400-pre_16x4x1_kinetics-400_my.pth --arch small

The output holds ``{"state_dict": {"backbone.*", "cls_head.fc_cls.*"}, "meta"}``,
the layout of upstream OpenTAD's converted files, and loads weights-only.
The input is read weights-only too; a file that needs full unpickling is
refused unless ``--trust-pickle`` is given (only for a file you trust:
unpickling can run code stored in it). Nothing is downloaded.
"""
import argparse
import logging
import sys

from opentad.models.backbones.pretrained import VIDEOMAE_ARCHS, convert_videomae_file
from opentad.utils.safe_load import UnreadableFileError, UntrustedFileError


def main(argv=None, description=__doc__):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("in_file", help="official checkpoint (.pth with 'module' or 'model')")
    parser.add_argument("out_file", help="converted checkpoint to write")
    parser.add_argument("--arch", choices=sorted(VIDEOMAE_ARCHS), default=None, help="check the weights are this size")
    parser.add_argument("--img-size", type=int, default=224, help="frame size of the stored position table")
    parser.add_argument("--num-frames", type=int, default=16, help="clip length of the stored position table")
    parser.add_argument("--drop-head", action="store_true", help="do not keep the classifier (cls_head.fc_cls)")
    parser.add_argument(
        "--trust-pickle", action="store_true",
        help="read IN_FILE with full unpickling; it can run code stored in the file: only for a file you trust",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        found = convert_videomae_file(
            args.in_file,
            args.out_file,
            arch=args.arch,
            img_size=args.img_size,
            num_frames=args.num_frames,
            keep_head=not args.drop_head,
            trust_pickle=args.trust_pickle,
        )
    except UntrustedFileError as exc:
        sys.stderr.write(
            f"{parser.prog}: error: {args.in_file} needs full unpickling ({exc.refused}), which can run code stored "
            "in it; rerun with --trust-pickle only if you trust the file\n"
        )
        return 1
    except (FileNotFoundError, UnreadableFileError, KeyError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        sys.stderr.write(f"{parser.prog}: error: {message}\n")
        return 1
    print(f"Converted {args.in_file} -> {args.out_file}: {found}")
    return 0


if __name__ == "__main__":
    status = main()
    if status:  # exit only on failure (runpy callers get a plain return)
        sys.exit(status)
