"""Peak-memory attribution from an allocation trace: checked on a hand-written trace."""
from opentad.utils.memory import frame_label, peak_consumers, pool_reserved


def _alloc(addr, size, file, line=1):
    return dict(action="alloc", addr=addr, size=size, frames=[dict(filename=file, line=line, name="f")])


def _free(addr, size):
    return dict(action="free_requested", addr=addr, size=size)


def test_peak_and_groups_by_hand():
    trace = [
        _alloc(1, 100, "/x/opentad/a.py"),
        _alloc(2, 50, "/x/opentad/b.py"),
        _free(1, 100),  # 50 live
        _alloc(3, 30, "/x/opentad/b.py"),
        _alloc(4, 200, "/x/opentad/a.py", 7),  # 280 live: the peak
        _free(4, 200),
        _alloc(5, 260, "/usr/torch/x.py"),  # 340 live? no: 50 + 30 + 260 = 340 > 280 -> new peak
        _free(5, 260),
    ]
    peak, groups = peak_consumers(dict(device_traces=[trace]), base_bytes=1000)
    assert peak == 1000 + 340
    assert groups[0] == ("(allocated before the step: weights, optimizer state, inputs)", 1000)
    assert groups[1] == ("/usr/torch/x.py:1 f", 260)
    assert groups[2] == ("opentad/b.py:1 f", 80)
    assert len(groups) == 3


def test_top_and_other():
    trace = [_alloc(i, 10 * (i + 1), f"/p/opentad/m{i}.py") for i in range(5)]
    peak, groups = peak_consumers(dict(device_traces=[trace]), top=2)
    assert peak == 10 + 20 + 30 + 40 + 50
    assert groups == [("opentad/m4.py:1 f", 50), ("opentad/m3.py:1 f", 40), ("(other)", 60)]


def test_frame_label_prefers_project_frames():
    frames = [dict(filename="/usr/lib/torch/functional.py", line=3, name="linear"),
              dict(filename="/w/opentad/models/bricks/vit.py", line=9, name="forward")]
    assert frame_label(frames) == "opentad/models/bricks/vit.py:9 forward"
    assert frame_label(frames[:1]) == "/usr/lib/torch/functional.py:3 linear"
    assert frame_label([]) == "(no Python frame)"


def test_pool_reserved_sums_segments_per_pool():
    segments = [
        dict(device=0, segment_pool_id=(0, 0), total_size=100, allocated_size=40),
        dict(device=0, segment_pool_id=(1, 2), total_size=300, allocated_size=0),
        dict(device=0, segment_pool_id=(0, 0), total_size=50, allocated_size=50),
        dict(device=1, segment_pool_id=(0, 0), total_size=999, allocated_size=999),  # another card
        dict(device=0, total_size=7),  # no pool id: the default pool
    ]
    assert pool_reserved(dict(segments=segments)) == [("private (1, 2)", 300, 0), ("default", 157, 90)]
    assert pool_reserved(dict(segments=segments), device=1) == [("default", 999, 999)]
    assert pool_reserved({}) == []
