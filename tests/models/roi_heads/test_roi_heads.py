"""ROIAlignExtractor and AFSDRefineHead: config keys, arithmetic, shapes, checkpoint names."""

import pytest
import torch

from opentad.models.roi_heads import AFSDRefineHead, ROIAlignExtractor
from opentad.models.roi_heads.roi_extractors import Align1DLayer
from opentad.registry import ROI_HEADS, ConfigError, build


def test_extractor_builds_from_upstream_config_keys():
    cfg = dict(type="ROIAlignExtractor", roi_size=16, extend_ratio=0.5, base_stride=1)  # configs/_base_/models/etad.py
    extractor = build(cfg, ROI_HEADS)
    assert isinstance(extractor, ROIAlignExtractor) and extractor.roi_size == 16
    with pytest.raises(ConfigError, match="roi_sise"):
        build(dict(type="ROIAlignExtractor", roi_sise=16), ROI_HEADS)
    with pytest.raises(ValueError, match="method"):
        ROIAlignExtractor(method="bilinear")


def test_align1d_extractor_extends_and_pools_like_the_layer():
    gen = torch.Generator().manual_seed(0)
    feat = torch.randn(2, 3, 32, generator=gen)
    proposals = torch.tensor([[[4.0, 8.0], [10.0, 20.0]], [[0.0, 2.0], [25.0, 31.0]]])
    extractor = ROIAlignExtractor(roi_size=4, extend_ratio=0.5, base_stride=2, method="align1d")
    out = extractor(feat, proposals)
    assert out.shape == (2, 2, 3, 4)
    # by hand: [s, e] -> [s - 0.5 (e - s), e + 0.5 (e - s)] / 2, with the batch index in front
    rois = torch.tensor([[0, 1.0, 5.0], [0, 2.5, 12.5], [1, -0.5, 1.5], [1, 11.0, 17.0]])
    expected = Align1DLayer(4, ratio=0)(feat, rois).view(2, 2, 3, 4)
    torch.testing.assert_close(out, expected)
    # a list of proposals gives the same rows, concatenated
    listed = extractor([feat], [proposals[0], proposals[1]])
    torch.testing.assert_close(listed, expected.view(4, 3, 4))


def test_torchvision_extractor_and_deterministic_flag():
    gen = torch.Generator().manual_seed(1)
    feat = torch.randn(1, 2, 16, generator=gen)
    proposals = torch.tensor([[[2.0, 6.0]]])
    out = ROIAlignExtractor(roi_size=4, extend_ratio=0.0)(feat, proposals)
    # torchvision aligned roi_align averages samples at (start - 0.5) + (i + 0.5) * bin / grid
    centers = [2.0 - 0.5 + 0.25 + 0.5 * k for k in range(8)]  # 4 bins x 2 samples
    ramp = torch.arange(16.0).view(1, 1, 16).expand(1, 2, 16).contiguous()
    ramp_out = ROIAlignExtractor(roi_size=4, extend_ratio=0.0)(ramp, proposals)
    expected = torch.tensor(centers).view(4, 2).mean(1)
    torch.testing.assert_close(ramp_out[0, 0, 0], expected)
    det = ROIAlignExtractor(roi_size=4, extend_ratio=0.0, deterministic=True)(feat, proposals)
    assert det.dtype == feat.dtype
    torch.testing.assert_close(det, out, atol=1e-2, rtol=1e-2)  # float16-rounded inputs


def test_fpn_extract_assigns_levels_by_length():
    gen = torch.Generator().manual_seed(2)
    levels = [torch.randn(1, 2, 64, generator=gen), torch.randn(1, 2, 32, generator=gen)]
    proposals = [torch.tensor([[0.0, 4.0], [10.0, 40.0]])]  # lengths 4 -> level 0, 30 -> level 1 (base_scale 8)
    extractor = ROIAlignExtractor(roi_size=4, extend_ratio=0.0, fpn_extract=True, base_scale=8, method="align1d")
    out = extractor(levels, proposals)
    layer = Align1DLayer(4, ratio=0)
    torch.testing.assert_close(out[0], layer(levels[0], torch.tensor([[0.0, 0.0, 4.0]]))[0])
    torch.testing.assert_close(out[1], layer(levels[1], torch.tensor([[0.0, 5.0, 20.0]]))[0])


