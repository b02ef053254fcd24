"""The torch port of OpenCV's 8-bit HSV conversions (hue jitter off the CPU) against OpenCV itself."""
import cv2
import numpy as np
import pytest
import torch

from opentad.transforms import photometric
from opentad.transforms.hsv import hsv_to_rgb, rgb_to_hsv, shift_hue


def _colours(n=300_000, seed=0):
    """Random colours plus the edge cases: greys, primaries, secondaries, near-greys (``[N, 3]`` uint8)."""
    rng = np.random.default_rng(seed)
    levels = np.arange(256)
    greys = np.stack([levels] * 3, -1)
    corners = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255],
                        [1, 0, 0], [0, 1, 1], [254, 255, 255], [128, 127, 128]])
    near = np.clip(greys[:, None, :] + rng.integers(-2, 3, (256, 8, 3)), 0, 255).reshape(-1, 3)
    return np.concatenate([greys, corners, near, rng.integers(0, 256, (n, 3))]).astype(np.uint8)


def _as_tensor(pixels):  # [N, 3] -> [3, 1, N]
    return torch.from_numpy(np.ascontiguousarray(pixels.T[:, None, :]))


def _as_pixels(tensor):  # [3, 1, N] -> [N, 3]
    return tensor[:, 0, :].T.numpy()


def test_rgb_to_hsv_equals_opencv():
    rgb = _colours()
    ref = cv2.cvtColor(rgb[None], cv2.COLOR_RGB2HSV)[0]
    assert np.array_equal(_as_pixels(rgb_to_hsv(_as_tensor(rgb))), ref)


def test_hsv_to_rgb_within_one_level_of_opencv():
    rng = np.random.default_rng(1)
    hsv = np.stack([rng.integers(0, 180, 400_000), rng.integers(0, 256, 400_000), rng.integers(0, 256, 400_000)], -1)
    hsv = np.concatenate([hsv, [[0, 0, 0], [179, 255, 255], [90, 0, 200], [30, 255, 1]]]).astype(np.uint8)
    ref = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2RGB)[0].astype(int)
    got = _as_pixels(hsv_to_rgb(_as_tensor(hsv))).astype(int)
    diff = np.abs(got - ref)
    # OpenCV 5 (the pinned version) truncates as the port does; builds that round are at most one level apart
    assert diff.max() <= 1
    if int(cv2.__version__.split(".")[0]) >= 5:
        assert (diff > 0).mean() < 1e-3


@pytest.mark.parametrize("offset", [0, 7, 25, -12, 179])
def test_shift_hue_matches_the_cpu_colour_jitter(offset):
    g = torch.Generator().manual_seed(offset + 50)
    clip = torch.randint(0, 256, (3, 3, 17, 23), generator=g, dtype=torch.uint8)  # [T, 3, H, W]
    ref = photometric._shift_hue(clip, offset)  # the CPU path: OpenCV
    got = shift_hue(clip, offset)
    assert got.shape == clip.shape and got.dtype == torch.uint8
    assert (got.int() - ref.int()).abs().max() <= 1
    # hand-worked: pure red (hue 0) moved by 60 (120 degrees) becomes pure green
    red = torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1)
    assert shift_hue(red, 60).flatten().tolist() == [0, 255, 0]


def test_bad_input_is_rejected():
    with pytest.raises(TypeError, match="uint8"):
        rgb_to_hsv(torch.zeros(3, 2, 2))
    with pytest.raises(TypeError, match=r"\[..., 3, H, W\]"):
        hsv_to_rgb(torch.zeros(4, 2, 2, dtype=torch.uint8))
