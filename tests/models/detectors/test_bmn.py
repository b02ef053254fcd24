"""BMN: upstream's state-dict keys (strict load), hand-worked candidates and post-processing, gradients,
determinism, upstream's optimizer groups.

The expected names and shapes are written out from upstream's module structure for the THUMOS-14 I3D
model (configs/_base_/models/bmn.py + configs/bmn/thumos_i3d.py: in_channels 2048, width 256 with
groups 4, TEM of two branches, BM layer 256 -> 128 -> 512 -> 128 with 32 samples, PEM 128 wide with
2 convs, tscale 128, dscale 64):

* ``projection.convs.{0,1}.conv``: ConvModule (no norm) -> ``weight`` [256, C_in / 4, 3], ``bias``
* ``rpn_head.tem.{0,1}.{0,1}.conv``: per kind ConvModule(256, 256, 3, groups 4), ConvModule(256, 1, 1)
* ``roi_head.proposal_roi_extractor``: ``reduce_dim.0`` Conv1d(256, 128, 3), ``conv3d.0``
  Conv2d(128, 512, (32, 1)), ``conv2d.0`` Conv2d(512, 128, 1)
* ``roi_head.proposal_head.head``: ``{0,1}.0`` Conv2d(128, 128, 3), ``2`` Conv2d(128, 2, 1)
"""
import math
import os

import pytest
import torch

from opentad.models.detectors.bmn import map_candidates
from opentad.models.utils.post_processing import batched_nms
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")


def upstream_thumos_i3d_shapes():
    shapes = {"projection.convs.0.conv.weight": (256, 512, 3), "projection.convs.1.conv.weight": (256, 64, 3)}
    shapes.update({f"projection.convs.{i}.conv.bias": (256,) for i in range(2)})
    for k in range(2):
        shapes[f"rpn_head.tem.{k}.0.conv.weight"] = (256, 64, 3)
        shapes[f"rpn_head.tem.{k}.0.conv.bias"] = (256,)
        shapes[f"rpn_head.tem.{k}.1.conv.weight"] = (1, 256, 1)
        shapes[f"rpn_head.tem.{k}.1.conv.bias"] = (1,)
    ex, pem = "roi_head.proposal_roi_extractor", "roi_head.proposal_head.head"
    shapes.update({
        f"{ex}.reduce_dim.0.weight": (128, 256, 3), f"{ex}.reduce_dim.0.bias": (128,),
        f"{ex}.conv3d.0.weight": (512, 128, 32, 1), f"{ex}.conv3d.0.bias": (512,),
        f"{ex}.conv2d.0.weight": (128, 512, 1, 1), f"{ex}.conv2d.0.bias": (128,),
        f"{pem}.0.0.weight": (128, 128, 3, 3), f"{pem}.0.0.bias": (128,),
        f"{pem}.1.0.weight": (128, 128, 3, 3), f"{pem}.1.0.bias": (128,),
        f"{pem}.2.weight": (2, 128, 1, 1), f"{pem}.2.bias": (2,),
    })
    return shapes


def test_upstream_checkpoint_loads_strictly():
    model = build(load_config(os.path.join(ROOT, "configs", "bmn", "thumos_i3d.py")).model, DETECTORS)
    shapes = upstream_thumos_i3d_shapes()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == shapes
    # upstream's reset_params: zero biases everywhere (PyTorch's default init would not give that)
    assert all(v.abs().sum() == 0 for k, v in model.state_dict().items() if k.endswith("bias"))
    state = {k: torch.full(s, 0.5) for k, s in shapes.items()}
    model.load_state_dict(state, strict=True)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def _logit(p):
    return torch.log(torch.tensor(p) / (1 - torch.tensor(p)))


def test_candidates_by_hand():
    """Starts: p = [.1 .9 .2 .3] -> over half the max {1}, peaks {1, 3}, forced first {0}: {0, 1, 3}.
    Ends: p = [.2 .1 .8 .3] -> over half {2}, peaks {0, 2}, forced last {3}: {0, 2, 3}.
    Valid (d, t) with start t and end t + d, duration-major: [0,1] [3,4] [1,3] [0,3] [1,4] [0,4]."""
    prob = torch.stack((_logit([0.1, 0.9, 0.2, 0.3]), _logit([0.2, 0.1, 0.8, 0.3]))).sigmoid()
    iou_map = torch.randn(2, 4, 4, generator=torch.Generator().manual_seed(0))
    segments, scores = map_candidates(prob, iou_map)
    pairs = [(0, 0), (0, 3), (1, 1), (2, 0), (2, 1), (3, 0)]  # (d, t)
    assert segments.tolist() == [[t, t + d + 1] for d, t in pairs]
    conf = iou_map.sigmoid()
    assert torch.equal(scores, torch.stack([conf[0, d, t] * conf[1, d, t] for d, t in pairs]))
    _, weighted = map_candidates(prob, iou_map, "iou*s*e")
    # upstream's order: start * end * (the product of the two confidences)
    expected = torch.stack([prob[0, t] * prob[1, t + d] * (conf[0, d, t] * conf[1, d, t]) for d, t in pairs])
    assert torch.equal(weighted, expected)
    with pytest.raises(ValueError, match="score_type"):
        map_candidates(prob, iou_map, "iou*s")


