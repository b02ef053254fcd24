"""ActionFormer end to end on random features at small size."""
import os

import pytest
import torch
import torch.nn as nn

from opentad.models.detectors import ActionFormer, BaseDetector
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config

BASE_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "configs", "_base_", "models", "actionformer.py"
)
SMALL = {
    "model.projection.in_channels": 6,
    "model.projection.out_channels": 16,
    "model.projection.arch": (2, 1, 2),
    "model.projection.attn_cfg.n_head": 2,
    "model.projection.attn_cfg.n_mha_win_size": 5,
    "model.projection.max_seq_len": 32,
    "model.projection.path_pdrop": 0.01,
    "model.neck.in_channels": 16,
    "model.neck.out_channels": 16,
    "model.neck.num_levels": 3,
    "model.rpn_head.num_classes": 3,
    "model.rpn_head.in_channels": 16,
    "model.rpn_head.feat_channels": 16,
    "model.rpn_head.prior_generator.strides": [1, 2, 4],
    "model.rpn_head.prior_generator.regression_range": [(0, 4), (4, 8), (8, 10000)],
}
CLASSES = ["jump", "run", "throw"]
# upstream THUMOS soft-NMS settings
NMS = dict(use_soft_nms=True, sigma=0.5, max_seg_num=2000, iou_threshold=0.1, min_score=0.001, multiclass=True,
           voting_thresh=0.7)


def _model(**overrides):
    torch.manual_seed(0)
    cfg = load_config(BASE_CONFIG, {**SMALL, **overrides})
    return build(cfg.model, DETECTORS)


def _batch(lengths=(32, 20), total=32):
    torch.manual_seed(1)
    inputs = torch.randn(len(lengths), 6, total)
    masks = torch.zeros(len(lengths), total, dtype=torch.bool)
    for i, n in enumerate(lengths):
        masks[i, :n] = True
        inputs[i, :, n:] = 0
    metas = [dict(video_name=f"video_{i}", fps=10.0, snippet_stride=4, offset_frames=0, duration=n * 0.4)
             for i, n in enumerate(lengths)]
    gt_segments = [torch.tensor([[2.0, 9.0], [12.0, 30.0]]), torch.tensor([[4.0, 6.0]])][: len(lengths)]
    gt_labels = [torch.tensor([0, 2]), torch.tensor([1])][: len(lengths)]
    return dict(inputs=inputs, masks=masks, metas=metas, gt_segments=gt_segments, gt_labels=gt_labels)


def test_builds_from_base_config_with_small_override():
    model = _model()
    assert isinstance(model, ActionFormer)
    assert model.mha_win_size == [5, 5, 5] and model.max_seq_len == 32
    assert model.max_div_factor == 16  # stride 4 * 2 * (5 // 2)


