"""convert_to_seconds, pre-NMS selection, result formatting and sliding-window merging."""

import math

import pytest
import torch

from opentad.models.utils.post_processing import (
    batched_nms,
    convert_to_seconds,
    format_detections,
    merge_window_results,
    select_topk_predictions,
)


def test_convert_to_seconds_sliding_window_hand_worked():
    meta = dict(video_name="v", fps=30, snippet_stride=4, offset_frames=8, window_start_frame=100, duration=20.0)
    segs = torch.tensor([[0.0, 10.0], [2.5, 4.0]])
    out = convert_to_seconds(segs, meta)
    # (s * 4 + 100 + 8) / 30
    expected = torch.tensor([[108 / 30, 148 / 30], [118 / 30, 124 / 30]])
    torch.testing.assert_close(out, expected)
    assert torch.equal(segs, torch.tensor([[0.0, 10.0], [2.5, 4.0]]))  # input untouched


def test_convert_to_seconds_padding_without_window_start():
    meta = dict(fps=10, snippet_stride=2, offset_frames=0, duration=5.0)
    out = convert_to_seconds(torch.tensor([[1.0, 3.0]]), meta)
    torch.testing.assert_close(out, torch.tensor([[0.2, 0.6]]))


def test_convert_to_seconds_clamps_like_upstream():
    meta = dict(fps=1, snippet_stride=1, offset_frames=0, window_start_frame=-5, duration=10.0)
    out = convert_to_seconds(torch.tensor([[2.0, 7.0], [6.0, 30.0], [5.0, 5.0]]), meta)
    # [2, 7] - 5 -> [-3, 2]: the negative start becomes -0.0 (it is multiplied by 0)
    assert out[0, 0].item() == 0.0 and math.copysign(1.0, out[0, 0].item()) == -1.0
    assert out[0, 1].item() == 2.0
    assert out[1].tolist() == [1.0, 10.0]  # 25 >= duration -> duration
    assert out[2].tolist() == [0.0, 0.0] and math.copysign(1.0, out[2, 0].item()) == 1.0  # exact 0 stays +0


def test_convert_to_seconds_resize_setting():
    meta = dict(video_name="anet", fps=-1, resize_length=128, duration=64.0)
    out = convert_to_seconds(torch.tensor([[0.0, 128.0], [64.0, 200.0], [-1.0, 1.0]]), meta)
    expected = torch.tensor([[0.0, 64.0], [32.0, 64.0], [0.0, 0.5]])
    torch.testing.assert_close(out, expected)


def test_convert_to_seconds_empty_and_missing_key():
    meta = dict(fps=-1, resize_length=100, duration=3.0)
    assert convert_to_seconds(torch.zeros(0, 2), meta).shape == (0, 2)
    with pytest.raises(KeyError, match="resize_length"):
        convert_to_seconds(torch.zeros(1, 2), dict(video_name="x", fps=-1, duration=3.0))
    with pytest.raises(KeyError, match="snippet_stride"):
        convert_to_seconds(torch.zeros(1, 2), dict(video_name="x", fps=30, duration=3.0, offset_frames=0))


def test_select_topk_predictions_matches_brute_force():
    gen = torch.Generator().manual_seed(0)
    segs = torch.rand(50, 2, generator=gen)
    probs = torch.rand(50, 4, generator=gen) ** 3
    out_segs, out_scores, out_labels = select_topk_predictions(segs, probs, pre_nms_thresh=0.05, pre_nms_topk=30)
    pairs = [(probs[i, c].item(), i, c) for i in range(50) for c in range(4) if probs[i, c].item() > 0.05]
    pairs = sorted(pairs, key=lambda p: -p[0])[:30]
    assert out_scores.tolist() == [p[0] for p in pairs]
    assert out_labels.tolist() == [p[2] for p in pairs]
    assert torch.equal(out_segs, segs[[p[1] for p in pairs]])


