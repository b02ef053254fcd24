"""ETAD: upstream's state-dict keys, init, candidates and post-processing, native Align1D against its fallback."""
import os
import random

import pytest
import torch

from opentad.models.detectors.etad import sampled_candidates
from opentad.ops import load_op
from opentad.registry import DETECTORS, build
from opentad.utils.config import load_config
from opentad.utils.safe_load import pickle_load

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def _upstream_keys():
    """Upstream ETAD's keys: ConvSingleProj, LSTMNeck, the shared TEM head, three ETADHeads (fcs_num=3)."""
    keys = ["projection.convs.0.conv.weight", "projection.convs.0.norm.weight", "projection.convs.0.norm.bias"]
    keys += [f"neck.{m}.{p}_l0" for m in ("mem_f", "mem_b") for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    keys += [f"neck.{m}.{p}" for m in ("layer2_f", "layer2_b", "layer2_d", "layer3")
             for p in ("conv.weight", "norm.weight", "norm.bias")]
    keys += [f"rpn_head.tem.{i}.conv.{p}" for i in (0, 1) for p in ("weight", "bias")]
    for s in range(3):
        stage = f"roi_head.proposal_heads.{s}"
        keys += [f"{stage}.shared_conv_fc.fcs.0.0.{p}" for p in ("weight", "bias")]
        for head in ("iou_head", "se_head", "reg_head"):
            keys += [f"{stage}.{head}.fcs.{i}.0.{p}" for i in range(3) for p in ("weight", "bias")]
            keys += [f"{stage}.{head}.head.{p}" for p in ("weight", "bias")]
    return keys


@pytest.fixture(scope="module")
def upstream_model():
    """The model of configs/etad/thumos_i3d.py (I3D's 2048 channels, 64 durations, 256-wide shared fc)."""
    torch.manual_seed(0)
    return build(load_config(os.path.join(ROOT, "configs", "etad", "thumos_i3d.py"))["model"], DETECTORS)


def test_upstream_checkpoint_keys_load_strictly(upstream_model):
    state = upstream_model.state_dict()
    assert sorted(state) == sorted(_upstream_keys())
    shapes = {"projection.convs.0.conv.weight": (256, 512, 3), "neck.mem_f.weight_ih_l0": (1024, 256),
              "neck.layer3.conv.weight": (256, 128, 1), "rpn_head.tem.1.conv.weight": (2, 256, 1),
              "roi_head.proposal_heads.2.shared_conv_fc.fcs.0.0.weight": (256, 256 * 16),
              "roi_head.proposal_heads.0.reg_head.head.weight": (4, 128)}
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    upstream_model.load_state_dict({k: v.clone() for k, v in state.items()}, strict=True)


def test_every_linear_and_conv_is_xavier_with_zero_bias(upstream_model):
    """Upstream's reset_params; the LSTMs and GroupNorms keep their own init."""
    for module in upstream_model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d)):
            fan_in = module.weight.shape[1] * module.weight[0, 0].numel()
            fan_out = module.weight.shape[0] * module.weight[0, 0].numel()
            assert module.weight.abs().max() <= (6 / (fan_in + fan_out)) ** 0.5
            assert module.bias is None or module.bias.abs().max() == 0
    assert upstream_model.neck.mem_f.bias_ih_l0.abs().max() > 0


def test_sampled_candidates_hand_worked():
    """T = 6. Start probabilities peak at 2 (plus step 0), end probabilities at 4 (plus step 5)."""
    tem = torch.tensor([[0.1, 0.05, 0.9, 0.1, 0.05, 0.0], [0.0, 0.0, 0.1, 0.2, 0.8, 0.3]])
    proposals = torch.tensor([[2.4, 4.9], [1.0, 4.0], [0.0, 5.7], [-1.0, 7.0], [2.0, 3.0]])
    iou = torch.tensor([[0.5, 0.8], [0.9, 0.9], [0.4, 0.5], [0.2, 0.5], [0.9, 0.1]])
    segments, scores = sampled_candidates(tem, iou, proposals)
    # kept: [2.4, 4.9] (steps 2, 4), [0, 5.7] (0, 5), [-1, 7] (clipped to 0, 5); not [1, 4] (start 1), [2, 3] (end 3)
    assert segments.tolist() == [[2.4000000953674316, 4.900000095367432], [0.0, 5.699999809265137], [-1.0, 7.0]]
    assert torch.equal(scores, torch.tensor([0.5 * 0.8, 0.4 * 0.5, 0.2 * 0.5]))


def _meta(name):
    return dict(video_name=name, fps=10.0, duration=100.0, snippet_stride=10, offset_frames=0, window_start_frame=0)


def _classifier(video, segments, scores):
    return segments, ["Jump"] * len(segments), scores