def _tiny(tscale=16, dscale=8):
    cfg = load_config(os.path.join(ROOT, "configs", "_base_", "models", "bmn.py")).model.to_dict()
    cfg["projection"].update(in_channels=8, out_channels=8)
    cfg["rpn_head"].update(in_channels=8)
    cfg["roi_head"]["proposal_generator"].update(tscale=tscale, dscale=dscale)
    cfg["roi_head"]["proposal_roi_extractor"].update(in_channels=8, hid_channels=4, roi_channels=6,
                                                     out_channels=4, tscale=tscale, dscale=dscale, num_sample=4)
    cfg["roi_head"]["proposal_head"].update(in_channels=4, feat_channels=4)
    return build(cfg, DETECTORS)


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randn(2, 8, 16, generator=g)
    gt = [torch.tensor([[2.0, 7.0]]), torch.tensor([[1.0, 4.0], [9.0, 15.0]])]
    return dict(inputs=inputs, masks=torch.ones(2, 16, dtype=torch.bool), metas=[{}, {}], gt_segments=gt,
                gt_labels=[torch.zeros(1, dtype=torch.long), torch.zeros(2, dtype=torch.long)])


def test_losses_sum_to_cost_reach_every_parameter_and_repeat_under_a_seed():
    torch.manual_seed(0)
    model = _tiny()
    torch.manual_seed(1)
    losses = model(**_batch())
    assert set(losses) == {"loss_tem", "loss_cls", "loss_reg", "cost"}
    assert torch.equal(losses["cost"], losses["loss_tem"] + losses["loss_cls"] + losses["loss_reg"])
    losses["cost"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    torch.manual_seed(1)
    assert torch.equal(model(**_batch())["cost"], losses["cost"])  # BalancedL2Loss draws from the seed


def _metas():
    meta = dict(fps=10.0, duration=100.0, snippet_stride=10, offset_frames=0, window_start_frame=0)
    return [dict(meta, video_name="a"), dict(meta, video_name="b")]


def _classifier(video, segments, scores):
    return segments, [f"{video}-cls"] * len(segments), scores


def test_post_processing_needs_an_external_classifier_and_names_with_it():
    model = _tiny().eval()
    with torch.no_grad():
        predictions = model(**dict(_batch(), metas=_metas()), return_loss=False,
                            post_cfg=dict(sliding_window=False, nms=None), ext_cls=_classifier)
    assert set(predictions) == {"a", "b"} and all(d["label"] == "a-cls" for d in predictions["a"])
    raw = model.forward_test(_batch()["inputs"], _batch()["masks"])
    segments, scores = map_candidates(raw[0][0].sigmoid(), raw[1][0])
    assert len(predictions["a"]) == len(segments)
    # every candidate in seconds (stride 10 frames at 10 fps), as a set: a random init can tie scores
    expected = sorted((tuple(round(v * 10 / 10.0, 2) for v in segment), round(score, 4))
                      for segment, score in zip(segments.tolist(), scores.tolist()))
    assert sorted((tuple(d["segment"]), d["score"]) for d in predictions["a"]) == expected
    with pytest.raises(ValueError, match="external_cls"):
        model.post_processing(raw, _metas(), dict(sliding_window=False), ext_cls=["x"])


def test_windows_get_nms_even_when_sliding_and_proposal_mode_scales_by_tscale():
    model = _tiny().eval()
    raw = model.forward_test(_batch()["inputs"], _batch()["masks"])
    nms = dict(use_soft_nms=False, iou_threshold=0.5, multiclass=False, max_seg_num=3)
    out = model.post_processing(raw, _metas(), dict(sliding_window=True, nms=nms), ext_cls=_classifier)
    assert len(out["a"]) == 3  # upstream's BMN runs NMS per window, sliding or not
    segments = torch.tensor([[0.0, 4.0], [1.0, 5.0]])
    scores = torch.tensor([0.9, 0.8])
    labels = torch.zeros(2)
    soft = dict(use_soft_nms=True, sigma=0.3, multiclass=False, max_seg_num=5, method=2)
    scaled = model.window_nms(segments, scores, labels, dict(nms=soft, proposal=True))
    reference = batched_nms(segments / 16, scores, labels, **soft)  # upstream: NMS on segments / tscale
    assert torch.equal(scaled[0], reference[0] * 16) and torch.equal(scaled[1], reference[1])


def test_optimizer_groups_are_upstreams():
    model = _tiny()
    groups = model.get_optim_groups(dict(lr=1e-4, weight_decay=1e-4))
    assert [g["weight_decay"] for g in groups] == [pytest.approx(1e-3), 1e-4, 1e-4]
    names = {id(p): n for n, p in model.named_parameters()}
    assert [{names[id(p)].split(".")[0] for p in g["params"]} for g in groups] == [
        {"projection"}, {"rpn_head"}, {"roi_head"}]
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert math.isclose(groups[0]["lr"], 1e-4)
