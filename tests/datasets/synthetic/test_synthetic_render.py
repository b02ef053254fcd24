"""Drawing, the 20 motion patterns, frame rendering and the atomic writers."""
import math
import os

import numpy as np
import pytest

from opentad.datasets.synthetic import PATTERNS, SyntheticSettings
from opentad.datasets.synthetic.patterns import ActionParams, Shape
from opentad.datasets.synthetic.plan import plan_dataset
from opentad.datasets.synthetic.render import VideoRenderer, draw_shape
from opentad.datasets.synthetic.writer import write_mp4, write_npy


def test_disc_and_box_areas_match_geometry():
    image = np.zeros((64, 64, 3), np.float32)
    draw_shape(image, Shape("disc", 0.5, 0.5, 0.2, (255.0, 255.0, 255.0)))
    assert image[..., 0].sum() / 255 == pytest.approx(math.pi * 12.8**2, rel=0.02)
    image[:] = 0
    draw_shape(image, Shape("box", 0.5, 0.5, 0.1, (255.0, 0.0, 0.0), angle=0.3))
    assert image[..., 0].sum() / 255 == pytest.approx((2 * 6.4) ** 2, rel=0.03)
    assert image[..., 1].sum() == 0
    image[:] = 100
    draw_shape(image, Shape("disc", 0.5, 0.5, 0.2, (255.0, 255.0, 255.0), opacity=0.5))
    assert image[32, 32, 0] == pytest.approx(177.5)  # half way from 100 to 255
    with pytest.raises(ValueError, match="triangle"):
        draw_shape(image, Shape("triangle", 0.5, 0.5, 0.1, (1.0, 1.0, 1.0)))


def test_shape_outside_the_frame_draws_nothing():
    image = np.zeros((32, 32, 3), np.float32)
    draw_shape(image, Shape("disc", 1.8, -0.7, 0.1, (255.0, 255.0, 255.0)))
    assert not image.any()


def _params(rng):
    return ActionParams(
        shape=("disc", "box")[int(rng.integers(2))],
        size=float(rng.uniform(0.06, 0.1)),
        color=(255.0, float(rng.uniform(100, 255)), float(rng.uniform(0, 255))),
        color2=(float(rng.uniform(100, 255)), 255.0, 60.0),
        speed=float(rng.uniform(0.7, 1.4)),
        phase=float(rng.uniform()),
        u=tuple(float(v) for v in rng.uniform(size=3)),
    )


def _pattern_masks(pattern, params, frames=45, size=64):
    masks = []
    for f in range(frames):
        image = np.zeros((size, size, 3), np.float32)
        for shape in pattern.fn(f / 30, params):
            draw_shape(image, shape)
        masks.append(image.sum(-1) > 80)
    return np.stack(masks)


def test_twenty_patterns_are_separable_by_simple_motion_statistics(motion):
    rng = np.random.default_rng(123)
    descriptors, labels = [], []
    for k, pattern in enumerate(PATTERNS):
        for _ in range(4):
            masks = _pattern_masks(pattern, _params(rng))
            # every pattern moves or changes, several times in 1.5 s
            assert (masks[1:] != masks[:-1]).any((1, 2)).sum() >= 3, pattern.name
            descriptors.append(motion.descriptor(masks))
            labels.append(k)
    descriptors, labels = np.array(descriptors), np.array(labels)
    accuracy = motion.loo_accuracy(descriptors, labels)
    assert accuracy >= 0.6, accuracy  # chance is 0.05

    mean = {p.name: descriptors[labels == k].mean(0) for k, p in enumerate(PATTERNS)}
    col = {name: i for i, name in enumerate(motion.names)}
    # hand-checked directions (image y points down)
    assert mean["move_right"][col["median_vx"]] > 0.1 and mean["move_left"][col["median_vx"]] < -0.1
    assert mean["move_down"][col["median_vy"]] > 0.1 and mean["move_up"][col["median_vy"]] < -0.1
    assert mean["diagonal"][col["median_vx"]] > 0.1 and mean["diagonal"][col["median_vy"]] < -0.1
    assert mean["orbit"][col["median_angular_momentum"]] > 0  # clockwise on screen
    assert mean["converge"][col["median_spread_growth"]] < 0 < mean["diverge"][col["median_spread_growth"]]
    assert mean["blink"][col["empty_fraction"]] > 0.3
    assert mean["spin_bar"][col["elongation"]] > 1.5 and mean["spin_bar"][col["median_abs_turn"]] > 0.05


def test_frames_are_deterministic_and_order_independent():
    settings = SyntheticSettings(num_train=1, num_test=0, min_duration=3, max_duration=3, empty_fraction=0.0)
    plan = plan_dataset(settings)[0]
    forward = [VideoRenderer(plan, settings).frame(f) for f in range(10)]
    renderer = VideoRenderer(plan, settings)
    backward = [renderer.frame(f) for f in reversed(range(10))][::-1]
    assert all(np.array_equal(a, b) for a, b in zip(forward, backward))
    assert forward[0].shape == (96, 96, 3) and forward[0].dtype == np.uint8
    assert not np.array_equal(forward[0], forward[1])  # noise and jitter change every frame
    other = plan_dataset(SyntheticSettings(num_train=1, num_test=0, min_duration=3, max_duration=3, seed=5))[0]
    assert not np.array_equal(VideoRenderer(other, settings).frame(0), forward[0])


def test_write_mp4_rejects_odd_sizes_and_leaves_nothing(tmp_path):
    path = str(tmp_path / "odd.mp4")
    with pytest.raises(ValueError, match="even"):
        write_mp4(path, [np.zeros((31, 32, 3), np.uint8)])
    assert os.listdir(tmp_path) == []


def test_interrupted_write_leaves_no_file(tmp_path):
    def frames():
        yield np.zeros((32, 32, 3), np.uint8)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_mp4(str(tmp_path / "v.mp4"), frames())
    assert os.listdir(tmp_path) == []
    write_npy(str(tmp_path / "a.npy"), np.arange(6, dtype=np.float32).reshape(2, 3))
    assert os.listdir(tmp_path) == ["a.npy"]
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.arange(6).reshape(2, 3))
