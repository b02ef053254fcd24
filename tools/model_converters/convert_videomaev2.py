"""Convert an official VideoMAEv2 checkpoint (e.g. ViT-g, patch 14) for the AdaTAD configs.

Example::

    python tools/model_converters/convert_videomaev2.py \\
        vit_g_hybrid_pt_1200e_k710_ft.pth pretrained/vit-giant-p14_videomaev2-hybrid_pt_1200e_k710_ft_my.pth

VideoMAEv2 uses VideoMAE's key layout, so this is ``convert_videomae.py``
with ``--arch giant`` as the default (``--trust-pickle`` included). Nothing
is downloaded.
"""
import sys

from convert_videomae import main

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--arch" or a.startswith("--arch=") for a in argv):
        argv += ["--arch", "giant"]
    status = main(argv, description=__doc__)
    if status:  # exit only on failure (runpy callers get a plain return)
        sys.exit(status)
