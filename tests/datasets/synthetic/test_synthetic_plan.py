"""Settings, presets and video plans of the synthetic dataset (no rendering)."""
from fractions import Fraction

import numpy as np
import pytest

from opentad.datasets.synthetic import CLASS_NAMES, SyntheticSettings, settings_from_preset
from opentad.datasets.synthetic.plan import plan_dataset

THUMOS14_CLASSES = [
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot",
    "Diving", "FrisbeeCatch", "GolfSwing", "HammerThrow", "HighJump", "JavelinThrow", "LongJump", "PoleVault",
    "Shotput", "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
]  # fmt: skip


def test_class_names_are_thumos14_in_order():
    assert list(CLASS_NAMES) == THUMOS14_CLASSES
    assert SyntheticSettings(num_classes=3).class_names == tuple(THUMOS14_CLASSES[:3])


@pytest.mark.parametrize(
    "bad, field",
    [
        (dict(width=97), "size"),
        (dict(height=95), "size"),
        (dict(num_classes=21), "num_classes"),
        (dict(num_classes=0), "num_classes"),
        (dict(min_action=0.2), "action lengths"),
        (dict(max_action=12.0), "action lengths"),
        (dict(min_duration=40.0, max_duration=30.0), "durations"),
        (dict(overlap_prob=1.5), "overlap_prob"),
        (dict(num_train=0, num_test=0), "num_train"),
    ],
)
def test_invalid_settings_name_the_field(bad, field):
    with pytest.raises(ValueError, match=field):
        SyntheticSettings(**bad)


def test_preset_overrides_and_errors():
    s = settings_from_preset("thumos", dict(num_train=3, seed=None))
    assert (s.num_train, s.num_test, s.num_classes, s.width, s.height, s.seed) == (3, 213, 20, 320, 180, 0)
    with pytest.raises(KeyError, match="thumos"):
        settings_from_preset("thumos15")
    with pytest.raises(TypeError, match="num_train"):
        settings_from_preset("default", dict(num_trains=3))


def test_digest_changes_with_any_setting():
    base = SyntheticSettings()
    assert base.digest() == SyntheticSettings().digest()
    assert base.digest() != SyntheticSettings(seed=1).digest()
    assert base.digest() != SyntheticSettings(feat_noise=0.21).digest()


def test_thumos_preset_has_thumos14_scale():
    plans = plan_dataset(settings_from_preset("thumos"))
    subsets = [p.subset for p in plans]
    assert subsets.count("validation") == 200 and subsets.count("test") == 213
    durations = np.array([p.duration for p in plans])
    assert 140 <= np.median(durations) <= 170
    actions = sum(1 for p in plans for s in p.segments if not s.ambiguous)
    assert 5800 <= actions <= 7000
    assert {s.label for p in plans for s in p.segments} == set(range(20))


def _segments_of(plans):
    return [(p, s) for p in plans for s in p.segments]


def test_segments_inside_video_and_of_legal_length():
    s = SyntheticSettings(num_train=40, num_test=20, overlap_prob=0.3, ambiguous_prob=0.5)
    plans = plan_dataset(s)
    for plan, seg in _segments_of(plans):
        assert 0 <= seg.start_cs < seg.end_cs and seg.end_cs / 100 <= plan.duration
        assert 0 <= seg.label < s.num_classes
        if not seg.ambiguous:
            assert 50 <= seg.end_cs - seg.start_cs <= 1000
    # ambiguous segments never touch an action
    for plan in plans:
        actions = [x for x in plan.segments if not x.ambiguous]
        for amb in (x for x in plan.segments if x.ambiguous):
            assert all(amb.end_cs <= a.start_cs or amb.start_cs >= a.end_cs for a in actions)
    assert any(seg.ambiguous for _, seg in _segments_of(plans))


def test_overlaps_are_rare_by_default():
    plans = plan_dataset(SyntheticSettings(num_train=60, num_test=0))
    pairs = overlapping = 0
    for plan in plans:
        actions = sorted((x for x in plan.segments if not x.ambiguous), key=lambda x: x.start_cs)
        for a, b in zip(actions, actions[1:]):
            pairs += 1
            overlapping += b.start_cs < a.end_cs
    assert pairs > 50 and overlapping / pairs < 0.15


def test_empty_videos_and_names():
    plans = plan_dataset(SyntheticSettings(num_train=10, num_test=5, empty_fraction=0.2))
    assert [p.name for p in plans[:2]] == ["video_validation_0000001", "video_validation_0000002"]
    assert plans[10].name == "video_test_0000001"
    assert sum(not p.segments for p in plans if p.subset == "validation") == 2
    assert sum(not p.segments for p in plans if p.subset == "test") == 1


def test_frame_range_matches_exact_time_comparison():
    plans = plan_dataset(SyntheticSettings(num_train=5, num_test=0))
    for plan, seg in _segments_of(plans):
        first, stop = seg.frame_range()
        start, end = Fraction(seg.start_cs, 100), Fraction(seg.end_cs, 100)
        shown = [f for f in range(plan.num_frames) if start <= Fraction(f, 30) < end]
        assert shown == list(range(first, min(stop, plan.num_frames)))


def test_videos_do_not_depend_on_other_videos():
    small = plan_dataset(SyntheticSettings(num_train=6, num_test=2))
    large = plan_dataset(SyntheticSettings(num_train=6, num_test=9))
    assert small[:6] == large[:6]  # adding test videos leaves the training videos alone
    assert small[6].num_frames == large[6].num_frames
    other_seed = plan_dataset(SyntheticSettings(num_train=6, num_test=2, seed=1))
    assert [p.num_frames for p in other_seed] != [p.num_frames for p in small]


def test_annotation_entry_schema():
    plan = next(p for p in plan_dataset(SyntheticSettings(num_train=6, num_test=0)) if p.segments)
    entry = plan.annotation(CLASS_NAMES)
    assert set(entry) == {"subset", "duration", "frame", "annotations"}
    assert entry["frame"] == plan.num_frames and entry["duration"] == pytest.approx(plan.num_frames / 30)
    starts = [a["segment"][0] for a in entry["annotations"]]
    assert starts == sorted(starts)
    for a in entry["annotations"]:
        assert set(a) == {"label", "segment"} and a["label"] in CLASS_NAMES + ("Ambiguous",)
