"""Labelled clips for pretraining: per-frame labels, tubelet labels, rendering, sampling."""
import dataclasses
from fractions import Fraction

import numpy as np
import pytest

from opentad.datasets.synthetic import settings_from_preset
from opentad.datasets.synthetic.clips import (
    IGNORE,
    ClipSampler,
    LabelledVideo,
    frame_labels,
    patch_cover,
    render_labelled_videos,
    token_labels,
    tubelet_labels,
)
from opentad.datasets.synthetic.patterns import ActionParams
from opentad.datasets.synthetic.plan import SegmentPlan, VideoPlan, plan_dataset
from opentad.datasets.synthetic.render import VideoRenderer

PARAMS = ActionParams("disc", 0.08, (255.0, 0.0, 0.0), (0.0, 255.0, 0.0), 1.0, 0.0, (0.5, 0.5, 0.5))


def _plan(segments, num_frames=300):
    return VideoPlan("v", "validation", 1, num_frames, tuple(segments), ())


def _brute_force(plan, frames, num_classes):
    """Frame f shows segment s iff start <= f / 30 < end (exact rationals); the first planned segment wins."""
    out = []
    for f in frames:
        t = Fraction(int(f), 30)
        label = num_classes
        for s in plan.segments:
            if Fraction(s.start_cs, 100) <= t < Fraction(s.end_cs, 100):
                label = IGNORE if s.ambiguous else s.label
                break
        out.append(label)
    return np.array(out)


def test_frame_labels_against_exact_times():
    plan = _plan(
        [
            SegmentPlan(2, 101, 233, False, PARAMS),  # 1.01 s - 2.33 s
            SegmentPlan(4, 200, 290, False, PARAMS),  # overlaps the first: the first wins on the overlap
            SegmentPlan(1, 500, 733, True, PARAMS),  # ambiguous -> ignored
            SegmentPlan(0, 810, 820, False, PARAMS),  # shorter than a stride
        ]
    )
    frames = np.arange(0, 300, 1)
    expected = _brute_force(plan, frames, num_classes=5)
    np.testing.assert_array_equal(frame_labels(plan, frames, 5), expected)
    # hand-checked values: 1.00 s is background, 1.01 s (frame 30.3 -> first frame 31) is class 2
    assert frame_labels(plan, np.array([30, 31, 69, 70, 87, 150, 243, 244, 246]), 5).tolist() == [
        5, 2, 2, 4, 5, IGNORE, 0, 0, 5
    ]


def test_tubelet_labels_keep_agreeing_pairs_only():
    labels = np.array([[0, 0, 0, 5, 5, 5, IGNORE, IGNORE], [3, 3, 3, 3, 2, 2, 1, 1]])
    assert tubelet_labels(labels, 2).tolist() == [[0, IGNORE, 5, IGNORE], [3, 3, 2, 1]]
    assert tubelet_labels(labels, 4).tolist() == [[IGNORE, IGNORE], [3, IGNORE]]


