"""AFSD: upstream's state-dict keys (strict load), losses and gradients, determinism, decoding,
post-processing and the boundary-pooling op against its fallback inside the detector.

The expected names and shapes are written out from upstream's module structure for the THUMOS-14
I3D model (upstream configs/_base_/models/afsd.py + configs/afsd/thumos_i3d.py: 2048 input channels,
width 512, 6 levels, 21 classes with the background):

* ``neck.pyramids.0``: kernel-1 ``Unit1D`` (``0.conv1d``) + GroupNorm (``1``); ``pyramids.{1..5}``:
  kernel 3; ``neck.deconv.{0,3,6}.conv1d`` (kernels 3, 3, 1) with GroupNorms ``{1,4,7}``
* ``rpn_head.{loc,conf}_tower.{0,1}``: kernel-3 ``Unit1D`` + GroupNorm; ``loc_head`` (2), ``conf_head``
  (21), kernel 3; ``scales.{0..5}.scale`` of shape ``[1]``
* ``roi_head.{loc,conf}_proposal_branch``: ``cur_point_conv`` (512), ``lr_conv`` (1024), ``roi_conv``
  (512), ``proposal_conv`` (2048 -> 512), each kernel-1 ``Unit1D`` + GroupNorm; ``prop_loc_head`` (2),
  ``prop_conf_head`` (21), kernel 1; ``center_head`` (1), kernel 3
"""
import os

import pytest
import torch

import opentad.ops as ops
from opentad.models.roi_heads.afsd_roi_head import AFSDRefineOutput
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
C, C_IN, CLASSES = 512, 2048, 21


def _unit(shapes, prefix, out, inp, k, norm=True):
    shapes[f"{prefix}.0.conv1d.weight" if norm else f"{prefix}.conv1d.weight"] = (out, inp, k)
    shapes[f"{prefix}.0.conv1d.bias" if norm else f"{prefix}.conv1d.bias"] = (out,)
    if norm:
        shapes[f"{prefix}.1.weight"] = shapes[f"{prefix}.1.bias"] = (out,)


def upstream_thumos_i3d_shapes():
    shapes = {}
    _unit(shapes, "neck.pyramids.0", C, C_IN, 1)
    for i in range(1, 6):
        _unit(shapes, f"neck.pyramids.{i}", C, C, 3)
    for conv, k in ((0, 3), (3, 3), (6, 1)):
        shapes[f"neck.deconv.{conv}.conv1d.weight"] = (C, C, k)
        shapes[f"neck.deconv.{conv}.conv1d.bias"] = (C,)
        shapes[f"neck.deconv.{conv + 1}.weight"] = shapes[f"neck.deconv.{conv + 1}.bias"] = (C,)
    for tower in ("loc_tower", "conf_tower"):
        for i in range(2):
            _unit(shapes, f"rpn_head.{tower}.{i}", C, C, 3)
    _unit(shapes, "rpn_head.loc_head", 2, C, 3, norm=False)
    _unit(shapes, "rpn_head.conf_head", CLASSES, C, 3, norm=False)
    for i in range(6):
        shapes[f"rpn_head.scales.{i}.scale"] = (1,)
    for branch in ("loc_proposal_branch", "conf_proposal_branch"):
        for name, out, inp in (("cur_point_conv", C, C), ("lr_conv", 2 * C, C), ("roi_conv", C, C),
                               ("proposal_conv", C, 4 * C)):
            _unit(shapes, f"roi_head.{branch}.{name}", out, inp, 1)
    _unit(shapes, "roi_head.prop_loc_head", 2, C, 1, norm=False)
    _unit(shapes, "roi_head.prop_conf_head", CLASSES, C, 1, norm=False)
    _unit(shapes, "roi_head.center_head", 1, C, 3, norm=False)
    return shapes


def test_upstream_names_and_shapes_load_strictly():
    model = build(load_config(os.path.join(ROOT, "configs", "afsd", "thumos_i3d.py")).model.to_dict(), DETECTORS)
    expected = upstream_thumos_i3d_shapes()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    upstream = {k: torch.full(s, 0.5) for k, s in expected.items()}
    assert not model.load_state_dict(upstream, strict=True).missing_keys
    assert model.clip_len == 256 and model.scale_factor == 4 and model.loss.loc_weight == 10


def small_model(seed=0, **roi):
    torch.manual_seed(seed)
    cfg = dict(
        type="AFSD",
        neck=dict(type="AFSDNeck", in_channels=8, out_channels=32, frame_num=32, layer_num=3),
        rpn_head=dict(type="AFSDCoarseHead", in_channels=32, out_channels=32, frame_num=32, num_classes=3,
                      layer_num=3, feat_t=16, fpn_strides=[2, 4, 8]),
        roi_head=dict(type="AFSDRefineHead", in_channels=32, num_classes=3, overlap_thresh=0.5, loc_bounded=False,
                      use_smooth_l1=False, **roi),
    )
    return build(cfg, DETECTORS)