AFSD_KEYS = [  # names as upstream's checkpoints have them
    "loc_proposal_branch.cur_point_conv.0.conv1d.weight",
    "loc_proposal_branch.cur_point_conv.1.weight",
    "loc_proposal_branch.lr_conv.0.conv1d.bias",
    "loc_proposal_branch.roi_conv.1.bias",
    "conf_proposal_branch.proposal_conv.0.conv1d.weight",
    "prop_loc_head.conv1d.weight",
    "prop_conf_head.conv1d.bias",
    "center_head.conv1d.weight",
]


def test_afsd_refine_head_from_upstream_config():
    cfg = dict(
        type="AFSDRefineHead",
        in_channels=512,
        num_classes=2,
        overlap_thresh=0.6,
        loc_weight=1.0,
        loc_bounded=True,
        use_smooth_l1=True,
    )  # configs/_base_/models/afsd.py
    head = build(cfg, ROI_HEADS)
    assert isinstance(head, AFSDRefineHead) and head.overlap_thresh == 0.6
    state = head.state_dict()
    assert all(k in state for k in AFSD_KEYS)
    assert state["prop_conf_head.conv1d.weight"].shape == (2, 512, 1)
    assert state["center_head.conv1d.weight"].shape == (1, 512, 3)
    with pytest.raises(ValueError, match="multiple of 32"):
        AFSDRefineHead(in_channels=100, num_classes=2)
    # the proposal branches are as wide as the input (upstream: 512, its only working width)
    narrow = AFSDRefineHead(in_channels=64, num_classes=2).state_dict()
    assert narrow["loc_proposal_branch.lr_conv.0.conv1d.weight"].shape == (128, 64, 1)
    assert narrow["loc_proposal_branch.proposal_conv.0.conv1d.weight"].shape == (64, 256, 1)


def test_afsd_refine_head_forward_shapes_and_gradients():
    head = AFSDRefineHead(in_channels=512, num_classes=3)
    gen = torch.Generator().manual_seed(3)
    frame = torch.randn(2, 512, 16, generator=gen, requires_grad=True)
    levels = [torch.randn(2, 512, t, generator=gen) for t in (8, 4)]
    segments = [torch.rand(2, t, 4, generator=gen) * t for t in (8, 4)]
    frame_segments = [torch.rand(2, t, 4, generator=gen) * 16 for t in (8, 4)]
    out = head.forward_train(frame, levels, levels, segments, frame_segments)
    start, end, loc, conf, center, s_loc, e_loc, s_conf, e_conf = out
    assert start.shape == end.shape == (2, 16, 256)
    assert loc.shape == (2, 12, 2) and conf.shape == (2, 12, 3) and center.shape == (2, 12, 1)
    assert s_loc.shape == e_loc.shape == s_conf.shape == e_conf.shape == (2, 8, 512)
    (loc.sum() + conf.sum() + s_loc.sum()).backward()
    assert frame.grad is not None and frame.grad.abs().sum() > 0


def test_boundary_max_pooling_module_from_registry():
    pool = build(dict(type="BoundaryMaxPooling", backend="torch"), ROI_HEADS)
    feat = torch.tensor([[[1.0, 4.0, 2.0, 0.0], [0.0, 1.0, 5.0, 3.0]]])
    seg = torch.tensor([[[0.0, 3.0, 3.0, 3.0], [2.0, 2.0, 0.0, 1.0]]])
    # channel 0 pools start regions [0, 3] and [2, 2]; channel 1 end regions [3, 3] and [0, 1]
    assert pool(feat, seg).tolist() == [[[4.0, 2.0], [3.0, 1.0]]]
