"""The timeline picture (opentad.apis.visualization): rows, lanes, image size."""
import numpy as np
import pytest
from PIL import Image

from opentad.apis.visualization import assign_lanes, plot_timeline, timeline_rows

DETECTIONS = [
    {"segment": [1.0, 3.0], "label": "Diving", "score": 0.4},
    {"segment": [2.0, 4.0], "label": "Diving", "score": 0.9},
    {"segment": [5.0, 6.0], "label": "Billiards", "score": 0.95},
    {"segment": [0.5, 1.0], "label": "Diving", "score": 0.1},
    {"segment": [7.0, 8.0], "label": "Shotput", "score": 0.2},
]


def test_rows_ordered_by_best_score_with_top_detections():
    rows = timeline_rows(DETECTIONS, top_per_class=2, max_classes=2)
    assert [label for label, _ in rows] == ["Billiards", "Diving"]
    assert [d["score"] for d in rows[1][1]] == [0.9, 0.4]


def test_lanes_never_hold_overlapping_segments():
    rng = np.random.default_rng(0)
    starts = rng.uniform(0, 10, 40)
    segments = [[s, s + rng.uniform(0.1, 3)] for s in starts]
    lanes = assign_lanes(segments)
    for i in range(len(segments)):
        for j in range(i + 1, len(segments)):
            if lanes[i] == lanes[j]:
                a, b = segments[i], segments[j]
                assert a[1] <= b[0] or b[1] <= a[0]
    # greedy by start time uses as many lanes as the largest number of segments over one instant
    depth = max(sum(a[0] <= s[0] < a[1] for a in segments) for s in segments)
    assert max(lanes) + 1 == depth


@pytest.mark.parametrize("gt, rows", [(None, 3), ([{"segment": [1.0, 2.0], "label": "Golf"}], 4)])
def test_image_size_follows_the_rows(tmp_path, gt, rows):
    out = tmp_path / "sub" / "t.png"
    size = plot_timeline(DETECTIONS, duration=10.0, out=str(out), title="v", ground_truth=gt, width=800, row_height=30)
    with Image.open(out) as image:
        assert image.size == size == (800, 40 + 50 + 30 * rows)


def test_no_detection_still_draws_one_row(tmp_path):
    assert plot_timeline([], duration=3.0, out=str(tmp_path / "e.png")) == (1200, 40 + 50 + 40)
    with pytest.raises(ValueError, match="duration must be > 0"):
        plot_timeline(DETECTIONS, duration=0.0, out=str(tmp_path / "x.png"))
