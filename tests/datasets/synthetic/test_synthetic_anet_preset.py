"""The "anet" synthetic preset: ActivityNet-style plans (few long actions, one class a video, every video annotated).

Checked on the plans of the preset's own settings (no file written): the
properties are what the ActivityNet configs assume, counted video by video.
"""
import numpy as np

from opentad.datasets.synthetic import PRESETS, settings_from_preset
from opentad.datasets.synthetic.plan import plan_dataset


def test_anet_plans_are_activitynet_like():
    settings = settings_from_preset("anet", dict(num_train=80, num_test=20, write_videos=False))
    assert settings.num_classes == 20 and PRESETS["anet"]["num_train"] == 400
    plans = plan_dataset(settings)
    assert len(plans) == 100
    counts, fractions = [], []
    for plan in plans:
        segments = sorted(plan.segments, key=lambda s: s.start_cs)
        assert segments, plan.name  # every video annotated (empty_fraction 0)
        assert not any(s.ambiguous for s in segments), plan.name  # no Ambiguous label
        assert len({s.label for s in segments}) == 1, plan.name  # one class a video
        assert all(a.end_cs <= b.start_cs for a, b in zip(segments, segments[1:])), plan.name  # no overlap
        duration_cs = plan.num_frames * 100 / 30
        assert all(200 <= s.end_cs - s.start_cs <= 1000 for s in segments), plan.name  # 2 to 10 s
        counts.append(len(segments))
        fractions.extend((s.end_cs - s.start_cs) / duration_cs for s in segments)
    # ActivityNet: about 1.5 actions a video, each about a third of it; THUMOS-like plans give many short ones
    assert 1.0 <= np.mean(counts) <= 2.5 and max(counts) <= 6, (np.mean(counts), max(counts))
    assert 0.2 <= np.mean(fractions) <= 0.6, np.mean(fractions)


def test_thumos_preset_is_not_activitynet_like():
    """The same statistics separate the presets (the test above would fail on THUMOS-style plans)."""
    plans = plan_dataset(settings_from_preset("thumos", dict(num_train=20, num_test=0, write_videos=False)))
    fractions = [(s.end_cs - s.start_cs) / (p.num_frames * 100 / 30) for p in plans for s in p.segments]
    assert np.mean(fractions) < 0.2 and np.mean([len(p.segments) for p in plans]) > 2.5
