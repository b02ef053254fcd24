"""PointGenerator on a hand-worked two-level example."""
import pytest
import torch

from opentad.registry import PRIOR_GENERATORS, build


def test_points_of_two_levels():
    gen = build(dict(type="PointGenerator", strides=[1, 2], regression_range=[(0, 4), (4, 100)]), PRIOR_GENERATORS)
    pts = gen([torch.zeros(2, 3, 4), torch.zeros(2, 3, 2)])
    # rows (position, r_min, r_max, stride): positions t * stride
    assert pts[0].tolist() == [[0, 0, 4, 1], [1, 0, 4, 1], [2, 0, 4, 1], [3, 0, 4, 1]]
    assert pts[1].tolist() == [[0, 4, 100, 2], [2, 4, 100, 2]]
    assert pts[0].dtype == torch.float32


def test_offset_puts_points_at_cell_centres():
    gen = build(
        dict(type="PointGenerator", strides=[4], regression_range=[(0, 8)], use_offset=True), PRIOR_GENERATORS
    )
    assert gen([torch.zeros(1, 1, 3)])[0][:, 0].tolist() == [2.0, 6.0, 10.0]


def test_mismatched_ranges_are_rejected():
    with pytest.raises(ValueError, match="regression range"):
        build(dict(type="PointGenerator", strides=[1, 2], regression_range=[(0, 4)]), PRIOR_GENERATORS)
