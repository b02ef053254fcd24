"""TriDet: upstream's state-dict keys (strict load), padding, class-specific selection, determinism, gradients.

The expected names and shapes are written out from upstream's module structure for the THUMOS-14 I3D
model (upstream configs/_base_/models/tridet.py + configs/tridet/thumos_i3d.py: in_channels 2048,
width 512, sgp_mlp_dim 768, arch (2, 2, 5), sgp_win_size 1 everywhere, k 5, path_pdrop 0.1, 6 levels,
20 classes, 2 head convs, 16 bins):

* ``projection.embed.{0,1}``: ConvModule with LN -> ``conv.weight`` (no bias), ``norm.{weight,bias}``
* ``projection.stem.{0,1}`` (SGPBlock, kernel 1, no drop path) and ``projection.branch.{0..4}``
  (kernel 1, max pooling, drop path): ``ln``, ``gn``, depthwise ``psi`` / ``fc`` / ``convw`` /
  ``global_fc`` (kernel 1) and ``convkw`` (kernel round(2 * 5) + 1 = 11), ``mlp.0`` / ``mlp.2``;
  branch blocks also ``drop_path_out.scale`` / ``drop_path_mlp.scale``
* ``neck.fpn_norms.{0..5}``: LayerNorm
* ``rpn_head``: buffer ``loss_normalizer``, ``{cls,reg,cls_start,cls_end}_convs.{0,1}`` (ConvModule
  with LN), ``cls_head`` (20), ``reg_head`` (2 * 17 = 34), ``cls_start_head`` / ``cls_end_head`` (20),
  all kernel 3, ``scale.{0..5}.scale``
"""
import os

import pytest
import torch

from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

C, C_IN, HIDDEN, CLASSES, BINS = 512, 2048, 768, 20, 16
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..")
BASE_CONFIG = os.path.join(ROOT, "configs", "_base_", "models", "tridet.py")
SYNTHETIC_CONFIG = os.path.join(ROOT, "configs", "tridet", "synthetic_features.py")


def _sgp(prefix, drop_path):
    shapes = {}
    for norm in ("ln", "gn"):
        shapes[f"{prefix}.{norm}.weight"] = (C,)
        shapes[f"{prefix}.{norm}.bias"] = (C,)
    for name, size in (("psi", 1), ("fc", 1), ("convw", 1), ("convkw", 11), ("global_fc", 1)):
        shapes[f"{prefix}.{name}.weight"] = (C, 1, size)
        shapes[f"{prefix}.{name}.bias"] = (C,)
    shapes[f"{prefix}.mlp.0.weight"] = (HIDDEN, C, 1)
    shapes[f"{prefix}.mlp.0.bias"] = (HIDDEN,)
    shapes[f"{prefix}.mlp.2.weight"] = (C, HIDDEN, 1)
    shapes[f"{prefix}.mlp.2.bias"] = (C,)
    if drop_path:
        shapes[f"{prefix}.drop_path_out.scale"] = (1, C, 1)
        shapes[f"{prefix}.drop_path_mlp.scale"] = (1, C, 1)
    return shapes


def upstream_thumos_i3d_shapes():
    shapes = {"projection.embed.0.conv.weight": (C, C_IN, 3), "projection.embed.1.conv.weight": (C, C, 3)}
    for i in range(2):
        shapes[f"projection.embed.{i}.norm.weight"] = (C,)
        shapes[f"projection.embed.{i}.norm.bias"] = (C,)
        shapes.update(_sgp(f"projection.stem.{i}", drop_path=False))
    for i in range(5):
        shapes.update(_sgp(f"projection.branch.{i}", drop_path=True))
    for i in range(6):
        shapes[f"neck.fpn_norms.{i}.weight"] = (C,)
        shapes[f"neck.fpn_norms.{i}.bias"] = (C,)
        shapes[f"rpn_head.scale.{i}.scale"] = ()
    shapes["rpn_head.loss_normalizer"] = ()
    for tower in ("cls_convs", "reg_convs", "cls_start_convs", "cls_end_convs"):
        for i in range(2):
            shapes[f"rpn_head.{tower}.{i}.conv.weight"] = (C, C, 3)
            shapes[f"rpn_head.{tower}.{i}.norm.weight"] = (C,)
            shapes[f"rpn_head.{tower}.{i}.norm.bias"] = (C,)
    for name, out in (("cls_head", CLASSES), ("reg_head", 2 * (BINS + 1)), ("cls_start_head", CLASSES),
                      ("cls_end_head", CLASSES)):
        shapes[f"rpn_head.{name}.weight"] = (out, C, 3)
        shapes[f"rpn_head.{name}.bias"] = (out,)
    return shapes


def test_upstream_names_and_shapes_load_strictly():
    cfg = load_config(BASE_CONFIG).model.to_dict()
    cfg["projection"]["input_noise"] = 0.0005  # what thumos_i3d.py adds upstream (no parameters)
    model = build(cfg, DETECTORS)
    expected = upstream_thumos_i3d_shapes()
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert set(ours) == set(expected), (sorted(set(ours) - set(expected)), sorted(set(expected) - set(ours)))
    assert ours == expected
    torch.manual_seed(0)
    checkpoint = {k: torch.randn(shape) for k, shape in expected.items()}
    checkpoint["rpn_head.loss_normalizer"] = torch.tensor(87.25)
    result = model.load_state_dict(checkpoint, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint[key]), key


