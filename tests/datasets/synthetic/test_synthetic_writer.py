"""The mp4 writer: exact RGB -> yuv420p, x264 options that reach the encoder,
and encoder output that does not depend on x264's instruction set."""
import re

import av
import numpy as np
import pytest

from opentad.datasets.synthetic import SyntheticSettings
from opentad.datasets.synthetic.plan import plan_dataset
from opentad.datasets.synthetic.render import VideoRenderer
from opentad.datasets.synthetic.writer import rgb_to_yuv420p, write_mp4

# BT.601 limited range (ITU-R BT.601): the reference the conversion is checked against.
KR, KB = 0.299, 0.114
KG = 1 - KR - KB


def _reference_ycbcr(rgb):
    """Exact (float64) Y, Cb, Cr of RGB values [..., 3] in 0-255."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    luma = KR * r + KG * g + KB * b
    y = 16 + 219 / 255 * luma
    cb = 128 + 224 / 255 * (b - luma) / (2 * (1 - KB))
    cr = 128 + 224 / 255 * (r - luma) / (2 * (1 - KR))
    return y, cb, cr


def _planes(yuv, height, width):
    flat = yuv.reshape(-1)
    n = height * width
    return (flat[:n].reshape(height, width), flat[n : n * 5 // 4].reshape(height // 2, width // 2),
            flat[n * 5 // 4 :].reshape(height // 2, width // 2))  # fmt: skip


def test_hand_worked_colours_and_plane_layout():
    # four 2x2 blocks: red, green / blue, white; textbook BT.601 (Y, Cb, Cr) values
    colours = {(255, 0, 0): (81, 90, 240), (0, 255, 0): (145, 54, 34), (0, 0, 255): (41, 240, 110),
               (255, 255, 255): (235, 128, 128), (0, 0, 0): (16, 128, 128),
               (128, 128, 128): (126, 128, 128)}  # fmt: skip
    grid = [[(255, 0, 0), (0, 255, 0)], [(0, 0, 255), (255, 255, 255)]]
    image = np.kron(np.array(grid, np.uint8).transpose(2, 0, 1), np.ones((2, 2), np.uint8)).transpose(1, 2, 0)
    yuv = rgb_to_yuv420p(np.ascontiguousarray(image))
    assert yuv.shape == (6, 4) and yuv.dtype == np.uint8
    y, u, v = _planes(yuv, 4, 4)
    for by in range(2):
        for bx in range(2):
            want = colours[grid[by][bx]]
            assert (y[2 * by : 2 * by + 2, 2 * bx : 2 * bx + 2] == want[0]).all()
            assert (u[by, bx], v[by, bx]) == want[1:]
    for rgb, want in colours.items():
        flat = rgb_to_yuv420p(np.full((2, 2, 3), rgb, np.uint8)).reshape(-1)
        assert tuple(flat[[0, 4, 5]]) == want, rgb


def test_matches_the_bt601_formula_within_fixed_point_rounding():
    """Error model: round-half-up of a fixed-point sum whose three coefficients are each within
    1.5 / 2^16 of the exact ones (16 fractional bits, one coefficient derived from the row
    sum): |result - exact| <= 1/2 + 255 * 3 * 1.5 / 2^16 (about 0.5175). Chroma is that of the
    mean colour of each 2x2 block."""
    bound = 0.5 + 255 * 3 * 1.5 / 2**16
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    image[:8] = np.linspace(0, 255, 64).astype(np.uint8)[None, :, None]  # smooth ramps too
    y, u, v = _planes(rgb_to_yuv420p(image), 48, 64)
    ref_y, _, _ = _reference_ycbcr(image)
    means = image.astype(np.float64).reshape(24, 2, 32, 2, 3).mean(axis=(1, 3))
    _, ref_u, ref_v = _reference_ycbcr(means)
    for got, ref in ((y, ref_y), (u, ref_u), (v, ref_v)):
        assert np.abs(got - ref).max() <= bound
    assert (y == np.floor(ref_y + 0.5)).mean() > 0.99  # not merely within one level


def test_rejects_what_is_not_an_even_rgb_frame():
    for bad in (np.zeros((3, 4, 3), np.uint8), np.zeros((4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)):
        with pytest.raises(ValueError, match="even"):
            rgb_to_yuv420p(bad)


def _decode_yuv(path):
    """Decoder output planes (H.264 decoding is exactly specified: no colour conversion here)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray() for f in container.decode(video=0)])


def test_lossless_round_trip_shows_the_encoder_gets_these_planes(tmp_path):
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (32, 48, 3), dtype=np.uint8) for _ in range(5)]
    write_mp4(str(tmp_path / "lossless.mp4"), frames, crf=0)  # x264: crf 0 is lossless
    decoded = _decode_yuv(tmp_path / "lossless.mp4")
    np.testing.assert_array_equal(decoded, np.stack([rgb_to_yuv420p(f) for f in frames]))


def _x264_options(data: bytes) -> dict:
    """The options string x264 writes into its SEI user data, as a dict."""
    found = re.search(rb"x264 - core \d+.*? - options: ([ -~]+)", data)
    assert found, "no x264 SEI options string in the stream"
    return dict(item.split("=", 1) for item in found.group(1).decode("ascii").split() if "=" in item)


def _video_frames(num_frames=90):
    settings = SyntheticSettings(num_train=1, num_test=0, min_duration=4, max_duration=4, empty_fraction=0.0)
    renderer = VideoRenderer(plan_dataset(settings)[0], settings)
    return [renderer.frame(f) for f in range(num_frames)]


def test_single_thread_options_reach_x264(tmp_path):
    path = tmp_path / "v.mp4"
    write_mp4(str(path), _video_frames(20), crf=27, gop=15)
    options = _x264_options(path.read_bytes())
    assert (options["threads"], options["lookahead_threads"], options["sliced_threads"]) == ("1", "1", "0")
    assert (options["crf"], options["keyint"]) == ("27.0", "15")


def test_encoded_bytes_repeat_and_do_not_depend_on_x264_instruction_set(tmp_path):
    """What x264 picks here, three times, against its C code ("0") and its SSE2 code (every x86-64
    CPU has it). Without cpu-independent=1 these differ (mb-tree and SSSE3 intra-search routines),
    and on AVX-512 CPUs even the repeats differ."""
    frames = _video_frames()
    outputs = {}
    for run, asm in enumerate((None, None, None, "0", "SSE2")):
        path = tmp_path / f"asm-{asm}.mp4"
        write_mp4(str(path), frames, x264_asm=asm)
        outputs[run] = path.read_bytes()
    assert all(outputs[run] == outputs[0] for run in outputs)
    assert len(_decode_yuv(tmp_path / "asm-None.mp4")) == len(frames)
