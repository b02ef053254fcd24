"""VSGN: upstream checkpoints load strictly, gradients reach what trains, seeded runs repeat, and its
post-processing (boundary-weighted scores, background dropped) on hand-worked predictions.

Upstream's key names and shapes are written out from its module structure (upstream OpenTAD
opentad/models/{projections/vsgn_proj,bricks/gcn,necks/vsgn_fpn,dense_heads/{vsgn_rpn_head,tem_head},
roi_heads/vsgn_roi_head}.py):

* ``projection.stem_convs`` ConvModule without norm -> ``conv.{weight,bias}``; ``projection.pyramid_convs.{i}``
  ConvModule (``conv.*``) or xGN (``tconv1.*`` Conv1d k=3, ``nconv1.mlp.*`` Linear(2C, C));
* ``neck.levels_transit.0``, ``neck.levels_{enc,dec,fuse}.{i}.0`` (Sequential(conv, ReLU); dec a ConvTranspose1d);
* ``rpn_head.{cls,reg}_tower.{l}.{0,1}`` (Conv1d without bias, GroupNorm), ``cls_head`` (A * K outputs),
  ``reg_head`` (A * 2), ``tem_head.tem.{0,1,2}.{0,1}.conv.*`` (TemporalEvaluationHead, three unshared branches);
  the anchors and the loss normalisers are no tensors of the state;
* ``roi_head.{start,end}_conv.{0,2}`` (Sequential(conv k=3 stride 2, ReLU, conv k=1)); CornerExtractor has none.
"""
import os

import pytest
import torch

from opentad.models.detectors.vsgn import boundary_scores
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "configs", "vsgn")


def upstream_shapes(in_channels, gcn, channels=256, levels=5, layers=4, anchors=2, classes=21):
    c = channels
    shapes = {"projection.stem_convs.conv.weight": (c, in_channels, 3), "projection.stem_convs.conv.bias": (c,)}
    for i in range(levels):
        if gcn:
            shapes.update({f"projection.pyramid_convs.{i}.tconv1.weight": (c, c, 3),
                           f"projection.pyramid_convs.{i}.tconv1.bias": (c,),
                           f"projection.pyramid_convs.{i}.nconv1.mlp.weight": (c, 2 * c),
                           f"projection.pyramid_convs.{i}.nconv1.mlp.bias": (c,)})
        else:
            shapes.update({f"projection.pyramid_convs.{i}.conv.weight": (c, c, 3),
                           f"projection.pyramid_convs.{i}.conv.bias": (c,)})
    shapes.update({"neck.levels_transit.0.weight": (c, c, 3), "neck.levels_transit.0.bias": (c,)})
    for i in range(levels - 1):
        for name in ("enc", "dec", "fuse"):
            shapes.update({f"neck.levels_{name}.{i}.0.weight": (c, c, 3), f"neck.levels_{name}.{i}.0.bias": (c,)})
    for tower in ("cls_tower", "reg_tower"):
        for layer in range(layers):
            shapes.update({f"rpn_head.{tower}.{layer}.0.weight": (c, c, 3),
                           f"rpn_head.{tower}.{layer}.1.weight": (c,), f"rpn_head.{tower}.{layer}.1.bias": (c,)})
    outputs = anchors * classes
    shapes.update({"rpn_head.cls_head.weight": (outputs, c, 3), "rpn_head.cls_head.bias": (outputs,),
                   "rpn_head.reg_head.weight": (anchors * 2, c, 3), "rpn_head.reg_head.bias": (anchors * 2,)})
    for branch in range(3):
        shapes.update({f"rpn_head.tem_head.tem.{branch}.0.conv.weight": (c, c, 3),
                       f"rpn_head.tem_head.tem.{branch}.0.conv.bias": (c,),
                       f"rpn_head.tem_head.tem.{branch}.1.conv.weight": (1, c, 1),
                       f"rpn_head.tem_head.tem.{branch}.1.conv.bias": (1,)})
    for side in ("start_conv", "end_conv"):
        shapes.update({f"roi_head.{side}.0.weight": (c, c, 3), f"roi_head.{side}.0.bias": (c,),
                       f"roi_head.{side}.2.weight": (1, c, 1), f"roi_head.{side}.2.bias": (1,)})
    return shapes


@pytest.mark.parametrize("config,gcn", [("thumos_i3d.py", False), ("thumos_i3d_gcn.py", True)])
def test_upstream_names_and_shapes_load_strictly(config, gcn):
    model = build(load_config(os.path.join(CONFIGS, config)).model.to_dict(), DETECTORS)
    shapes = upstream_shapes(2048, gcn)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) == set(shapes), (sorted(set(ours) - set(shapes)), sorted(set(shapes) - set(ours)))
    assert ours == shapes
    torch.manual_seed(0)
    checkpoint = {k: torch.randn(shape) for k, shape in shapes.items()}
    result = model.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def tiny_model(num_classes=6, use_gcn=True, seed=0):
    torch.manual_seed(seed)
    cfg = dict(
        type="VSGN",
        projection=dict(type="VSGNPyramidProj", in_channels=8, out_channels=32, pyramid_levels=[2, 4],
                        use_gcn=use_gcn, gcn_kwargs=dict(num_neigh=3)),
        neck=dict(type="VSGNFPN", in_channels=32, out_channels=32, num_levels=2),
        rpn_head=dict(type="VSGNRPNHead", in_channels=32, num_layers=1, num_classes=num_classes, iou_thr=0.5,
                      anchor_generator=dict(pyramid_levels=[2, 4], tscale=16, anchor_scale=[1, 1.5]),
                      tem_head=dict(type="TemporalEvaluationHead", in_channels=32, num_classes=3,
                                    loss=dict(pos_thresh=0.5, gt_type=["startness", "endness", "actionness"])),
                      loss_cls=dict(type="BalancedCELoss"), loss_loc=dict(type="GIoULoss")),
        roi_head=dict(type="VSGNRoIHead", in_channels=32, iou_thr=0.7, loss_loc=dict(type="GIoULoss"),
                      roi_extractor=dict(type="CornerExtractor", beta=8.0, base_stride=2, tscale=16)),
    )
    return build(cfg, DETECTORS)


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(2, 8, 16, generator=g)
    masks = torch.ones(2, 16, dtype=torch.bool)
    masks[1, 12:] = False
    gts = [torch.tensor([[1.0, 6.0], [9.0, 14.0]]), torch.tensor([[2.0, 4.5]])]
    return inputs, masks, gts, [torch.tensor([0, 3]), torch.tensor([4])]


