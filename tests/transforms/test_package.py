"""opentad.transforms is the bottom layer the models and the datasets share: registry lookups reach both halves,
and building the models' pipelines never imports the data code."""
import subprocess
import sys
from pathlib import Path

from opentad.registry import TRANSFORMS, build
from opentad.transforms import Rearrange

# Imports opentad.models, builds the backbone wrapper's pipelines (as configs write them) and the training
# augmentation, runs the pipelines, and prints which opentad.datasets modules got imported.
_SCRIPT = """
import sys
import torch
import opentad.models
from opentad.registry import BACKBONES, build
from opentad.transforms import Compose
pre = Compose([dict(type="Rearrange", keys=["frames"], ops="b n c (t1 t) h w -> (b t1) n c t h w", t1=2)])
post = Compose([dict(type="Reduce", keys=["feats"], ops="b n c t h w -> b c t", reduction="mean"),
                dict(type="Rearrange", keys=["feats"], ops="(b t1) c t -> b c (t1 t)", t1=2),
                dict(type="Interpolate", keys=["feats"], size=8)])
assert pre({"frames": torch.zeros(1, 1, 3, 8, 4, 4)})["frames"].shape == (2, 1, 3, 4, 4, 4)
assert post({"feats": torch.zeros(2, 1, 5, 4, 2, 2)})["feats"].shape == (1, 5, 8)
recipe = [dict(type="mmaction.RandomResizedCrop"), dict(type="mmaction.Resize", scale=(8, 8), keep_ratio=False),
          dict(type="mmaction.Flip"), dict(type="mmaction.ImgAug"), dict(type="mmaction.ColorJitter")]
build(dict(type="AugmentDataPreprocessor", augment=recipe, mean=[0, 0, 0], std=[1, 1, 1]), BACKBONES)
print(sorted(m for m in sys.modules if m == "opentad.datasets" or m.startswith("opentad.datasets.")))
"""


def test_models_and_their_pipelines_do_not_import_the_datasets():
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_upstream_names_are_registered():
    """Names from both halves (opentad.transforms and opentad.datasets.transforms) resolve through TRANSFORMS."""
    for name in [
        "Collect", "ConvertToTensor", "Rearrange", "Reduce", "Interpolate", "Padding", "ChannelReduction",
        "PrepareVideoInfo", "LoadFrames", "LoadFeats", "RandomTrunc", "SlidingWindowTrunc",
        "mmaction.DecordInit", "mmaction.DecordDecode", "mmaction.Resize", "mmaction.RandomResizedCrop",
        "mmaction.CenterCrop", "mmaction.Flip", "mmaction.ImgAug", "mmaction.ColorJitter", "mmaction.FormatShape",
        "mmaction.RandomCrop", "VideoInit", "VideoDecode", "ResizeFeat", "LoadSnippetFrames", "LoadCachedFrames",
        "BatchClipAugment",
    ]:
        assert TRANSFORMS.get(name) is not None, name
    assert TRANSFORMS.get("mmaction.Resize") is TRANSFORMS.get("Resize")
    assert isinstance(build(dict(type="Rearrange", keys=["x"], ops="t c -> c t"), TRANSFORMS), Rearrange)
