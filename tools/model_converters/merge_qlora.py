"""Merge a QLoRA-AdaTAD checkpoint into a plain AdaTAD checkpoint.

Usage:
    python tools/model_converters/merge_qlora.py QLORA_CONFIG QLORA_CHECKPOINT OUT.pth [--cfg-options k=v ...]

Then test with the AdaTAD config of the same ViT, e.g.
    bash tools/dist_test.sh configs/adatad/thumos/e2e_thumos_videomae_s_768x1_160_adapter.py 1 --checkpoint OUT.pth
"""
import argparse

from opentad.cores.merge_qlora import merge_qlora_checkpoint
from opentad.utils.config import DictAction, load_config
from opentad.utils.logger import setup_logger


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="the QLoRA config the checkpoint was trained with")
    parser.add_argument("checkpoint", help="the QLoRA checkpoint")
    parser.add_argument("out", help="where to write the merged AdaTAD checkpoint")
    parser.add_argument("--cfg-options", nargs="+", action=DictAction, default={}, help="config overrides k=v")
    args = parser.parse_args(argv)
    setup_logger()
    cfg = load_config(args.config, args.cfg_options)
    counts = merge_qlora_checkpoint(cfg.model, args.checkpoint, args.out)
    print(f"wrote {args.out}: " + ", ".join(f"{k}: {n} tensors" for k, n in counts.items()))


if __name__ == "__main__":
    main()