def test_xavier_init_and_every_parameter_trains():
    model = tiny_model()
    assert model.rpn_head.cls_head.bias.abs().sum() == 0 and model.roi_head.start_conv[2].bias.abs().sum() == 0
    inputs, masks, gts, labels = batch()
    losses = model(inputs, masks, [{}] * 2, gt_segments=gts, gt_labels=labels)
    assert list(losses) == ["loss_tem", "loss_stage1_reg", "loss_stage1_cls", "loss_stage2_loc", "cost"]
    assert losses["cost"].item() == pytest.approx(sum(v.item() for k, v in losses.items() if k != "cost"), rel=1e-6)
    losses["cost"].backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert without == []


def test_second_stage_loss_trains_the_first_stage_regression():
    model = tiny_model()
    inputs, masks, gts, labels = batch()
    model(inputs, masks, [{}] * 2, gt_segments=gts, gt_labels=labels)["loss_stage2_loc"].backward()
    assert model.rpn_head.reg_head.weight.grad.abs().sum() > 0  # the segments enter stage 2 with their graph
    assert model.rpn_head.cls_head.weight.grad is None and model.rpn_head.tem_head.tem[0][1].conv.weight.grad is None


def test_seeded_runs_repeat_exactly():
    inputs, masks, gts, labels = batch()
    runs = [tiny_model(seed=3)(inputs, masks, [{}] * 2, gt_segments=gts, gt_labels=labels) for _ in range(2)]
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])


def test_boundary_scores_average_the_two_steps_around_each_boundary():
    start = torch.full((8,), 0.5, dtype=torch.float64)
    start[2], start[3] = 0.8, 0.4
    end = torch.full((8,), 0.5, dtype=torch.float64)
    end[6] = 0.9
    logits = torch.logit(torch.stack((start, end, end)))  # float64: logit then sigmoid within a few ulps
    segments = torch.tensor([[2.5, 6.0], [0.0, 7.0]], dtype=torch.float64)
    # (0.8 + 0.4) / 2 * 0.9 and 0.5 * 0.5
    assert boundary_scores(logits, segments).tolist() == pytest.approx([0.54, 0.25], rel=1e-12)


def hand_predictions(rpn_scores):
    start = torch.full((16,), 0.5)
    start[2], start[3] = 0.8, 0.4
    end = torch.full((16,), 0.5)
    end[6] = 0.9
    tem = torch.logit(torch.stack((start, end, end)))[None]
    segments = torch.tensor([[[2.5, 6.0], [-1.0, 20.0]]])  # the second is clamped to [0, 15]
    return tem, torch.tensor([rpn_scores]), segments


METAS = [dict(video_name="v", fps=1, snippet_stride=1, offset_frames=0, duration=100.0)]
POST = dict(sliding_window=True)


def test_post_processing_drops_the_background_and_weights_by_boundaries():
    model = tiny_model(num_classes=3).eval()
    predictions = hand_predictions([[0.1, 0.6, 0.3], [0.2, 0.2, 0.6]])
    results = model.post_processing(predictions, METAS, POST, ext_cls=["a", "b"])["v"]
    # boundary scores 0.54 and 0.5 * 0.5; foreground scores x that, ranked over (segment, class)
    expected = [([2.5, 6.0], "a", 0.324), ([2.5, 6.0], "b", 0.162), ([0.0, 15.0], "b", 0.15),
                ([0.0, 15.0], "a", 0.05)]
    assert [(r["segment"], r["label"], r["score"]) for r in results] == [
        (s, label, pytest.approx(p, abs=1e-4)) for s, label, p in expected  # rounded to 4 decimals
    ]


def test_one_class_keeps_everything_but_background_plus_one_thresholds():
    one = tiny_model(num_classes=1).eval()
    results = one.post_processing(hand_predictions([[0.001], [0.5]]), METAS, POST, ext_cls=["a"])["v"]
    assert len(results) == 2  # 0.001 * 0.54 is kept: no threshold with one class
    two = tiny_model(num_classes=2).eval()
    results = two.post_processing(hand_predictions([[0.999, 0.001], [0.5, 0.5]]), METAS, POST, ext_cls=["a"])["v"]
    assert [r["score"] for r in results] == [pytest.approx(0.125, abs=1e-4)]  # 0.00054 < pre_nms_thresh 0.001


def test_inference_returns_upstreams_prediction_layout():
    model = tiny_model().eval()
    inputs, masks, _, _ = batch()
    with torch.no_grad():
        tem, scores, segments = model.forward_test(inputs, masks)
    anchors = (8 + 4) * 2
    assert tem.shape == (2, 3, 16) and scores.shape == (2, anchors, 6) and segments.shape == (2, anchors, 2)
    assert torch.allclose(scores.sum(-1), torch.ones(2, anchors))
