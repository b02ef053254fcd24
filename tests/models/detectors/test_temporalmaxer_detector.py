"""TemporalMaxer detector: what trains, seeded determinism, unpadded inputs, inference, optimizer groups."""
import os

import torch

from opentad.models.detectors import TemporalMaxer
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "configs", "_base_", "models",
                    "temporalmaxer.py")


def _model(neck_norm=None, seed=0):
    cfg = load_config(BASE).model.to_dict()
    cfg["projection"].update(in_channels=12, out_channels=16, drop_out=0.2)
    cfg["neck"].update(in_channels=16, out_channels=16)
    if neck_norm is not None:
        cfg["neck"]["norm_cfg"] = neck_norm
    cfg["rpn_head"].update(num_classes=3, in_channels=16, feat_channels=16)
    torch.manual_seed(seed)
    return build(cfg, DETECTORS)


def _batch(length=100):
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 12, length, generator=g)
    masks = torch.ones(2, length, dtype=torch.bool)
    masks[1, 70:] = False
    x = x * masks[:, None]
    gts = [torch.tensor([[3.0, 20.0], [40.0, 90.0]]), torch.tensor([[10.0, 14.0]])]
    labels = [torch.tensor([0, 2]), torch.tensor([1])]
    return x, masks, gts, labels


def test_gradients_reach_every_parameter_and_nothing_else():
    model = _model()
    assert isinstance(model, TemporalMaxer)
    x, masks, gts, labels = _batch()
    x.requires_grad_(False)
    losses = model(x, masks, [{}, {}], gt_segments=gts, gt_labels=labels)
    assert set(losses) == {"cls_loss", "reg_loss", "cost"}
    losses["cost"].backward()
    names = {n for n, _ in model.named_parameters()}
    # THUMOS14's neck: GN without affine parameters; the pooling branch and the assigner hold none either
    assert {n.split(".")[0] for n in names} == {"projection", "neck", "rpn_head"}
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        # a level's regression scale only learns from that level's positives, which a short batch may lack
        assert param.grad.abs().sum() > 0 or name.startswith("rpn_head.scale."), name
    assert sum(float(model.rpn_head.scale[i].scale.grad.abs()) > 0 for i in range(6)) >= 2
    assert not model.rpn_head.loss_normalizer.requires_grad
    gn = _model(neck_norm=dict(type="GN", num_groups=4, affine=False))
    assert not any(n.startswith("neck") for n, _ in gn.named_parameters())


def test_same_seed_same_loss_and_gradients():
    runs = []
    for _ in range(2):
        model = _model(seed=3)
        x, masks, gts, labels = _batch()
        torch.manual_seed(11)  # the input dropout
        losses = model(x, masks, [{}, {}], gt_segments=gts, gt_labels=labels)
        losses["cost"].backward()
        runs.append((losses["cost"].detach(), [p.grad.clone() for p in model.parameters()]))
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


def test_inputs_are_not_padded_and_inference_runs():
    model = _model().eval()
    x, masks, _, _ = _batch(length=75)  # not a multiple of 32: levels of ceil(75 / 2^l) steps
    feats, level_masks = model.extract_feat(x, masks)
    assert [f.shape[-1] for f in feats] == [75, 38, 19, 10, 5, 3]
    metas = [dict(video_name=f"v{i}", fps=30.0, duration=10.0, snippet_stride=4, window_start_frame=0,
                  offset_frames=0) for i in range(2)]
    post = dict(sliding_window=False, nms=dict(use_soft_nms=True, sigma=0.5, max_seg_num=20, iou_threshold=0,
                                               min_score=0.001, multiclass=True, voting_thresh=0.7))
    results = model(x, masks, metas, return_loss=False, post_cfg=post, ext_cls=["a", "b", "c"])
    assert set(results) == {"v0", "v1"} and all(d["label"] in "abc" for d in results["v0"])


def test_optimizer_groups_cover_every_parameter():
    model = _model()
    decay, no_decay = model.get_optim_groups(dict(lr=1e-4, weight_decay=0.05))
    params = list(model.parameters())
    assert len(decay["params"]) + len(no_decay["params"]) == len(params)
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv1d)]
    assert {id(p) for p in decay["params"]} == {id(p) for p in convs}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
