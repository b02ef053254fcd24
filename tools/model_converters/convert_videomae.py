"""Convert an official VideoMAE fine-tuned checkpoint for the AdaTAD configs.

Example::

    python tools/model_converters/convert_videomae.py \\
        vit_s_k400_ft.pth pretrained/vit-small-p16_videomae-k400-pre_16x4x1_kinetics-400_my.pth --arch small

The output holds ``{"state_dict": {"backbone.*", "cls_head.fc_cls.*"}, "meta"}``,
the layout of upstream OpenTAD's converted files. Nothing is downloaded.
"""
import argparse
import logging

from opentad.models.backbones.pretrained import VIDEOMAE_ARCHS, convert_videomae_file


def main(argv=None, description=__doc__):
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("in_file", help="official checkpoint (.pth with 'module' or 'model')")
    parser.add_argument("out_file", help="converted checkpoint to write")
    parser.add_argument("--arch", choices=sorted(VIDEOMAE_ARCHS), default=None, help="check the weights are this size")
    parser.add_argument("--img-size", type=int, default=224, help="frame size of the stored position table")
    parser.add_argument("--num-frames", type=int, default=16, help="clip length of the stored position table")
    parser.add_argument("--drop-head", action="store_true", help="do not keep the classifier (cls_head.fc_cls)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    found = convert_videomae_file(
        args.in_file,
        args.out_file,
        arch=args.arch,
        img_size=args.img_size,
        num_frames=args.num_frames,
        keep_head=not args.drop_head,
    )
    print(f"Converted {args.in_file} -> {args.out_file}: {found}")


if __name__ == "__main__":
    main()
