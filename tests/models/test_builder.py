"""Upstream OpenTAD's builder names (``from opentad.models import build_detector`` ...) build from plain dicts."""
import os

import pytest
import torch

from opentad.registry import ConfigError
from opentad.utils.config import load_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE_MODEL = os.path.join(ROOT, "configs", "_base_", "models", "actionformer.py")


@pytest.fixture(scope="module")
def tiny_model():
    """Upstream's ActionFormer base model shrunk to 16 channels and 3 levels, as a plain dict."""
    model = load_config(BASE_MODEL).model.to_dict()
    model["projection"].update(in_channels=8, out_channels=16, arch=(2, 2, 2), max_seq_len=32,
                               attn_cfg=dict(n_head=2, n_mha_win_size=3))
    model["neck"].update(in_channels=16, out_channels=16, num_levels=3)
    model["rpn_head"].update(num_classes=3, in_channels=16, feat_channels=16)
    model["rpn_head"]["prior_generator"].update(strides=[1, 2, 4], regression_range=[(0, 4), (4, 8), (8, 10000)])
    return model


def test_the_upstream_import_lines_work():
    from opentad.datasets import build_dataloader, build_dataset  # noqa: F401  (upstream's names)
    from opentad.evaluations import build_evaluator  # noqa: F401
    from opentad.models import build_detector  # noqa: F401
    from opentad.models.builder import build_backbone, build_head, build_loss, build_neck  # noqa: F401
    from opentad.models.builder import build_prior_generator, build_projection, build_roi_extractor  # noqa: F401


def test_build_detector_runs_the_built_model(tiny_model):
    from opentad.models import build_detector

    torch.manual_seed(0)
    detector = build_detector(tiny_model)
    assert type(detector).__name__ == "ActionFormer"
    assert detector.rpn_head.num_classes == 3
    inputs, masks = torch.randn(2, 8, 32), torch.ones(2, 32, dtype=torch.bool)
    losses = detector(inputs, masks, metas=[{}, {}], gt_segments=[torch.tensor([[2.0, 9.0]])] * 2,
                      gt_labels=[torch.tensor([1])] * 2, return_loss=True)
    assert torch.isfinite(losses["cost"])
    assert tiny_model["type"] == "ActionFormer"  # the dict given is not consumed


def test_each_part_builder_builds_its_kind(tiny_model):
    from opentad.models import (
        build_head,
        build_loss,
        build_neck,
        build_prior_generator,
        build_projection,
        build_roi_extractor,
    )

    projection = build_projection(tiny_model["projection"])
    assert type(projection).__name__ == "Conv1DTransformerProj"
    feats, masks = projection(torch.randn(1, 8, 32), torch.ones(1, 32, dtype=torch.bool))
    assert [f.shape[-1] for f in feats] == [32, 16, 8]  # the stem's level, then arch[2]=2 levels, each half as long
    neck = build_neck(tiny_model["neck"])
    assert type(neck).__name__ == "FPNIdentity"
    outs, _ = neck(feats, masks)
    assert [tuple(o.shape) for o in outs] == [(1, 16, 32), (1, 16, 16), (1, 16, 8)]
    head = build_head(tiny_model["rpn_head"])
    assert type(head).__name__ == "ActionFormerHead" and head.num_classes == 3
    points = build_prior_generator(tiny_model["rpn_head"]["prior_generator"])([torch.zeros(1, 16, 8)] * 3)
    assert [p.shape[0] for p in points] == [8, 8, 8]
    focal = build_loss(dict(type="FocalLoss", alpha=0.5, gamma=1.0))
    assert (focal.alpha, focal.gamma) == (0.5, 1.0)
    extractor = build_roi_extractor(dict(type="ROIAlignExtractor", roi_size=4))
    assert type(extractor).__name__ == "ROIAlignExtractor" and extractor.roi_size == 4


def test_build_backbone_builds_the_wrapper_and_a_bare_backbone():
    from opentad.models import build_backbone

    vit = dict(type="VisionTransformerAdapter", img_size=32, patch_size=16, embed_dims=32, depth=1, num_heads=2,
               num_frames=4, total_frames=4, adapter_index=[0], return_feat_map=True)
    assert type(build_backbone(vit)).__name__ == "VisionTransformerAdapter"
    wrapper = build_backbone(dict(type="mmaction.Recognizer3D", backbone=vit, custom=dict(pretrain=None)))
    assert type(wrapper).__name__ == "BackboneWrapper"
    assert type(wrapper.model.backbone).__name__ == "VisionTransformerAdapter"


def test_a_type_of_another_kind_is_named_in_the_error(tiny_model):
    from opentad.models import build_head

    with pytest.raises(ConfigError, match="FPNIdentity"):
        build_head(tiny_model["neck"])
