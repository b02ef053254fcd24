"""Label assignment: a hand-worked example and a brute-force per-point reference."""
import pytest
import torch

from opentad.models.dense_heads.point_assigner import assign_points

# level 0: stride 1, positions 0..7, range [0, 4]; level 1: stride 2, positions 0, 2, 4, 6, range [4, 100]
POINTS = torch.tensor(
    [[float(p), 0.0, 4.0, 1.0] for p in range(8)] + [[float(p), 4.0, 100.0, 2.0] for p in (0, 2, 4, 6)]
)
# A = [1, 4] class 2, B = [0, 12] class 0, C = [3, 9] class 1
SEGMENTS = torch.tensor([[1.0, 4.0], [0.0, 12.0], [3.0, 9.0]])
LABELS = torch.tensor([2, 0, 1])


def test_hand_worked_example():
    # Centre regions (radius 1.5 strides, clipped to the segment, open interval):
    #   stride 1: A (1, 4), B (4.5, 7.5), C (4.5, 7.5)     stride 2: A (1, 4), B (3, 9), C (3, 9)
    # Level 0 (range [0, 4] on the longer distance):
    #   p=2, 3 -> A (distances (1, 2), (2, 1));  p=5, 6, 7 -> C ((2, 4), (3, 3), (4, 2));
    #   B at p=5..7 has a distance >= 5 > 4: out of range.
    # Level 1 (range [4, 100]):
    #   p=2: A's longest distance 2 < 4: none.  p=4: B (4, 8) and C (1, 5): C is shorter -> class 1, (1, 5) / 2
    #   p=6: B (6, 6) ok; C (3, 3) out of range -> class 0, (6, 6) / 2
    cls, reg = assign_points(POINTS, SEGMENTS, LABELS, num_classes=3)
    expected_cls = torch.zeros(12, 3)
    for row, label in [(2, 2), (3, 2), (5, 1), (6, 1), (7, 1), (10, 1), (11, 0)]:
        expected_cls[row, label] = 1
    assert torch.equal(cls, expected_cls)
    pos = cls.sum(1) > 0
    expected_reg = torch.tensor([[1, 2], [2, 1], [2, 4], [3, 3], [4, 2], [0.5, 2.5], [3, 3]])
    torch.testing.assert_close(reg[pos], expected_reg)


def test_without_filtering_every_candidate_class_is_kept():
    # level-1 p=4 is a candidate of B (class 0) and C (class 1): both classes, regression still to C
    cls, reg = assign_points(POINTS, SEGMENTS, LABELS, num_classes=3, filter_similar_gt=False)
    assert cls[10].tolist() == [1.0, 1.0, 0.0]
    torch.testing.assert_close(reg[10], torch.tensor([0.5, 2.5]))


def test_near_duplicate_segments_share_the_point():
    # D = [3, 9.0005] (class 2) is within 1e-3 of C's length: filter_similar_gt keeps both classes
    segments = torch.tensor([[3.0, 9.0], [3.0, 9.0005]])
    cls, _ = assign_points(POINTS, segments, torch.tensor([1, 2]), num_classes=3)
    assert cls[6].tolist() == [0.0, 1.0, 1.0]


def test_no_ground_truth():
    cls, reg = assign_points(POINTS, torch.zeros(0, 2), torch.zeros(0, dtype=torch.long), num_classes=3)
    assert cls.shape == (12, 3) and not cls.any() and reg.shape == (12, 2)


def _reference(points, segments, labels, num_classes, radius, center_sample, filter_similar):
    """Per point, per segment, in plain Python."""
    cls = torch.zeros(len(points), num_classes)
    reg = torch.zeros(len(points), 2)
    for i, (p, lo, hi, s) in enumerate(points.tolist()):
        cands = []
        for (a, b), label in zip(segments.tolist(), labels.tolist()):
            if center_sample:
                c = (a + b) / 2
                inside = max(a, c - radius * s) < p < min(b, c + radius * s)
            else:
                inside = a < p < b
            if inside and lo <= max(p - a, b - p) <= hi:
                cands.append((b - a, label, (p - a) / s, (b - p) / s))
        if cands:
            shortest = min(c[0] for c in cands)
            best = next(c for c in cands if c[0] == shortest)
            reg[i] = torch.tensor(best[2:])
            for length, label, _, _ in cands:
                if not filter_similar or length <= shortest + 1e-3:
                    cls[i, label] = 1
    return cls, reg


@pytest.mark.parametrize("center_sample", ["radius", None])
@pytest.mark.parametrize("filter_similar", [True, False])
def test_matches_brute_force_on_random_cases(center_sample, filter_similar):
    gen = torch.Generator().manual_seed(3)
    points = torch.cat(
        [torch.tensor([[float(t * s + 0.0), lo, hi, float(s)] for t in range(32 // s)])
         for s, (lo, hi) in [(1, (0, 4)), (2, (4, 8)), (4, (8, 1000))]]
    )
    for _ in range(10):
        n = int(torch.randint(1, 6, (), generator=gen))
        start = torch.rand(n, generator=gen) * 28
        segments = torch.stack([start, start + 0.5 + torch.rand(n, generator=gen) * 20], dim=1)
        labels = torch.randint(0, 4, (n,), generator=gen)
        cls, reg = assign_points(
            points, segments, labels, num_classes=4, center_sample=center_sample, filter_similar_gt=filter_similar
        )
        ref_cls, ref_reg = _reference(points, segments, labels, 4, 1.5, center_sample, filter_similar)
        assert torch.equal(cls, ref_cls)
        pos = cls.sum(1) > 0
        torch.testing.assert_close(reg[pos], ref_reg[pos])