def batch(seed=1):
    gen = torch.Generator().manual_seed(seed)
    masks = torch.ones(2, 16, dtype=torch.bool)
    masks[1, 12:] = False
    return dict(inputs=torch.randn(2, 8, 16, generator=gen), masks=masks, metas=[{}, {}],
                gt_segments=[torch.tensor([[2.0, 7.5], [9.0, 15.0]]), torch.tensor([[1.0, 11.0]])],
                gt_labels=[torch.tensor([0, 1]), torch.tensor([1])])


def test_losses_gradients_and_determinism():
    losses = small_model()(**batch())
    assert list(losses) == ["loss_loc", "loss_cls", "loss_iou", "loss_prop_loc", "loss_prop_cls", "loss_start",
                            "loss_end", "cost"]
    assert torch.equal(losses["cost"], sum(v for k, v in losses.items() if k != "cost"))
    model = small_model()
    again = model(**batch())
    assert all(torch.equal(losses[k], again[k]) for k in losses)  # same seed, same losses
    again["cost"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing  # every parameter of the three parts trains
    assert model.rpn_head.loc_head.conv1d.weight.grad.abs().sum() > 0
    assert model.roi_head.center_head.conv1d.weight.grad.abs().sum() > 0


def test_decoding_hand_worked():
    """One prior at centre 0.25 of a 16-frame clip, coarse distances (2, 4), offsets (0.5, -0.5).

    Refined distances (2 + 0.5 * 6 * 0.5, 4 - 1.5) = (3.5, 2.5) around frame 4: [0.5, 6.5] frames,
    times T / frame_num = 8 / 16: [0.25, 3.25] steps. Scores: mean of the softmaxes (1/3 each) and
    (1/4, 1/2, 1/4), times sigmoid(0) = 1/2: foreground (5/24, 7/48).
    """
    model = small_model()
    model.clip_len = 16
    coarse = type("Coarse", (), {})()
    coarse.loc, coarse.conf = torch.tensor([[[2.0, 4.0]]]), torch.zeros(1, 1, 3)
    coarse.priors = torch.tensor([[0.25, 0.0]])
    coarse.loc_feats = coarse.conf_feats = coarse.segments = coarse.frame_segments = None
    refine = AFSDRefineOutput(None, None, torch.tensor([[[0.5, -0.5]]]), torch.log(torch.tensor([[[1.0, 2.0, 1.0]]])),
                              torch.zeros(1, 1, 1), None, None, None, None)
    model.roi_head.forward_test = lambda *args, **kwargs: refine
    segments, scores = model.roi_test((None, None), [torch.ones(1, 8, dtype=torch.bool)], coarse)
    assert segments.tolist() == [[[0.25, 3.25]]]
    torch.testing.assert_close(scores, torch.tensor([[[5 / 24, 7 / 48]]]), rtol=1e-6, atol=0)


def test_inference_results_in_seconds():
    model = small_model().eval()
    b = batch()
    metas = [dict(video_name=f"v{i}", fps=10.0, duration=30.0, snippet_stride=4, offset_frames=0) for i in range(2)]
    with torch.no_grad():
        results = model(b["inputs"], b["masks"], metas, return_loss=False,
                        post_cfg=dict(sliding_window=True, pre_nms_topk=5), ext_cls=["a", "b"])
    assert sorted(results) == ["v0", "v1"] and all(len(r) == 5 for r in results.values())
    for det in results["v0"]:
        assert det["label"] in ("a", "b") and 0 <= det["segment"][0] <= det["segment"][1] <= 16 * 4 / 10.0


def test_compiled_boundary_pooling_gives_the_same_detector_outputs():
    if ops.load_op("boundary_pooling_cpu") is None:
        pytest.skip("boundary_pooling_cpu is not built (python -m opentad.ops)")
    outputs = {}
    for backend in ("compiled", "torch"):
        model = small_model()
        for branch in (model.roi_head.loc_proposal_branch, model.roi_head.conf_proposal_branch):
            branch.boundary_max_pooling.backend = backend
        losses = model(**batch())
        with torch.no_grad():
            _, _, segments, scores = model.eval().forward_test(batch()["inputs"], batch()["masks"])
        outputs[backend] = [losses[k] for k in losses] + [segments, scores]
    assert all(torch.equal(a, b) for a, b in zip(outputs["compiled"], outputs["torch"]))  # max pooling is exact