def test_post_processing_runs_nms_on_every_window_and_needs_a_classifier(upstream_model):
    tem = torch.full((1, 2, 8), 0.9)
    proposals = torch.tensor([[[1.0, 5.0], [1.0, 5.2], [6.0, 8.0]]])
    iou = torch.tensor([[[0.9, 0.9], [0.8, 0.8], [0.5, 0.5]]])
    nms = dict(use_soft_nms=False, iou_threshold=0.5, min_score=0.0, max_seg_num=10, multiclass=False)
    for sliding in (False, True):
        post_cfg = dict(sliding_window=sliding, nms=nms)
        out = upstream_model.post_processing((tem, iou, proposals), [_meta("v")], post_cfg, _classifier)
        # [1, 5.2] overlaps [1, 5] by 4 / 4.2 and is suppressed, in seconds (x 10 frames / 10 fps)
        assert out == {"v": [dict(segment=[1.0, 5.0], label="Jump", score=0.81),
                             dict(segment=[6.0, 8.0], label="Jump", score=0.25)]}
    with pytest.raises(ValueError, match="external_cls"):
        upstream_model.post_processing((tem, iou, proposals), [_meta("v")], dict(sliding_window=False, nms=nms), None)


def _small_etad(method="align1d"):
    torch.manual_seed(0)
    cfg = load_config(os.path.join(ROOT, "configs", "_base_", "models", "etad.py"))["model"]
    cfg["projection"].update(in_channels=16, out_channels=32)
    cfg["neck"].update(in_channels=32, out_channels=32)
    cfg["rpn_head"].update(in_channels=32)
    roi = cfg["roi_head"]
    roi["stages"]["pos_iou_thresh"] = [0.3, 0.4, 0.5]  # every stage regresses some proposal of this small batch
    roi["proposal_generator"].update(tscale=24, dscale=12, sampling_ratio=0.2)
    roi["proposal_roi_extractor"].update(roi_size=4, method=method)
    roi["proposal_head"].update(in_channels=32, roi_size=4, feat_channels=16, fcs_channels=8)
    return build(cfg, DETECTORS)


BATCH = dict(
    inputs=torch.randn(2, 16, 24, generator=torch.Generator().manual_seed(1)),
    masks=torch.ones(2, 24, dtype=torch.bool),
    metas=[_meta("a"), _meta("b")],
    gt_segments=[torch.tensor([[2.0, 9.0], [12.0, 20.0]]), torch.tensor([[5.0, 11.0]])],
    gt_labels=[torch.tensor([0, 1]), torch.tensor([0])],
)


def _train_step(model):
    random.seed(0)
    torch.manual_seed(0)
    model.zero_grad()
    losses = model(**BATCH)
    losses["cost"].backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient reached {missing}"
    return losses, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_seeded_losses_repeat_and_every_parameter_trains():
    model = _small_etad()
    (first, grads), (second, _) = _train_step(model), _train_step(model)
    assert sorted(first) == ["cost", "loss_pem.s0", "loss_pem.s1", "loss_pem.s2", "loss_tem"]
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert all(g.abs().sum() > 0 for g in grads.values()), [n for n, g in grads.items() if g.abs().sum() == 0]


@pytest.mark.skipif(load_op("align1d_cpu") is None, reason="the native align1d_cpu op is not built")
def test_native_align1d_and_its_fallback_give_the_same_etad():
    """Same arithmetic in the same order in float64, rounded once to float32: equal outputs, losses and gradients."""
    model = _small_etad()
    align = model.roi_head.proposal_roi_extractor.align1d
    results = []
    for backend in ("compiled", "torch"):
        align.backend = backend
        model.train()
        losses, grads = _train_step(model)
        model.eval()
        with torch.no_grad():
            outputs = model.forward_test(BATCH["inputs"], BATCH["masks"])
        results.append((losses, grads, outputs))
    (l0, g0, o0), (l1, g1, o1) = results
    assert all(torch.equal(l0[k], l1[k]) for k in l0)
    assert all(torch.equal(g0[k], g1[k]) for k in g0)
    assert all(torch.equal(a, b) for a, b in zip(o0, o1))


def test_forward_test_gives_upstreams_raw_predictions():
    model = _small_etad().eval()
    with torch.no_grad():
        tem, iou, proposals = model.forward_test(BATCH["inputs"], BATCH["masks"])
    num = sum(24 - d for d in range(12))  # every valid (duration, start) pair
    assert tem.shape == (2, 2, 24) and iou.shape == (2, num, 2) and proposals.shape == (2, num, 2)
    assert ((tem > 0) & (tem < 1)).all() and ((iou > 0) & (iou < 1)).all()


def test_raw_predictions_round_trip(tmp_path):
    """Saved per video as upstream's ``[tem_score, iou, proposals]``; reloading gives the same detections."""
    model = _small_etad().eval()
    post_cfg = dict(sliding_window=False, nms=dict(use_soft_nms=True, sigma=0.3, max_seg_num=20, min_score=0.0001,
                                                    multiclass=False, voting_thresh=0.95))
    args = (BATCH["inputs"], BATCH["masks"], BATCH["metas"])
    with torch.no_grad():
        saved = model(*args, return_loss=False, post_cfg=post_cfg, ext_cls=_classifier,
                      infer_cfg=dict(save_raw_prediction=True, folder=str(tmp_path)))
        loaded = model(*args, return_loss=False, post_cfg=post_cfg, ext_cls=_classifier,
                       infer_cfg=dict(load_from_raw_predictions=True, folder=str(tmp_path)))
    assert saved == loaded and len(saved["a"]) > 0
    fields = pickle_load(str(tmp_path / "a.pkl"), what="raw prediction")
    assert [tuple(f.shape) for f in fields] == [(2, 24), (222, 2), (222, 2)]