def test_training_losses_and_gradients_reach_every_parameter():
    model = _model().train()
    losses = model(**_batch())
    assert set(losses) == {"cls_loss", "reg_loss", "cost"}
    assert all(torch.isfinite(v) for v in losses.values())
    torch.testing.assert_close(losses["cost"], losses["cls_loss"] + losses["reg_loss"])
    losses["cost"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name
        # a bias on the keys shifts every score of a query equally, so softmax cancels it exactly
        if not (name.endswith("attn.key.bias") or name.endswith("attn.key_norm.bias")):
            assert param.grad.abs().sum() > 0, name


def test_inference_output_format_and_conversion_to_seconds():
    model = _model().eval()
    batch = _batch()
    with torch.no_grad():
        proposals, scores = model.forward_test(batch["inputs"], batch["masks"])
        results = model(**batch, return_loss=False, post_cfg=dict(sliding_window=True, nms=None), ext_cls=CLASSES)
    assert set(results) == {"video_0", "video_1"}
    for i, name in enumerate(["video_0", "video_1"]):
        dets = results[name]
        kept = int((scores[i] > 0.001).sum())
        assert len(dets) == min(kept, 2000)
        assert [d["score"] for d in dets] == sorted((d["score"] for d in dets), reverse=True)
        duration = batch["metas"][i]["duration"]
        for det in dets:
            assert set(det) == {"segment", "label", "score"} and det["label"] in CLASSES
            assert isinstance(det["score"], float) and 0 < det["score"] <= 1
            assert all(isinstance(v, float) and 0 <= v <= duration for v in det["segment"])
        # the best (point, class) pair, converted by hand: snippets * stride 4 / fps 10, clamped to the video
        flat = int(scores[i].argmax())
        point, label = divmod(flat, 3)
        start, end = (proposals[i][point] * 0.4).clamp(0, duration).tolist()
        assert dets[0]["label"] == CLASSES[label]
        assert dets[0]["segment"] == pytest.approx([round(start, 2), round(end, 2)])
        assert dets[0]["score"] == pytest.approx(round(scores[i].max().item(), 4))


def test_inference_with_nms_and_without_class_names():
    model = _model().eval()
    with torch.no_grad():
        results = model(**_batch(), return_loss=False, post_cfg=dict(sliding_window=False, nms=NMS))
    dets = results["video_1"]
    assert 0 < len(dets) and all(d["label"] in (0, 1, 2) for d in dets)


def test_padded_content_never_changes_a_video_predictions():
    model = _model().eval()
    batch = _batch(lengths=(32, 20))
    garbage = batch["inputs"].clone()
    garbage[1, :, 20:] = 100 * torch.randn(6, 12)
    with torch.no_grad():
        alone = model.forward_test(batch["inputs"][1:, :, :20], batch["masks"][1:, :20])
        in_batch = model.forward_test(garbage, batch["masks"])
    assert in_batch[0][1].shape == alone[0][0].shape == (20 + 10 + 5, 2)
    torch.testing.assert_close(in_batch[0][1], alone[0][0], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(in_batch[1][1], alone[1][0], rtol=1e-4, atol=1e-5)


def test_longer_input_is_padded_to_the_window_multiple():
    model = _model().eval()
    x, masks = torch.randn(1, 6, 40), torch.ones(1, 40, dtype=torch.bool)
    padded, padded_masks = model.prepare_feat(x, masks)
    assert padded.shape[-1] == 48 and padded_masks.sum() == 40  # next multiple of 16
    with torch.no_grad():
        proposals, _ = model.forward_test(x, masks)
    assert proposals[0].shape == (40 + 20 + 10, 2)


def test_max_seq_len_must_split_into_windows():
    with pytest.raises(ValueError, match="max_seq_len"):
        _model(**{"model.projection.max_seq_len": 24})


def test_missing_inputs_are_reported():
    model = _model()
    batch = _batch()
    batch.pop("gt_segments")
    with pytest.raises(ValueError, match="gt_segments"):
        model(**batch)
    with pytest.raises(KeyError, match="sliding_window"):
        model.eval()(**batch, return_loss=False, post_cfg=dict(nms=None))


def test_optim_groups_split_every_parameter_once():
    model = _model()
    groups = model.get_optim_groups(dict(lr=1e-4, weight_decay=0.05))
    names = {id(p): n for n, p in model.named_parameters()}
    decay = [names[id(p)] for p in groups[0]["params"]]
    no_decay = [names[id(p)] for p in groups[1]["params"]]
    assert sorted(decay + no_decay) == sorted(names.values())
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    assert "projection.embed.0.conv.weight" in decay and "rpn_head.cls_head.weight" in decay
    for name in ("projection.embed.0.norm.weight", "rpn_head.scale.0.scale", "projection.stem.0.drop_path_attn.scale",
                 "rpn_head.cls_head.bias", "neck.fpn_norms.0.weight"):
        assert name in no_decay


def test_raw_predictions_round_trip(tmp_path):
    model = _model().eval()
    batch = _batch()
    post_cfg = dict(sliding_window=False, nms=NMS)
    with torch.no_grad():
        saved = model(**batch, return_loss=False, post_cfg=post_cfg, ext_cls=CLASSES,
                      infer_cfg=dict(load_from_raw_predictions=False, save_raw_prediction=True, folder=str(tmp_path)))
    assert sorted(os.listdir(tmp_path)) == ["video_0.pkl", "video_1.pkl"]
    batch["inputs"] = torch.zeros_like(batch["inputs"])  # not used when loading
    loaded = model(**batch, return_loss=False, post_cfg=post_cfg, ext_cls=CLASSES,
                   infer_cfg=dict(load_from_raw_predictions=True, save_raw_prediction=False, folder=str(tmp_path)))
    assert loaded == saved


class _HalvingBackbone(nn.Module):
    """Stands in for a video backbone: records its inputs and halves the length."""

    def forward(self, inputs, masks):
        self.seen = (inputs.shape, masks.shape)
        return nn.functional.avg_pool1d(inputs, 2)


class _Projection(nn.Module):
    def forward(self, x, masks):
        self.seen_masks = masks
        return [x], [masks]


def test_base_detector_hooks_run_backbone_with_masks_and_resize_them():
    detector = BaseDetector(backbone=_HalvingBackbone(), projection=_Projection())
    masks = torch.tensor([[True] * 6 + [False] * 2])
    feats, out_masks = detector.extract_feat(torch.randn(1, 3, 8), masks)
    assert detector.backbone.seen == ((1, 3, 8), (1, 8))
    assert feats[0].shape == (1, 3, 4) and out_masks[0].tolist() == [[True, True, True, False]]
    assert set(detector.state_dict()) == set()
    assert not detector.with_neck and not detector.with_rpn_head


def test_misspelled_head_key_is_caught_by_the_config_check_and_by_build():
    from opentad.registry import ConfigError
    from opentad.utils.config import check_config

    cfg = load_config(BASE_CONFIG, {**SMALL, "model.rpn_head.center_sampl": "radius"})
    errors = check_config(cfg)
    assert any("center_sampl" in e and "ActionFormerHead" in e for e in errors), errors
    with pytest.raises(ConfigError, match="center_sampl"):
        build(cfg.model, DETECTORS)