def test_rendered_videos_are_the_renderers_frames_every_stride():
    settings = settings_from_preset("default", dict(seed=11, num_train=2, num_test=1, width=32, height=32))
    videos = render_labelled_videos(settings, 4, "validation")
    plans = [p for p in plan_dataset(settings) if p.subset == "validation"]
    assert len(videos) == 2
    for video, plan in zip(videos, plans):
        indices = np.arange(0, plan.num_frames, 4)
        assert video.frames.shape == (len(indices), 32, 32, 3) and video.frames.dtype == np.uint8
        renderer = VideoRenderer(plan, settings)
        for i in (0, len(indices) // 2, len(indices) - 1):
            np.testing.assert_array_equal(video.frames[i], renderer.frame(int(indices[i])))
        np.testing.assert_array_equal(video.labels, _brute_force(plan, indices, settings.num_classes))
    assert len(render_labelled_videos(settings, 4, "test")) == 1
    with pytest.raises(ValueError, match="frame_stride"):
        render_labelled_videos(settings, 0, "validation")


def _videos():
    rng = np.random.default_rng(0)
    return [
        LabelledVideo(rng.integers(0, 255, (n, 4, 4, 3), dtype=np.uint8), np.arange(n) % 6) for n in (20, 9, 33)
    ]


def test_sampler_draws_real_slices_reproducibly():
    videos = _videos()
    a = ClipSampler(videos, clip_len=8, seed=3).sample(5)
    b = ClipSampler(videos, clip_len=8, seed=3).sample(5)
    np.testing.assert_array_equal(a[0], b[0])
    frames, labels, cover = a
    assert cover is None
    assert frames.shape == (5, 8, 4, 4, 3) and labels.shape == (5, 8)
    for clip, lab in zip(frames, labels):
        # each clip is a contiguous slice of one of the videos, with its labels
        hits = [
            s
            for v in videos
            for s in range(len(v.labels) - 7)
            if np.array_equal(v.frames[s : s + 8], clip) and np.array_equal(v.labels[s : s + 8], lab)
        ]
        assert hits, "a sampled clip is not a slice of any video"


def test_sampler_windows_tile_each_long_enough_video():
    sampler = ClipSampler(_videos(), clip_len=8, seed=0)
    windows = sampler.windows()
    assert len(windows) == 2 + 1 + 4  # 20, 9 and 33 frames cut into clips of 8
    assert len(sampler.videos) == 3
    assert len(ClipSampler(_videos(), clip_len=10, seed=0).videos) == 2  # 9 frames: dropped
    with pytest.raises(ValueError, match="no video has 40"):
        ClipSampler(_videos(), clip_len=40, seed=0)


def test_token_labels_hand_worked():
    # one clip of 4 frames, K = 2 classes (+ the Ambiguous channel), 1 x 3 cells, tubelet 2
    cover = np.zeros((4, 3, 1, 3), dtype=np.float32)
    cover[0, 0, 0, 0] = 0.3  # class 0 in cell 0 on frame 0 only: mean 0.15 over the tubelet
    cover[0, 1, 0, 0] = 0.2  # class 1 less: class 0 wins
    cover[2:, 1, 0, 1] = 0.04  # class 1 in cell 1 of tubelet 1, mean 0.04 < 0.05: background
    cover[2:, 2, 0, 2] = 0.5  # ambiguous in cell 2 of tubelet 1: ignored
    cover[2:, 0, 0, 2] = 0.02  # a trace of class 0 there does not make it a class (below threshold)
    labels = token_labels(cover, 2, 0.05)
    assert labels.shape == (2, 1, 3)
    assert labels[:, 0].tolist() == [[0, 2, 2], [2, 2, IGNORE]]


def _with_and_without(settings, segment):
    base = dict(name="v", subset="validation", index=1, num_frames=90, distractors=())
    return VideoPlan(segments=(segment,), **base), VideoPlan(segments=(), **base)


@pytest.mark.parametrize("label", [0, 1, 2, 3, 4])
def test_patch_cover_is_where_the_rendered_action_is(label):
    """Independent reference: the pixels that change when the action is drawn (same background and noise)."""
    settings = settings_from_preset("default", dict(seed=5, width=64, height=64, pixel_noise=0.0))
    segment = SegmentPlan(label, 0, 300, False, dataclasses.replace(PARAMS, size=0.09))
    with_action, without = _with_and_without(settings, segment)
    drawn, empty = VideoRenderer(with_action, settings), VideoRenderer(without, settings)
    for f in (0, 7, 33, 61):
        changed = np.any(drawn.frame(f) != empty.frame(f), axis=-1).astype(np.float32)
        changed_cells = changed.reshape(4, 16, 4, 16).mean((1, 3))
        cover = patch_cover(with_action, f, tuple(drawn.camera[f]), 5, (64, 64), 16)
        assert cover.shape == (6, 4, 4)
        others = np.delete(cover, label, axis=0)
        assert not others.any(), "only the action's own class channel is covered"
        # every changed cell is covered; every well-covered cell changed
        assert np.all(cover[label][changed_cells > 0] > 0)
        assert np.all(changed_cells[cover[label] >= 0.1] > 0)
        assert abs(cover[label].sum() - changed_cells.sum()) <= 0.35 * changed_cells.sum() + 0.02
