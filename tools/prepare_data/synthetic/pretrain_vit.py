"""Pretrain the plain ViT of a synthetic detection config on synthetic clips.

The quick start's stand-in for a VideoMAE checkpoint: the config's ViT sizes,
trained on synthetic videos of their own seed to name the action of every
tubelet. The file is what the config's ``custom.pretrain`` names, in upstream
OpenTAD's converted layout. A rerun with the same settings returns at once.

Example:
    python tools/prepare_data/synthetic/pretrain_vit.py configs/adatad/synthetic/e2e_synthetic_vit_tiny_qlora.py

See docs/synthetic_data.md ("A pretrained tiny ViT").
"""
from __future__ import annotations

from opentad.utils.process import apply_thread_defaults

apply_thread_defaults()  # before torch loads: the usable cores, waiting passively (docs/ddp.md)

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

from opentad.apis.synthetic_pretrain import PretrainSettings, pretrain_vit, vit_arguments  # noqa: E402
from opentad.utils.config import load_config  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a synthetic end-to-end detection config")
    parser.add_argument("--out", help="checkpoint to write (default: the config's custom.pretrain)")
    parser.add_argument("--force", action="store_true", help="train even if the file is up to date")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    for field in dataclasses.fields(PretrainSettings):
        flag = "--" + field.name.replace("_", "-")
        kind = int if field.default is None else type(field.default)
        parser.add_argument(flag, type=kind, help=f"default: {field.default}")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config)
    wrapper = cfg.model.backbone
    out = args.out or wrapper.get("custom", {}).get("pretrain")
    if not out:
        sys.stderr.write(f"{args.config}: model.backbone.custom.pretrain is not set; pass --out PATH\n")
        return 2
    train = cfg.dataset.train
    frame_stride = int(train.get("feature_stride", 1)) * int(train.get("sample_stride", 1))
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(PretrainSettings)}
    settings = PretrainSettings(**{k: v for k, v in overrides.items() if v is not None})
    pre = wrapper.data_preprocessor
    pretrain_vit(
        vit_arguments(wrapper.backbone),
        settings,
        frame_stride=frame_stride,
        mean=pre.mean,
        std=pre.std,
        out=out,
        force=args.force,
        progress=not args.no_progress,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