def _small_model(seed=0, **projection):
    cfg = load_config(SYNTHETIC_CONFIG).model.to_dict()
    cfg["projection"].update(in_channels=16, out_channels=16, sgp_mlp_dim=32, max_seq_len=128, **projection)
    cfg["neck"].update(in_channels=16, out_channels=16)
    cfg["rpn_head"].update(in_channels=16, feat_channels=16, num_classes=3, num_bins=4)
    torch.manual_seed(seed)
    return build(cfg, DETECTORS)


def _batch(length=128):
    torch.manual_seed(1)
    x = torch.randn(2, 16, length)
    masks = torch.ones(2, length, dtype=torch.bool)
    masks[1, length - 14:] = False
    # positives on every level (strides 1..32, ranges up to 4, 8, 16, 32, 64, beyond)
    gts = [torch.tensor([[3.0, 9.0], [20.0, 44.0], [5.0, 90.0], [2.0, 126.0]]), torch.tensor([[5.0, 30.0]])]
    return x, masks, gts, [torch.tensor([0, 2, 1, 0]), torch.tensor([1])]


def test_padding_only_outside_training():
    model = _small_model()
    assert model.max_div_factor == 32
    x, masks = torch.randn(1, 16, 40), torch.ones(1, 40, dtype=torch.bool)
    assert model.prepare_feat(x, masks)[0].shape[-1] == 40  # training: as the pipeline made it
    model.eval()
    padded, pmask = model.prepare_feat(x, masks)
    assert padded.shape[-1] == 128 and pmask.sum() == 40 and torch.equal(padded[..., :40], x)
    longer = model.prepare_feat(torch.randn(1, 16, 130), torch.ones(1, 130, dtype=torch.bool))[0]
    assert longer.shape[-1] == 160  # next multiple of 32
    wide = _small_model(sgp_win_size=[1, 1, 1, 3, 1, 1])
    assert wide.max_div_factor == 32 and _small_model(sgp_win_size=[1, 1, 1, 1, 1, 3]).max_div_factor == 96


def test_window_list_must_match_the_levels():
    with pytest.raises(ValueError, match="sgp_win_size"):
        _small_model(arch=(2, 2, 4), sgp_win_size=[1] * 5)


def test_selection_takes_each_candidates_own_class_segment():
    model = _small_model()
    proposals = torch.tensor([[[0.0, 1.0], [10.0, 11.0]], [[2.0, 3.0], [20.0, 21.0]], [[4.0, 5.0], [30.0, 31.0]]])
    scores = torch.tensor([[0.9, 0.0005], [0.1, 0.8], [0.0, 0.3]])
    segments, kept, labels = model.select_candidates(proposals, scores, pre_nms_thresh=0.001, pre_nms_topk=3)
    assert labels.tolist() == [0, 1, 1]
    assert torch.equal(kept, torch.tensor([0.9, 0.8, 0.3]))
    assert torch.equal(segments, torch.tensor([[0.0, 1.0], [20.0, 21.0], [30.0, 31.0]]))
    with pytest.raises(ValueError, match=r"\[P, C, 2\]"):
        model.select_candidates(proposals[:, 0], scores, pre_nms_thresh=0.001, pre_nms_topk=3)


def test_same_seed_same_loss():
    x, masks, gts, labels = _batch()
    runs = []
    for _ in range(2):
        model = _small_model(seed=3, path_pdrop=0.1, input_noise=0.01)
        torch.manual_seed(5)
        runs.append(model(x, masks, [{}] * 2, gts, labels)["cost"])
    assert torch.equal(runs[0], runs[1])


def test_gradients_reach_every_parameter():
    # init_conv_vars=0 makes the SGP convs a saddle (tests/models/bricks/test_sgp.py); start them off it
    model = _small_model(init_conv_vars=0.1)
    x, masks, gts, labels = _batch()
    model(x, masks, [{}] * 2, gts, labels)["cost"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_inference_end_to_end():
    model = _small_model().eval()
    x, masks, _, _ = _batch(length=96)  # padded to 128 inside
    metas = [dict(video_name=v, fps=30.0, duration=8.0, snippet_stride=4, offset_frames=0) for v in "ab"]
    post = dict(sliding_window=False, nms=dict(use_soft_nms=True, sigma=0.5, max_seg_num=10, min_score=0.001,
                                               multiclass=True, voting_thresh=0.7))
    with torch.no_grad():
        results = model(x, masks, metas, return_loss=False, post_cfg=post, ext_cls=["x", "y", "z"])
    assert set(results) == {"a", "b"} and 0 < len(results["a"]) <= 10
    assert all(r["label"] in ("x", "y", "z") and 0 <= r["segment"][0] <= r["segment"][1] <= 8.0 for r in results["a"])