def test_select_topk_predictions_single_class_keeps_everything():
    segs = torch.rand(5, 2)
    probs = torch.tensor([[0.0], [0.5], [0.0001], [0.9], [0.2]])
    out_segs, out_scores, out_labels = select_topk_predictions(segs, probs, pre_nms_thresh=0.1, pre_nms_topk=2)
    assert torch.equal(out_segs, segs) and torch.equal(out_scores, probs[:, 0])
    assert out_labels.tolist() == [0] * 5 and out_labels.dtype == torch.long
    with pytest.raises(ValueError, match="scores must be"):
        select_topk_predictions(segs, torch.rand(4, 3))


def test_format_detections_rounds_and_names():
    out = format_detections(torch.tensor([[1.23456, 7.891]]), torch.tensor([1]), torch.tensor([0.123456]), ["a", "b"])
    assert out == [dict(segment=[1.23, 7.89], label="b", score=0.1235)]
    assert format_detections(torch.tensor([[0.0, 1.0]]), ["x"], torch.tensor([0.5]))[0]["label"] == "x"
    with pytest.raises(ValueError, match="class_names"):
        format_detections(torch.tensor([[0.0, 1.0]]), torch.tensor([0]), torch.tensor([0.5]))


def test_merge_window_results_hand_worked():
    windows = {
        "v1": [
            dict(segment=[1.0, 5.0], label="Jump", score=0.9),  # window 1
            dict(segment=[10.0, 12.0], label="Run", score=0.7),
            dict(segment=[1.1, 5.0], label="Jump", score=0.8),  # window 2, same action again
            dict(segment=[1.1, 5.0], label="Run", score=0.3),  # other class, not suppressed
        ],
        "v2": [],
    }
    cfg = dict(use_soft_nms=False, iou_threshold=0.5, min_score=0.0, max_seg_num=10, multiclass=True)
    merged = merge_window_results(windows, cfg)
    assert merged["v1"] == [
        dict(segment=[1.0, 5.0], label="Jump", score=0.9),
        dict(segment=[10.0, 12.0], label="Run", score=0.7),
        dict(segment=[1.1, 5.0], label="Run", score=0.3),
    ]
    assert merged["v2"] == []
    assert len(windows["v1"]) == 4  # input untouched


def test_merge_window_results_equals_nms_on_gathered_tensors():
    gen = torch.Generator().manual_seed(1)
    names = ["c", "a", "b"]
    results = []
    for _ in range(40):
        start = round(torch.rand(1, generator=gen).item() * 50, 2)
        results.append(
            dict(
                segment=[start, round(start + 3.0, 2)],
                label=names[int(torch.randint(3, (1,), generator=gen))],
                score=round(torch.rand(1, generator=gen).item(), 4),
            )
        )
    cfg = dict(use_soft_nms=True, sigma=0.5, min_score=0.001, max_seg_num=25, multiclass=False, voting_thresh=0.7)
    merged = merge_window_results({"v": results}, cfg)["v"]
    order = []  # labels numbered by first appearance
    for r in results:
        if r["label"] not in order:
            order.append(r["label"])
    segs, scores, labels = batched_nms(
        torch.tensor([r["segment"] for r in results]),
        torch.tensor([r["score"] for r in results]),
        torch.tensor([order.index(r["label"]) for r in results]),
        **cfg,
    )
    assert [r["label"] for r in merged] == [order[i] for i in labels.tolist()]
    assert [r["score"] for r in merged] == [round(s, 4) for s in scores.tolist()]
    assert [r["segment"] for r in merged] == [[round(v, 2) for v in s] for s in segs.tolist()]


def test_merge_window_results_first_appearance_breaks_class_ties():
    results = [dict(segment=[0.0, 1.0], label="B", score=0.5), dict(segment=[5.0, 6.0], label="A", score=0.5)]
    cfg = dict(use_soft_nms=False, iou_threshold=0.5, multiclass=True)
    assert [r["label"] for r in merge_window_results({"v": results}, cfg)["v"]] == ["B", "A"]
    assert merge_window_results({"v": results}, None) == {"v": results}
